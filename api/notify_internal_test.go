package api

import (
	"crypto/sha256"
	"testing"
	"time"

	"ordersaga/internal/store"
	"ordersaga/workflows"
)

func TestReplayGuardRefusesACopyWithinTheWindowOnly(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	g := newReplayGuard(func() time.Time { return now })
	key := func(s string) [32]byte { return sha256.Sum256([]byte(s)) } // wxpay.Notification.ReplayKey stands in
	if !g.first(key("a")) {
		t.Fatal("the first delivery was taken for a replay")
	}
	if g.first(key("a")) {
		t.Fatal("a copy was not recognised")
	}
	if !g.first(key("b")) {
		t.Error("another callback was taken for a copy")
	}
	// Past the window the entry is forgotten: Parse refuses such a copy as stale.
	now = now.Add(replayWindow + time.Second)
	if !g.first(key("a")) {
		t.Error("an entry outlived the window")
	}
	if len(g.seen) != 1 || len(g.order) != 1 {
		t.Errorf("expired entries kept: %d/%d", len(g.seen), len(g.order))
	}
}

func TestOrderSummaryReadsLikeTheWebUIWantsIt(t *testing.T) {
	products := map[int64]store.Product{1: {ID: 1, PriceFen: 4900}, 2: {ID: 2, PriceFen: 3000}}
	tests := []struct {
		items []workflows.Item
		want  string
	}{
		{[]workflows.Item{{ProductID: 1, Quantity: 2}, {ProductID: 2, Quantity: 1}}, "¥128.00 · 3 items"},
		{[]workflows.Item{{ProductID: 2, Quantity: 1}}, "¥30.00 · 1 item"},
		{[]workflows.Item{{ProductID: 1, Quantity: 1}}, "¥49.00 · 1 item"},
	}
	for _, tt := range tests {
		if got := orderSummary(tt.items, products); got != tt.want {
			t.Errorf("orderSummary(%v) = %q, want %q", tt.items, got, tt.want)
		}
	}
	if got := yuan(5); got != "¥0.05" {
		t.Errorf("yuan(5) = %q", got)
	}
}
