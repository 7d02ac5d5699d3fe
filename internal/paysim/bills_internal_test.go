package paysim

import (
	"testing"
	"time"
)

func TestBillOfADayIsMadeAtTenTheNextMorningAndKeptThreeMonths(t *testing.T) {
	day := time.Date(2026, 12, 5, 0, 0, 0, 0, chinaTime)
	at := func(y int, m time.Month, d, hh, mm, ss int) time.Time {
		return time.Date(y, m, d, hh, mm, ss, 0, chinaTime)
	}
	cases := []struct {
		name      string
		now       time.Time
		immediate bool
		want      string
	}{
		{"the day itself", at(2026, 12, 5, 23, 59, 59), false, "STATEMENT_CREATING"},
		{"next day 09:59:59", at(2026, 12, 6, 9, 59, 59), false, "STATEMENT_CREATING"},
		{"next day 10:00 Beijing", at(2026, 12, 6, 10, 0, 0), false, ""},
		{"next day 10:00 Beijing seen in UTC", at(2026, 12, 6, 10, 0, 0).UTC(), false, ""},
		{"the day before it", at(2026, 12, 4, 12, 0, 0), false, "INVALID_REQUEST"},
		{"three months after", at(2027, 3, 5, 12, 0, 0), false, ""},
		{"more than three months after", at(2027, 3, 6, 0, 0, 0), false, "INVALID_REQUEST"},
		{"the day itself, bills at once", at(2026, 12, 5, 0, 0, 1), true, ""},
		{"the day before it, bills at once", at(2026, 12, 4, 23, 59, 59), true, "INVALID_REQUEST"},
	}
	for _, c := range cases {
		b := newBillBook(c.immediate)
		if got, _ := b.availability(day, c.now); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func TestBillFeeIsTheRateRoundedHalfUpToTheFen(t *testing.T) {
	for _, c := range []struct{ fen, want int64 }{{1, 0}, {83, 0}, {84, 1}, {1280, 8}, {6000, 36}, {8800, 53}, {5_000_000, 30_000}} {
		if got := billFee(c.fen); got != c.want {
			t.Errorf("billFee(%d) = %d, want %d", c.fen, got, c.want)
		}
	}
}
