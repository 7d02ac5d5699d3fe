package store_test

import (
	"errors"
	"sync"
	"testing"

	"ordersaga/internal/store"
	"ordersaga/internal/store/storetest"
)

func TestDeductStock_TwiceDeductsOnce(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		u := mustUser(t, s)
		tea, cup := mustProduct(t, s, 100, 10), mustProduct(t, s, 50, 4)
		o := mustOrder(t, s, u.ID, item(tea, 3), item(cup, 4))

		noErr(t, s.DeductStock(ctx, o.OrderNo))
		noErr(t, s.DeductStock(ctx, o.OrderNo))
		if got := stockOf(t, s, tea.ID); got != 7 {
			t.Errorf("tea stock = %d, want 7", got)
		}
		if got := stockOf(t, s, cup.ID); got != 0 {
			t.Errorf("cup stock = %d, want 0", got)
		}
		rows, err := s.StockLedger(ctx, o.OrderNo)
		noErr(t, err)
		if len(rows) != 2 {
			t.Fatalf("ledger = %+v, want 2 rows", rows)
		}
		want := map[int64]int64{tea.ID: 3, cup.ID: 4}
		for _, r := range rows {
			if r.Kind != store.LedgerDeduct || r.OrderNo != o.OrderNo || want[r.ProductID] != r.Quantity || r.CreatedAt.IsZero() {
				t.Errorf("ledger row %+v", r)
			}
		}
	})
}

func TestDeductStock_OutOfStockRollsBackEveryItem(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		u := mustUser(t, s)
		// The product with stock has the smaller id, so it is deducted first.
		plenty, scarce := mustProduct(t, s, 100, 10), mustProduct(t, s, 100, 1)
		o := mustOrder(t, s, u.ID, item(plenty, 2), item(scarce, 2))

		err := s.DeductStock(ctx, o.OrderNo)
		var oos *store.OutOfStockError
		if !errors.As(err, &oos) || !errors.Is(err, store.ErrOutOfStock) {
			t.Fatalf("DeductStock = %v, want *OutOfStockError", err)
		}
		if *oos != (store.OutOfStockError{ProductID: scarce.ID, Name: scarce.Name, Requested: 2, Available: 1}) {
			t.Errorf("OutOfStockError = %+v", *oos)
		}
		if got := stockOf(t, s, plenty.ID); got != 10 {
			t.Errorf("first product's stock = %d, want 10 (rolled back)", got)
		}
		if got := stockOf(t, s, scarce.ID); got != 1 {
			t.Errorf("second product's stock = %d, want 1", got)
		}
		rows, err := s.StockLedger(ctx, o.OrderNo)
		noErr(t, err)
		if len(rows) != 0 {
			t.Errorf("ledger rows left behind: %+v", rows)
		}

		// Once stock arrives, a retry succeeds.
		_, err = s.UpdateProduct(ctx, scarce.ID, store.ProductUpdate{Stock: ptr[int64](5)})
		noErr(t, err)
		noErr(t, s.DeductStock(ctx, o.OrderNo))
		if a, b := stockOf(t, s, plenty.ID), stockOf(t, s, scarce.ID); a != 8 || b != 3 {
			t.Errorf("after retry stocks = %d, %d, want 8, 3", a, b)
		}
	})
}

func TestDeductStock_MissingOrder(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		wantErr(t, s.DeductStock(t.Context(), "SO-MISSING"), store.ErrNotFound)
	})
}

// Eight orders race for a product with stock for five of them; every order's
// deduction also runs twice at once, as a retried activity might.
func TestDeductStock_ConcurrentOrdersNeverOversell(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		const orders, stock = 8, 5
		u := mustUser(t, s)
		scarce, plenty := mustProduct(t, s, 100, stock), mustProduct(t, s, 10, 100)
		nos := make([]string, orders)
		for i := range nos {
			// Items in both orders, to exercise lock ordering across products.
			if i%2 == 0 {
				nos[i] = mustOrder(t, s, u.ID, item(scarce, 1), item(plenty, 2)).OrderNo
			} else {
				nos[i] = mustOrder(t, s, u.ID, item(plenty, 2), item(scarce, 1)).OrderNo
			}
		}

		var wg sync.WaitGroup
		results := make([][2]error, orders)
		start := make(chan struct{})
		for i, no := range nos {
			for attempt := range 2 {
				wg.Go(func() {
					<-start
					results[i][attempt] = s.DeductStock(t.Context(), no)
				})
			}
		}
		close(start)
		wg.Wait()

		succeeded := 0
		for i, r := range results {
			for _, err := range r {
				if err != nil && !errors.Is(err, store.ErrOutOfStock) {
					t.Errorf("order %s: unexpected error %v", nos[i], err)
				}
			}
			deducted := ledgerCount(t, s, nos[i], store.LedgerDeduct)
			switch {
			case deducted == 2:
				succeeded++
				if r[0] != nil && r[1] != nil {
					t.Errorf("order %s deducted but both attempts failed: %v", nos[i], r)
				}
			case deducted == 0:
				if r[0] == nil && r[1] == nil {
					t.Errorf("order %s: both attempts succeeded without a ledger row", nos[i])
				}
			default:
				t.Errorf("order %s has %d DEDUCT rows, want 0 or 2", nos[i], deducted)
			}
		}
		if succeeded != stock {
			t.Errorf("%d orders got stock, want %d", succeeded, stock)
		}
		if got := stockOf(t, s, scarce.ID); got != 0 {
			t.Errorf("scarce stock = %d, want 0", got)
		}
		if got := stockOf(t, s, plenty.ID); got != 100-2*int64(succeeded) {
			t.Errorf("plenty stock = %d, want %d", got, 100-2*succeeded)
		}
	})
}

func TestRestoreStock_TwiceRestoresOnce(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		u := mustUser(t, s)
		tea, cup := mustProduct(t, s, 100, 10), mustProduct(t, s, 50, 5)
		o := mustOrder(t, s, u.ID, item(tea, 3), item(cup, 5))
		noErr(t, s.DeductStock(ctx, o.OrderNo))

		noErr(t, s.RestoreStock(ctx, o.OrderNo))
		noErr(t, s.RestoreStock(ctx, o.OrderNo))
		if a, b := stockOf(t, s, tea.ID), stockOf(t, s, cup.ID); a != 10 || b != 5 {
			t.Errorf("stocks after restore = %d, %d, want 10, 5", a, b)
		}
		if d, r := ledgerCount(t, s, o.OrderNo, store.LedgerDeduct), ledgerCount(t, s, o.OrderNo, store.LedgerRestore); d != 2 || r != 2 {
			t.Errorf("ledger has %d DEDUCT and %d RESTORE rows, want 2 and 2", d, r)
		}

		// A late retry of the deduction does not take the stock again.
		noErr(t, s.DeductStock(ctx, o.OrderNo))
		if a := stockOf(t, s, tea.ID); a != 10 {
			t.Errorf("deduct after restore changed stock to %d", a)
		}
	})
}

func TestRestoreStock_WithoutDeductionIsANoOp(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		u := mustUser(t, s)
		tea := mustProduct(t, s, 100, 10)
		o := mustOrder(t, s, u.ID, item(tea, 3))

		noErr(t, s.RestoreStock(ctx, o.OrderNo))
		noErr(t, s.RestoreStock(ctx, "SO-MISSING"))
		if got := stockOf(t, s, tea.ID); got != 10 {
			t.Errorf("stock = %d, want 10", got)
		}
		rows, err := s.StockLedger(ctx, o.OrderNo)
		noErr(t, err)
		if len(rows) != 0 {
			t.Errorf("ledger = %+v, want empty", rows)
		}
	})
}

func TestRestoreStock_ConcurrentRetriesRestoreOnce(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		u := mustUser(t, s)
		tea := mustProduct(t, s, 100, 10)
		o := mustOrder(t, s, u.ID, item(tea, 4))
		noErr(t, s.DeductStock(t.Context(), o.OrderNo))
		var wg sync.WaitGroup
		for range 6 {
			wg.Go(func() {
				if err := s.RestoreStock(t.Context(), o.OrderNo); err != nil {
					t.Errorf("RestoreStock: %v", err)
				}
			})
		}
		wg.Wait()
		if got := stockOf(t, s, tea.ID); got != 10 {
			t.Errorf("stock = %d, want 10", got)
		}
	})
}
