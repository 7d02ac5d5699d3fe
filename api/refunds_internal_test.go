package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
)

// A refund's body is checked before the order is asked: no items means
// everything left, an empty list is refused (a client that lost its
// selection must not refund the whole order), and lines no order could
// take are 400.
func TestRefundBodyIsCheckedBeforeTheOrderIsAsked(t *testing.T) {
	gin.SetMode(gin.TestMode)
	tests := []struct {
		name      string
		body      string
		wantOK    bool
		wantItems int
	}{
		{"no body: everything left", "", true, 0},
		{"no items: everything left", `{"reason":"changed my mind"}`, true, 0},
		{"items null: everything left", `{"items":null}`, true, 0},
		{"one line", `{"items":[{"product_id":2,"quantity":1}]}`, true, 1},
		{"empty list", `{"items":[]}`, false, 0},
		{"quantity 0", `{"items":[{"product_id":2,"quantity":0}]}`, false, 0},
		{"product twice", `{"items":[{"product_id":2,"quantity":1},{"product_id":2,"quantity":1}]}`, false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			c, _ := gin.CreateTestContext(w)
			c.Request = httptest.NewRequest(http.MethodPost, "/v1/orders/x/refund", strings.NewReader(tc.body))
			if tc.body != "" {
				c.Request.Header.Set("Content-Type", "application/json")
			}
			req, ok := refundArgs(c, "user")
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
