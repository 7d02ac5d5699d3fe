// Package demo serves, in `ordersaga dev` only, a page that plays the
// mini-program in a browser: log in, browse products, order, pay (the payer's
// part played through the WeChat Pay simulator), watch the status change,
// cancel, refund, ship as the shop and confirm receipt as the buyer in
// (simulated) WeChat, and open each order's workflow in the Temporal Web UI.
//
// The page is plain HTML, CSS and JavaScript embedded in the binary: no build
// step, nothing fetched from elsewhere. It talks to the API on the same
// origin, and to the simulator's control API through a reverse proxy under
// /demo/sim/, so it needs no CORS.
package demo

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path"
	"strings"
)

// Prefix is where the page lives on the API's address.
const Prefix = "/demo"

//go:embed static
var static embed.FS

// Config is what the page learns from GET /demo/config.json.
type Config struct {
	// UIURL is the Temporal Web UI's address ("" when it is not served).
	UIURL string `json:"ui_url"`
	// Namespace holds the order workflows.
	Namespace string `json:"namespace"`
	// SimPath is where the simulator's control API is proxied.
	SimPath string `json:"sim_path"`
	// AdminToken lets the page play the shop too (ship an order): dev
	// prints it anyway, and the page is served by dev only.
	AdminToken string `json:"admin_token,omitempty"`
}

// Option adjusts the page.
type Option func(*Config)

// WithAdminToken lets the page ship orders as the shop, with ADMIN_TOKEN.
func WithAdminToken(token string) Option { return func(c *Config) { c.AdminToken = token } }

// NewHandler wraps the API handler: /demo/ serves the page,
// /demo/config.json its settings, /demo/sim/… is proxied to the simulator's
// /sim/… control API (nothing else of the simulator), and every other request
// goes to api unchanged.
func NewHandler(api http.Handler, simURL, uiURL, namespace string, opts ...Option) (http.Handler, error) {
	if api == nil {
		return nil, errors.New("demo: the API handler is required")
	}
	sim, err := url.Parse(simURL)
	if err != nil || (sim.Scheme != "http" && sim.Scheme != "https") || sim.Host == "" {
		return nil, fmt.Errorf("demo: simulator URL %q is not an absolute http(s) URL", simURL)
	}
	if uiURL != "" {
		u, err := url.Parse(uiURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("demo: Web UI URL %q is not an absolute http(s) URL", uiURL)
		}
	}
	if namespace == "" {
		namespace = "default"
	}
	files, err := fs.Sub(static, "static")
	if err != nil {
		return nil, err
	}
	c := Config{
		UIURL:     strings.TrimRight(uiURL, "/"),
		Namespace: namespace,
		SimPath:   Prefix + "/sim",
	}
	for _, o := range opts {
		o(&c)
	}
	cfg, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	h := &handler{
		api:    api,
		files:  http.StripPrefix(Prefix, http.FileServerFS(files)),
		config: cfg,
		sim:    simProxy(sim),
	}
	return h, nil
}

type handler struct {
	api    http.Handler
	files  http.Handler
	config []byte
	sim    http.Handler
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == Prefix:
		http.Redirect(w, r, Prefix+"/", http.StatusMovedPermanently)
	case p == Prefix+"/sim" || strings.HasPrefix(p, Prefix+"/sim/"):
		h.proxy(w, r)
	case strings.HasPrefix(p, Prefix+"/"):
		h.page(w, r)
	default:
		h.api.ServeHTTP(w, r)
	}
}

// page serves the embedded files and the config.
func (h *handler) page(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "the demo page is read-only")
		return
	}
	hdr := w.Header()
	// A dev page: always the binary's current version, and nothing but this
	// origin (the Web UI is only linked to).
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	if r.URL.Path == Prefix+"/config.json" {
		hdr.Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write(h.config)
		return
	}
	h.files.ServeHTTP(w, r)
}

// proxy forwards /demo/sim/… to the simulator's /sim/…, after making sure
// the cleaned path cannot leave /sim/ (no /v3/ payment API, no login).
func (h *handler) proxy(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, Prefix)
	clean := path.Clean(rest)
	if strings.HasSuffix(rest, "/") && clean != "/" {
		clean += "/"
	}
	if !strings.HasPrefix(clean, "/sim/") || clean == "/sim/" {
		writeError(w, http.StatusNotFound, "NOT_FOUND", "only the simulator's control API (/sim/…) is proxied")
		return
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path = clean
	r2.URL.RawPath = ""
	h.sim.ServeHTTP(w, r2)
}

func simProxy(target *url.URL) http.Handler {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			path := pr.In.URL.Path // already cleaned and checked by proxy
			pr.SetURL(target)
			pr.Out.URL.Path = strings.TrimRight(target.Path, "/") + path
			pr.Out.URL.RawPath = ""
			pr.Out.Host = target.Host
			// The simulator needs none of the shopper's credentials.
			pr.Out.Header.Del("Authorization")
			pr.Out.Header.Del("Cookie")
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			writeError(w, http.StatusBadGateway, "UNAVAILABLE", "the WeChat Pay simulator did not answer: "+err.Error())
		},
	}
}

// writeError answers in the API's error shape, so the page shows every
// failure the same way.
func writeError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": message}})
}
