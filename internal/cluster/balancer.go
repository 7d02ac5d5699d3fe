package cluster

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Balancer spreads requests over the API replicas in turn, as the load
// balancer in front of a production deployment does: a replica that does not
// take the connection (down, restarting) is skipped for the next one — the
// request never reached it, so sending it elsewhere repeats nothing. A
// replica that took the request and then failed answers 502: the client
// decides, as it must behind any proxy.
type Balancer struct {
	backends []*url.URL
	next     atomic.Uint64
	proxy    *httputil.ReverseProxy

	mu     sync.Mutex
	served []int // requests answered by each backend
}

// maxBalancedBody bounds a request body the balancer keeps to send again
// (the API takes 64 KiB, the notify 1 MiB).
const maxBalancedBody = 2 << 20

// NewBalancer balances over the replicas' base URLs (http://host:port).
func NewBalancer(replicas []string) (*Balancer, error) {
	b := &Balancer{served: make([]int, len(replicas))}
	for _, r := range replicas {
		u, err := url.Parse(r)
		if err != nil {
			return nil, err
		}
		b.backends = append(b.backends, u)
	}
	if len(b.backends) == 0 {
		return nil, errors.New("cluster: a balancer needs a replica")
	}
	transport := &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second}
	b.proxy = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetXForwarded()
		},
		Transport: roundTripper(func(req *http.Request) (*http.Response, error) {
			return b.roundTrip(transport, req)
		}),
	}
	return b, nil
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// roundTrip sends the request to the replicas in turn, starting with the
// next one, until one takes the connection.
func (b *Balancer) roundTrip(t *http.Transport, req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		var err error
		if body, err = io.ReadAll(io.LimitReader(req.Body, maxBalancedBody+1)); err != nil {
			return nil, err
		}
		req.Body.Close() // a body over the bound reaches the replica cut short: it refuses it
	}
	start := b.next.Add(1)
	var lastErr error
	for i := range len(b.backends) {
		n := int((start + uint64(i)) % uint64(len(b.backends)))
		out := req.Clone(req.Context())
		out.URL.Scheme, out.URL.Host, out.Host = b.backends[n].Scheme, b.backends[n].Host, b.backends[n].Host
		if body != nil {
			out.Body = io.NopCloser(bytes.NewReader(body))
			out.ContentLength = int64(len(body))
		}
		resp, err := t.RoundTrip(out)
		if err == nil {
			b.mu.Lock()
			b.served[n]++
			b.mu.Unlock()
			return resp, nil
		}
		lastErr = err
		if !refused(err) {
			return nil, err
		}
	}
	return nil, lastErr
}

// refused reports whether the replica did not take the connection at all.
func refused(err error) bool {
	var op *net.OpError
	return errors.Is(err, syscall.ECONNREFUSED) || (errors.As(err, &op) && op.Op == "dial")
}

// ServeHTTP proxies one request.
func (b *Balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) { b.proxy.ServeHTTP(w, r) }

// Served counts the requests each replica answered, in the order given.
func (b *Balancer) Served() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int(nil), b.served...)
}
