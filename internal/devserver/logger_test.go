package devserver

import (
	"bytes"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"go.temporal.io/server/common/log/tag"
)

// The server's errors reach the process's log with their tags, except the
// ones its services report about each other while it starts or stops.
func TestServerErrorsAreLoggedExceptWhileStartingOrStopping(t *testing.T) {
	var buf bytes.Buffer
	quiet := &atomic.Bool{}
	l := serverLogger{log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})), quiet: quiet}

	l.Info("chatter")
	l.Warn("a warning")
	l.Error("persistence failed", tag.NewStringTag("shard-id", "3"))
	quiet.Store(true)
	l.Error("Not enough hosts to serve the request")

	got := buf.String()
	if !strings.Contains(got, "level=ERROR") || !strings.Contains(got, `msg="persistence failed" shard-id=3`) {
		t.Fatalf("the error is not logged with its tags:\n%s", got)
	}
	for _, quiet := range []string{"chatter", "a warning", "Not enough hosts"} {
		if strings.Contains(got, quiet) {
			t.Errorf("%q logged at info or above:\n%s", quiet, got)
		}
	}
}
