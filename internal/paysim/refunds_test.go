package paysim_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"ordersaga/internal/paysim"
	"ordersaga/internal/wxpay"
)

// Partial refunds as WeChat does them: several refunds of one payment
// within its total, at most paysim.MaxRefunds, a minute apart
// (FREQUENCY_LIMITED), goods_detail checked against the amount.

func paid(t *testing.T, m *merchant, total int64) string {
	t.Helper()
	no := orderNo()
	m.prepay(t, no, total)
	if _, err := m.sim.Pay(no); err != nil {
		t.Fatal(err)
	}
	return no
}

func goods(id string, unit, qty int64) wxpay.RefundGoods {
	return wxpay.RefundGoods{MerchantGoodsID: id, UnitPriceFen: unit, RefundFen: unit * qty, Quantity: qty}
}

func TestPartialRefundsStayWithinThePaymentAndKeepTheirGoods(t *testing.T) {
	ctx := context.Background()
	m := newMerchant(t, func(o *paysim.Options) { o.RefundInterval = -1 })
	no := paid(t, m, 17600) // one of 1200, two of 8200
	first, err := m.client.CreateRefund(ctx, wxpay.RefundRequest{OutTradeNo: no, OutRefundNo: no + "-R1", RefundFen: 1200, TotalFen: 17600,
		Goods: []wxpay.RefundGoods{goods("7", 1200, 1)}})
	if err != nil || first.RefundFen != 1200 {
		t.Fatalf("first refund: %+v %v", first, err)
	}
	if _, err := m.client.CreateRefund(ctx, wxpay.RefundRequest{OutTradeNo: no, OutRefundNo: no + "-R2", RefundFen: 16400, TotalFen: 17600,
		Goods: []wxpay.RefundGoods{goods("8", 8200, 2)}}); err != nil {
		t.Fatalf("second refund: %v", err)
	}
	_, err = m.client.CreateRefund(ctx, wxpay.RefundRequest{OutTradeNo: no, OutRefundNo: no + "-R3", RefundFen: 1, TotalFen: 17600})
	if code := wxpay.Code(err); code != "INVALID_REQUEST" {
		t.Errorf("a refund past the total: %v, want INVALID_REQUEST", err)
	}
	waitFor(t, 5*time.Second, "both refunds settled", func() bool {
		v, _ := m.sim.Transaction(no)
		return v.RefundedFen == 17600
	})
	v, _ := m.sim.Transaction(no)
	if len(v.Refunds) != 2 || len(v.Refunds[0].Goods) != 1 || v.Refunds[0].Goods[0].MerchantGoodsID != "7" ||
		v.Refunds[1].Goods[0].RefundQuantity != 2 {
		t.Errorf("refunds %+v", v.Refunds)
	}
}

func TestRefundGoodsDetailMustMatchTheAmount(t *testing.T) {
	ctx := context.Background()
	m := newMerchant(t, func(o *paysim.Options) { o.RefundInterval = -1 })
	no := paid(t, m, 17600)
	for _, tt := range []struct {
		name  string
		fen   int64
		goods []wxpay.RefundGoods
	}{
		{"goods adding up to more than the refund", 1200, []wxpay.RefundGoods{goods("7", 1200, 1), goods("8", 8200, 1)}},
		{"a line worth more than its unit price × quantity", 2000, []wxpay.RefundGoods{{MerchantGoodsID: "7", UnitPriceFen: 1200, RefundFen: 2000, Quantity: 1}}},
		{"a line without goods id", 1200, []wxpay.RefundGoods{{UnitPriceFen: 1200, RefundFen: 1200, Quantity: 1}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Sent as is: the client's own checks are not the simulator's.
			body := map[string]any{"out_trade_no": no, "out_refund_no": no + "-X", "amount": map[string]any{"refund": tt.fen, "total": 17600, "currency": "CNY"}}
			var lines []map[string]any
			for _, g := range tt.goods {
				lines = append(lines, map[string]any{"merchant_goods_id": g.MerchantGoodsID, "unit_price": g.UnitPriceFen, "refund_amount": g.RefundFen, "refund_quantity": g.Quantity})
			}
			body["goods_detail"] = lines
			_, err := rawV3(t, m).Post(ctx, wechatPayHost+"/v3/refund/domestic/refunds", body)
			if wxpay.Code(err) != "PARAM_ERROR" || wxpay.StatusCode(err) != 400 {
				t.Fatalf("%v, want 400 PARAM_ERROR", err)
			}
			if v, _ := m.sim.Transaction(no); len(v.Refunds) != 0 {
				t.Fatalf("refused refund recorded: %+v", v.Refunds)
			}
		})
	}
}

func TestSecondRefundWithinTheIntervalIsFrequencyLimitedAndTheSameNumberIsNot(t *testing.T) {
	ctx := context.Background()
	m := newMerchant(t, func(o *paysim.Options) { o.RefundInterval = time.Hour })
	no := paid(t, m, 17600)
	req := wxpay.RefundRequest{OutTradeNo: no, OutRefundNo: no + "-R1", RefundFen: 1200, TotalFen: 17600, Goods: []wxpay.RefundGoods{goods("7", 1200, 1)}}
	if _, err := m.client.CreateRefund(ctx, req); err != nil {
		t.Fatal(err)
	}
	if _, err := m.client.CreateRefund(ctx, req); err != nil {
		t.Errorf("the same out_refund_no again: %v, want the same refund", err)
	}
	_, err := m.client.CreateRefund(ctx, wxpay.RefundRequest{OutTradeNo: no, OutRefundNo: no + "-R2", RefundFen: 8200, TotalFen: 17600})
	if wxpay.Code(err) != "FREQUENCY_LIMITED" || wxpay.StatusCode(err) != 429 || wxpay.Classify(err) != wxpay.KindRetryable {
		t.Fatalf("a second refund at once: %v, want FREQUENCY_LIMITED (retryable)", err)
	}
	if _, err := m.sim.UpdateSettings(paysim.Settings{RefundIntervalMS: ptr(int64(0))}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.client.CreateRefund(ctx, wxpay.RefundRequest{OutTradeNo: no, OutRefundNo: no + "-R2", RefundFen: 8200, TotalFen: 17600}); err != nil {
		t.Errorf("the second refund once the interval passed: %v", err)
	}
}

func TestAPaymentTakesAtMostFiftyRefunds(t *testing.T) {
	ctx := context.Background()
	m := newMerchant(t, func(o *paysim.Options) { o.RefundInterval = -1; o.RefundDelay = -1 })
	no := paid(t, m, 100)
	for i := range paysim.MaxRefunds {
		if _, err := m.client.CreateRefund(ctx, wxpay.RefundRequest{OutTradeNo: no, OutRefundNo: no + "-R" + strconv.Itoa(i+1), RefundFen: 1, TotalFen: 100}); err != nil {
			t.Fatalf("refund %d: %v", i+1, err)
		}
	}
	_, err := m.client.CreateRefund(ctx, wxpay.RefundRequest{OutTradeNo: no, OutRefundNo: no + "-R51", RefundFen: 1, TotalFen: 100})
	if wxpay.Code(err) != "INVALID_REQUEST" {
		t.Fatalf("refund 51: %v, want INVALID_REQUEST", err)
	}
}

// WeChat's shipping management shows a payment refunded (state 5) only once
// it was refunded in full.
func TestShippingStateIsRefundedOnlyWhenThePaymentIsRefundedInFull(t *testing.T) {
	ctx := context.Background()
	m := newMerchant(t, func(o *paysim.Options) { o.RefundInterval = -1 })
	no := paid(t, m, 17600)
	if _, err := m.client.CreateRefund(ctx, wxpay.RefundRequest{OutTradeNo: no, OutRefundNo: no + "-R1", RefundFen: 1200, TotalFen: 17600}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the first refund settled", func() bool { v, _ := m.sim.Transaction(no); return v.RefundedFen == 1200 })
	if v, _ := m.sim.Shipping(no); v.OrderState == paysim.ShipRefunded {
		t.Fatalf("shipping state %d after a part refund; want not refunded", v.OrderState)
	}
	if _, err := m.client.CreateRefund(ctx, wxpay.RefundRequest{OutTradeNo: no, OutRefundNo: no + "-R2", RefundFen: 16400, TotalFen: 17600}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the payment refunded in full", func() bool { v, _ := m.sim.Shipping(no); return v.OrderState == paysim.ShipRefunded })
}

func ptr[T any](v T) *T { return &v }
