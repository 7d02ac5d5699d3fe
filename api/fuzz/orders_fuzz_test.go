package fuzz_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"

	"ordersaga/api"
	"ordersaga/internal/auth"
	"ordersaga/internal/status"
	"ordersaga/internal/store"
	"ordersaga/workflows"
)

// FuzzCreateOrderInput sends POST /v1/orders bodies through the real router
// (JSON decoding, item validation, the stock precheck against a real
// database) in front of a Temporal stand-in that records what would start.
// The router must never panic; everything it refuses gets a 4xx with an
// error code this route documents and a message, and starts nothing; and an
// order it accepts is within the limits (1–50 distinct products, each 1–999,
// products that exist with the stock, an address of at most 500 characters,
// trimmed) and is what the client asked for, line by line, in a body that
// holds that one JSON object and nothing more.
func FuzzCreateOrderInput(f *testing.F) {
	shop := newFuzzShop(f)
	for _, seed := range []string{
		`{"items":[{"product_id":1,"quantity":2}]}`,
		`{"items":[{"product_id":1,"quantity":2},{"product_id":2,"quantity":1}],"address":"  1 Nanjing Road, Shanghai  "}`,
		`{"items":[{"product_id":1,"quantity":500},{"product_id":1,"quantity":499}]}`,
		`{"items":[{"product_id":1,"quantity":999},{"product_id":1,"quantity":1}]}`,
		`{"items":[{"product_id":2,"quantity":6}]}`,
		`{"items":[{"product_id":3,"quantity":1}]}`,
		`{"items":[{"product_id":404,"quantity":1}]}`,
		`{"items":[{"product_id":0,"quantity":1}]}`,
		`{"items":[{"product_id":1,"quantity":-1}]}`,
		`{"items":[{"product_id":1,"quantity":1.5}]}`,
		`{"items":[{"product_id":"1","quantity":1}]}`,
		`{"items":[{"product_id":9223372036854775807,"quantity":1}]}`,
		`{"items":[{"product_id":1,"quantity":99999999999999999999}]}`,
		`{"items":[]}`,
		`{"items":null}`,
		`{"items":{}}`,
		`{}`,
		`[]`,
		`null`,
		``,
		`{"items":[{"product_id":1,"quantity":1}]} {"items":[]}`,
		`{"items":[{"product_id":1,"quantity":1}],"unit_price_fen":1,"total_fen":1}`,
		`{"items":[{"product_id":1,"quantity":1}],"address":"` + strings.Repeat("地", 501) + `"}`,
		`{"items":[{"product_id":1,"quantity":1}],"address":"\u0000\ud800"}`,
		`{"ITEMS":[{"Product_ID":1,"QUANTITY":1}]}`,
		`{"items":[{"product_id":1,"quantity":1}],"items":[{"product_id":2,"quantity":1}]}`,
		`{"items":[` + strings.Repeat(`{"product_id":1,"quantity":1},`, 50) + `{"product_id":1,"quantity":1}]}`,
		`{"items":[{"product_id":1,"quantity":1}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		starts := shop.temporal.count()
		req := httptest.NewRequest(http.MethodPost, "/v1/orders", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+shop.token)
		rec := httptest.NewRecorder()
		shop.handler.ServeHTTP(rec, req)

		if rec.Code == http.StatusCreated {
			in, ok := shop.temporal.last()
			if !ok || shop.temporal.count() != starts+1 {
				t.Fatalf("201 without starting one order workflow: %s", rec.Body)
			}
			checkAccepted(t, shop, body, in, rec.Body.Bytes())
			return
		}
		if shop.temporal.count() != starts {
			t.Fatalf("refused (%d %s) but started a workflow", rec.Code, rec.Body)
		}
		var e struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Message == "" {
			t.Fatalf("%d with a body that is not {\"error\":{\"code\",\"message\"}}: %q", rec.Code, rec.Body)
		}
		want := map[string]int{"INVALID_ARGUMENT": 400, "UNKNOWN_PRODUCT": 400, "OUT_OF_STOCK": 409, "BODY_TOO_LARGE": 413}
		if status, ok := want[e.Error.Code]; !ok || status != rec.Code {
			t.Fatalf("refused with %d %s (%q): want a documented 4xx of POST /v1/orders", rec.Code, e.Error.Code, e.Error.Message)
		}
	})
}

// checkAccepted: what the workflow is given is within the limits and is the
// client's request (lines of one product added up, the address trimmed).
func checkAccepted(t *testing.T, shop *fuzzShop, body []byte, in workflows.OrderInput, answer []byte) {
	t.Helper()
	// The request as a client library reads it: its first JSON value.
	var req struct {
		Items []struct {
			ProductID int64 `json:"product_id"`
			Quantity  int64 `json:"quantity"`
		} `json:"items"`
		Address string `json:"address"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		t.Fatalf("accepted a body that does not decode (%v): %q", err, body)
	}
	// "request body must hold a single JSON object": nothing after it.
	if tok, err := dec.Token(); err != io.EOF {
		t.Fatalf("accepted a body with more after its JSON object (%v %v): %q", tok, err, body)
	}
	asked := map[int64]int64{}
	for _, it := range req.Items {
		asked[it.ProductID] += it.Quantity
	}
	if len(in.Items) == 0 || len(in.Items) > 50 || len(in.Items) != len(asked) {
		t.Fatalf("accepted %d lines (%d distinct products asked): %+v", len(in.Items), len(asked), in.Items)
	}
	for _, it := range in.Items {
		p, ok := shop.products[it.ProductID]
		switch {
		case !ok:
			t.Fatalf("accepted unknown product %d", it.ProductID)
		case it.Quantity < 1 || it.Quantity > 999:
			t.Fatalf("accepted quantity %d of product %d", it.Quantity, it.ProductID)
		case it.Quantity != asked[it.ProductID]:
			t.Fatalf("product %d: the workflow gets %d, the client asked %d", it.ProductID, it.Quantity, asked[it.ProductID])
		case it.Quantity > p.Stock:
			t.Fatalf("accepted %d of product %d with %d in stock", it.Quantity, it.ProductID, p.Stock)
		}
	}
	if in.Address != strings.TrimSpace(req.Address) || utf8.RuneCountInString(in.Address) > 500 {
		t.Fatalf("address %q accepted as %q", req.Address, in.Address)
	}
	if in.UserID != shop.userID || in.PayTimeout <= 0 {
		t.Fatalf("order input %+v", in)
	}
	var out struct {
		OrderNo string `json:"order_no"`
		Status  string `json:"status"`
	}
	if err := json.Unmarshal(answer, &out); err != nil || out.OrderNo != in.OrderNo || out.Status != "PENDING" {
		t.Fatalf("201 answer %q for order %s", answer, in.OrderNo)
	}
}

// fuzzShop is the API in front of a SQLite database with three products
// and a Temporal stand-in.
type fuzzShop struct {
	handler  http.Handler
	temporal *startRecorder
	token    string
	userID   int64
	products map[int64]store.Product
}

func newFuzzShop(f *testing.F) *fuzzShop {
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(f.TempDir(), "shop.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		f.Fatal(err)
	}
	shop := &fuzzShop{temporal: &startRecorder{}, products: map[int64]store.Product{}}
	for _, p := range []store.Product{
		{Name: "Beans", PriceFen: 8800, Stock: 1000},
		{Name: "Mug", PriceFen: 3900, Stock: 5},
		{Name: "Sold out", PriceFen: 100, Stock: 0},
	} {
		created, err := st.CreateProduct(ctx, p)
		if err != nil {
			f.Fatal(err)
		}
		shop.products[created.ID] = created
	}
	u, err := st.UpsertUserByOpenID(ctx, "openid-fuzz")
	if err != nil {
		f.Fatal(err)
	}
	tokens, err := auth.NewTokens(strings.Repeat("f", 32), time.Hour, time.Now)
	if err != nil {
		f.Fatal(err)
	}
	if shop.token, _, err = tokens.Issue(u.ID); err != nil {
		f.Fatal(err)
	}
	shop.userID = u.ID
	shop.handler = api.NewRouter(api.Deps{
		Store:       st,
		Temporal:    shop.temporal,
		TaskQueue:   "orders-fuzz",
		Tokens:      tokens,
		PayTimeout:  15 * time.Minute,
		AutoConfirm: 7 * 24 * time.Hour,
		AppID:       "wx0000000000fuzz01",
		MchID:       "1900000109",
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Metrics:     prometheus.NewRegistry(),
	})
	return shop
}

// startRecorder stands in for Temporal on the create path: it records the
// order workflow update-with-start would begin and answers as the workflow
// does for a placed order. Any other call panics (the nil embedded client):
// creating an order makes none.
type startRecorder struct {
	client.Client
	mu     sync.Mutex
	inputs []workflows.OrderInput
}

func (r *startRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.inputs)
}

func (r *startRecorder) last() (workflows.OrderInput, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.inputs) == 0 {
		return workflows.OrderInput{}, false
	}
	return r.inputs[len(r.inputs)-1], true
}

type startOp struct {
	opts client.StartWorkflowOptions
	in   workflows.OrderInput
	err  error
}

func (startOp) Get(context.Context) (client.WorkflowRun, error) {
	return nil, errors.New("not started by the stand-in")
}

func (r *startRecorder) NewWithStartWorkflowOperation(opts client.StartWorkflowOptions, wf any, args ...any) client.WithStartWorkflowOperation {
	op := startOp{opts: opts}
	if wf != workflows.OrderWorkflowName || len(args) != 1 {
		op.err = errors.New("not an order workflow start")
		return op
	}
	in, ok := args[0].(workflows.OrderInput)
	if !ok {
		op.err = errors.New("not an OrderInput")
	}
	op.in = in
	return op
}

func (r *startRecorder) UpdateWithStartWorkflow(_ context.Context, opts client.UpdateWithStartWorkflowOptions) (client.WorkflowUpdateHandle, error) {
	op, ok := opts.StartWorkflowOperation.(startOp)
	if !ok || op.err != nil {
		return nil, errors.New("unexpected start operation")
	}
	if op.opts.ID != workflows.WorkflowID(op.in.OrderNo) || opts.UpdateOptions.UpdateName != workflows.UpdateCreate {
		return nil, errors.New("unexpected workflow id or update")
	}
	r.mu.Lock()
	r.inputs = append(r.inputs, op.in)
	r.mu.Unlock()
	return createdHandle{in: op.in}, nil
}

// createdHandle answers the create update as a workflow that placed the order.
type createdHandle struct{ in workflows.OrderInput }

func (h createdHandle) WorkflowID() string { return workflows.WorkflowID(h.in.OrderNo) }
func (h createdHandle) RunID() string      { return "fuzz-run" }
func (h createdHandle) UpdateID() string   { return "fuzz-update" }
func (h createdHandle) Get(_ context.Context, out any) error {
	v, ok := out.(*workflows.OrderView)
	if !ok {
		return errors.New("unexpected result type")
	}
	now := time.Now()
	*v = workflows.OrderView{OrderNo: h.in.OrderNo, UserID: h.in.UserID, Status: status.Pending,
		PayDeadline: now.Add(h.in.PayTimeout), CreatedAt: now}
	for _, it := range h.in.Items {
		v.Items = append(v.Items, workflows.PricedItem{ProductID: it.ProductID, Quantity: it.Quantity})
	}
	return nil
}
