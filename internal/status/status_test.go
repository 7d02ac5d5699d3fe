package status

import "testing"

// The order statuses and what each says about the order's life and money.
func TestOrderStatusesSayWhetherTheOrderEndedAndKeepsItsMoney(t *testing.T) {
	tests := []struct {
		s                                   Order
		terminal, stored, kept, paidOrLater bool
	}{
		{Pending, false, true, false, false},
		{Paid, false, true, true, true},
		{Shipped, false, true, true, true},
		{Completed, true, true, true, true},
		{Closed, true, true, false, false},
		{Refunding, false, true, false, true},
		{Refunded, true, true, false, true},
		{RefundFailed, true, true, false, true},
		{Refused, true, false, false, false},
		{"NOPE", false, false, false, false},
	}
	for _, tt := range tests {
		if got := tt.s.Terminal(); got != tt.terminal {
			t.Errorf("%s.Terminal() = %v, want %v", tt.s, got, tt.terminal)
		}
		if got := tt.s.Stored(); got != tt.stored {
			t.Errorf("%s.Stored() = %v, want %v", tt.s, got, tt.stored)
		}
		if got := tt.s.Kept(); got != tt.kept {
			t.Errorf("%s.Kept() = %v, want %v", tt.s, got, tt.kept)
		}
		if got := tt.s.PaidOrLater(); got != tt.paidOrLater {
			t.Errorf("%s.PaidOrLater() = %v, want %v", tt.s, got, tt.paidOrLater)
		}
	}
}

func TestRefundIsFinalOnceWeChatStopsWorkingOnIt(t *testing.T) {
	for s, want := range map[Refund]bool{
		RefundProcessing: false, RefundSuccess: true, RefundClosed: true, RefundAbnormal: true, "": false,
	} {
		if got := s.Final(); got != want {
			t.Errorf("%q.Final() = %v, want %v", s, got, want)
		}
	}
}
