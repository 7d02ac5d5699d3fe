package wxpay_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"ordersaga/internal/paysim"
	"ordersaga/internal/wxpay"
)

func TestPrepay(t *testing.T) {
	ctx := context.Background()
	base := func(no string, e *env) wxpay.PrepayRequest {
		return wxpay.PrepayRequest{
			OutTradeNo: no, Description: "测试商品", TotalFen: 1990, PayerOpenID: "oUser1",
			TimeExpire: e.clock.Now().Add(15 * time.Minute), Attach: "order-attach",
		}
	}
	tests := []struct {
		name       string
		opts       []envOption
		setup      func(t *testing.T, e *env, no string)
		req        func(r *wxpay.PrepayRequest)
		client     func(t *testing.T, e *env) *wxpay.Client
		wantKind   wxpay.ErrorKind
		wantCode   string
		wantStatus int
		check      func(t *testing.T, e *env, no string, p wxpay.PayParams)
	}{
		{
			name: "success returns requestPayment params whose paySign verifies with the merchant key",
			check: func(t *testing.T, e *env, no string, p wxpay.PayParams) {
				if err := wxpay.VerifyPaySign(e.cfg.AppID, p, devKeys.MchPublicKey); err != nil {
					t.Errorf("paySign does not verify: %v", err)
				}
				if err := wxpay.VerifyPaySign("wx_other_app", p, devKeys.MchPublicKey); err == nil {
					t.Error("paySign verifies for another appid")
				}
				if p.SignType != "RSA" || p.Package != "prepay_id="+p.PrepayID || p.PrepayID == "" || p.NonceStr == "" || p.TimeStamp == "" {
					t.Errorf("bad params %+v", p)
				}
				b, _ := json.Marshal(p)
				var m map[string]any
				_ = json.Unmarshal(b, &m)
				keys := make([]string, 0, len(m))
				for k := range m {
					keys = append(keys, k)
				}
				sort.Strings(keys)
				if strings.Join(keys, ",") != "nonceStr,package,paySign,signType,timeStamp" {
					t.Errorf("JSON keys = %v, want exactly the five wx.requestPayment keys", keys)
				}
				v := e.view(t, no)
				if v.TradeState != paysim.StateNotPay || v.TotalFen != 1990 || v.PayerOpenID != "oUser1" || v.PrepayID != p.PrepayID || v.Attach != "order-attach" {
					t.Errorf("simulator view %+v", v)
				}
				want := e.clock.Now().Add(15 * time.Minute)
				if v.TimeExpire == nil || v.TimeExpire.Sub(want) > 2*time.Second || want.Sub(*v.TimeExpire) > 2*time.Second {
					t.Errorf("time_expire %v, want about %v", v.TimeExpire, want)
				}
				if v.NotifyURL != e.cfg.NotifyURL {
					t.Errorf("notify_url %q, want %q", v.NotifyURL, e.cfg.NotifyURL)
				}
			},
		},
		{
			name: "same out_trade_no and parameters answers the same prepay_id",
			setup: func(t *testing.T, e *env, no string) {
				first, err := e.client.Prepay(ctx, base(no, e))
				if err != nil {
					t.Fatal(err)
				}
				e.memo = first.PrepayID
			},
			check: func(t *testing.T, e *env, no string, p wxpay.PayParams) {
				if p.PrepayID != e.memo {
					t.Errorf("prepay_id %q, want the first one %q", p.PrepayID, e.memo)
				}
			},
		},
		{
			name:       "same out_trade_no with another amount is OUT_TRADE_NO_USED",
			setup:      func(t *testing.T, e *env, no string) { e.prepay(t, no, 500) },
			wantKind:   wxpay.KindPermanent,
			wantCode:   "OUT_TRADE_NO_USED",
			wantStatus: http.StatusForbidden,
		},
		{
			name: "closed order is ORDER_CLOSED",
			setup: func(t *testing.T, e *env, no string) {
				e.prepay(t, no, 1990)
				if err := e.client.CloseOrder(ctx, no); err != nil {
					t.Fatal(err)
				}
			},
			wantKind: wxpay.KindPermanent, wantCode: "ORDER_CLOSED", wantStatus: http.StatusBadRequest,
		},
		{
			name:     "paid order is ORDERPAID",
			setup:    func(t *testing.T, e *env, no string) { e.prepayAndPay(t, no, 1990) },
			wantKind: wxpay.KindPermanent, wantCode: paysim.CodeOrderPaid, wantStatus: http.StatusForbidden,
		},
		{
			name:     "time_expire in the past is PARAM_ERROR",
			req:      func(r *wxpay.PrepayRequest) { r.TimeExpire = time.Now().Add(-time.Minute) },
			wantKind: wxpay.KindPermanent, wantCode: "PARAM_ERROR", wantStatus: http.StatusBadRequest,
		},
		{
			name: "another appid is APPID_MCHID_NOT_MATCH",
			client: func(t *testing.T, e *env) *wxpay.Client {
				return e.clientWith(t, func(c *wxpay.Config) { c.AppID = "wx_not_this_app" })
			},
			wantKind: wxpay.KindPermanent, wantCode: "APPID_MCHID_NOT_MATCH", wantStatus: http.StatusBadRequest,
		},
		{
			name: "500 is retryable SYSTEM_ERROR",
			setup: func(t *testing.T, e *env, no string) {
				e.setFaults(t, endpointFault(paysim.EndpointPrepay, paysim.EndpointFault{Status: 500}))
			},
			wantKind: wxpay.KindRetryable, wantCode: "SYSTEM_ERROR", wantStatus: 500,
		},
		{
			name: "429 is retryable FREQUENCY_LIMITED",
			setup: func(t *testing.T, e *env, no string) {
				e.setFaults(t, endpointFault(paysim.EndpointPrepay, paysim.EndpointFault{Status: 429}))
			},
			wantKind: wxpay.KindRetryable, wantCode: "FREQUENCY_LIMITED", wantStatus: 429,
		},
		{
			name: "an answer whose signature fails is unknown: the prepay exists",
			setup: func(t *testing.T, e *env, no string) {
				e.setFaults(t, endpointFault(paysim.EndpointPrepay, paysim.EndpointFault{BadSignature: true}))
			},
			wantKind: wxpay.KindUnknown, wantStatus: 200,
			check: func(t *testing.T, e *env, no string, _ wxpay.PayParams) {
				if v := e.view(t, no); v.TradeState != paysim.StateNotPay {
					t.Errorf("trade_state %s, want NOTPAY", v.TradeState)
				}
			},
		},
		{
			name: "a slow answer times out and is retryable",
			setup: func(t *testing.T, e *env, no string) {
				e.setFaults(t, endpointFault(paysim.EndpointPrepay, paysim.EndpointFault{DelayMS: 5000}))
			},
			client: func(t *testing.T, e *env) *wxpay.Client {
				return e.clientWith(t, func(c *wxpay.Config) { c.Timeout = 200 * time.Millisecond })
			},
			wantKind: wxpay.KindRetryable,
		},
		{
			name:     "an invalid out_trade_no is refused before any call",
			req:      func(r *wxpay.PrepayRequest) { r.OutTradeNo = "bad no!" },
			wantKind: wxpay.KindPermanent,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opts...)
			no := newOrderNo()
			if tc.setup != nil {
				tc.setup(t, e, no)
			}
			client := e.client
			if tc.client != nil {
				client = tc.client(t, e)
			}
			req := base(no, e)
			if tc.req != nil {
				tc.req(&req)
			}
			p, err := client.Prepay(ctx, req)
			if tc.wantKind != wxpay.KindNone {
				wantErr(t, err, tc.wantKind, tc.wantCode, tc.wantStatus)
			} else if err != nil {
				t.Fatalf("prepay: %v", err)
			}
			if tc.check != nil {
				tc.check(t, e, no, p)
			}
		})
	}
}

func TestQueryOrder(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name       string
		setup      func(t *testing.T, e *env, no string)
		wantKind   wxpay.ErrorKind
		wantCode   string
		wantStatus int
		check      func(t *testing.T, e *env, no string, tx wxpay.Transaction)
	}{
		{
			name:  "unpaid order is NOTPAY",
			setup: func(t *testing.T, e *env, no string) { e.prepay(t, no, 1200) },
			check: func(t *testing.T, e *env, no string, tx wxpay.Transaction) {
				if tx.TradeState != "NOTPAY" || tx.TransactionID != "" || tx.SuccessTime != nil || tx.AmountTotalFen != 1200 || tx.OutTradeNo != no {
					t.Errorf("got %+v", tx)
				}
			},
		},
		{
			name:  "paid order is SUCCESS with transaction id, payer, amount and success time",
			setup: func(t *testing.T, e *env, no string) { e.prepayAndPay(t, no, 1200) },
			check: func(t *testing.T, e *env, no string, tx wxpay.Transaction) {
				if tx.TradeState != "SUCCESS" || tx.TransactionID == "" || tx.SuccessTime == nil ||
					tx.AmountTotalFen != 1200 || tx.PayerTotalFen != 1200 || tx.PayerOpenID != "oUser1" ||
					tx.AppID != e.cfg.AppID || tx.MchID != e.cfg.MchID || tx.TradeType != "JSAPI" {
					t.Errorf("got %+v", tx)
				}
				if d := time.Since(*tx.SuccessTime); d < -2*time.Second || d > time.Minute {
					t.Errorf("success_time %v is not about now", tx.SuccessTime)
				}
			},
		},
		{
			name: "an order past time_expire is CLOSED and cannot be paid",
			setup: func(t *testing.T, e *env, no string) {
				if _, err := e.client.Prepay(ctx, wxpay.PrepayRequest{
					OutTradeNo: no, Description: "d", TotalFen: 100, PayerOpenID: "o1",
					TimeExpire: e.clock.Now().Add(2 * time.Second),
				}); err != nil {
					t.Fatal(err)
				}
				e.clock.Advance(3 * time.Second)
				if _, err := e.sim.Pay(no); !errors.Is(err, paysim.ErrConflict) {
					t.Errorf("paying an expired order: %v, want ErrConflict", err)
				}
			},
			check: func(t *testing.T, e *env, no string, tx wxpay.Transaction) {
				if tx.TradeState != "CLOSED" {
					t.Errorf("trade_state %s, want CLOSED", tx.TradeState)
				}
			},
		},
		{
			name:       "unknown order is ORDER_NOT_EXIST",
			wantKind:   wxpay.KindPermanent,
			wantCode:   "ORDER_NOT_EXIST",
			wantStatus: http.StatusNotFound,
		},
		{
			name: "503 is retryable",
			setup: func(t *testing.T, e *env, no string) {
				e.prepay(t, no, 100)
				e.setFaults(t, endpointFault(paysim.EndpointQuery, paysim.EndpointFault{Status: 503}))
			},
			wantKind: wxpay.KindRetryable, wantCode: "SYSTEM_ERROR", wantStatus: 503,
		},
		{
			name: "an answer whose signature fails is unknown",
			setup: func(t *testing.T, e *env, no string) {
				e.prepay(t, no, 100)
				e.setFaults(t, endpointFault(paysim.EndpointQuery, paysim.EndpointFault{BadSignature: true}))
			},
			wantKind: wxpay.KindUnknown, wantStatus: 200,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			no := newOrderNo()
			if tc.setup != nil {
				tc.setup(t, e, no)
			}
			tx, err := e.client.QueryOrder(ctx, no)
			if tc.wantKind != wxpay.KindNone {
				wantErr(t, err, tc.wantKind, tc.wantCode, tc.wantStatus)
				return
			}
			if err != nil {
				t.Fatalf("query: %v", err)
			}
			tc.check(t, e, no, tx)
		})
	}
}

func TestCloseOrder(t *testing.T) {
	ctx := context.Background()
	closeMode := func(mode string) envOption {
		return func(o *paysim.Options, _ *wxpay.Config) { o.CloseOnPaid = mode }
	}
	tests := []struct {
		name       string
		opts       []envOption
		setup      func(t *testing.T, e *env, no string)
		wantKind   wxpay.ErrorKind
		wantCode   string
		wantStatus int
		wantState  string // trade_state after the close ("" = unknown order)
		check      func(t *testing.T, e *env, no string)
	}{
		{
			name:      "unpaid order is closed with 204 and can no longer be paid",
			setup:     func(t *testing.T, e *env, no string) { e.prepay(t, no, 100) },
			wantState: "CLOSED",
			check: func(t *testing.T, e *env, no string) {
				if _, err := e.sim.Pay(no); !errors.Is(err, paysim.ErrConflict) {
					t.Errorf("paying a closed order: %v, want ErrConflict", err)
				}
			},
		},
		{
			name: "closing twice answers 204",
			setup: func(t *testing.T, e *env, no string) {
				e.prepay(t, no, 100)
				if err := e.client.CloseOrder(ctx, no); err != nil {
					t.Fatal(err)
				}
			},
			wantState: "CLOSED",
		},
		{
			name: "closing an unknown order answers 204",
		},
		{
			name:      "a paid order with close-on-paid refuse is ORDERPAID and stays paid",
			opts:      []envOption{closeMode(paysim.CloseRefuse)},
			setup:     func(t *testing.T, e *env, no string) { e.prepayAndPay(t, no, 100) },
			wantKind:  wxpay.KindPermanent,
			wantCode:  paysim.CodeOrderPaid,
			wantState: "SUCCESS", wantStatus: http.StatusBadRequest,
		},
		{
			name:      "a paid order with close-on-paid ok204 answers 204 and stays paid",
			opts:      []envOption{closeMode(paysim.CloseOK204)},
			setup:     func(t *testing.T, e *env, no string) { e.prepayAndPay(t, no, 100) },
			wantState: "SUCCESS",
		},
		{
			name: "paid a moment before close, refuse: ORDERPAID, paid, notify sent",
			opts: []envOption{closeMode(paysim.CloseRefuse)},
			setup: func(t *testing.T, e *env, no string) {
				e.prepay(t, no, 100)
				if _, err := e.sim.PayOnClose(no); err != nil {
					t.Fatal(err)
				}
			},
			wantKind: wxpay.KindPermanent, wantCode: paysim.CodeOrderPaid, wantStatus: http.StatusBadRequest,
			wantState: "SUCCESS",
			check:     waitPaymentNotified,
		},
		{
			name: "paid a moment before close, ok204: 204, paid, notify sent",
			opts: []envOption{closeMode(paysim.CloseOK204)},
			setup: func(t *testing.T, e *env, no string) {
				e.prepay(t, no, 100)
				if _, err := e.sim.PayOnClose(no); err != nil {
					t.Fatal(err)
				}
			},
			wantState: "SUCCESS",
			check:     waitPaymentNotified,
		},
		{
			name: "500 is retryable and changes nothing",
			setup: func(t *testing.T, e *env, no string) {
				e.prepay(t, no, 100)
				e.setFaults(t, endpointFault(paysim.EndpointClose, paysim.EndpointFault{Status: 500}))
			},
			wantKind: wxpay.KindRetryable, wantCode: "SYSTEM_ERROR", wantStatus: 500,
			wantState: "NOTPAY",
		},
		{
			name: "500 after closing is retryable, the order is closed",
			setup: func(t *testing.T, e *env, no string) {
				e.prepay(t, no, 100)
				e.setFaults(t, endpointFault(paysim.EndpointClose, paysim.EndpointFault{Status: 500, After: true}))
			},
			wantKind: wxpay.KindRetryable, wantCode: "SYSTEM_ERROR", wantStatus: 500,
			wantState: "CLOSED",
		},
		{
			name: "a 204 whose signature fails is unknown",
			setup: func(t *testing.T, e *env, no string) {
				e.prepay(t, no, 100)
				e.setFaults(t, endpointFault(paysim.EndpointClose, paysim.EndpointFault{BadSignature: true}))
			},
			wantKind: wxpay.KindUnknown, wantStatus: 204,
			wantState: "CLOSED",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opts...)
			no := newOrderNo()
			if tc.setup != nil {
				tc.setup(t, e, no)
			}
			err := e.client.CloseOrder(ctx, no)
			if tc.wantKind != wxpay.KindNone {
				wantErr(t, err, tc.wantKind, tc.wantCode, tc.wantStatus)
			} else if err != nil {
				t.Fatalf("close: %v", err)
			}
			if tc.wantState != "" {
				tx, err := e.client.QueryOrder(ctx, no)
				if err != nil {
					t.Fatalf("query after close: %v", err)
				}
				if tx.TradeState != tc.wantState {
					t.Errorf("trade_state after close = %s, want %s", tx.TradeState, tc.wantState)
				}
			}
			if tc.check != nil {
				tc.check(t, e, no)
			}
		})
	}
}

func waitPaymentNotified(t *testing.T, e *env, no string) {
	t.Helper()
	waitFor(t, 10*time.Second, "the payment notify", func() bool {
		for _, r := range e.rec.all() {
			if r.err == nil && r.n.Transaction != nil && r.n.Transaction.OutTradeNo == no {
				return true
			}
		}
		return false
	})
}

func TestRefund(t *testing.T) {
	ctx := context.Background()
	refundReq := func(no, rno string, refund, total int64) wxpay.RefundRequest {
		return wxpay.RefundRequest{OutTradeNo: no, OutRefundNo: rno, Reason: "缺货", RefundFen: refund, TotalFen: total}
	}
	tests := []struct {
		name       string
		opts       []envOption
		setup      func(t *testing.T, e *env, no string)
		req        func(no string) wxpay.RefundRequest
		wantKind   wxpay.ErrorKind
		wantCode   string
		wantStatus int
		check      func(t *testing.T, e *env, no string, r wxpay.RefundResult)
	}{
		{
			name:  "accepted PROCESSING, settles SUCCESS, refund notify carries refund_status",
			setup: func(t *testing.T, e *env, no string) { e.prepayAndPay(t, no, 1000) },
			req:   func(no string) wxpay.RefundRequest { return refundReq(no, "R"+no, 1000, 1000) },
			check: func(t *testing.T, e *env, no string, r wxpay.RefundResult) {
				if r.Status != "PROCESSING" || r.RefundID == "" || r.RefundFen != 1000 || r.TotalFen != 1000 || r.OutTradeNo != no || r.TransactionID == "" {
					t.Errorf("create answer %+v", r)
				}
				var q wxpay.RefundResult
				waitFor(t, 10*time.Second, "refund SUCCESS", func() bool {
					var err error
					q, err = e.client.QueryRefund(ctx, "R"+no)
					if err != nil {
						t.Fatalf("refund query: %v", err)
					}
					return q.Status == "SUCCESS"
				})
				if q.SuccessTime == nil || q.RefundID != r.RefundID {
					t.Errorf("refund query %+v", q)
				}
				tx, err := e.client.QueryOrder(ctx, no)
				if err != nil || tx.TradeState != "REFUND" {
					t.Errorf("trade_state after refund = %q (%v), want REFUND", tx.TradeState, err)
				}
				n := waitRefundNotice(t, e, "R"+no)
				if n.EventType != "REFUND.SUCCESS" || n.Refund.RefundStatus != "SUCCESS" || n.Refund.RefundFen != 1000 ||
					n.Refund.RefundID != r.RefundID || n.Refund.OutTradeNo != no || n.Refund.SuccessTime == nil {
					t.Errorf("refund notice %+v %+v", n, n.Refund)
				}
			},
		},
		{
			name: "the same out_refund_no again answers the same refund",
			setup: func(t *testing.T, e *env, no string) {
				e.prepayAndPay(t, no, 1000)
				if _, err := e.client.CreateRefund(ctx, refundReq(no, "R"+no, 400, 1000)); err != nil {
					t.Fatal(err)
				}
			},
			req: func(no string) wxpay.RefundRequest { return refundReq(no, "R"+no, 400, 1000) },
			check: func(t *testing.T, e *env, no string, r wxpay.RefundResult) {
				v := e.view(t, no)
				if len(v.Refunds) != 1 || v.Refunds[0].RefundID != r.RefundID || v.RefundableFen != 600 {
					t.Errorf("simulator refunds %+v refundable %d", v.Refunds, v.RefundableFen)
				}
			},
		},
		{
			name: "partial refunds up to the total are accepted",
			setup: func(t *testing.T, e *env, no string) {
				e.prepayAndPay(t, no, 1000)
				if _, err := e.client.CreateRefund(ctx, refundReq(no, "R1"+no, 600, 1000)); err != nil {
					t.Fatal(err)
				}
			},
			req: func(no string) wxpay.RefundRequest { return refundReq(no, "R2"+no, 400, 1000) },
		},
		{
			name: "a refund above what is left is INVALID_REQUEST",
			setup: func(t *testing.T, e *env, no string) {
				e.prepayAndPay(t, no, 1000)
				if _, err := e.client.CreateRefund(ctx, refundReq(no, "R1"+no, 600, 1000)); err != nil {
					t.Fatal(err)
				}
			},
			req:      func(no string) wxpay.RefundRequest { return refundReq(no, "R2"+no, 401, 1000) },
			wantKind: wxpay.KindPermanent, wantCode: "INVALID_REQUEST", wantStatus: http.StatusBadRequest,
		},
		{
			name:     "a total that is not the order's is PARAM_ERROR",
			setup:    func(t *testing.T, e *env, no string) { e.prepayAndPay(t, no, 1000) },
			req:      func(no string) wxpay.RefundRequest { return refundReq(no, "R"+no, 100, 999) },
			wantKind: wxpay.KindPermanent, wantCode: "PARAM_ERROR", wantStatus: http.StatusBadRequest,
		},
		{
			name:     "an unpaid order is INVALID_REQUEST",
			setup:    func(t *testing.T, e *env, no string) { e.prepay(t, no, 1000) },
			req:      func(no string) wxpay.RefundRequest { return refundReq(no, "R"+no, 1000, 1000) },
			wantKind: wxpay.KindPermanent, wantCode: "INVALID_REQUEST", wantStatus: http.StatusBadRequest,
		},
		{
			name:     "an unknown order is RESOURCE_NOT_EXISTS",
			req:      func(no string) wxpay.RefundRequest { return refundReq(no, "R"+no, 1000, 1000) },
			wantKind: wxpay.KindPermanent, wantCode: "RESOURCE_NOT_EXISTS", wantStatus: http.StatusNotFound,
		},
		{
			name: "told ABNORMAL, the refund settles ABNORMAL with a REFUND.ABNORMAL notify",
			setup: func(t *testing.T, e *env, no string) {
				e.prepayAndPay(t, no, 1000)
				e.setFaults(t, paysim.Faults{Refund: &paysim.RefundFaults{Abnormal: 1}})
			},
			req: func(no string) wxpay.RefundRequest { return refundReq(no, "R"+no, 1000, 1000) },
			check: func(t *testing.T, e *env, no string, r wxpay.RefundResult) {
				n := waitRefundNotice(t, e, "R"+no)
				if n.EventType != "REFUND.ABNORMAL" || n.Refund.RefundStatus != "ABNORMAL" {
					t.Errorf("notice %s %+v", n.EventType, n.Refund)
				}
				q, err := e.client.QueryRefund(ctx, "R"+no)
				if err != nil || q.Status != "ABNORMAL" {
					t.Errorf("refund query %+v %v, want ABNORMAL", q, err)
				}
			},
		},
		{
			name: "NOT_ENOUGH is permanent",
			setup: func(t *testing.T, e *env, no string) {
				e.prepayAndPay(t, no, 1000)
				e.setFaults(t, endpointFault(paysim.EndpointRefund, paysim.EndpointFault{Status: 403, Code: "NOT_ENOUGH"}))
			},
			req:      func(no string) wxpay.RefundRequest { return refundReq(no, "R"+no, 1000, 1000) },
			wantKind: wxpay.KindPermanent, wantCode: "NOT_ENOUGH", wantStatus: http.StatusForbidden,
		},
		{
			name: "500 after accepting is retryable; retrying the same out_refund_no refunds once",
			setup: func(t *testing.T, e *env, no string) {
				e.prepayAndPay(t, no, 1000)
				e.setFaults(t, endpointFault(paysim.EndpointRefund, paysim.EndpointFault{Status: 500, After: true}))
				_, err := e.client.CreateRefund(ctx, refundReq(no, "R"+no, 1000, 1000))
				wantErr(t, err, wxpay.KindRetryable, "SYSTEM_ERROR", 500)
			},
			req: func(no string) wxpay.RefundRequest { return refundReq(no, "R"+no, 1000, 1000) },
			check: func(t *testing.T, e *env, no string, r wxpay.RefundResult) {
				if v := e.view(t, no); len(v.Refunds) != 1 {
					t.Errorf("%d refunds, want 1", len(v.Refunds))
				}
			},
		},
		{
			name: "an answer whose signature fails is unknown: the refund exists",
			setup: func(t *testing.T, e *env, no string) {
				e.prepayAndPay(t, no, 1000)
				e.setFaults(t, endpointFault(paysim.EndpointRefund, paysim.EndpointFault{BadSignature: true}))
			},
			req:      func(no string) wxpay.RefundRequest { return refundReq(no, "R"+no, 1000, 1000) },
			wantKind: wxpay.KindUnknown, wantStatus: 200,
			check: func(t *testing.T, e *env, no string, _ wxpay.RefundResult) {
				if _, ok := e.sim.Refund("R" + no); !ok {
					t.Error("the simulator has no refund")
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opts...)
			no := newOrderNo()
			if tc.setup != nil {
				tc.setup(t, e, no)
			}
			r, err := e.client.CreateRefund(ctx, tc.req(no))
			if tc.wantKind != wxpay.KindNone {
				wantErr(t, err, tc.wantKind, tc.wantCode, tc.wantStatus)
			} else if err != nil {
				t.Fatalf("refund: %v", err)
			}
			if tc.check != nil {
				tc.check(t, e, no, r)
			}
		})
	}
}

func TestQueryRefund(t *testing.T) {
	ctx := context.Background()
	t.Run("unknown refund is RESOURCE_NOT_EXISTS", func(t *testing.T) {
		e := newEnv(t)
		_, err := e.client.QueryRefund(ctx, "R-unknown")
		wantErr(t, err, wxpay.KindPermanent, "RESOURCE_NOT_EXISTS", http.StatusNotFound)
	})
	t.Run("429 is retryable", func(t *testing.T) {
		e := newEnv(t)
		no := newOrderNo()
		e.prepayAndPay(t, no, 100)
		if _, err := e.client.CreateRefund(ctx, wxpay.RefundRequest{OutTradeNo: no, OutRefundNo: "R" + no, RefundFen: 100, TotalFen: 100}); err != nil {
			t.Fatal(err)
		}
		e.setFaults(t, endpointFault(paysim.EndpointRefundQuery, paysim.EndpointFault{Status: 429}))
		_, err := e.client.QueryRefund(ctx, "R"+no)
		wantErr(t, err, wxpay.KindRetryable, "FREQUENCY_LIMITED", 429)
	})
	t.Run("settled by the control API as CLOSED frees the amount", func(t *testing.T) {
		e := newEnv(t, func(o *paysim.Options, _ *wxpay.Config) { o.RefundDelay = -1 })
		no := newOrderNo()
		e.prepayAndPay(t, no, 100)
		if _, err := e.client.CreateRefund(ctx, wxpay.RefundRequest{OutTradeNo: no, OutRefundNo: "R" + no, RefundFen: 100, TotalFen: 100}); err != nil {
			t.Fatal(err)
		}
		q, err := e.client.QueryRefund(ctx, "R"+no)
		if err != nil || q.Status != "PROCESSING" {
			t.Fatalf("before settling: %+v %v", q, err)
		}
		if _, err := e.sim.SettleRefund("R"+no, paysim.RefundClosed); err != nil {
			t.Fatal(err)
		}
		q, err = e.client.QueryRefund(ctx, "R"+no)
		if err != nil || q.Status != "CLOSED" {
			t.Fatalf("after settling: %+v %v", q, err)
		}
		if _, err := e.client.CreateRefund(ctx, wxpay.RefundRequest{OutTradeNo: no, OutRefundNo: "R2" + no, RefundFen: 100, TotalFen: 100}); err != nil {
			t.Errorf("a new refund after a CLOSED one: %v", err)
		}
	})
}

func waitRefundNotice(t *testing.T, e *env, outRefundNo string) wxpay.Notification {
	t.Helper()
	var got wxpay.Notification
	waitFor(t, 10*time.Second, "the refund notify of "+outRefundNo, func() bool {
		for _, r := range e.rec.all() {
			if r.err == nil && r.n.Refund != nil && r.n.Refund.OutRefundNo == outRefundNo {
				got = r.n
				return true
			}
		}
		return false
	})
	return got
}
