package scheduler

import (
	"context"
	"log/slog"
)

// jobLogger is s.log with the job's check and type, as
// s.log.With("check", job.Name, "type", job.Type) would give. Each run
// of each check gets one, and With formats the two attributes into a copy
// of the handler's state at once (about 2 KB and a dozen allocations a
// run); jobHandler adds them only to the records that are logged, which
// for a passing check are none.
func (s *Scheduler) jobLogger(job *Job) *slog.Logger {
	return slog.New(jobHandler{next: s.log.Handler(), job: job})
}

type jobHandler struct {
	next slog.Handler
	job  *Job
}

func (h jobHandler) attrs() []slog.Attr {
	return []slog.Attr{slog.String("check", h.job.Name), slog.String("type", h.job.Type)}
}

func (h jobHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// Handle logs r with the job's attributes first, where With puts them.
func (h jobHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	out.AddAttrs(h.attrs()...)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(a)
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h jobHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return h.next.WithAttrs(append(h.attrs(), as...))
}

func (h jobHandler) WithGroup(name string) slog.Handler {
	return h.next.WithAttrs(h.attrs()).WithGroup(name)
}
