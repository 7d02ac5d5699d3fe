package wxpay_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"ordersaga/internal/wxpay"
)

func TestCutBytesKeepsWholeRunesWithinTheByteLimit(t *testing.T) {
	tests := []struct {
		name string
		in   string
		n    int
		want string
	}{
		{"ASCII that fits", "Oolong tea", 10, "Oolong tea"},
		{"ASCII cut", "Oolong tea 500g", 10, "Oolong…"}, // "Oolong " trimmed, then "…" (3 bytes)
		{"empty", "", 5, ""},
		{"Chinese exact fit", "云南咖啡豆", 15, "云南咖啡豆"},
		{"Chinese one byte short", "云南咖啡豆", 14, "云南咖…"},
		{"Chinese boundary inside a character", "云南咖啡豆", 11, "云南…"}, // 8 bytes of room: 2 whole characters
		{"emoji at the boundary", "tea🍵tea", 9, "tea…"},             // the 4-byte 🍵 does not fit whole in 6 bytes
		{"emoji exact fit", "tea🍵", 7, "tea🍵"},
		{"emoji kept whole before the cut", "🍵🍵🍵", 11, "🍵🍵…"},
		{"full-width space before the cut is trimmed", "云南\u3000咖啡豆", 12, "云南…"},
		{"limit too small for text and ellipsis", "云南咖啡豆", 5, "云"},
		{"limit zero", "云南", 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := wxpay.CutBytes(tt.in, tt.n)
			if got != tt.want {
				t.Fatalf("CutBytes(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
			}
			if len(got) > tt.n {
				t.Fatalf("CutBytes(%q, %d) = %q: %d bytes", tt.in, tt.n, got, len(got))
			}
			if !utf8.ValidString(got) {
				t.Fatalf("CutBytes(%q, %d) = %q: split a character", tt.in, tt.n, got)
			}
		})
	}
}

// Every cut of a long mixed text, at every limit, fits and is valid UTF-8.
func TestCutBytesFitsAtEveryLimit(t *testing.T) {
	s := strings.Repeat("云南 coffee 🍵 ", 12)
	for n := 0; n <= len(s)+1; n++ {
		got := wxpay.CutBytes(s, n)
		if len(got) > n || !utf8.ValidString(got) {
			t.Fatalf("CutBytes(…, %d) = %q (%d bytes, valid %v)", n, got, len(got), utf8.ValidString(got))
		}
		if n >= len(s) && got != s {
			t.Fatalf("CutBytes(…, %d) changed a text that fits", n)
		}
	}
}
