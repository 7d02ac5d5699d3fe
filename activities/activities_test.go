package activities_test

import (
	"strings"
	"testing"
	"time"

	"ordersaga/internal/status"
	"ordersaga/internal/store"
	"ordersaga/internal/store/storetest"
	"ordersaga/worker"
	"ordersaga/workflows"
)

func TestEveryActivityNameIsRegisteredOnce(t *testing.T) {
	names := []string{
		workflows.ActivityCreateOrder, workflows.ActivityCheckStock, workflows.ActivityRequestPayment,
		workflows.ActivityQueryPayment, workflows.ActivityClosePayment, workflows.ActivityMarkPaid,
		workflows.ActivityDeductStock, workflows.ActivityCloseOrder, workflows.ActivitySetOrderStatus,
		workflows.ActivityFlagOrder, workflows.ActivityRequestRefund, workflows.ActivityQueryRefund,
		workflows.ActivitySettleRefund, workflows.ActivityExamineStrayPayment,
		workflows.ActivityStartReconcileRun, workflows.ActivityReconcileBill, workflows.ActivityFailReconcileRun,
		workflows.ActivityUploadShipping, workflows.ActivityQueryWechatShipping, workflows.ActivityRemindReceipt,
		workflows.ActivitySaveAfterSale,
	}
	registered := map[string]int{}
	for _, a := range worker.Activities(nil) {
		registered[a.Name]++
	}
	for _, n := range names {
		if registered[n] != 1 {
			t.Errorf("activity %s registered %d times, want 1", n, registered[n])
		}
	}
	if len(registered) != len(names) {
		t.Errorf("%d activities registered, %d named in workflows", len(registered), len(names))
	}
}

func TestCreateOrderTwiceStoresOneOrder(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		p := f.product("Coffee", 8800, 10)
		u := f.user("o-1")
		in := workflows.CreateOrderInput{
			OrderNo: "A1000001", UserID: u.ID, Items: []workflows.Item{line(p, 3)},
			PayDeadline: time.Date(2026, 11, 23, 12, 15, 0, 0, time.UTC),
		}
		res := f.twice(in.OrderNo, workflows.ActivityCreateOrder, in)
		first, second := get[workflows.CreatedOrder](t, res[0]), get[workflows.CreatedOrder](t, res[1])
		if first.TotalFen != 26400 || second.TotalFen != first.TotalFen || !second.PayDeadline.Equal(in.PayDeadline) ||
			!second.CreatedAt.Equal(first.CreatedAt) {
			t.Fatalf("first %+v second %+v", first, second)
		}
		orders, _, err := st.ListOrdersByUser(f.ctx, u.ID, 10, nil)
		if err != nil || len(orders) != 1 || orders[0].Status != status.Pending {
			t.Fatalf("orders after two attempts: %+v %v", orders, err)
		}
		// Creation checks stock but does not deduct it: that happens on payment.
		if got := f.stock(p); got != 10 {
			t.Fatalf("stock %d, want 10", got)
		}
	})
}

func TestCreateOrderRefusalsAreNonRetryableWithStableTypes(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		p := f.product("Mug", 3900, 1)
		u := f.user("o-2")
		tests := []struct {
			name     string
			items    []workflows.Item
			address  string
			wantType string
			wantMsg  string
		}{
			{"out of stock", []workflows.Item{line(p, 2)}, "", workflows.ErrTypeOutOfStock, "Mug: only 1 left, 2 ordered"},
			{"unknown product", []workflows.Item{{ProductID: p.ID + 1000, Quantity: 1}}, "", workflows.ErrTypeUnknownProduct, ""},
			{"zero quantity", []workflows.Item{line(p, 0)}, "", workflows.ErrTypeInvalidOrder, ""},
			// PostgreSQL refuses a NUL in text: refused before the insert,
			// not retried for ever.
			{"NUL in the address", []workflows.Item{line(p, 1)}, "Room 1\x00", workflows.ErrTypeInvalidOrder, ""},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := f.run(workflows.ActivityCreateOrder, workflows.CreateOrderInput{
					OrderNo: "R" + string(rune('0'+i)) + "000000", UserID: u.ID, Items: tt.items, Address: tt.address, PayDeadline: time.Now(),
				})
				appErr := wantNonRetryable(t, err, tt.wantType)
				if tt.wantMsg != "" && appErr.Message() != tt.wantMsg {
					t.Errorf("message %q, want %q", appErr.Message(), tt.wantMsg)
				}
			})
		}
		if orders, _, _ := st.ListOrdersByUser(f.ctx, u.ID, 10, nil); len(orders) != 0 {
			t.Fatalf("refusals stored %d orders", len(orders))
		}
	})
}

func TestCloseOrderTwiceClosesOnceAndRefusesAPaidOrder(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		p := f.product("Tea", 100, 5)
		u := f.user("o-3")
		f.order("C1000001", u, line(p, 1))
		f.order("C1000002", u, line(p, 1))

		res := f.twice("C1000001", workflows.ActivityCloseOrder, workflows.CloseOrderInput{OrderNo: "C1000001", Reason: "deadline"})
		for i, v := range res {
			if got := get[workflows.OrderStatusResult](t, v); got.Status != status.Closed {
				t.Fatalf("attempt %d: status %s", i+1, got.Status)
			}
		}
		if o := f.getOrder("C1000001"); o.Status != status.Closed || o.ClosedAt == nil || o.Flag != "" {
			t.Fatalf("row %+v", o)
		}

		// A paid order is never closed by the deadline path, and not flagged by it either.
		f.transition("C1000002", status.Pending, status.Paid)
		_, err := f.run(workflows.ActivityCloseOrder, workflows.CloseOrderInput{OrderNo: "C1000002", Flag: workflows.FlagCloseUnconfirmed})
		wantNonRetryable(t, err, workflows.ErrTypeStatusConflict)
		if o := f.getOrder("C1000002"); o.Status != status.Paid || o.Flag != "" {
			t.Fatalf("paid order became %s, flag %q", o.Status, o.Flag)
		}

		_, err = f.run(workflows.ActivityCloseOrder, workflows.CloseOrderInput{OrderNo: "C1000404"})
		wantNonRetryable(t, err, workflows.ErrTypeInvalidOrder)
	})
}

func TestCloseOrderWithAFlagFlagsOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		p := f.product("Tea", 100, 5)
		u := f.user("o-4")
		f.order("C2000001", u, line(p, 1))
		f.order("C2000002", u, line(p, 1))

		in := workflows.CloseOrderInput{OrderNo: "C2000001", Reason: "WeChat did not confirm the close", Flag: workflows.FlagCloseUnconfirmed}
		f.twice(in.OrderNo, workflows.ActivityCloseOrder, in)
		if o := f.getOrder("C2000001"); o.Status != status.Closed || o.Flag != workflows.FlagCloseUnconfirmed {
			t.Fatalf("row %+v", o)
		}

		// Closed before without a flag: the flagged close adds it.
		f.must(workflows.ActivityCloseOrder, workflows.CloseOrderInput{OrderNo: "C2000002"})
		f.must(workflows.ActivityCloseOrder, workflows.CloseOrderInput{OrderNo: "C2000002", Flag: workflows.FlagCloseUnconfirmed})
		if o := f.getOrder("C2000002"); o.Status != status.Closed || o.Flag != workflows.FlagCloseUnconfirmed {
			t.Fatalf("row %+v", o)
		}
		if recs := f.logs.records("order flagged for a person"); len(recs) == 0 || recs[0]["level"] != "ERROR" ||
			recs[0]["flag"] != workflows.FlagCloseUnconfirmed || recs[0]["order_no"] != "C2000001" {
			t.Errorf("flag log records %v", recs)
		}
	})
}

func TestCheckStockTwiceReservesNothing(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		o := f.coffeeOrder("K1000001")
		f.twice(o.OrderNo, workflows.ActivityCheckStock, o.OrderNo)
		if kinds := ledgerKinds(t, st, o.OrderNo); len(kinds) != 0 {
			t.Errorf("ledger %v after a check", kinds)
		}
		products, _ := st.ListProducts(f.ctx)
		if products[0].Stock != 10 || products[1].Stock != 5 {
			t.Errorf("stock after a check: %+v", products)
		}
	})
}

func TestCheckStockRefusesWithAMessageAShopperCanRead(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		coffee := f.product("Yunnan coffee beans 500g", 8800, 10)
		mug := f.product("Enamel mug", 3900, 5)
		f.order("K2000001", f.user("o-k2"), line(coffee, 2), line(mug, 3))
		tests := []struct {
			name        string
			coffee, mug int64
			wantMsg     string
		}{
			{"one left", 1, 5, "Yunnan coffee beans 500g: only 1 left, 2 ordered"},
			{"sold out", 2, 0, "Enamel mug: sold out, 3 ordered"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if _, err := st.UpdateProduct(f.ctx, coffee.ID, store.ProductUpdate{Stock: &tt.coffee}); err != nil {
					t.Fatal(err)
				}
				if _, err := st.UpdateProduct(f.ctx, mug.ID, store.ProductUpdate{Stock: &tt.mug}); err != nil {
					t.Fatal(err)
				}
				_, err := f.run(workflows.ActivityCheckStock, "K2000001")
				if appErr := wantNonRetryable(t, err, workflows.ErrTypeOutOfStock); appErr.Message() != tt.wantMsg {
					t.Errorf("message %q, want %q", appErr.Message(), tt.wantMsg)
				}
			})
		}
		_, err := f.run(workflows.ActivityCheckStock, "K2000404")
		wantNonRetryable(t, err, workflows.ErrTypeInvalidOrder)
	})
}

func TestDeductStockTwiceDeductsOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		coffee := f.product("Yunnan coffee beans 500g", 8800, 10)
		mug := f.product("Enamel mug", 3900, 5)
		o := f.order("D1000001", f.user("o-d1"), line(coffee, 2), line(mug, 1))
		f.twice(o.OrderNo, workflows.ActivityDeductStock, o.OrderNo)
		if a, b := f.stock(coffee), f.stock(mug); a != 8 || b != 4 {
			t.Errorf("stock %d %d, want 8 4", a, b)
		}
		if kinds := ledgerKinds(t, st, o.OrderNo); kinds[store.LedgerDeduct] != 2 || len(kinds) != 1 {
			t.Errorf("ledger %v, want one DEDUCT row per product", kinds)
		}
	})
}

func TestDeductStockOutOfStockDeductsNothing(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		coffee := f.product("Yunnan coffee beans 500g", 8800, 10)
		mug := f.product("Enamel mug", 3900, 1)
		o := f.order("D2000001", f.user("o-d2"), line(coffee, 2), line(mug, 1))
		other := f.order("D2000002", f.user("o-d3"), line(mug, 1))
		f.must(workflows.ActivityDeductStock, other.OrderNo) // the last mug goes to someone else

		_, err := f.run(workflows.ActivityDeductStock, o.OrderNo)
		if appErr := wantNonRetryable(t, err, workflows.ErrTypeOutOfStock); appErr.Message() != "Enamel mug: sold out, 1 ordered" {
			t.Errorf("message %q", appErr.Message())
		}
		if a, b := f.stock(coffee), f.stock(mug); a != 10 || b != 0 {
			t.Errorf("stock %d %d, want 10 0 (all or nothing)", a, b)
		}
		if kinds := ledgerKinds(t, st, o.OrderNo); len(kinds) != 0 {
			t.Errorf("ledger %v", kinds)
		}
		_, err = f.run(workflows.ActivityDeductStock, "D2000404")
		wantNonRetryable(t, err, workflows.ErrTypeInvalidOrder)
	})
}

func TestSetOrderStatusTwiceTransitionsOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		f.paidOrder("S1000001")
		f.paidOrder("S1000002")
		paidOrShipped := []status.Order{status.Paid, status.Shipped}
		steps := []struct {
			name  string
			in    workflows.SetOrderStatusInput
			check func(t *testing.T, o store.Order)
		}{
			{"ship with a tracking number",
				workflows.SetOrderStatusInput{OrderNo: "S1000001", From: []status.Order{status.Paid}, To: status.Shipped, TrackingNo: "SF1234567890", Reason: "admin"},
				func(t *testing.T, o store.Order) {
					if o.ShippedAt == nil || o.TrackingNo != "SF1234567890" || o.CompletedAt != nil {
						t.Errorf("shipped %+v", o)
					}
				}},
			{"complete",
				workflows.SetOrderStatusInput{OrderNo: "S1000001", From: []status.Order{status.Shipped}, To: status.Completed, Reason: "user confirmed"},
				func(t *testing.T, o store.Order) {
					if o.CompletedAt == nil || o.ShippedAt == nil || o.TrackingNo != "SF1234567890" {
						t.Errorf("completed %+v", o)
					}
				}},
			{"refund before shipping",
				workflows.SetOrderStatusInput{OrderNo: "S1000002", From: paidOrShipped, To: status.Refunding, Reason: "user"},
				func(t *testing.T, o store.Order) {
					if o.ShippedAt != nil || o.TransactionID == "" {
						t.Errorf("refunding %+v", o)
					}
				}},
		}
		for _, s := range steps {
			t.Run(s.name, func(t *testing.T) {
				res := f.twice(s.in.OrderNo, workflows.ActivitySetOrderStatus, s.in)
				for i, v := range res {
					if got := get[workflows.OrderStatusResult](t, v); got.Status != s.in.To {
						t.Errorf("attempt %d: status %s, want %s", i+1, got.Status, s.in.To)
					}
				}
				o := f.getOrder(s.in.OrderNo)
				if string(o.Status) != string(s.in.To) {
					t.Fatalf("stored status %s", o.Status)
				}
				s.check(t, o)
			})
		}
	})
}

func TestSetOrderStatusConflictsAreNonRetryable(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		f.coffeeOrder("S2000001") // PENDING
		tests := []struct {
			name     string
			in       workflows.SetOrderStatusInput
			wantType string
		}{
			{"ship an unpaid order", workflows.SetOrderStatusInput{OrderNo: "S2000001", From: []status.Order{status.Paid}, To: status.Shipped}, workflows.ErrTypeStatusConflict},
			{"complete an unshipped order", workflows.SetOrderStatusInput{OrderNo: "S2000001", From: []status.Order{status.Shipped}, To: status.Completed}, workflows.ErrTypeStatusConflict},
			{"unknown status", workflows.SetOrderStatusInput{OrderNo: "S2000001", From: []status.Order{status.Pending}, To: "LOST"}, workflows.ErrTypeInvalidOrder},
			{"no source status", workflows.SetOrderStatusInput{OrderNo: "S2000001", To: status.Shipped}, workflows.ErrTypeInvalidOrder},
			{"no such order", workflows.SetOrderStatusInput{OrderNo: "S2000404", From: []status.Order{status.Paid}, To: status.Shipped}, workflows.ErrTypeInvalidOrder},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := f.run(workflows.ActivitySetOrderStatus, tt.in)
				wantNonRetryable(t, err, tt.wantType)
			})
		}
		if o := f.getOrder("S2000001"); o.Status != status.Pending || o.ShippedAt != nil {
			t.Errorf("refused transitions changed the order: %+v", o)
		}
	})
}

func TestFlagOrderTwiceFlagsOnceAndLogsAtError(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		f.coffeeOrder("F1000001")
		in := workflows.FlagOrderInput{OrderNo: "F1000001", Flag: workflows.FlagPaymentMismatch, Reason: "paid 1 fen for a 21500 fen order"}
		f.twice(in.OrderNo, workflows.ActivityFlagOrder, in)
		f.must(workflows.ActivityFlagOrder, workflows.FlagOrderInput{OrderNo: "F1000001", Flag: workflows.FlagRefundFailed, Reason: "refund CLOSED"})
		if o := f.getOrder("F1000001"); o.Flag != "PAYMENT_MISMATCH,REFUND_FAILED" {
			t.Errorf("flag %q", o.Flag)
		}
		recs := f.logs.records("order flagged for a person")
		if len(recs) != 3 {
			t.Fatalf("%d flag log records, want 3", len(recs))
		}
		if r := recs[0]; r["level"] != "ERROR" || r["flag"] != workflows.FlagPaymentMismatch ||
			r["reason"] != in.Reason || r["order_no"] != "F1000001" {
			t.Errorf("log record %v", r)
		}

		for _, bad := range []workflows.FlagOrderInput{
			{OrderNo: "F1000404", Flag: workflows.FlagRefundFailed},
			{OrderNo: "F1000001", Flag: "A,B"},
			{OrderNo: "F1000001", Flag: ""},
		} {
			_, err := f.run(workflows.ActivityFlagOrder, bad)
			wantNonRetryable(t, err, workflows.ErrTypeInvalidOrder)
		}
	})
}

// When the database is down, every activity that writes it fails with an
// error Temporal retries: nothing about the order was decided.
func TestDatabaseFailuresAreRetryable(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		o, n := f.paidOrder("Z1000001")
		refundIn := workflows.RequestRefundInput{OrderNo: o.OrderNo, TransactionID: n.TransactionID,
			OutRefundNo: workflows.OrderRefundNo(o.OrderNo, 1), RefundFen: o.TotalFen, TotalFen: o.TotalFen}
		if err := st.Close(); err != nil { // the database goes away
			t.Fatal(err)
		}
		calls := []struct {
			name string
			args []any
		}{
			{workflows.ActivityCreateOrder, []any{workflows.CreateOrderInput{OrderNo: "Z1000002", UserID: 1, Items: []workflows.Item{{ProductID: 1, Quantity: 1}}, PayDeadline: time.Now().Add(time.Hour)}}},
			{workflows.ActivityCheckStock, []any{o.OrderNo}},
			{workflows.ActivityRequestPayment, []any{workflows.RequestPaymentInput{OrderNo: o.OrderNo, TimeExpire: o.PayDeadline}}},
			{workflows.ActivityMarkPaid, []any{workflows.MarkPaidInput{OrderNo: o.OrderNo, Payment: n}}},
			{workflows.ActivityDeductStock, []any{o.OrderNo}},
			{workflows.ActivityCloseOrder, []any{workflows.CloseOrderInput{OrderNo: o.OrderNo}}},
			{workflows.ActivitySetOrderStatus, []any{workflows.SetOrderStatusInput{OrderNo: o.OrderNo, From: []status.Order{status.Paid}, To: status.Shipped}}},
			{workflows.ActivityFlagOrder, []any{workflows.FlagOrderInput{OrderNo: o.OrderNo, Flag: workflows.FlagRefundFailed}}},
			{workflows.ActivityRequestRefund, []any{refundIn}},
			{workflows.ActivitySettleRefund, []any{workflows.SettleRefundInput{OrderNo: o.OrderNo, OrderRefund: true,
				Refund: workflows.RefundNotice{OutRefundNo: refundIn.OutRefundNo, Status: status.RefundSuccess}}}},
			{workflows.ActivityExamineStrayPayment, []any{n}},
		}
		for _, c := range calls {
			t.Run(c.name, func(t *testing.T) {
				_, err := f.run(c.name, c.args...)
				wantRetryable(t, err)
				if !strings.Contains(err.Error(), "closed") {
					t.Errorf("err = %v; want the database's error", err)
				}
			})
		}
		// WeChat was never asked for a refund.
		if v, _ := f.sim.Transaction(o.OrderNo); len(v.Refunds) != 0 {
			t.Errorf("refunds at WeChat: %+v", v.Refunds)
		}
	})
}
