package wxpay

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// WeChat Pay counts the length of its text fields in UTF-8 bytes, not
// characters (its validator answers PARAM_ERROR "字节数 145,大于最大值 127"):
// a Chinese character takes 3 of them, so 43 of them overflow a description.
const (
	MaxDescriptionBytes  = 127 // prepay description, shown to the payer
	MaxAttachBytes       = 128 // prepay attach, returned verbatim in query and notify
	MaxRefundReasonBytes = 80  // refund reason, shown to the payer
)

// ellipsis marks text that was cut (3 bytes in UTF-8).
const ellipsis = "…"

// CutBytes returns s if it fits in n UTF-8 bytes. Otherwise it cuts s on a
// rune boundary — never inside a character — so that what is kept, trimmed of
// trailing white space, followed by "…" fits in n bytes: the "…" tells the
// reader the text goes on. When n leaves no room for text before the "…", it
// returns the whole runes that fit, without one. The cut is deterministic,
// so a retried request sends the same text.
func CutBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n >= len(ellipsis) {
		if kept := strings.TrimRightFunc(s[:runeBoundary(s, n-len(ellipsis))], unicode.IsSpace); kept != "" {
			return kept + ellipsis
		}
	}
	return s[:runeBoundary(s, max(n, 0))]
}

// runeBoundary is the largest index i ≤ n at which s can be cut without
// splitting a rune (n < len(s)).
func runeBoundary(s string, n int) int {
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return n
}
