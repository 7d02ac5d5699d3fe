package api

import (
	"testing"
	"time"

	"ordersaga/internal/store"
	"ordersaga/workflows"
)

func TestReplayGuardRefusesACopyWithinTheWindowOnly(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	g := newReplayGuard(func() time.Time { return now })
	if !g.first("1795432354", "nonce-a", "sig-a") {
		t.Fatal("the first delivery was taken for a replay")
	}
	if g.first("1795432354", "nonce-a", "sig-a") {
		t.Fatal("a copy was not recognised")
	}
	for _, other := range [][3]string{
		{"1795432355", "nonce-a", "sig-a"}, {"1795432354", "nonce-b", "sig-a"}, {"1795432354", "nonce-a", "sig-b"},
		{"179543235", "4nonce-a", "sig-a"}, // the same characters, split differently
	} {
		if !g.first(other[0], other[1], other[2]) {
			t.Errorf("%v was taken for a copy", other)
		}
	}
	// Past the window the entry is forgotten: Parse refuses such a copy as stale.
	now = now.Add(replayWindow + time.Second)
	if !g.first("1795432354", "nonce-a", "sig-a") {
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
