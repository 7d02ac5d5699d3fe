package devserver

import (
	"log/slog"
	"sync/atomic"

	tlog "go.temporal.io/server/common/log"
	"go.temporal.io/server/common/log/tag"
)

// serverLogger hands the embedded server's errors to the process's slog
// logger (JSON in dev, stack.log in benchmarks), with its tags as
// attributes; its warnings go at debug level, its debug and info nowhere:
// the server is chatty and they say nothing a shop needs. While the server
// starts and stops (quiet), its services come up and go down one after
// another and report each other missing ("Frontend is not healthy yet",
// "Not enough hosts to serve the request"): expected, so logged at debug.
type serverLogger struct {
	log   *slog.Logger
	quiet *atomic.Bool
}

var _ tlog.Logger = serverLogger{}

func (l serverLogger) attrs(tags []tag.Tag) []any {
	out := make([]any, 0, 2*len(tags))
	for _, t := range tags {
		out = append(out, t.Key(), t.Value())
	}
	return out
}

func (l serverLogger) Debug(string, ...tag.Tag)         {}
func (l serverLogger) Info(string, ...tag.Tag)          {}
func (l serverLogger) Warn(msg string, tags ...tag.Tag) { l.log.Debug(msg, l.attrs(tags)...) }
func (l serverLogger) Error(msg string, tags ...tag.Tag) {
	if l.quiet.Load() {
		l.log.Debug(msg, l.attrs(tags)...)
		return
	}
	l.log.Error(msg, l.attrs(tags)...)
}
func (l serverLogger) DPanic(msg string, tags ...tag.Tag) { l.log.Error(msg, l.attrs(tags)...) }
func (l serverLogger) Panic(msg string, tags ...tag.Tag) {
	l.log.Error(msg, l.attrs(tags)...)
	panic(msg)
}
func (l serverLogger) Fatal(msg string, tags ...tag.Tag) {
	l.log.Error(msg, l.attrs(tags)...)
	panic("temporal server: fatal: " + msg)
}
