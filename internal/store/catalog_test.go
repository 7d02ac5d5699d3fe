package store_test

import (
	"errors"
	"testing"

	"ordersaga/internal/store"
	"ordersaga/internal/store/storetest"
)

func ptr[T any](v T) *T { return &v }

func TestProducts_CreateListGet(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		a, err := s.CreateProduct(ctx, store.Product{ID: 4242, Name: "Tea", PriceFen: 1999, Stock: 10})
		noErr(t, err)
		b, err := s.CreateProduct(ctx, store.Product{Name: "Cup", PriceFen: 0, Stock: 0})
		noErr(t, err)
		if a.ID == 0 || a.ID == 4242 || b.ID <= a.ID {
			t.Fatalf("ids not assigned by the database: %d, %d", a.ID, b.ID)
		}
		if a.CreatedAt.IsZero() || a.UpdatedAt.IsZero() {
			t.Errorf("timestamps not set: %+v", a)
		}

		list, err := s.ListProducts(ctx)
		noErr(t, err)
		if len(list) != 2 || list[0].ID != a.ID || list[1].ID != b.ID {
			t.Fatalf("ListProducts = %+v, want [%d %d]", list, a.ID, b.ID)
		}
		if list[0].Name != "Tea" || list[0].PriceFen != 1999 || list[0].Stock != 10 || !list[0].CreatedAt.Equal(a.CreatedAt) {
			t.Errorf("read back %+v, want %+v", list[0], a)
		}

		m, err := s.GetProducts(ctx, []int64{a.ID, 987654, b.ID})
		noErr(t, err)
		if len(m) != 2 || m[a.ID].Name != "Tea" || m[b.ID].Name != "Cup" {
			t.Errorf("GetProducts = %+v", m)
		}
		if _, ok := m[987654]; ok {
			t.Error("missing id present in the map")
		}
		empty, err := s.GetProducts(ctx, nil)
		noErr(t, err)
		if len(empty) != 0 {
			t.Errorf("GetProducts(nil) = %v", empty)
		}
		_, err = s.GetProduct(ctx, 987654)
		wantErr(t, err, store.ErrNotFound)
	})
}

func TestProducts_CreateRejectsInvalid(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		tests := []struct {
			name string
			p    store.Product
		}{
			{"empty name", store.Product{Name: " ", PriceFen: 1, Stock: 1}},
			{"negative price", store.Product{Name: "x", PriceFen: -1, Stock: 1}},
			{"negative stock", store.Product{Name: "x", PriceFen: 1, Stock: -1}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := s.CreateProduct(t.Context(), tt.p)
				wantErr(t, err, store.ErrInvalidArgument)
			})
		}
		list, err := s.ListProducts(t.Context())
		noErr(t, err)
		if len(list) != 0 {
			t.Errorf("invalid products were stored: %+v", list)
		}
	})
}

func TestProducts_UpdateChangesOnlyGivenFields(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		p, err := s.CreateProduct(ctx, store.Product{Name: "Tea", PriceFen: 100, Stock: 5})
		noErr(t, err)

		got, err := s.UpdateProduct(ctx, p.ID, store.ProductUpdate{Stock: ptr[int64](42)})
		noErr(t, err)
		if got.Stock != 42 || got.Name != "Tea" || got.PriceFen != 100 {
			t.Errorf("after stock update: %+v", got)
		}
		got, err = s.UpdateProduct(ctx, p.ID, store.ProductUpdate{Name: ptr("Green tea"), PriceFen: ptr[int64](250)})
		noErr(t, err)
		reread, err := s.GetProduct(ctx, p.ID)
		noErr(t, err)
		if reread.Name != "Green tea" || reread.PriceFen != 250 || reread.Stock != 42 || reread != got {
			t.Errorf("after name/price update: returned %+v, stored %+v", got, reread)
		}
		if reread.UpdatedAt.Before(p.UpdatedAt) {
			t.Errorf("updated_at went back: %v < %v", reread.UpdatedAt, p.UpdatedAt)
		}

		tests := []struct {
			name string
			id   int64
			u    store.ProductUpdate
			want error
		}{
			{"negative stock", p.ID, store.ProductUpdate{Stock: ptr[int64](-1)}, store.ErrInvalidArgument},
			{"negative price", p.ID, store.ProductUpdate{PriceFen: ptr[int64](-5)}, store.ErrInvalidArgument},
			{"empty name", p.ID, store.ProductUpdate{Name: ptr("")}, store.ErrInvalidArgument},
			{"missing product", 987654, store.ProductUpdate{Stock: ptr[int64](1)}, store.ErrNotFound},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := s.UpdateProduct(t.Context(), tt.id, tt.u)
				wantErr(t, err, tt.want)
			})
		}
		if after, _ := s.GetProduct(ctx, p.ID); after != reread {
			t.Errorf("rejected updates changed the product: %+v", after)
		}
	})
}

func TestProducts_SeedOnlyIntoAnEmptyTable(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		demo := []store.Product{{Name: "A", PriceFen: 100, Stock: 10}, {Name: "B", PriceFen: 200, Stock: 20}}
		noErr(t, s.SeedProducts(ctx, demo))
		noErr(t, s.SeedProducts(ctx, demo))
		noErr(t, s.SeedProducts(ctx, []store.Product{{Name: "C", PriceFen: 1, Stock: 1}}))
		list, err := s.ListProducts(ctx)
		noErr(t, err)
		if len(list) != 2 || list[0].Name != "A" || list[1].Name != "B" || list[1].Stock != 20 {
			t.Errorf("after seeding three times: %+v", list)
		}
		wantErr(t, s.SeedProducts(ctx, []store.Product{{Name: "bad", PriceFen: -1}}), store.ErrInvalidArgument)
	})
}

func TestPriceItems(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		tea := mustProduct(t, s, 1999, 5)
		cup := mustProduct(t, s, 500, 1)
		free := mustProduct(t, s, 0, 3)

		t.Run("prices from the database and merges duplicates", func(t *testing.T) {
			items, total, err := s.PriceItems(t.Context(), []store.ItemQty{
				{ProductID: cup.ID, Quantity: 1}, {ProductID: tea.ID, Quantity: 2},
				{ProductID: free.ID, Quantity: 3}, {ProductID: tea.ID, Quantity: 3},
			})
			noErr(t, err)
			want := []store.OrderItem{item(cup, 1), item(tea, 5), item(free, 3)}
			if len(items) != len(want) {
				t.Fatalf("items = %+v, want %+v", items, want)
			}
			for i := range want {
				if items[i] != want[i] {
					t.Errorf("item %d = %+v, want %+v", i, items[i], want[i])
				}
			}
			if total != 500+5*1999 {
				t.Errorf("total = %d, want %d", total, 500+5*1999)
			}
		})

		tests := []struct {
			name  string
			items []store.ItemQty
			check func(t *testing.T, err error)
		}{
			{"unknown product", []store.ItemQty{{ProductID: tea.ID, Quantity: 1}, {ProductID: 987654, Quantity: 1}},
				func(t *testing.T, err error) {
					wantErr(t, err, store.ErrUnknownProduct)
					if !contains(err.Error(), "987654") {
						t.Errorf("error %q does not name the id", err)
					}
				}},
			{"out of stock after merging", []store.ItemQty{{ProductID: tea.ID, Quantity: 3}, {ProductID: tea.ID, Quantity: 3}},
				func(t *testing.T, err error) {
					var oos *store.OutOfStockError
					if !errors.As(err, &oos) || !errors.Is(err, store.ErrOutOfStock) {
						t.Fatalf("error = %v, want *OutOfStockError", err)
					}
					if *oos != (store.OutOfStockError{ProductID: tea.ID, Name: tea.Name, Requested: 6, Available: 5}) {
						t.Errorf("OutOfStockError = %+v", *oos)
					}
				}},
			{"zero quantity", []store.ItemQty{{ProductID: tea.ID, Quantity: 0}},
				func(t *testing.T, err error) { wantErr(t, err, store.ErrInvalidArgument) }},
			{"negative quantity", []store.ItemQty{{ProductID: tea.ID, Quantity: -1}},
				func(t *testing.T, err error) { wantErr(t, err, store.ErrInvalidArgument) }},
			{"no items", nil,
				func(t *testing.T, err error) { wantErr(t, err, store.ErrInvalidArgument) }},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				items, total, err := s.PriceItems(t.Context(), tt.items)
				if err == nil {
					t.Fatalf("PriceItems = %+v, %d, want an error", items, total)
				}
				tt.check(t, err)
			})
		}
		// A check, not a reservation.
		if got := stockOf(t, s, tea.ID); got != 5 {
			t.Errorf("PriceItems changed stock to %d", got)
		}
	})
}
