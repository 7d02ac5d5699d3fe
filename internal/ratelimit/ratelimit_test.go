package ratelimit

import (
	"fmt"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestLimiterLetsABurstThroughThenOneAnInterval(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)}
	l := New(Rate{Requests: 3, Per: time.Minute}, c.now) // a token every 20 s
	steps := []struct {
		advance  time.Duration
		key      string
		want     bool
		wantWait time.Duration
	}{
		{0, "alice", true, 0},
		{0, "alice", true, 0},
		{0, "alice", true, 0},
		{0, "alice", false, 20 * time.Second}, // the burst is spent
		{0, "bob", true, 0},                   // a bucket per key
		{19 * time.Second, "alice", false, time.Second},
		{time.Second, "alice", true, 0}, // one token back after 20 s
		{0, "alice", false, 20 * time.Second},
		{10 * time.Minute, "alice", true, 0}, // idle: the whole burst again
		{0, "alice", true, 0},
		{0, "alice", true, 0},
		{0, "alice", false, 20 * time.Second},
	}
	for i, s := range steps {
		c.advance(s.advance)
		ok, wait := l.Allow(s.key)
		if ok != s.want || wait != s.wantWait {
			t.Fatalf("step %d (%s after %v): allowed %v, wait %v; want %v, %v", i, s.key, s.advance, ok, wait, s.want, s.wantWait)
		}
	}
}

func TestNoRateAllowsEverything(t *testing.T) {
	for _, l := range []*Limiter{nil, New(Rate{}, nil)} {
		for range 1000 {
			if ok, _ := l.Allow("k"); !ok {
				t.Fatalf("%v refused", l.Rate())
			}
		}
	}
}

// Idle keys are forgotten; at MaxKeys busy ones a new key is let through
// untracked rather than refused, and memory stops growing.
func TestLimiterForgetsIdleKeysAndIsBounded(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)}
	l := New(Rate{Requests: 1, Per: time.Hour}, c.now)
	for i := range 5000 {
		l.Allow(fmt.Sprint("idle-", i))
	}
	c.advance(2 * time.Hour) // every bucket full again
	// Sweeps come as the map grows (amortised): by the time as many new
	// keys came, the idle ones are gone.
	for i := range 5000 {
		l.Allow(fmt.Sprint("fresh-", i))
	}
	if n := len(l.full); n > 5000 {
		t.Fatalf("%d keys tracked: the idle ones were kept", n)
	}
	for i := range MaxKeys + 10 {
		l.Allow(fmt.Sprint("busy-", i))
	}
	if n := len(l.full); n > MaxKeys {
		t.Fatalf("%d keys tracked, the bound is %d", n, MaxKeys)
	}
	if ok, _ := l.Allow("one-more"); !ok {
		t.Fatal("a new key was refused at the bound")
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want Rate
		ok   bool
	}{
		{"60/1m", Rate{60, time.Minute}, true},
		{" 5 / 10s ", Rate{5, 10 * time.Second}, true},
		{"0", Rate{}, true},
		{"off", Rate{}, true},
		{"60", Rate{}, false},
		{"0/1m", Rate{}, false},
		{"-1/1m", Rate{}, false},
		{"60/0s", Rate{}, false},
		{"60/minute", Rate{}, false},
		{"", Rate{}, false},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("Parse(%q) = %v, %v; want %v (ok %v)", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestRetryAfterRoundsUp(t *testing.T) {
	for wait, want := range map[time.Duration]string{
		time.Millisecond: "1", time.Second: "1", 1500 * time.Millisecond: "2", 20 * time.Minute: "1200", 0: "1",
	} {
		if got := RetryAfter(wait); got != want {
			t.Errorf("RetryAfter(%v) = %s, want %s", wait, got, want)
		}
	}
}
