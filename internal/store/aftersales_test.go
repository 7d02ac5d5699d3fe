package store_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"ordersaga/internal/store"
	"ordersaga/internal/store/storetest"
)

// Each step of an after-sale is written as an upsert of its row: the same
// step twice leaves the row as once, a later step replaces it, and an
// older step (a retry that lost the race) never goes back.
func TestSaveAfterSale_IsAnUpsertThatNeverGoesBack(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		u := mustUser(t, s)
		tea := mustProduct(t, s, 100, 10)
		o := mustOrder(t, s, u.ID, item(tea, 2))
		at := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
		deadline := at.Add(72 * time.Hour)
		requested := store.AfterSale{ID: o.OrderNo + "-AS1", OrderNo: o.OrderNo, UserID: u.ID, Type: "return_and_refund", Status: "REQUESTED",
			Items: []store.RefundItem{{ProductID: tea.ID, Name: "tea", UnitPriceFen: 100, Quantity: 1}}, RefundFen: 100,
			Reason: "broken", Photos: []string{"https://img.example/1.jpg"}, CreatedAt: at, UpdatedAt: at, Deadline: &deadline}
		noErr(t, s.SaveAfterSale(ctx, requested))
		noErr(t, s.SaveAfterSale(ctx, requested)) // a retry
		got, err := s.GetAfterSale(ctx, requested.ID)
		noErr(t, err)
		if got.Status != "REQUESTED" || !reflect.DeepEqual(got.Items, requested.Items) || !reflect.DeepEqual(got.Photos, requested.Photos) ||
			got.Deadline == nil || !got.Deadline.Equal(deadline) {
			t.Fatalf("after the request twice: %+v", got)
		}

		returned := requested
		returned.Status, returned.UpdatedAt, returned.ReturnExpressCompany, returned.ReturnTrackingNo = "RETURNED", at.Add(time.Hour), "SF", "SF1"
		noErr(t, s.SaveAfterSale(ctx, returned))
		noErr(t, s.SaveAfterSale(ctx, requested)) // an older step, late
		got, err = s.GetAfterSale(ctx, requested.ID)
		noErr(t, err)
		if got.Status != "RETURNED" || got.ReturnTrackingNo != "SF1" {
			t.Fatalf("after RETURNED and the older REQUESTED again: %s %q; want RETURNED SF1", got.Status, got.ReturnTrackingNo)
		}

		open, err := s.ListAfterSales(ctx, true, 200)
		noErr(t, err)
		found := false
		for _, a := range open {
			found = found || a.ID == requested.ID
		}
		if !found {
			t.Errorf("the open list misses %s", requested.ID)
		}
		done := returned
		done.Status, done.UpdatedAt, done.Deadline = "REFUNDED", at.Add(2*time.Hour), nil
		noErr(t, s.SaveAfterSale(ctx, done))
		open, err = s.ListAfterSales(ctx, true, 200)
		noErr(t, err)
		for _, a := range open {
			if a.ID == requested.ID {
				t.Errorf("a REFUNDED after-sale in the open list")
			}
		}
		mine, err := s.ListOrderAfterSales(ctx, o.OrderNo)
		noErr(t, err)
		if len(mine) != 1 || mine[0].Status != "REFUNDED" || mine[0].Deadline != nil {
			t.Errorf("the order's after-sales: %+v", mine)
		}
		if _, err := s.GetAfterSale(ctx, o.OrderNo+"-AS9"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("an unknown after-sale: %v; want ErrNotFound", err)
		}
		if err := s.SaveAfterSale(ctx, store.AfterSale{ID: o.OrderNo + "-AS2", OrderNo: o.OrderNo, Type: "exchange"}); !errors.Is(err, store.ErrInvalidArgument) {
			t.Errorf("an unknown type: %v; want ErrInvalidArgument", err)
		}
	})
}
