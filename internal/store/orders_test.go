package store_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"ordersaga/internal/status"
	"ordersaga/internal/store"
	"ordersaga/internal/store/storetest"
)

func TestCreateOrder_IsIdempotentByOrderNo(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		u := mustUser(t, s)
		tea, cup := mustProduct(t, s, 1999, 10), mustProduct(t, s, 500, 10)
		deadline := time.Now().Add(15 * time.Minute)
		in := store.Order{
			OrderNo: "SO-IDEMP-1", UserID: u.ID, TotalFen: 2*1999 + 500, Address: "Shanghai",
			PayDeadline: deadline, Items: []store.OrderItem{item(tea, 2), item(cup, 1)},
		}
		first, err := s.CreateOrder(ctx, in)
		noErr(t, err)
		if first.Status != status.Pending || first.TotalFen != 4498 || first.Address != "Shanghai" {
			t.Errorf("created %+v", first)
		}
		if len(first.Items) != 2 || first.Items[0].ID == 0 || first.Items[0].OrderNo != "SO-IDEMP-1" ||
			first.Items[0].ProductID != tea.ID || first.Items[0].Quantity != 2 || first.Items[1].UnitPriceFen != 500 {
			t.Errorf("created items %+v", first.Items)
		}

		// A retry, even with different contents, returns what is stored.
		retry := in
		retry.Items = []store.OrderItem{item(cup, 7)}
		retry.TotalFen = 0
		second, err := s.CreateOrder(ctx, retry)
		noErr(t, err)
		stored, err := s.GetOrder(ctx, "SO-IDEMP-1")
		noErr(t, err)
		for _, o := range []store.Order{second, stored} {
			if o.TotalFen != first.TotalFen || !o.CreatedAt.Equal(first.CreatedAt) || len(o.Items) != 2 ||
				o.Items[0] != first.Items[0] || o.Items[1] != first.Items[1] {
				t.Errorf("after retry got %+v, want %+v", o, first)
			}
		}
		var n int64
		noErr(t, s.DB().Table("order_items").Where("order_no = ?", "SO-IDEMP-1").Count(&n).Error)
		if n != 2 {
			t.Errorf("order_items rows = %d, want 2", n)
		}
	})
}

func TestCreateOrder_RejectsInvalidOrders(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		u, other := mustUser(t, s), mustUser(t, s)
		tea := mustProduct(t, s, 100, 10)
		existing := mustOrder(t, s, u.ID, item(tea, 1))
		dl := time.Now().Add(time.Minute)
		tests := []struct {
			name string
			o    store.Order
		}{
			{"no order_no", store.Order{UserID: u.ID, PayDeadline: dl, Items: []store.OrderItem{item(tea, 1)}}},
			{"no items", store.Order{OrderNo: uniq("SO"), UserID: u.ID, PayDeadline: dl}},
			{"no deadline", store.Order{OrderNo: uniq("SO"), UserID: u.ID, Items: []store.OrderItem{item(tea, 1)}}},
			{"total is not the sum", store.Order{OrderNo: uniq("SO"), UserID: u.ID, PayDeadline: dl, TotalFen: 99, Items: []store.OrderItem{item(tea, 1)}}},
			{"zero quantity", store.Order{OrderNo: uniq("SO"), UserID: u.ID, PayDeadline: dl, Items: []store.OrderItem{item(tea, 0)}}},
			{"product twice", store.Order{OrderNo: uniq("SO"), UserID: u.ID, PayDeadline: dl, Items: []store.OrderItem{item(tea, 1), item(tea, 2)}}},
			{"unknown status", store.Order{OrderNo: uniq("SO"), UserID: u.ID, Status: "LOST", PayDeadline: dl, Items: []store.OrderItem{item(tea, 1)}}},
			{"order_no of another user", store.Order{OrderNo: existing.OrderNo, UserID: other.ID, PayDeadline: dl, Items: []store.OrderItem{item(tea, 1)}}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := s.CreateOrder(t.Context(), tt.o)
				wantErr(t, err, store.ErrInvalidArgument)
			})
		}
		orders, _, err := s.ListOrdersByUser(t.Context(), other.ID, 10, nil)
		noErr(t, err)
		if len(orders) != 0 {
			t.Errorf("other user has orders %+v", orders)
		}
		// A user that does not exist is refused by the foreign key.
		_, err = s.CreateOrder(t.Context(), store.Order{OrderNo: uniq("SO"), UserID: 987654, PayDeadline: dl, Items: []store.OrderItem{item(tea, 1)}})
		if err == nil {
			t.Error("order for a missing user was stored")
		}
	})
}

func TestGetOrder(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		alice, bob := mustUser(t, s), mustUser(t, s)
		tea := mustProduct(t, s, 100, 10)
		o := mustOrder(t, s, alice.ID, item(tea, 3))

		got, err := s.GetOrderForUser(t.Context(), o.OrderNo, alice.ID)
		noErr(t, err)
		if got.OrderNo != o.OrderNo || got.UserID != alice.ID || len(got.Items) != 1 || got.Items[0].Quantity != 3 {
			t.Errorf("GetOrderForUser(owner) = %+v", got)
		}
		_, err = s.GetOrderForUser(t.Context(), o.OrderNo, bob.ID)
		wantErr(t, err, store.ErrNotFound)
		_, err = s.GetOrderForUser(t.Context(), "SO-MISSING", alice.ID)
		wantErr(t, err, store.ErrNotFound)
		_, err = s.GetOrder(t.Context(), "SO-MISSING")
		wantErr(t, err, store.ErrNotFound)
	})
}

func TestListOrdersByUser_PaginatesNewestFirst(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		alice, bob := mustUser(t, s), mustUser(t, s)
		tea := mustProduct(t, s, 100, 100)
		base := time.Date(2025, 3, 1, 10, 0, 0, 123456000, time.UTC)
		// Two orders share a created_at: order_no breaks the tie.
		created := map[string]time.Time{
			"A-1": base, "A-2": base.Add(time.Second), "A-3": base.Add(time.Second),
			"A-4": base.Add(2 * time.Second), "A-5": base.Add(3*time.Second + time.Microsecond),
		}
		for no, at := range created {
			_, err := s.CreateOrder(ctx, store.Order{OrderNo: no, UserID: alice.ID, CreatedAt: at,
				PayDeadline: at.Add(15 * time.Minute), Items: []store.OrderItem{item(tea, 1)}})
			noErr(t, err)
		}
		_, err := s.CreateOrder(ctx, store.Order{OrderNo: "B-1", UserID: bob.ID, CreatedAt: base.Add(time.Second),
			PayDeadline: base, Items: []store.OrderItem{item(tea, 1)}})
		noErr(t, err)

		var got []string
		var cur *store.Cursor
		pages := 0
		for {
			page, next, err := s.ListOrdersByUser(ctx, alice.ID, 2, cur)
			noErr(t, err)
			pages++
			for _, o := range page {
				if o.UserID != alice.ID || len(o.Items) != 1 {
					t.Errorf("listed %+v", o)
				}
				got = append(got, o.OrderNo)
			}
			if next == nil {
				break
			}
			if pages > 5 {
				t.Fatal("pagination does not end")
			}
			// Through the opaque token, as an API would.
			cur, err = store.DecodeCursor(next.Encode())
			noErr(t, err)
		}
		want := []string{"A-5", "A-4", "A-3", "A-2", "A-1"}
		if !slices.Equal(got, want) || pages != 3 {
			t.Errorf("pages=%d orders=%v, want 3 pages %v", pages, got, want)
		}

		// An exact last page has no next cursor.
		page, next, err := s.ListOrdersByUser(ctx, alice.ID, 5, nil)
		noErr(t, err)
		if len(page) != 5 || next != nil {
			t.Errorf("limit 5: %d orders, next %+v", len(page), next)
		}
		page, _, err = s.ListOrdersByUser(ctx, bob.ID, 0, nil)
		noErr(t, err)
		if len(page) != 1 || page[0].OrderNo != "B-1" {
			t.Errorf("bob sees %+v", page)
		}
		stranger := mustUser(t, s)
		page, next, err = s.ListOrdersByUser(ctx, stranger.ID, 10, nil)
		noErr(t, err)
		if len(page) != 0 || next != nil {
			t.Errorf("a user without orders sees %+v", page)
		}
		_, err = store.DecodeCursor("%%%")
		wantErr(t, err, store.ErrInvalidArgument)
	})
}

func TestTransitionOrder_IsConditional(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		u := mustUser(t, s)
		tea := mustProduct(t, s, 100, 10)
		o := mustOrder(t, s, u.ID, item(tea, 1))
		paidAt := time.Date(2025, 3, 1, 10, 0, 0, 0, time.FixedZone("CST", 8*3600))
		pay := store.OrderUpdate{TransactionID: ptr("4200001"), PaidAt: &paidAt}
		pending := []status.Order{status.Pending}

		steps := []struct {
			name        string
			from        []status.Order
			to          status.Order
			set         store.OrderUpdate
			wantChanged bool
			wantErr     error
			wantStatus  status.Order
		}{
			{"PENDING to PAID", pending, status.Paid, pay, true, nil, status.Paid},
			{"PENDING to PAID again is a retry", pending, status.Paid, store.OrderUpdate{TransactionID: ptr("other")}, false, nil, status.Paid},
			{"PENDING to CLOSED conflicts", pending, status.Closed, store.OrderUpdate{}, false, store.ErrStatusConflict, status.Paid},
			{"PAID to SHIPPED", []status.Order{status.Paid}, status.Shipped, store.OrderUpdate{}, true, nil, status.Shipped},
			{"PAID or SHIPPED to REFUNDING", []status.Order{status.Paid, status.Shipped}, status.Refunding, store.OrderUpdate{}, true, nil, status.Refunding},
			{"to the same status is a no-op", []status.Order{status.Refunding}, status.Refunding, store.OrderUpdate{Flag: ptr("X")}, false, nil, status.Refunding},
		}
		for _, st := range steps {
			changed, got, err := s.TransitionOrder(t.Context(), o.OrderNo, st.from, st.to, st.set)
			if st.wantErr != nil {
				wantErr(t, err, st.wantErr)
			} else {
				noErr(t, err)
			}
			if changed != st.wantChanged || got.Status != st.wantStatus {
				t.Errorf("%s: changed=%v status=%s, want %v %s", st.name, changed, got.Status, st.wantChanged, st.wantStatus)
			}
			stored, err := s.GetOrder(t.Context(), o.OrderNo)
			noErr(t, err)
			if stored.Status != st.wantStatus {
				t.Errorf("%s: stored status %s, want %s", st.name, stored.Status, st.wantStatus)
			}
		}

		// The conflict error carries the current status.
		_, _, err := s.TransitionOrder(t.Context(), o.OrderNo, []status.Order{status.Paid}, status.Closed, store.OrderUpdate{})
		var sc *store.StatusConflictError
		if !errors.As(err, &sc) || sc.Current != status.Refunding || sc.OrderNo != o.OrderNo ||
			!slices.Equal(sc.Want, []status.Order{status.Paid}) {
			t.Errorf("conflict error = %#v", err)
		}

		// The fields of the first (winning) transition were written, the retry's were not.
		stored, err := s.GetOrder(t.Context(), o.OrderNo)
		noErr(t, err)
		if stored.TransactionID != "4200001" || stored.PaidAt == nil || !stored.PaidAt.Equal(paidAt) ||
			stored.PaidAt.Location() != time.UTC || stored.Flag != "" || stored.ClosedAt != nil {
			t.Errorf("stored %+v (paid_at %v)", stored, stored.PaidAt)
		}
		if !stored.UpdatedAt.After(o.UpdatedAt) && !stored.UpdatedAt.Equal(o.UpdatedAt) {
			t.Errorf("updated_at %v before created %v", stored.UpdatedAt, o.UpdatedAt)
		}

		_, _, err = s.TransitionOrder(t.Context(), "SO-MISSING", pending, status.Paid, store.OrderUpdate{})
		wantErr(t, err, store.ErrNotFound)
		_, _, err = s.TransitionOrder(t.Context(), o.OrderNo, pending, "BOGUS", store.OrderUpdate{})
		wantErr(t, err, store.ErrInvalidArgument)
		_, _, err = s.TransitionOrder(t.Context(), o.OrderNo, nil, status.Paid, store.OrderUpdate{})
		wantErr(t, err, store.ErrInvalidArgument)
	})
}

func TestTransitionOrder_ConcurrentCallersChangeOnce(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		u := mustUser(t, s)
		tea := mustProduct(t, s, 100, 10)
		o := mustOrder(t, s, u.ID, item(tea, 1))
		const n = 8
		results := make(chan bool, n)
		errs := make(chan error, n)
		for i := range n {
			go func() {
				// Half try to pay, half to close: exactly one transition wins.
				to := status.Paid
				if i%2 == 1 {
					to = status.Closed
				}
				changed, _, err := s.TransitionOrder(t.Context(), o.OrderNo, []status.Order{status.Pending}, to, store.OrderUpdate{})
				if err != nil && !errors.Is(err, store.ErrStatusConflict) {
					errs <- err
				}
				results <- changed
			}()
		}
		winners := 0
		for range n {
			if <-results {
				winners++
			}
		}
		close(errs)
		for err := range errs {
			t.Errorf("TransitionOrder: %v", err)
		}
		if winners != 1 {
			t.Errorf("%d callers changed the order, want 1", winners)
		}
	})
}

func TestSetPrepayID_OnlyWhilePending(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		u := mustUser(t, s)
		tea := mustProduct(t, s, 100, 10)
		o := mustOrder(t, s, u.ID, item(tea, 1))

		noErr(t, s.SetPrepayID(ctx, o.OrderNo, "wx-prepay-1"))
		noErr(t, s.SetPrepayID(ctx, o.OrderNo, "wx-prepay-1"))
		got, err := s.GetOrder(ctx, o.OrderNo)
		noErr(t, err)
		if got.PrepayID != "wx-prepay-1" {
			t.Errorf("prepay_id = %q", got.PrepayID)
		}
		_, _, err = s.TransitionOrder(ctx, o.OrderNo, []status.Order{status.Pending}, status.Closed, store.OrderUpdate{ClosedAt: ptr(time.Now())})
		noErr(t, err)
		// The same value again is a retry; a new one on a closed order a conflict.
		noErr(t, s.SetPrepayID(ctx, o.OrderNo, "wx-prepay-1"))
		wantErr(t, s.SetPrepayID(ctx, o.OrderNo, "wx-prepay-2"), store.ErrStatusConflict)
		got, err = s.GetOrder(ctx, o.OrderNo)
		noErr(t, err)
		if got.PrepayID != "wx-prepay-1" || got.ClosedAt == nil {
			t.Errorf("after conflict: %+v", got)
		}
		wantErr(t, s.SetPrepayID(ctx, "SO-MISSING", "x"), store.ErrNotFound)
		wantErr(t, s.SetPrepayID(ctx, o.OrderNo, ""), store.ErrInvalidArgument)
	})
}

func TestFlagOrder_AccumulatesReasonsOnce(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		u := mustUser(t, s)
		tea := mustProduct(t, s, 100, 10)
		o := mustOrder(t, s, u.ID, item(tea, 1))
		clean := mustOrder(t, s, u.ID, item(tea, 1))

		noErr(t, s.FlagOrder(ctx, o.OrderNo, "PAYMENT_MISMATCH"))
		noErr(t, s.FlagOrder(ctx, o.OrderNo, "PAYMENT_MISMATCH"))
		noErr(t, s.FlagOrder(ctx, o.OrderNo, "PAID_AFTER_CLOSE"))
		got, err := s.GetOrder(ctx, o.OrderNo)
		noErr(t, err)
		if got.Flag != "PAYMENT_MISMATCH,PAID_AFTER_CLOSE" {
			t.Errorf("flag = %q", got.Flag)
		}
		flagged, err := s.ListFlaggedOrders(ctx, 10)
		noErr(t, err)
		if len(flagged) != 1 || flagged[0].OrderNo != o.OrderNo || flagged[0].OrderNo == clean.OrderNo {
			t.Errorf("flagged orders = %+v", flagged)
		}
		wantErr(t, s.FlagOrder(ctx, "SO-MISSING", "X"), store.ErrNotFound)
		wantErr(t, s.FlagOrder(ctx, o.OrderNo, ""), store.ErrInvalidArgument)
	})
}

func TestTimes_RoundTripInUTC(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		u := mustUser(t, s)
		tea := mustProduct(t, s, 100, 10)
		shanghai := time.FixedZone("CST", 8*3600)
		deadline := time.Date(2025, 6, 30, 23, 59, 58, 987654321, shanghai)
		created := time.Date(2025, 6, 30, 23, 44, 58, 5000, shanghai)
		o, err := s.CreateOrder(ctx, store.Order{OrderNo: uniq("SO"), UserID: u.ID, CreatedAt: created,
			PayDeadline: deadline, Items: []store.OrderItem{item(tea, 1)}})
		noErr(t, err)
		paid := time.Date(2025, 6, 30, 23, 50, 0, 1000, time.UTC)
		_, _, err = s.TransitionOrder(ctx, o.OrderNo, []status.Order{status.Pending}, status.Paid, store.OrderUpdate{PaidAt: &paid})
		noErr(t, err)

		got, err := s.GetOrder(ctx, o.OrderNo)
		noErr(t, err)
		checks := []struct {
			name      string
			got, want time.Time
		}{
			{"pay_deadline", got.PayDeadline, deadline.Truncate(time.Microsecond)},
			{"created_at", got.CreatedAt, created},
			{"paid_at", *got.PaidAt, paid},
		}
		for _, c := range checks {
			if !c.got.Equal(c.want) {
				t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
			}
			if c.got.Location() != time.UTC {
				t.Errorf("%s location = %v, want UTC", c.name, c.got.Location())
			}
		}
		if !got.PayDeadline.Truncate(time.Second).Equal(deadline.Truncate(time.Second)) {
			t.Errorf("pay_deadline to the second = %v, want %v", got.PayDeadline, deadline)
		}
		if got.PayDeadline.Format(time.DateTime) != "2025-06-30 15:59:58" {
			t.Errorf("pay_deadline in UTC = %s", got.PayDeadline.Format(time.DateTime))
		}
		if got.ClosedAt != nil {
			t.Errorf("closed_at = %v, want NULL", got.ClosedAt)
		}
		// Comparisons in SQL agree with Go's (times are stored in one zone and layout).
		var n int64
		noErr(t, s.DB().Table("orders").Where("order_no = ? AND pay_deadline > ? AND pay_deadline < ?",
			o.OrderNo, deadline.Add(-time.Millisecond), deadline.Add(time.Millisecond)).Count(&n).Error)
		if n != 1 {
			t.Errorf("range query on pay_deadline matched %d rows, want 1", n)
		}
	})
}
