package activities_test

import (
	"strings"
	"testing"
	"time"

	"ordersaga/internal/paysim"
	"ordersaga/internal/status"
	"ordersaga/internal/store"
	"ordersaga/internal/store/storetest"
	"ordersaga/workflows"
)

func TestRequestRefundTwiceRefundsOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		o, n := f.paidOrder("F1000001")
		in := workflows.RequestRefundInput{
			OrderNo: o.OrderNo, TransactionID: n.TransactionID, OutRefundNo: workflows.OrderRefundNo(o.OrderNo, 1),
			RefundFen: o.TotalFen, TotalFen: o.TotalFen, Reason: "user asked before shipping",
		}
		res := f.twice(o.OrderNo, workflows.ActivityRequestRefund, in)
		first, second := get[workflows.RefundNotice](t, res[0]), get[workflows.RefundNotice](t, res[1])

		v, _ := f.sim.Transaction(o.OrderNo)
		if len(v.Refunds) != 1 {
			t.Fatalf("%d refunds at WeChat, want 1: %+v", len(v.Refunds), v.Refunds)
		}
		wr := v.Refunds[0]
		if wr.OutRefundNo != in.OutRefundNo || wr.RefundFen != 21500 || wr.Status != paysim.RefundProcessing || wr.Reason != in.Reason {
			t.Errorf("refund at WeChat %+v", wr)
		}
		for _, got := range []workflows.RefundNotice{first, second} {
			if got.OutRefundNo != in.OutRefundNo || got.RefundID != wr.RefundID || got.Status != status.RefundProcessing ||
				got.TransactionID != n.TransactionID || got.OutTradeNo != o.OrderNo || got.RefundFen != 21500 || got.Source != "query" {
				t.Errorf("refund notice %+v (WeChat %+v)", got, wr)
			}
		}
		row, err := st.GetRefund(f.ctx, in.OutRefundNo)
		if err != nil || row.Status != status.RefundProcessing || row.RefundID != wr.RefundID || row.OrderNo != o.OrderNo ||
			row.TransactionID != n.TransactionID || row.RefundFen != 21500 || row.Reason != in.Reason {
			t.Errorf("refund row %+v %v", row, err)
		}

		// WeChat settled it meanwhile: asking again reports the outcome.
		if _, err := f.sim.SettleRefund(in.OutRefundNo, paysim.RefundSuccess); err != nil {
			t.Fatal(err)
		}
		again := get[workflows.RefundNotice](t, f.must(workflows.ActivityRequestRefund, in))
		if again.Status != status.RefundSuccess || again.SuccessTime == nil || again.RefundID != wr.RefundID {
			t.Errorf("after settling: %+v", again)
		}
		if v, _ := f.sim.Transaction(o.OrderNo); len(v.Refunds) != 1 || v.RefundedFen != 21500 {
			t.Errorf("at WeChat after asking again: %d refunds, %d fen refunded", len(v.Refunds), v.RefundedFen)
		}
	})
}

// WeChat takes at most 80 bytes of reason: 25 Chinese characters and "…".
// The refund row keeps the whole reason.
func TestRequestRefundCutsAChineseReasonToWeChatsByteLimit(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		o, n := f.paidOrder("F1000011")
		reason := strings.Repeat("收到的茶叶包装破损漏气了", 4)[:40*3] // 40 characters, 120 bytes
		in := workflows.RequestRefundInput{
			OrderNo: o.OrderNo, TransactionID: n.TransactionID, OutRefundNo: workflows.OrderRefundNo(o.OrderNo, 1),
			RefundFen: o.TotalFen, TotalFen: o.TotalFen, Reason: reason,
		}
		f.must(workflows.ActivityRequestRefund, in)
		v, _ := f.sim.Transaction(o.OrderNo)
		if len(v.Refunds) != 1 {
			t.Fatalf("%d refunds at WeChat, want 1", len(v.Refunds))
		}
		if want := reason[:25*3] + "…"; v.Refunds[0].Reason != want {
			t.Errorf("reason at WeChat %q (%d bytes), want %q", v.Refunds[0].Reason, len(v.Refunds[0].Reason), want)
		}
		if row, err := st.GetRefund(f.ctx, in.OutRefundNo); err != nil || row.Reason != reason {
			t.Errorf("refund row reason %q %v, want the whole %q", row.Reason, err, reason)
		}
	})
}

func TestRequestRefundWaitsForFundsAndRetriesWeChatFailures(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		tests := []struct {
			no      string
			fault   paysim.EndpointFault
			wantMsg string
		}{
			{"F2000001", paysim.EndpointFault{Status: 403, Code: "NOT_ENOUGH", Message: "基本账户余额不足，请充值后重新发起"}, "fund the WeChat Pay merchant account"},
			{"F2000002", paysim.EndpointFault{Status: 500}, "SYSTEM_ERROR"},
			{"F2000003", paysim.EndpointFault{Status: 500, After: true}, "SYSTEM_ERROR"}, // WeChat did it; the answer was lost
			{"F2000004", paysim.EndpointFault{Status: 429}, "FREQUENCY_LIMITED"},
			{"F2000005", paysim.EndpointFault{BadSignature: true}, "not verified"},
		}
		for _, tt := range tests {
			t.Run(tt.no, func(t *testing.T) {
				o, n := f.paidOrder(tt.no)
				in := workflows.RequestRefundInput{OrderNo: o.OrderNo, TransactionID: n.TransactionID,
					OutRefundNo: workflows.OrderRefundNo(o.OrderNo, 1), RefundFen: o.TotalFen, TotalFen: o.TotalFen, Reason: "oversold"}
				f.faults(endpointFault(paysim.EndpointRefund, tt.fault))
				_, err := f.run(workflows.ActivityRequestRefund, in)
				wantRetryable(t, err)
				if !strings.Contains(err.Error(), tt.wantMsg) {
					t.Errorf("err = %v; want it to say %q", err, tt.wantMsg)
				}
				if row, err := st.GetRefund(f.ctx, in.OutRefundNo); err != nil || row.Status != status.RefundProcessing {
					t.Errorf("refund row %+v %v", row, err)
				}
				// The retry, with the same out_refund_no, refunds exactly once.
				got := get[workflows.RefundNotice](t, f.must(workflows.ActivityRequestRefund, in))
				v, _ := f.sim.Transaction(o.OrderNo)
				if len(v.Refunds) != 1 || v.Refunds[0].RefundID != got.RefundID || got.Status != status.RefundProcessing {
					t.Errorf("after the retry: %+v; at WeChat %+v", got, v.Refunds)
				}
			})
		}
	})
}

func TestRequestRefundRefusals(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		o, n := f.paidOrder("F3000001")
		unpaid := f.coffeeOrder("F3000002")
		f.prepay(unpaid)
		first := workflows.RequestRefundInput{OrderNo: o.OrderNo, TransactionID: n.TransactionID,
			OutRefundNo: workflows.OrderRefundNo(o.OrderNo, 1), RefundFen: 1000, TotalFen: o.TotalFen}
		f.must(workflows.ActivityRequestRefund, first)

		tests := []struct {
			name     string
			in       workflows.RequestRefundInput
			wantType string
			wantCode string
		}{
			{"same out_refund_no, another amount",
				workflows.RequestRefundInput{OrderNo: o.OrderNo, TransactionID: n.TransactionID, OutRefundNo: first.OutRefundNo, RefundFen: 2000, TotalFen: o.TotalFen},
				workflows.ErrTypeInvalidOrder, ""},
			{"more than was paid",
				workflows.RequestRefundInput{OrderNo: o.OrderNo, TransactionID: n.TransactionID, OutRefundNo: workflows.OrderRefundNo(o.OrderNo, 2), RefundFen: o.TotalFen, TotalFen: o.TotalFen},
				workflows.ErrTypeWechatRefused, "INVALID_REQUEST"},
			{"an unpaid order",
				workflows.RequestRefundInput{OrderNo: unpaid.OrderNo, OutRefundNo: workflows.OrderRefundNo(unpaid.OrderNo, 1), RefundFen: unpaid.TotalFen, TotalFen: unpaid.TotalFen},
				workflows.ErrTypeWechatRefused, "INVALID_REQUEST"},
			{"a transaction WeChat does not know",
				workflows.RequestRefundInput{OrderNo: o.OrderNo, TransactionID: "4200000000000000999", OutRefundNo: workflows.OrderRefundNo(o.OrderNo, 3), RefundFen: 1, TotalFen: o.TotalFen},
				workflows.ErrTypeWechatRefused, "RESOURCE_NOT_EXISTS"},
			{"nothing to refund",
				workflows.RequestRefundInput{OrderNo: o.OrderNo, TransactionID: n.TransactionID, OutRefundNo: workflows.OrderRefundNo(o.OrderNo, 4), RefundFen: 0, TotalFen: o.TotalFen},
				workflows.ErrTypeInvalidOrder, ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := f.run(workflows.ActivityRequestRefund, tt.in)
				appErr := wantNonRetryable(t, err, tt.wantType)
				if tt.wantCode != "" && (wechatCode(t, appErr) != tt.wantCode || !strings.Contains(appErr.Message(), tt.wantCode)) {
					t.Errorf("refusal %q, code %q; want %s", appErr.Message(), wechatCode(t, appErr), tt.wantCode)
				}
			})
		}
		if v, _ := f.sim.Transaction(o.OrderNo); len(v.Refunds) != 1 || v.Refunds[0].RefundFen != 1000 {
			t.Errorf("refunds at WeChat: %+v", v.Refunds)
		}
	})
}

func TestQueryRefundTwiceReportsTheSameRefund(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		in, requested := f.refunding("G1000001")
		res := f.twice(in.OrderNo, workflows.ActivityQueryRefund, in.OutRefundNo)
		for _, v := range res {
			if got := get[workflows.RefundNotice](t, v); got != requested {
				t.Errorf("query %+v, want %+v", got, requested)
			}
		}
		settled := f.settled(in.OutRefundNo, paysim.RefundSuccess)
		if settled.Status != status.RefundSuccess || settled.SuccessTime == nil || settled.RefundID != requested.RefundID ||
			settled.TransactionID != in.TransactionID || settled.RefundFen != in.RefundFen || !settled.Final() {
			t.Errorf("settled %+v", settled)
		}
		// A query reads only: the refund row is SettleRefund's.
		if row, _ := st.GetRefund(f.ctx, in.OutRefundNo); row.Status != status.RefundProcessing {
			t.Errorf("refund row %s after a query", row.Status)
		}

		// WeChat settles by itself after a while: polling finds the outcome.
		delay := int64(50)
		if _, err := f.sim.UpdateSettings(paysim.Settings{RefundDelayMS: &delay}); err != nil {
			t.Fatal(err)
		}
		in2, _ := f.refunding("G1000002")
		var last workflows.RefundNotice
		waitFor(t, 5*time.Second, "the refund to settle at WeChat", func() bool {
			last = get[workflows.RefundNotice](t, f.must(workflows.ActivityQueryRefund, in2.OutRefundNo))
			return last.Final()
		})
		if last.Status != status.RefundSuccess || last.SuccessTime == nil {
			t.Errorf("settled by itself: %+v", last)
		}
	})
}

func TestQueryRefundFailures(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		in, _ := f.refunding("G2000001")
		for _, fault := range []paysim.EndpointFault{{Status: 500}, {Status: 503}, {Status: 429}, {BadSignature: true}} {
			f.faults(endpointFault(paysim.EndpointRefundQuery, fault))
			_, err := f.run(workflows.ActivityQueryRefund, in.OutRefundNo)
			wantRetryable(t, err)
		}
		_, err := f.run(workflows.ActivityQueryRefund, "G2000001-R9")
		if appErr := wantNonRetryable(t, err, workflows.ErrTypeWechatRefused); wechatCode(t, appErr) != "RESOURCE_NOT_EXISTS" {
			t.Errorf("code %q", wechatCode(t, appErr))
		}
	})
}

func TestSettleRefundRestoresStockOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		in, _ := f.refunding("H1000001")
		products, _ := st.ListProducts(f.ctx)
		if products[0].Stock != 8 || products[1].Stock != 4 {
			t.Fatalf("stock after the deduction: %+v", products)
		}
		notice := f.settled(in.OutRefundNo, paysim.RefundSuccess)
		settle := workflows.SettleRefundInput{OrderNo: in.OrderNo, Refund: notice, OrderRefund: true, RestoreStock: true}

		res := f.twice(in.OrderNo, workflows.ActivitySettleRefund, settle)
		for i, v := range res {
			if got := get[workflows.OrderStatusResult](t, v); got.Status != status.Refunded {
				t.Errorf("attempt %d: %s", i+1, got.Status)
			}
		}
		products, _ = st.ListProducts(f.ctx)
		if products[0].Stock != 10 || products[1].Stock != 5 {
			t.Errorf("stock after the refund: %d %d, want 10 5", products[0].Stock, products[1].Stock)
		}
		if kinds := ledgerKinds(t, st, in.OrderNo); kinds[store.LedgerDeduct] != 2 || kinds[store.LedgerRestore] != 2 {
			t.Errorf("ledger %v, want one DEDUCT and one RESTORE per product", kinds)
		}
		if row, _ := st.GetRefund(f.ctx, in.OutRefundNo); row.Status != status.RefundSuccess || row.RefundID != notice.RefundID {
			t.Errorf("refund row %+v", row)
		}

		// A late, reordered report cannot undo it: the refund row decides.
		late := notice
		late.Status, late.Source = status.RefundClosed, "notify"
		got := get[workflows.OrderStatusResult](t, f.must(workflows.ActivitySettleRefund,
			workflows.SettleRefundInput{OrderNo: in.OrderNo, Refund: late, OrderRefund: true, RestoreStock: true}))
		if o := f.getOrder(in.OrderNo); got.Status != status.Refunded || o.Status != status.Refunded || o.Flag != "" {
			t.Errorf("after a late CLOSED report: %s, order %+v", got.Status, o)
		}
	})
}

func TestSettleRefundWithoutRestockKeepsTheStockOut(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		in, _ := f.refunding("H2000001") // e.g. refunded after shipping: the goods are gone
		notice := f.settled(in.OutRefundNo, paysim.RefundSuccess)
		f.twice(in.OrderNo, workflows.ActivitySettleRefund, workflows.SettleRefundInput{OrderNo: in.OrderNo, Refund: notice, OrderRefund: true})
		if kinds := ledgerKinds(t, st, in.OrderNo); kinds[store.LedgerRestore] != 0 {
			t.Errorf("ledger %v", kinds)
		}
		if o := f.getOrder(in.OrderNo); o.Status != status.Refunded {
			t.Errorf("order %s", o.Status)
		}
	})
}

func TestSettleRefundThatFailedFlagsTheOrderOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		for i, simStatus := range []string{paysim.RefundClosed, paysim.RefundAbnormal} {
			t.Run(simStatus, func(t *testing.T) {
				in, _ := f.refunding("H300000" + string(rune('1'+i)))
				notice := f.settled(in.OutRefundNo, simStatus)
				res := f.twice(in.OrderNo, workflows.ActivitySettleRefund,
					workflows.SettleRefundInput{OrderNo: in.OrderNo, Refund: notice, OrderRefund: true, RestoreStock: true})
				if got := get[workflows.OrderStatusResult](t, res[1]); got.Status != status.RefundFailed {
					t.Errorf("status %s", got.Status)
				}
				o := f.getOrder(in.OrderNo)
				if o.Status != status.RefundFailed || o.Flag != workflows.FlagRefundFailed {
					t.Errorf("order %+v", o)
				}
				if kinds := ledgerKinds(t, st, in.OrderNo); kinds[store.LedgerRestore] != 0 {
					t.Errorf("stock restored for a refund that failed: %v", kinds)
				}
				if row, _ := st.GetRefund(f.ctx, in.OutRefundNo); row.Status != status.Refund(simStatus) {
					t.Errorf("refund row %s", row.Status)
				}
			})
		}
		recs := f.logs.records("refund failed: needs a person")
		if len(recs) == 0 || recs[0]["level"] != "ERROR" || recs[0]["flag"] != workflows.FlagRefundFailed {
			t.Errorf("log records %v", recs)
		}

		// A person got the ABNORMAL refund through after all: WeChat reports SUCCESS.
		abnormal := workflows.OrderRefundNo("H3000002", 1)
		notice := workflows.RefundNotice{OutRefundNo: abnormal, Status: status.RefundSuccess, Source: "notify"}
		got := get[workflows.OrderStatusResult](t, f.must(workflows.ActivitySettleRefund,
			workflows.SettleRefundInput{OrderNo: "H3000002", Refund: notice, OrderRefund: true}))
		if got.Status != status.Refunded {
			t.Errorf("after the late success: %s", got.Status)
		}
	})
}

func TestSettleRefundRefusals(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		in, requested := f.refunding("H4000001")
		o, n := f.paidOrder("H4000002")
		paidRefund := workflows.RequestRefundInput{OrderNo: o.OrderNo, TransactionID: n.TransactionID,
			OutRefundNo: workflows.OrderRefundNo(o.OrderNo, 1), RefundFen: o.TotalFen, TotalFen: o.TotalFen}
		f.must(workflows.ActivityRequestRefund, paidRefund) // the order was not moved to REFUNDING

		tests := []struct {
			name     string
			in       workflows.SettleRefundInput
			wantType string
		}{
			{"a refund this shop never asked for",
				workflows.SettleRefundInput{OrderNo: in.OrderNo, OrderRefund: true, Refund: workflows.RefundNotice{OutRefundNo: "H4000001-R7", Status: status.RefundSuccess}},
				workflows.ErrTypeInvalidOrder},
			{"another order's refund",
				workflows.SettleRefundInput{OrderNo: o.OrderNo, OrderRefund: true, Refund: workflows.RefundNotice{OutRefundNo: in.OutRefundNo, Status: status.RefundSuccess}},
				workflows.ErrTypeInvalidOrder},
			{"no status",
				workflows.SettleRefundInput{OrderNo: in.OrderNo, OrderRefund: true, Refund: workflows.RefundNotice{OutRefundNo: in.OutRefundNo}},
				workflows.ErrTypeInvalidOrder},
			{"the order is not refunding",
				workflows.SettleRefundInput{OrderNo: o.OrderNo, OrderRefund: true, Refund: workflows.RefundNotice{OutRefundNo: paidRefund.OutRefundNo, Status: status.RefundSuccess}},
				workflows.ErrTypeStatusConflict},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := f.run(workflows.ActivitySettleRefund, tt.in)
				wantNonRetryable(t, err, tt.wantType)
			})
		}

		// Still PROCESSING: only the row is touched; the order waits.
		got := get[workflows.OrderStatusResult](t, f.must(workflows.ActivitySettleRefund,
			workflows.SettleRefundInput{OrderNo: in.OrderNo, Refund: requested, OrderRefund: true, RestoreStock: true}))
		if got.Status != status.Refunding {
			t.Errorf("processing: %s", got.Status)
		}
		if kinds := ledgerKinds(t, st, in.OrderNo); kinds[store.LedgerRestore] != 0 {
			t.Errorf("ledger %v", kinds)
		}
	})
}

// A stray payment: the order closed (the deadline passed), then the payer paid.
func (f *fx) strayPayment(orderNo string) (workflows.CreatedOrder, workflows.PaymentNotice) {
	f.t.Helper()
	o := f.coffeeOrder(orderNo)
	f.prepay(o)
	f.must(workflows.ActivityCloseOrder, workflows.CloseOrderInput{OrderNo: orderNo, Reason: "deadline"})
	return o, f.payerPays(orderNo)
}

func TestSettleRefundOfAStrayPaymentTouchesOnlyTheRefund(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		tests := []struct {
			no, settleAs string
			wantFlag     string
		}{
			{"J1000001", paysim.RefundSuccess, ""},
			{"J1000002", paysim.RefundClosed, workflows.FlagRefundFailed},
		}
		for _, tt := range tests {
			t.Run(tt.settleAs, func(t *testing.T) {
				o, n := f.strayPayment(tt.no)
				in := workflows.RequestRefundInput{OrderNo: o.OrderNo, TransactionID: n.TransactionID,
					OutRefundNo: workflows.StrayRefundNo(n.TransactionID), RefundFen: n.AmountFen, TotalFen: n.AmountFen, Reason: "order closed"}
				f.must(workflows.ActivityRequestRefund, in)
				notice := f.settled(in.OutRefundNo, tt.settleAs)
				res := f.twice(o.OrderNo, workflows.ActivitySettleRefund, workflows.SettleRefundInput{OrderNo: o.OrderNo, Refund: notice})
				if got := get[workflows.OrderStatusResult](t, res[1]); got.Status != status.Closed {
					t.Errorf("status %s, want the order's CLOSED", got.Status)
				}
				if got := f.getOrder(o.OrderNo); got.Status != status.Closed || got.Flag != tt.wantFlag {
					t.Errorf("order %+v", got)
				}
				if row, _ := st.GetRefund(f.ctx, in.OutRefundNo); row.Status != status.Refund(tt.settleAs) {
					t.Errorf("refund row %s", row.Status)
				}
			})
		}

		// A refund row whose order this shop does not have: status "".
		if _, err := st.UpsertRefund(f.ctx, store.Refund{OutRefundNo: "S4200000000000000777", OrderNo: "J1000404", RefundFen: 5, TotalFen: 5}); err != nil {
			t.Fatal(err)
		}
		got := get[workflows.OrderStatusResult](t, f.must(workflows.ActivitySettleRefund, workflows.SettleRefundInput{
			OrderNo: "J1000404", Refund: workflows.RefundNotice{OutRefundNo: "S4200000000000000777", Status: status.RefundAbnormal}}))
		if got.Status != "" {
			t.Errorf("status %q for a missing order", got.Status)
		}
	})
}

func TestExamineStrayPaymentTwiceDecidesTheSame(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		_, closedPaid := f.strayPayment("E1000001")
		_, kept := f.paidOrder("E1000002")
		// The order was paid twice (two payment sheets): the second payment is nobody's.
		double := kept
		double.TransactionID = "4200000000000000888"
		// Money for an order number this shop never issued.
		foreign := workflows.PaymentNotice{OutTradeNo: "OTHER0000001", TransactionID: "4200000000000000999", TradeState: workflows.TradeSuccess,
			AmountFen: 100, PayerTotalFen: 100, AppID: f.cfg.AppID, MchID: f.cfg.MchID, Source: "notify"}
		f.coffeeOrder("E1000003")
		unpaid := workflows.PaymentNotice{OutTradeNo: "E1000003", TradeState: workflows.TradeNotPay, AmountFen: 21500, Source: "query"}
		success := time.Now().UTC().Truncate(time.Second)
		foreign.SuccessTime = &success

		tests := []struct {
			name       string
			payment    workflows.PaymentNotice
			want       workflows.StrayDecision
			wantRecord bool
		}{
			{"paid after the order closed", closedPaid,
				workflows.StrayDecision{Refund: true, OrderKnown: true, Why: "order E1000001 is CLOSED; nobody keeps this payment"}, true},
			{"the order keeps it", kept,
				workflows.StrayDecision{Refund: false, OrderKnown: true, Why: "order keeps this payment"}, true},
			{"a second payment of a paid order", double,
				workflows.StrayDecision{Refund: true, OrderKnown: true, Why: "order E1000002 is PAID; nobody keeps this payment"}, true},
			{"an order this shop never issued", foreign,
				workflows.StrayDecision{Refund: false, OrderKnown: false, Why: "no order OTHER0000001 in this shop"}, true},
			{"not a payment", unpaid,
				workflows.StrayDecision{Refund: false, OrderKnown: true, Why: "trade_state NOTPAY is not a payment"}, false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				res := f.twice(tt.payment.OutTradeNo, workflows.ActivityExamineStrayPayment, tt.payment)
				for i, v := range res {
					if got := get[workflows.StrayDecision](t, v); got != tt.want {
						t.Errorf("attempt %d: %+v, want %+v", i+1, got, tt.want)
					}
				}
				payments, err := st.ListPayments(f.ctx, tt.payment.OutTradeNo)
				if err != nil {
					t.Fatal(err)
				}
				recorded := 0
				for _, p := range payments {
					if p.TransactionID == tt.payment.TransactionID && p.TransactionID != "" {
						recorded++
						if p.AmountFen != tt.payment.AmountFen || p.TradeState != workflows.TradeSuccess {
							t.Errorf("payment row %+v", p)
						}
					}
				}
				if want := map[bool]int{true: 1, false: 0}[tt.wantRecord]; recorded != want {
					t.Errorf("payment recorded %d times, want %d", recorded, want)
				}
			})
		}
		// Examining changes no order.
		if o := f.getOrder("E1000001"); o.Status != status.Closed || o.TransactionID != "" {
			t.Errorf("closed order %+v", o)
		}
		if o := f.getOrder("E1000002"); o.Status != status.Paid || o.TransactionID != kept.TransactionID {
			t.Errorf("paid order %+v", o)
		}
		_, err := f.run(workflows.ActivityExamineStrayPayment, workflows.PaymentNotice{TransactionID: "4200000000000000111", TradeState: workflows.TradeSuccess})
		wantNonRetryable(t, err, workflows.ErrTypeInvalidOrder)
	})
}
