package app

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"
)

// On SIGTERM (the context's end) the server stops accepting connections but
// lets a request in flight finish and be answered, within the grace period;
// one that outlives the grace is cut off and the error says so.
func TestServerFinishesInFlightRequestsOnShutdown(t *testing.T) {
	for _, tt := range []struct {
		name       string
		work       time.Duration // how long the in-flight request takes
		grace      time.Duration
		wantAnswer bool
	}{
		{"within the grace", 300 * time.Millisecond, 5 * time.Second, true},
		{"beyond the grace", 5 * time.Second, 200 * time.Millisecond, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := "http://" + ln.Addr().String()
			started := make(chan struct{})
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				close(started)
				select {
				case <-time.After(tt.work):
					_, _ = io.WriteString(w, "done")
				case <-r.Context().Done():
				}
			})
			ctx, stop := context.WithCancel(context.Background())
			served := make(chan error, 1)
			go func() { served <- serveListener(ctx, ln, h, tt.grace, slog.New(slog.DiscardHandler)) }()

			answered := make(chan string, 1)
			go func() {
				resp, err := http.Get(addr + "/slow")
				if err != nil {
					answered <- "error: " + err.Error()
					return
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				answered <- string(b)
			}()
			<-started
			stop()

			// New connections are refused once shutdown has begun.
			deadline := time.Now().Add(2 * time.Second)
			for {
				c, err := net.DialTimeout("tcp", ln.Addr().String(), 100*time.Millisecond)
				if err != nil {
					break
				}
				c.Close()
				if time.Now().After(deadline) {
					t.Fatal("the listener still accepts connections after shutdown began")
				}
				time.Sleep(20 * time.Millisecond)
			}

			got := <-answered
			err = <-served
			if tt.wantAnswer {
				if got != "done" || err != nil {
					t.Fatalf("in-flight request answered %q, serve returned %v; want done, nil", got, err)
				}
				return
			}
			if got == "done" || err == nil {
				t.Fatalf("a request beyond the grace answered %q, serve returned %v; want it cut off and an error", got, err)
			}
		})
	}
}
