package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

// A refund's body and an after-sale's are checked before the order is
// asked: no items means everything not refunded yet, an empty list is
// refused (a client that lost its selection must not get the whole order
// back), and what no order could take is 400.
func TestRefundAndAfterSaleBodiesAreCheckedBeforeTheOrderIsAsked(t *testing.T) {
	gin.SetMode(gin.TestMode)
	// The two handlers' argument makers, as the number of lines they took.
	refund := func(c *gin.Context) (int, bool) { r, ok := refundArgs(c, "user"); return len(r.Items), ok }
	afterSale := func(c *gin.Context) (int, bool) { r, ok := afterSaleArgs(c); return len(r.Items), ok }
	tests := []struct {
		name      string
		args      func(*gin.Context) (int, bool)
		body      string
		wantOK    bool
		wantItems int
	}{
		{"refund: no body: everything left", refund, "", true, 0},
		{"refund: no items: everything left", refund, `{"reason":"changed my mind"}`, true, 0},
		{"refund: items null: everything left", refund, `{"items":null}`, true, 0},
		{"refund: one line", refund, `{"items":[{"product_id":2,"quantity":1}]}`, true, 1},
		{"refund: empty list", refund, `{"items":[]}`, false, 0},
		{"refund: quantity 0", refund, `{"items":[{"product_id":2,"quantity":0}]}`, false, 0},
		{"refund: product twice", refund, `{"items":[{"product_id":2,"quantity":1},{"product_id":2,"quantity":1}]}`, false, 0},
		{"after-sale: no items: everything left", afterSale, `{"type":"refund_only","reason":"broken"}`, true, 0},
		{"after-sale: items null: everything left", afterSale, `{"type":"refund_only","items":null}`, true, 0},
		{"after-sale: one line", afterSale, `{"type":"return_and_refund","items":[{"product_id":2,"quantity":1}]}`, true, 1},
		{"after-sale: empty list", afterSale, `{"type":"return_and_refund","items":[]}`, false, 0},
		{"after-sale: quantity 0", afterSale, `{"type":"return_and_refund","items":[{"product_id":2,"quantity":0}]}`, false, 0},
		{"after-sale: unknown type", afterSale, `{"type":"exchange","items":[{"product_id":2,"quantity":1}]}`, false, 0},
		{"after-sale: malformed JSON", afterSale, `{"type":"refund_only","items":[`, false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			c, _ := gin.CreateTestContext(w)
			c.Request = httptest.NewRequest(http.MethodPost, "/v1/orders/x/refund", strings.NewReader(tc.body))
			if tc.body != "" {
				c.Request.Header.Set("Content-Type", "application/json")
			}
			items, ok := tc.args(c)
			if ok != tc.wantOK {
				t.Fatalf("ok %v, want %v (answer %d %s)", ok, tc.wantOK, w.Code, w.Body)
			}
			if !ok {
				if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "INVALID_ARGUMENT") {
					t.Fatalf("answer %d %s, want 400 INVALID_ARGUMENT", w.Code, w.Body)
				}
				return
			}
			if items != tc.wantItems {
				t.Fatalf("%d lines, want %d", items, tc.wantItems)
			}
		})
	}
}
