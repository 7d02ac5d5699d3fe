// Package ratelimit bounds how often one client (a user, an address) may
// call the API: a token bucket per key, in the memory of one process. Behind
// several API replicas each keeps its own buckets, so a client spreading its
// requests over n replicas gets up to n times the rate: a bound on abuse,
// not an exact quota.
package ratelimit

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Rate is "Requests per Per": a bucket of Requests tokens refilled evenly
// over Per, so a client may send Requests at once and then one every
// Per/Requests. The zero Rate is no limit.
type Rate struct {
	Requests int
	Per      time.Duration
}

// Limited reports whether r limits anything.
func (r Rate) Limited() bool { return r.Requests > 0 && r.Per > 0 }

func (r Rate) String() string {
	if !r.Limited() {
		return "0"
	}
	return strconv.Itoa(r.Requests) + "/" + r.Per.String()
}

// Parse reads "N/DURATION" (60/1m: 60 requests a minute, in a burst or
// spread out); "0" or "off" is no limit.
func Parse(s string) (Rate, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "0", "off":
		return Rate{}, nil
	}
	n, per, ok := strings.Cut(s, "/")
	if !ok {
		return Rate{}, fmt.Errorf("%q is not N/DURATION such as 60/1m (or 0 for no limit)", s)
	}
	count, err := strconv.Atoi(strings.TrimSpace(n))
	if err != nil || count <= 0 {
		return Rate{}, fmt.Errorf("%q: %q is not a positive number of requests", s, n)
	}
	d, err := time.ParseDuration(strings.TrimSpace(per))
	if err != nil || d <= 0 {
		return Rate{}, fmt.Errorf("%q: %q is not a positive duration such as 1m or 10s", s, per)
	}
	return Rate{Requests: count, Per: d}, nil
}

// MaxKeys bounds the clients a Limiter tracks at once. Idle ones (whose
// bucket has filled up again) are forgotten; past MaxKeys busy ones, a new
// client is let through untracked rather than refused, so that an attacker
// rotating addresses cannot lock everyone else out (nor grow the memory).
const MaxKeys = 100_000

// Limiter holds one bucket per key. It keeps, per key, the time at which the
// bucket will be full again ("generic cell rate algorithm"): one timestamp,
// no ticking. The zero or nil Limiter, and one of the zero Rate, allow all.
type Limiter struct {
	rate Rate
	now  func() time.Time

	mu        sync.Mutex
	full      map[string]time.Time // when each key's bucket is full again
	nextSweep int                  // sweep when this many keys are tracked
	sweptAt   time.Time
}

// New returns a Limiter of rate r on the clock now (time.Now when nil).
func New(r Rate, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{rate: r, now: now, full: map[string]time.Time{}, nextSweep: 1024}
}

// Rate is the limiter's rate.
func (l *Limiter) Rate() Rate {
	if l == nil {
		return Rate{}
	}
	return l.rate
}

// Allow takes a token from key's bucket. When there is none it takes
// nothing and answers false and how long until there is one.
func (l *Limiter) Allow(key string) (bool, time.Duration) {
	if l == nil || !l.rate.Limited() {
		return true, 0
	}
	interval := max(l.rate.Per/time.Duration(l.rate.Requests), 1)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	full, known := l.full[key]
	if !known || full.Before(now) {
		full = now
	}
	// Taking a token moves "full again" one interval later; the bucket holds
	// Per of them.
	if wait := full.Add(interval).Sub(now) - l.rate.Per; wait > 0 {
		return false, wait
	}
	if !known && len(l.full) >= l.nextSweep {
		// Amortised below MaxKeys (the threshold doubles); at it, at most
		// once a second, however many new keys arrive.
		if len(l.full) < MaxKeys || now.Sub(l.sweptAt) >= time.Second {
			l.sweep(now)
		}
		if len(l.full) >= MaxKeys {
			return true, 0
		}
	}
	l.full[key] = full.Add(interval)
	return true, 0
}

// sweep forgets the keys whose bucket is full: they are as good as new.
func (l *Limiter) sweep(now time.Time) {
	for k, full := range l.full {
		if !full.After(now) {
			delete(l.full, k)
		}
	}
	l.nextSweep = min(max(2*len(l.full), 1024), MaxKeys)
	l.sweptAt = now
}

// RetryAfter is wait as the whole seconds of a Retry-After header (at least 1).
func RetryAfter(wait time.Duration) string {
	secs := int64((wait + time.Second - 1) / time.Second)
	return strconv.FormatInt(max(secs, 1), 10)
}
