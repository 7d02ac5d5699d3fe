package demo

import (
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// apiStub records what reaches the API handler.
type apiStub struct{ paths []string }

func (a *apiStub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.paths = append(a.paths, r.Method+" "+r.URL.Path)
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"api":true}`)
}

// simStub stands in for the simulator and records every request it gets.
type simStub struct {
	got []*http.Request
	raw []string // RawQuery
	bdy []string
}

func newSim(t *testing.T) (*httptest.Server, *simStub) {
	t.Helper()
	s := &simStub{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.got = append(s.got, r)
		s.raw = append(s.raw, r.URL.RawQuery)
		s.bdy = append(s.bdy, string(b))
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"trade_state":"SUCCESS"}`)
	}))
	t.Cleanup(srv.Close)
	return srv, s
}

func newTestHandler(t *testing.T, simURL string) (http.Handler, *apiStub) {
	t.Helper()
	api := &apiStub{}
	h, err := NewHandler(api, simURL, "http://127.0.0.1:8233/", "shop")
	if err != nil {
		t.Fatal(err)
	}
	return h, api
}

func do(h http.Handler, method, target, body string, hdr map[string]string) *httptest.ResponseRecorder {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, r)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func errorCode(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("want the API's error shape, got %d %q", w.Code, w.Body.String())
	}
	return e.Error.Code
}

func TestPageIsServedUnderDemo(t *testing.T) {
	sim, _ := newSim(t)
	h, api := newTestHandler(t, sim.URL)

	w := do(h, http.MethodGet, "/demo", "", nil)
	if w.Code != http.StatusMovedPermanently || w.Header().Get("Location") != "/demo/" {
		t.Fatalf("/demo: %d Location %q, want a redirect to /demo/", w.Code, w.Header().Get("Location"))
	}

	w = do(h, http.MethodGet, "/demo/", "", nil)
	if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("/demo/: %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	if !strings.Contains(w.Body.String(), `<script src="app.js"`) {
		t.Fatalf("/demo/ is not the page:\n%s", w.Body.String())
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("Content-Security-Policy %q: the page must load nothing from elsewhere", csp)
	}
	if w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q", w.Header().Get("Cache-Control"))
	}

	for path, ctype := range map[string]string{
		"/demo/app.js":    "text/javascript",
		"/demo/style.css": "text/css",
	} {
		w := do(h, http.MethodGet, path, "", nil)
		if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), ctype) || w.Body.Len() == 0 {
			t.Errorf("%s: %d %q (%d bytes)", path, w.Code, w.Header().Get("Content-Type"), w.Body.Len())
		}
	}
	if w := do(h, http.MethodGet, "/demo/nothing-here.js", "", nil); w.Code != http.StatusNotFound {
		t.Errorf("/demo/nothing-here.js: %d, want 404", w.Code)
	}
	if w := do(h, http.MethodPost, "/demo/", "{}", nil); w.Code != http.StatusMethodNotAllowed || errorCode(t, w) != "METHOD_NOT_ALLOWED" {
		t.Errorf("POST /demo/: %d %s", w.Code, w.Body.String())
	}
	if len(api.paths) != 0 {
		t.Errorf("the API handler got %v; the page's requests must stay with the demo handler", api.paths)
	}
}

func TestConfigTellsTheWebUIAndNamespace(t *testing.T) {
	sim, _ := newSim(t)
	h, _ := newTestHandler(t, sim.URL)
	w := do(h, http.MethodGet, "/demo/config.json", "", nil)
	if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("%d %s", w.Code, w.Header().Get("Content-Type"))
	}
	var c Config
	if err := json.Unmarshal(w.Body.Bytes(), &c); err != nil {
		t.Fatal(err)
	}
	want := Config{UIURL: "http://127.0.0.1:8233", Namespace: "shop", SimPath: "/demo/sim"}
	if c != want {
		t.Fatalf("config %+v, want %+v", c, want)
	}

	// No Web UI: the page hides its links.
	h2, err := NewHandler(&apiStub{}, sim.URL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	w = do(h2, http.MethodGet, "/demo/config.json", "", nil)
	if got := w.Body.String(); !strings.Contains(got, `"ui_url":""`) || !strings.Contains(got, `"namespace":"default"`) {
		t.Fatalf("config without a UI: %s", got)
	}
}

func TestEverythingElseGoesToTheAPI(t *testing.T) {
	sim, s := newSim(t)
	h, api := newTestHandler(t, sim.URL)
	for _, target := range []string{"/v1/products", "/healthz", "/demox", "/sim/transactions/X/pay", "/"} {
		w := do(h, http.MethodGet, target, "", nil)
		if w.Code != http.StatusOK || w.Body.String() != `{"api":true}` {
			t.Errorf("%s: %d %q, want the API's answer", target, w.Code, w.Body.String())
		}
	}
	if len(api.paths) != 5 {
		t.Errorf("API saw %v", api.paths)
	}
	if len(s.got) != 0 {
		t.Errorf("the simulator got %d requests", len(s.got))
	}
}

func TestSimulatorControlAPIIsProxied(t *testing.T) {
	sim, s := newSim(t)
	h, api := newTestHandler(t, sim.URL)

	w := do(h, http.MethodPost, "/demo/sim/transactions/2026112311302512345678/pay?x=1", `{"when":"now"}`,
		map[string]string{"Authorization": "Bearer user-token", "Cookie": "a=b", "Content-Type": "application/json"})
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"trade_state":"SUCCESS"`) {
		t.Fatalf("proxied pay: %d %s", w.Code, w.Body.String())
	}
	if len(s.got) != 1 {
		t.Fatalf("simulator got %d requests", len(s.got))
	}
	r := s.got[0]
	if r.Method != http.MethodPost || r.URL.Path != "/sim/transactions/2026112311302512345678/pay" || s.raw[0] != "x=1" || s.bdy[0] != `{"when":"now"}` {
		t.Errorf("simulator got %s %s?%s %q", r.Method, r.URL.Path, s.raw[0], s.bdy[0])
	}
	if r.Header.Get("Authorization") != "" || r.Header.Get("Cookie") != "" {
		t.Errorf("the shopper's credentials reached the simulator: %v", r.Header)
	}
	if len(api.paths) != 0 {
		t.Errorf("API saw %v", api.paths)
	}
}

func TestOnlySimPathsAreProxied(t *testing.T) {
	sim, s := newSim(t)
	h, api := newTestHandler(t, sim.URL)
	for _, target := range []string{
		"/demo/sim",
		"/demo/sim/",
		"/demo/sim/../v3/pay/transactions/jsapi",
		"/demo/sim/..%2Fv3/pay/transactions/jsapi",
		"/demo/sim/%2e%2e/sns/jscode2session",
		"/demo/sim/./../../v1/products",
	} {
		w := do(h, http.MethodPost, target, "", nil)
		if w.Code != http.StatusNotFound || errorCode(t, w) != "NOT_FOUND" {
			t.Errorf("%s: %d %s, want 404", target, w.Code, w.Body.String())
		}
	}
	if len(s.got) != 0 {
		for _, r := range s.got {
			t.Errorf("simulator got %s %s", r.Method, r.URL.Path)
		}
	}
	if len(api.paths) != 0 {
		t.Errorf("API saw %v", api.paths)
	}
}

func TestSimulatorDownIsAnAPIError(t *testing.T) {
	sim, _ := newSim(t)
	url := sim.URL
	sim.Close()
	h, _ := newTestHandler(t, url)
	w := do(h, http.MethodPost, "/demo/sim/transactions/X123456/pay", "", nil)
	if w.Code != http.StatusBadGateway || errorCode(t, w) != "UNAVAILABLE" {
		t.Fatalf("%d %s", w.Code, w.Body.String())
	}
}

func TestNewHandlerRefusesBadArguments(t *testing.T) {
	for name, c := range map[string]struct {
		api       http.Handler
		sim, ui   string
		wantError bool
	}{
		"nil api":      {nil, "http://127.0.0.1:8091", "", true},
		"relative sim": {&apiStub{}, "127.0.0.1:8091", "", true},
		"no sim":       {&apiStub{}, "", "", true},
		"bad ui":       {&apiStub{}, "http://127.0.0.1:8091", "ftp://x", true},
		"fine":         {&apiStub{}, "http://127.0.0.1:8091", "http://127.0.0.1:8233", false},
	} {
		_, err := NewHandler(c.api, c.sim, c.ui, "default")
		if (err != nil) != c.wantError {
			t.Errorf("%s: err %v", name, err)
		}
	}
}

// The page must work offline: nothing it loads comes from another origin.
func TestPageLoadsNothingFromElsewhere(t *testing.T) {
	ext := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//|@import|url\(\s*["']?(https?:)?//|fetch\(\s*["'](https?:)?//`)
	err := fs.WalkDir(static, "static", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.ReadFile(path)
		if err != nil {
			return err
		}
		if m := ext.Find(b); m != nil {
			t.Errorf("%s loads from another origin: %q", path, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Every element the script looks up by id is in the page.
func TestScriptAndPageAgreeOnIDs(t *testing.T) {
	js, err := static.ReadFile("static/app.js")
	if err != nil {
		t.Fatal(err)
	}
	html, err := static.ReadFile("static/index.html")
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, m := range regexp.MustCompile(`\bid="([^"]+)"`).FindAllSubmatch(html, -1) {
		ids[string(m[1])] = true
	}
	refs := regexp.MustCompile(`\$\("([^"]+)"\)`).FindAllSubmatch(js, -1)
	if len(refs) < 20 {
		t.Fatalf("found only %d id look-ups in app.js", len(refs))
	}
	for _, m := range refs {
		if !ids[string(m[1])] {
			t.Errorf("app.js looks up #%s, which index.html lacks", m[1])
		}
	}
	for _, k := range []string{"timeStamp", "nonceStr", "package", "signType", "paySign"} {
		if !ids["pp-"+k] {
			t.Errorf("index.html lacks #pp-%s for wx.requestPayment's %s", k, k)
		}
	}
}
