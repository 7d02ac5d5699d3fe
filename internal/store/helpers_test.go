package store_test

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"ordersaga/internal/store"
)

var seq atomic.Int64

// uniq returns a string unique within the test binary.
func uniq(prefix string) string { return fmt.Sprintf("%s%d", prefix, seq.Add(1)) }

func mustUser(t *testing.T, s *store.Store) store.User {
	t.Helper()
	u, err := s.UpsertUserByOpenID(t.Context(), uniq("openid-"))
	if err != nil {
		t.Fatalf("UpsertUserByOpenID: %v", err)
	}
	return u
}

func mustProduct(t *testing.T, s *store.Store, price, stock int64) store.Product {
	t.Helper()
	p, err := s.CreateProduct(t.Context(), store.Product{Name: uniq("product-"), PriceFen: price, Stock: stock})
	if err != nil {
		t.Fatalf("CreateProduct: %v", err)
	}
	return p
}

func item(p store.Product, qty int64) store.OrderItem {
	return store.OrderItem{ProductID: p.ID, Name: p.Name, UnitPriceFen: p.PriceFen, Quantity: qty}
}

func mustOrder(t *testing.T, s *store.Store, userID int64, items ...store.OrderItem) store.Order {
	t.Helper()
	o, err := s.CreateOrder(t.Context(), store.Order{
		OrderNo:     uniq("SO"),
		UserID:      userID,
		PayDeadline: time.Now().Add(15 * time.Minute),
		Items:       items,
	})
	if err != nil {
		t.Fatalf("CreateOrder: %v", err)
	}
	return o
}

func stockOf(t *testing.T, s *store.Store, id int64) int64 {
	t.Helper()
	p, err := s.GetProduct(t.Context(), id)
	if err != nil {
		t.Fatalf("GetProduct(%d): %v", id, err)
	}
	return p.Stock
}

func ledgerCount(t *testing.T, s *store.Store, orderNo, kind string) int {
	t.Helper()
	rows, err := s.StockLedger(t.Context(), orderNo)
	if err != nil {
		t.Fatalf("StockLedger: %v", err)
	}
	n := 0
	for _, r := range rows {
		if r.Kind == kind {
			n++
		}
	}
	return n
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want errors.Is(_, %v)", err, target)
	}
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
