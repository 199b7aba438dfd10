package scheduler

import (
	"bytes"
	"log/slog"
	"testing"
)

// TestJobLoggerIsWith holds jobLogger to what Logger.With writes.
func TestJobLoggerIsWith(t *testing.T) {
	job := &Job{Name: "gw-1", Type: "http"}
	for _, tc := range []struct {
		name string
		log  func(*slog.Logger)
	}{
		{"plain", func(l *slog.Logger) { l.Warn("slow", "after", "3s") }},
		{"filtered", func(l *slog.Logger) { l.Debug("not shown", "x", 1) }},
		{"with", func(l *slog.Logger) { l.With("attempt", 2).Error("failed", "err", "eof") }},
		{"group", func(l *slog.Logger) { l.WithGroup("tls").Info("handshake", "version", "1.3") }},
		{"group and with", func(l *slog.Logger) { l.With("a", 1).WithGroup("g").With("b", 2).Info("m", "c", 3) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want, got bytes.Buffer
			opts := &slog.HandlerOptions{Level: slog.LevelInfo, ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey {
					return slog.Attr{}
				}
				return a
			}}
			tc.log(slog.New(slog.NewTextHandler(&want, opts)).With("check", job.Name, "type", job.Type))
			s := &Scheduler{log: slog.New(slog.NewTextHandler(&got, opts))}
			tc.log(s.jobLogger(job))
			if got.String() != want.String() {
				t.Errorf("jobLogger wrote %q, With %q", got.String(), want.String())
			}
		})
	}
}
