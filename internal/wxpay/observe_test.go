package wxpay_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"ordersaga/internal/paysim"
	"ordersaga/internal/wxpay"
)

// Every call is reported to OnCall with how it ended, for the metrics of
// WeChat calls by endpoint and outcome.
func TestEveryCallIsReportedWithItsOutcome(t *testing.T) {
	e := newEnv(t)
	type call struct {
		op   string
		kind wxpay.ErrorKind
	}
	var (
		mu    sync.Mutex
		calls []call
	)
	c := e.clientWith(t, func(cfg *wxpay.Config) {
		cfg.OnCall = func(op string, kind wxpay.ErrorKind, took time.Duration) {
			if took <= 0 {
				t.Errorf("%s took %v", op, took)
			}
			mu.Lock()
			calls = append(calls, call{op, kind})
			mu.Unlock()
		}
	})
	ctx := context.Background()
	no := newOrderNo()
	if _, err := c.Prepay(ctx, wxpay.PrepayRequest{OutTradeNo: no, Description: "测试商品", TotalFen: 100, PayerOpenID: "oUser1"}); err != nil {
		t.Fatal(err)
	}
	_, _ = c.QueryOrder(ctx, newOrderNo()) // never prepaid: 404 ORDER_NOT_EXIST
	e.setFaults(t, endpointFault("close", paysim.EndpointFault{Status: 500, Count: 1}))
	_ = c.CloseOrder(ctx, no)
	e.setFaults(t, endpointFault("query", paysim.EndpointFault{BadSignature: true, Count: 1}))
	_, _ = c.QueryOrder(ctx, no)

	want := []call{
		{"prepay", wxpay.KindNone},
		{"query", wxpay.KindPermanent},
		{"close", wxpay.KindRetryable},
		{"query", wxpay.KindUnknown},
	}
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != len(want) {
		t.Fatalf("calls %v, want %v", calls, want)
	}
	for i := range want {
		if calls[i] != want[i] {
			t.Errorf("call %d = %v, want %v", i, calls[i], want[i])
		}
	}
}
