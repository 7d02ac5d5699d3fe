package store_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"ordersaga/internal/status"
	"ordersaga/internal/store"
	"ordersaga/internal/store/storetest"
)

func TestTransitionOrder_ShipsAndCompletesOnce(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		u := mustUser(t, s)
		tea := mustProduct(t, s, 100, 10)
		o := mustOrder(t, s, u.ID, item(tea, 1))
		if o.ShippedAt != nil || o.CompletedAt != nil || o.TrackingNo != "" {
			t.Fatalf("new order has fulfilment fields: %+v", o)
		}
		paidAt := time.Now()
		_, _, err := s.TransitionOrder(ctx, o.OrderNo, []status.Order{status.Pending}, status.Paid,
			store.OrderUpdate{PaidAt: &paidAt, TransactionID: ptr("4200000001")})
		noErr(t, err)

		shanghai := time.FixedZone("CST", 8*3600)
		shippedAt := time.Date(2026, 11, 24, 9, 30, 0, 123456789, shanghai)
		changed, got, err := s.TransitionOrder(ctx, o.OrderNo, []status.Order{status.Paid}, status.Shipped,
			store.OrderUpdate{ShippedAt: &shippedAt, TrackingNo: ptr("SF1234567890")})
		noErr(t, err)
		if !changed || got.Status != status.Shipped || got.TrackingNo != "SF1234567890" || got.ShippedAt == nil ||
			!got.ShippedAt.Equal(shippedAt.Truncate(time.Microsecond)) || got.ShippedAt.Location() != time.UTC {
			t.Fatalf("shipped: changed=%v %+v (shipped_at %v)", changed, got, got.ShippedAt)
		}

		// A retry (even with other values) changes nothing.
		later := shippedAt.Add(time.Hour)
		changed, got, err = s.TransitionOrder(ctx, o.OrderNo, []status.Order{status.Paid}, status.Shipped,
			store.OrderUpdate{ShippedAt: &later, TrackingNo: ptr("YT999")})
		noErr(t, err)
		if changed || got.TrackingNo != "SF1234567890" || !got.ShippedAt.Equal(shippedAt.Truncate(time.Microsecond)) {
			t.Errorf("retry rewrote the shipment: changed=%v %+v", changed, got)
		}

		completedAt := shippedAt.Add(72 * time.Hour)
		changed, got, err = s.TransitionOrder(ctx, o.OrderNo, []status.Order{status.Shipped}, status.Completed,
			store.OrderUpdate{CompletedAt: &completedAt})
		noErr(t, err)
		if !changed || got.CompletedAt == nil || !got.CompletedAt.Equal(completedAt.Truncate(time.Microsecond)) {
			t.Errorf("completed: changed=%v %+v", changed, got)
		}
		stored, err := s.GetOrder(ctx, o.OrderNo)
		noErr(t, err)
		if stored.Status != status.Completed || stored.TrackingNo != "SF1234567890" || stored.ShippedAt == nil ||
			stored.CompletedAt == nil || stored.TransactionID != "4200000001" {
			t.Errorf("stored %+v", stored)
		}
	})
}

func TestTransitionOrder_AddFlagInTheSameWrite(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		u := mustUser(t, s)
		tea := mustProduct(t, s, 100, 10)
		pending := []status.Order{status.Pending}
		closeWith := func(orderNo, flag string) store.Order {
			t.Helper()
			now := time.Now()
			_, got, err := s.TransitionOrder(ctx, orderNo, pending, status.Closed, store.OrderUpdate{ClosedAt: &now, AddFlag: flag})
			noErr(t, err)
			return got
		}
		tests := []struct {
			name     string
			existing []string // flags before the transition
			add      string
			want     string
		}{
			{"on a clean order", nil, "CLOSE_UNCONFIRMED", "CLOSE_UNCONFIRMED"},
			{"after another reason", []string{"PAYMENT_MISMATCH"}, "CLOSE_UNCONFIRMED", "PAYMENT_MISMATCH,CLOSE_UNCONFIRMED"},
			{"already there", []string{"A", "CLOSE_UNCONFIRMED"}, "CLOSE_UNCONFIRMED", "A,CLOSE_UNCONFIRMED"},
			{"a longer reason is another reason", []string{"CLOSE_UNCONFIRMED_2"}, "CLOSE_UNCONFIRMED", "CLOSE_UNCONFIRMED_2,CLOSE_UNCONFIRMED"},
			{"like-pattern characters are literal", []string{"A_B"}, "A%B", "A_B,A%B"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				o := mustOrder(t, s, u.ID, item(tea, 1))
				for _, f := range tt.existing {
					noErr(t, s.FlagOrder(ctx, o.OrderNo, f))
				}
				got := closeWith(o.OrderNo, tt.add)
				if got.Status != status.Closed || got.Flag != tt.want {
					t.Errorf("status %s flag %q, want CLOSED %q", got.Status, got.Flag, tt.want)
				}
				// A FlagOrder of the same reason afterwards agrees that it is there.
				noErr(t, s.FlagOrder(ctx, o.OrderNo, tt.add))
				if again, _ := s.GetOrder(ctx, o.OrderNo); again.Flag != tt.want {
					t.Errorf("after FlagOrder flag %q, want %q", again.Flag, tt.want)
				}
			})
		}

		o := mustOrder(t, s, u.ID, item(tea, 1))
		_, _, err := s.TransitionOrder(ctx, o.OrderNo, pending, status.Closed, store.OrderUpdate{AddFlag: "A,B"})
		wantErr(t, err, store.ErrInvalidArgument)
		_, _, err = s.TransitionOrder(ctx, o.OrderNo, pending, status.Closed, store.OrderUpdate{AddFlag: "A", Flag: ptr("B")})
		wantErr(t, err, store.ErrInvalidArgument)
		// A conflict writes no flag.
		_, _, err = s.TransitionOrder(ctx, o.OrderNo, []status.Order{status.Paid}, status.Shipped, store.OrderUpdate{AddFlag: "X"})
		wantErr(t, err, store.ErrStatusConflict)
		if got, _ := s.GetOrder(ctx, o.OrderNo); got.Flag != "" || got.Status != status.Pending {
			t.Errorf("after refused transitions: %+v", got)
		}
	})
}

func TestCheckOrderStock_ChecksWithoutReserving(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		u := mustUser(t, s)
		tea, cup, pot := mustProduct(t, s, 100, 5), mustProduct(t, s, 50, 2), mustProduct(t, s, 900, 1)
		mine := mustOrder(t, s, u.ID, item(tea, 3), item(cup, 2), item(pot, 1))
		theirs := mustOrder(t, s, u.ID, item(cup, 1), item(pot, 1))

		noErr(t, s.CheckOrderStock(ctx, mine.OrderNo))
		noErr(t, s.CheckOrderStock(ctx, mine.OrderNo))
		if a, b, c := stockOf(t, s, tea.ID), stockOf(t, s, cup.ID), stockOf(t, s, pot.ID); a != 5 || b != 2 || c != 1 {
			t.Errorf("a check changed stock: %d %d %d", a, b, c)
		}
		if n := ledgerCount(t, s, mine.OrderNo, store.LedgerDeduct); n != 0 {
			t.Errorf("a check wrote %d ledger rows", n)
		}

		// Another order is paid first: now two of my items are short; the
		// first by product id is reported, named as in my order.
		noErr(t, s.DeductStock(ctx, theirs.OrderNo))
		err := s.CheckOrderStock(ctx, mine.OrderNo)
		var oos *store.OutOfStockError
		if !errors.As(err, &oos) || !errors.Is(err, store.ErrOutOfStock) {
			t.Fatalf("CheckOrderStock = %v, want *OutOfStockError", err)
		}
		if *oos != (store.OutOfStockError{ProductID: cup.ID, Name: cup.Name, Requested: 2, Available: 1}) {
			t.Errorf("OutOfStockError = %+v", *oos)
		}
		if !strings.Contains(err.Error(), cup.Name) {
			t.Errorf("message %q does not name the product", err)
		}

		// An admin restocks: the check passes again.
		_, err = s.UpdateProduct(ctx, cup.ID, store.ProductUpdate{Stock: ptr[int64](2)})
		noErr(t, err)
		_, err = s.UpdateProduct(ctx, pot.ID, store.ProductUpdate{Stock: ptr[int64](1)})
		noErr(t, err)
		noErr(t, s.CheckOrderStock(ctx, mine.OrderNo))

		wantErr(t, s.CheckOrderStock(ctx, "SO-MISSING"), store.ErrNotFound)
	})
}

func TestSetRefundID_KeepsTheFirstAndTheStatus(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		_, err := s.UpsertRefund(ctx, store.Refund{OutRefundNo: "RF-ID-1", OrderNo: "SO-1", RefundFen: 10, TotalFen: 10})
		noErr(t, err)
		noErr(t, s.SetRefundID(ctx, "RF-ID-1", "50300001"))
		noErr(t, s.SetRefundID(ctx, "RF-ID-1", "50300001"))
		noErr(t, s.UpdateRefundStatus(ctx, "RF-ID-1", status.RefundSuccess, ""))
		noErr(t, s.SetRefundID(ctx, "RF-ID-1", "50300002"))
		got, err := s.GetRefund(ctx, "RF-ID-1")
		noErr(t, err)
		if got.RefundID != "50300001" || got.Status != status.RefundSuccess {
			t.Errorf("refund %+v", got)
		}
		wantErr(t, s.SetRefundID(ctx, "RF-MISSING", "1"), store.ErrNotFound)
		wantErr(t, s.SetRefundID(ctx, "RF-ID-1", ""), store.ErrInvalidArgument)
	})
}

// Rows written before migration 0002 (or by code that does not know the new
// columns) read back with no shipment, no completion and no tracking number.
func TestOrders_FulfilmentColumnsDefaultForOlderRows(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		u := mustUser(t, s)
		noErr(t, s.DB().Exec(`INSERT INTO orders (order_no, user_id, status, total_fen, pay_deadline, created_at, updated_at)
VALUES (?, ?, 'PENDING', 100, ?, ?, ?)`, "SO-OLD-1", u.ID, time.Now().UTC(), time.Now().UTC(), time.Now().UTC()).Error)
		got, err := s.GetOrder(ctx, "SO-OLD-1")
		noErr(t, err)
		if got.TrackingNo != "" || got.ShippedAt != nil || got.CompletedAt != nil {
			t.Errorf("old row %+v", got)
		}
		v, err := s.SchemaVersion(ctx)
		noErr(t, err)
		if v < 2 {
			t.Errorf("SchemaVersion = %d, want >= 2", v)
		}
	})
}

func TestOutOfStockError_NamesTheProduct(t *testing.T) {
	t.Parallel()
	err := error(&store.OutOfStockError{ProductID: 7, Name: "Yunnan coffee beans 500g", Requested: 3, Available: 1})
	if msg := err.Error(); !strings.Contains(msg, "product 7") || !strings.Contains(msg, "Yunnan coffee beans 500g") {
		t.Errorf("message %q", msg)
	}
	if !errors.Is(err, store.ErrOutOfStock) {
		t.Error("does not match ErrOutOfStock")
	}
}

// A retried write that changes nothing writes nothing: updated_at stays, so
// an activity run twice leaves the database exactly as run once.
func TestRetriedWrites_LeaveUpdatedAtAlone(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		u := mustUser(t, s)
		tea := mustProduct(t, s, 100, 10)
		o := mustOrder(t, s, u.ID, item(tea, 1))

		noErr(t, s.SetPrepayID(ctx, o.OrderNo, "wx-prepay-1"))
		before, err := s.GetOrder(ctx, o.OrderNo)
		noErr(t, err)
		time.Sleep(2 * time.Millisecond) // so that a rewrite would show in updated_at
		noErr(t, s.SetPrepayID(ctx, o.OrderNo, "wx-prepay-1"))
		after, err := s.GetOrder(ctx, o.OrderNo)
		noErr(t, err)
		if !after.UpdatedAt.Equal(before.UpdatedAt) {
			t.Errorf("repeated SetPrepayID moved updated_at %v -> %v", before.UpdatedAt, after.UpdatedAt)
		}

		_, err = s.UpsertRefund(ctx, store.Refund{OutRefundNo: "RF-NOOP", OrderNo: o.OrderNo, RefundFen: 100, TotalFen: 100})
		noErr(t, err)
		for _, step := range []struct {
			status   status.Refund
			refundID string
		}{
			{status.RefundProcessing, "50300009"},
			{status.RefundAbnormal, ""},
			{status.RefundSuccess, "50300009"},
		} {
			noErr(t, s.UpdateRefundStatus(ctx, "RF-NOOP", step.status, step.refundID))
			first, err := s.GetRefund(ctx, "RF-NOOP")
			noErr(t, err)
			time.Sleep(2 * time.Millisecond)
			noErr(t, s.UpdateRefundStatus(ctx, "RF-NOOP", step.status, step.refundID))
			noErr(t, s.UpdateRefundStatus(ctx, "RF-NOOP", step.status, ""))
			second, err := s.GetRefund(ctx, "RF-NOOP")
			noErr(t, err)
			if !reflect.DeepEqual(second, first) || first.Status != step.status || first.RefundID != "50300009" {
				t.Errorf("%s repeated: %+v -> %+v", step.status, first, second)
			}
		}
		// A new refund_id with the same status is still recorded.
		noErr(t, s.UpdateRefundStatus(ctx, "RF-NOOP", status.RefundSuccess, "50300010"))
		if got, _ := s.GetRefund(ctx, "RF-NOOP"); got.RefundID != "50300010" || got.Status != status.RefundSuccess {
			t.Errorf("new refund_id not recorded: %+v", got)
		}
	})
}
