package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

// An after-sale's body is checked before the order is asked, as a
// refund's: no items means everything not refunded yet, an empty list is
// refused (a client that lost its selection must not ask for the whole
// order back), and what no order could take is 400.
func TestAfterSaleBodyIsCheckedBeforeTheOrderIsAsked(t *testing.T) {
	gin.SetMode(gin.TestMode)
	tests := []struct {
		name      string
		body      string
		wantOK    bool
		wantItems int
	}{
		{"no items: everything left", `{"type":"refund_only","reason":"broken"}`, true, 0},
		{"items null: everything left", `{"type":"refund_only","items":null}`, true, 0},
		{"one line", `{"type":"return_and_refund","items":[{"product_id":2,"quantity":1}]}`, true, 1},
		{"empty list", `{"type":"return_and_refund","items":[]}`, false, 0},
		{"quantity 0", `{"type":"return_and_refund","items":[{"product_id":2,"quantity":0}]}`, false, 0},
		{"unknown type", `{"type":"exchange","items":[{"product_id":2,"quantity":1}]}`, false, 0},
		{"malformed JSON", `{"type":"refund_only","items":[`, false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			c, _ := gin.CreateTestContext(w)
			c.Request = httptest.NewRequest(http.MethodPost, "/v1/orders/x/after-sales", strings.NewReader(tc.body))
			c.Request.Header.Set("Content-Type", "application/json")
			req, ok := afterSaleArgs(c)
			if ok != tc.wantOK {
				t.Fatalf("ok %v, want %v (answer %d %s)", ok, tc.wantOK, w.Code, w.Body)
			}
			if !ok {
				if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "INVALID_ARGUMENT") {
					t.Fatalf("answer %d %s, want 400 INVALID_ARGUMENT", w.Code, w.Body)
				}
				return
			}
			if len(req.Items) != tc.wantItems {
				t.Fatalf("items %v, want %d lines", req.Items, tc.wantItems)
			}
		})
	}
}
