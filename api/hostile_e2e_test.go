package api_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"ordersaga/internal/auth"
	"ordersaga/internal/store"
	"ordersaga/internal/testenv"
	"ordersaga/workflows"
)

// forgeSubject rewrites a token's subject (its user id) and keeps the
// signature: what someone who wants another user's orders would try.
func forgeSubject(t *testing.T, token string, uid int64) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token is not a JWT: %s", token)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	claims["sub"] = itoa(uid)
	b, _ := json.Marshal(claims)
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + parts[2]
}

// tamperSignature gives a token a signature of other bytes (its first byte
// flipped): it can never verify. Rewriting the last characters instead may
// leave the decoded bytes as they were, since the last base64 character
// carries bits the decoder drops.
func tamperSignature(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token is not a JWT: %s", token)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) == 0 {
		t.Fatalf("token signature %q: %v", parts[2], err)
	}
	sig[0] ^= 0xff
	return parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// Every hostile request gets a clear 4xx and changes nothing: not the
// database, not the order's workflow, no workflow anywhere in the namespace.
func TestHostileRequestsAreRefusedAndChangeNothing(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	ps := env.Seed(store.Product{Name: "Beans", PriceFen: 100, Stock: 10})
	aliceID, alice := env.UserToken("openid-alice")
	malloryID, mallory := env.UserToken("openid-mallory")
	o := place(t, env, alice, item{ps[0].ID, 2})
	no := o.OrderNo

	expiredTokens, err := auth.NewTokens(env.Config.JWTSecret, time.Hour, func() time.Time { return time.Now().Add(-2 * time.Hour) })
	if err != nil {
		t.Fatal(err)
	}
	expired, _, _ := expiredTokens.Issue(aliceID)
	strangerTokens, err := auth.NewTokens(strings.Repeat("s", 32), time.Hour, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	otherSecret, _, _ := strangerTokens.Issue(aliceID)
	forged := forgeSubject(t, mallory, aliceID)
	admin := env.Config.AdminToken
	big := `{"reason":"` + strings.Repeat("x", 1<<20) + `"}`

	type req struct {
		name, method, path, token string
		body                      any
		status                    int
		code                      string
	}
	var tests []req
	// reachHandler are the tests whose path the router matches: the order
	// handler's own check of the number answers them ("order not found"),
	// not the router's "no such endpoint".
	reachHandler := map[string]bool{}
	orderRoutes := []struct{ method, path string }{
		{http.MethodGet, "/v1/orders/" + no},
		{http.MethodGet, "/v1/orders/" + no + "?sync=1"},
		{http.MethodPost, "/v1/orders/" + no + "/pay"},
		{http.MethodPost, "/v1/orders/" + no + "/cancel"},
		{http.MethodPost, "/v1/orders/" + no + "/refund"},
		{http.MethodPost, "/v1/orders/" + no + "/confirm"},
	}
	for _, r := range orderRoutes {
		what := r.method + " " + strings.Replace(r.path, no, ":no", 1)
		tests = append(tests,
			req{"another user's order is not found: " + what, r.method, r.path, mallory, nil, http.StatusNotFound, "NOT_FOUND"},
			req{"no token: " + what, r.method, r.path, "", nil, http.StatusUnauthorized, "UNAUTHENTICATED"},
			req{"expired token: " + what, r.method, r.path, expired, nil, http.StatusUnauthorized, "UNAUTHENTICATED"},
			req{"token signed with another secret: " + what, r.method, r.path, otherSecret, nil, http.StatusUnauthorized, "UNAUTHENTICATED"},
			req{"token whose user id was rewritten: " + what, r.method, r.path, forged, nil, http.StatusUnauthorized, "UNAUTHENTICATED"},
			req{"the admin token is no user token: " + what, r.method, r.path, admin, nil, http.StatusUnauthorized, "UNAUTHENTICATED"},
			req{"malformed order number: " + what, r.method, strings.Replace(r.path, no, "..%2f..%2fetc", 1), alice, nil, http.StatusNotFound, "NOT_FOUND"},
		)
		for _, bad := range []struct{ what, no string }{
			{"letters", "abc"},
			{"too short", "123"},
			{"too long", strings.Repeat("9", 33)},
			{"a space", "2026%20123456"},
			// PostgreSQL refuses a NUL in text: unchecked, it would be a 500.
			{"a NUL", "20261123%00123456"},
		} {
			name := "malformed order number (" + bad.what + "): " + what
			tests = append(tests, req{name, r.method, strings.Replace(r.path, no, bad.no, 1), alice, nil, http.StatusNotFound, "NOT_FOUND"})
			reachHandler[name] = true
		}
	}
	tests = append(tests,
		req{"sync must be 0 or 1", http.MethodGet, "/v1/orders/" + no + "?sync=maybe", alice, nil, http.StatusBadRequest, "INVALID_ARGUMENT"},
		req{"refund: malformed JSON", http.MethodPost, "/v1/orders/" + no + "/refund", alice, `{"reason":`, http.StatusBadRequest, "INVALID_ARGUMENT"},
		req{"refund: unknown field", http.MethodPost, "/v1/orders/" + no + "/refund", alice, `{"amount_fen":1}`, http.StatusBadRequest, "INVALID_ARGUMENT"},
		req{"refund: reason longer than 80 characters", http.MethodPost, "/v1/orders/" + no + "/refund", alice, map[string]string{"reason": strings.Repeat("很", 81)}, http.StatusBadRequest, "INVALID_ARGUMENT"},
		req{"refund: 1 MB body", http.MethodPost, "/v1/orders/" + no + "/refund", alice, big, http.StatusRequestEntityTooLarge, "BODY_TOO_LARGE"},
		req{"confirm: 1 MB body", http.MethodPost, "/v1/orders/" + no + "/confirm", alice, big, http.StatusRequestEntityTooLarge, "BODY_TOO_LARGE"},
		req{"login: 1 MB body", http.MethodPost, "/v1/auth/login", "", big, http.StatusRequestEntityTooLarge, "BODY_TOO_LARGE"},
		req{"create: 1 MB body", http.MethodPost, "/v1/orders", alice, big, http.StatusRequestEntityTooLarge, "BODY_TOO_LARGE"},
		req{"create: negative quantity", http.MethodPost, "/v1/orders", alice, map[string]any{"items": []item{{ps[0].ID, -1}}}, http.StatusBadRequest, "INVALID_ARGUMENT"},
		req{"create: huge quantity", http.MethodPost, "/v1/orders", alice, map[string]any{"items": []item{{ps[0].ID, 1 << 40}}}, http.StatusBadRequest, "INVALID_ARGUMENT"},
		req{"create: unknown product", http.MethodPost, "/v1/orders", alice, map[string]any{"items": []item{{ps[0].ID + 1000, 1}}}, http.StatusBadRequest, "UNKNOWN_PRODUCT"},
		req{"create: NUL in the address", http.MethodPost, "/v1/orders", alice, map[string]any{"items": []item{{ps[0].ID, 1}}, "address": "Room 1\x00; DROP TABLE orders"}, http.StatusBadRequest, "INVALID_ARGUMENT"},
		req{"create: newline in the address", http.MethodPost, "/v1/orders", alice, map[string]any{"items": []item{{ps[0].ID, 1}}, "address": "Room 1\nX-Injected: yes"}, http.StatusBadRequest, "INVALID_ARGUMENT"},
		req{"create: escape sequence in the address", http.MethodPost, "/v1/orders", alice, map[string]any{"items": []item{{ps[0].ID, 1}}, "address": "\x1b[31mRoom 1"}, http.StatusBadRequest, "INVALID_ARGUMENT"},
		// C1 controls (U+0080–U+009F) are controls too: NEL breaks lines, CSI starts escape sequences.
		req{"create: NEL (U+0085) in the address", http.MethodPost, "/v1/orders", alice, map[string]any{"items": []item{{ps[0].ID, 1}}, "address": "Room 1\u0085X-Injected: yes"}, http.StatusBadRequest, "INVALID_ARGUMENT"},
		req{"create: CSI (U+009B) in the address", http.MethodPost, "/v1/orders", alice, map[string]any{"items": []item{{ps[0].ID, 1}}, "address": "\u009b31mRoom 1"}, http.StatusBadRequest, "INVALID_ARGUMENT"},
		req{"refund: NEL (U+0085) in the reason", http.MethodPost, "/v1/orders/" + no + "/refund", alice, map[string]string{"reason": "broken\u0085lid"}, http.StatusBadRequest, "INVALID_ARGUMENT"},
		req{"create: more than the stock", http.MethodPost, "/v1/orders", alice, map[string]any{"items": []item{{ps[0].ID, 11}}}, http.StatusConflict, "OUT_OF_STOCK"},
		req{"method not allowed", http.MethodDelete, "/v1/orders/" + no, alice, nil, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED"},

		req{"admin: no token", http.MethodGet, "/v1/admin/orders/" + no, "", nil, http.StatusUnauthorized, "UNAUTHENTICATED"},
		req{"admin: a user's token", http.MethodGet, "/v1/admin/orders/" + no, alice, nil, http.StatusUnauthorized, "UNAUTHENTICATED"},
		req{"admin: a wrong token", http.MethodPost, "/v1/admin/orders/" + no + "/refund", admin + "x", nil, http.StatusUnauthorized, "UNAUTHENTICATED"},
		req{"admin: a prefix of the token", http.MethodPost, "/v1/admin/orders/" + no + "/ship", admin[:len(admin)-1], nil, http.StatusUnauthorized, "UNAUTHENTICATED"},
		req{"admin: a user cannot add products", http.MethodPost, "/v1/admin/products", alice, map[string]any{"name": "Free", "price_fen": 1, "stock": 1}, http.StatusUnauthorized, "UNAUTHENTICATED"},
		req{"admin: a user cannot change stock", http.MethodPatch, "/v1/admin/products/" + itoa(ps[0].ID), mallory, map[string]any{"stock": 0}, http.StatusUnauthorized, "UNAUTHENTICATED"},
		req{"admin: product without a price", http.MethodPost, "/v1/admin/products", admin, map[string]any{"name": "Cup", "stock": 1}, http.StatusBadRequest, "INVALID_ARGUMENT"},
		req{"admin: product price 0", http.MethodPost, "/v1/admin/products", admin, map[string]any{"name": "Cup", "price_fen": 0, "stock": 1}, http.StatusBadRequest, "INVALID_ARGUMENT"},
		req{"admin: negative price", http.MethodPost, "/v1/admin/products", admin, map[string]any{"name": "Cup", "price_fen": -100, "stock": 1}, http.StatusBadRequest, "INVALID_ARGUMENT"},
		req{"admin: price in yuan as a float", http.MethodPost, "/v1/admin/products", admin, `{"name":"Cup","price_fen":12.5,"stock":1}`, http.StatusBadRequest, "INVALID_ARGUMENT"},
		req{"admin: negative stock", http.MethodPost, "/v1/admin/products", admin, map[string]any{"name": "Cup", "price_fen": 100, "stock": -1}, http.StatusBadRequest, "INVALID_ARGUMENT"},
		req{"admin: empty name", http.MethodPost, "/v1/admin/products", admin, map[string]any{"name": "  ", "price_fen": 100, "stock": 1}, http.StatusBadRequest, "INVALID_ARGUMENT"},
		req{"admin: CSI (U+009B) in a product name", http.MethodPost, "/v1/admin/products", admin, map[string]any{"name": "Cup\u009b2J", "price_fen": 100, "stock": 1}, http.StatusBadRequest, "INVALID_ARGUMENT"},
		req{"admin: NEL (U+0085) in a product's new name", http.MethodPatch, "/v1/admin/products/" + itoa(ps[0].ID), admin, map[string]any{"name": "Bea\u0085ns"}, http.StatusBadRequest, "INVALID_ARGUMENT"},
		req{"admin: misspelt field", http.MethodPost, "/v1/admin/products", admin, map[string]any{"name": "Cup", "price": 100, "price_fen": 100, "stock": 1}, http.StatusBadRequest, "INVALID_ARGUMENT"},
		req{"admin: 1 MB product", http.MethodPost, "/v1/admin/products", admin, big, http.StatusRequestEntityTooLarge, "BODY_TOO_LARGE"},
		req{"admin: update with nothing to change", http.MethodPatch, "/v1/admin/products/" + itoa(ps[0].ID), admin, `{}`, http.StatusBadRequest, "INVALID_ARGUMENT"},
		req{"admin: stock below zero", http.MethodPatch, "/v1/admin/products/" + itoa(ps[0].ID), admin, map[string]any{"stock": -5}, http.StatusBadRequest, "INVALID_ARGUMENT"},
		req{"admin: unknown product", http.MethodPatch, "/v1/admin/products/999999", admin, map[string]any{"stock": 5}, http.StatusNotFound, "NOT_FOUND"},
		req{"admin: product id not a number", http.MethodPatch, "/v1/admin/products/abc", admin, map[string]any{"stock": 5}, http.StatusNotFound, "NOT_FOUND"},
		req{"admin: tracking number with a script", http.MethodPost, "/v1/admin/orders/" + no + "/ship", admin, map[string]any{"tracking_no": "<script>"}, http.StatusBadRequest, "INVALID_ARGUMENT"},
		req{"admin: unknown order", http.MethodPost, "/v1/admin/orders/20990101000000123456/refund", admin, nil, http.StatusNotFound, "NOT_FOUND"},
		req{"admin: flagged with a bad limit", http.MethodGet, "/v1/admin/orders/flagged?limit=0", admin, nil, http.StatusBadRequest, "INVALID_ARGUMENT"},
	)

	// A body sent without a Content-Length (chunked) is measured as it is
	// read: 64 KiB and one byte is too large even when the extra bytes are
	// white space after the object.
	padded := func(object string, size int) string { return object + strings.Repeat(" ", size-len(object)) }
	chunkedTests := []struct {
		name, method, path, token, body string
		status                          int
		code                            string
	}{
		{"create: 64 KiB + 1 padded with white space", http.MethodPost, "/v1/orders", alice,
			padded(`{"items":[{"product_id":`+itoa(ps[0].ID)+`,"quantity":1}]}`, 64<<10+1), http.StatusRequestEntityTooLarge, "BODY_TOO_LARGE"},
		{"refund: 64 KiB + 1 padded with white space", http.MethodPost, "/v1/orders/" + no + "/refund", alice,
			padded(`{"reason":"x"}`, 64<<10+1), http.StatusRequestEntityTooLarge, "BODY_TOO_LARGE"},
		{"login: 64 KiB + 1 padded with white space", http.MethodPost, "/v1/auth/login", "",
			padded(`{"code":"x"}`, 64<<10+1), http.StatusRequestEntityTooLarge, "BODY_TOO_LARGE"},
		{"admin: 64 KiB + 1 padded with white space", http.MethodPost, "/v1/admin/products", admin,
			padded(`{"name":"Cup","price_fen":100,"stock":1}`, 64<<10+1), http.StatusRequestEntityTooLarge, "BODY_TOO_LARGE"},
		// At the limit the body is read, and the order's status refuses it.
		{"refund: exactly 64 KiB padded with white space", http.MethodPost, "/v1/orders/" + no + "/refund", alice,
			padded(`{"reason":"x"}`, 64<<10), http.StatusConflict, "ORDER_NOT_REFUNDABLE"},
	}

	wf := workflows.WorkflowID(no)
	settle(t, env, wf)
	dbBefore, tBefore, nsBefore := dbSnapshot(t, env), temporalSnapshot(t, env, wf), namespaceSnapshot(t, env)
	for _, tt := range chunkedTests {
		t.Run(tt.name, func(t *testing.T) {
			// io.MultiReader hides the length: the body goes chunked.
			resp := sendAt(t, env.URL, tt.method, tt.path, tt.token, io.MultiReader(strings.NewReader(tt.body)))
			if resp.Status != tt.status || resp.ErrorCode() != tt.code {
				t.Fatalf("got %d %.300s; want %d %s", resp.Status, resp.Body, tt.status, tt.code)
			}
		})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := env.Do(tt.method, tt.path, tt.token, tt.body)
			if resp.Status != tt.status || resp.ErrorCode() != tt.code {
				t.Fatalf("got %d %.300s; want %d %s", resp.Status, resp.Body, tt.status, tt.code)
			}
			if resp.Header.Get("X-Request-Id") == "" {
				t.Errorf("no X-Request-Id")
			}
			if reachHandler[tt.name] && !strings.Contains(string(resp.Body), "order not found") {
				t.Errorf("answered by the router, not the order's check: %s", resp.Body)
			}
		})
	}
	// Last, as it waits for visibility to catch up with every request above.
	if after := namespaceSnapshot(t, env); after != nsBefore {
		t.Errorf("the namespace's workflows changed:\nbefore %s\nafter  %s", nsBefore, after)
	}
	if after := dbSnapshot(t, env); after != dbBefore {
		t.Errorf("the database changed:\nbefore %s\nafter  %s", dbBefore, after)
	}
	if after := temporalSnapshot(t, env, wf); after != tBefore {
		t.Errorf("the order's workflow changed: before %s, after %s", tBefore, after)
	}
	if ids := env.Workflows(testenv.UserQuery(malloryID)); len(ids) != 0 {
		t.Errorf("mallory has workflows: %v", ids)
	}
	var list struct {
		Orders []orderBody `json:"orders"`
	}
	env.Do(http.MethodGet, "/v1/orders", mallory, nil).JSON(t, &list)
	if len(list.Orders) != 0 {
		t.Fatalf("mallory sees %d orders", len(list.Orders))
	}
}
