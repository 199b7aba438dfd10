package runbook

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"
)

// Checker runs a configured check now (the agent's scheduler).
type Checker interface {
	RunCheck(ctx context.Context, name string) (success bool, reason, message string, err error)
}

// Pager sends a runbook's message through a paging receiver. The run the
// message comes from is RunIDFrom(ctx).
type Pager interface {
	NotifyReceiver(ctx context.Context, receiver, title, message string) error
}

// DrillPager is implemented by pagers that can send a drill run's message
// where drills go (the drill route) instead of the named receiver.
type DrillPager interface {
	NotifyDrill(ctx context.Context, drillID, receiver, title, message string) error
}

// drillPager sends every message of a run a drill caused through the drill
// route: a drill never reaches the real on-call receiver by default.
type drillPager struct {
	p  Pager
	id string
}

func (d drillPager) NotifyReceiver(ctx context.Context, receiver, title, message string) error {
	dp, ok := d.p.(DrillPager)
	if !ok {
		return fmt.Errorf("not sent to %q: a drill's run does not page real receivers", receiver)
	}
	return dp.NotifyDrill(ctx, d.id, receiver, title, message)
}

// Env is what steps reach the world through.
type Env struct {
	HTTP    *http.Client
	Checker Checker
	Pager   Pager
	// Approved blocks until the run is approved (true) or rejected, or ctx ends.
	Approved func(ctx context.Context) (bool, error)
	// Fencing is the lock's fencing token for this run.
	Fencing int64
	// RunID keys idempotency headers, and marks exec steps' processes
	// (VIGIL_RUN_ID) so a restarted agent can find what a dead one left.
	RunID string
	// Redactor masks known secret values in what steps print and in their
	// errors, before the journal, the logs or the API see them.
	Redactor Redactor

	// started records the process group an exec step started (set per
	// attempt by runStep when the journal keeps processes), before the
	// step is waited for: a restarted agent reads it to find that group.
	started func(Process) error
}

// Redactor masks secret values in text (internal/redact implements it).
type Redactor interface {
	Redact(s string) string
}

// redactors masks with each of its non-nil redactors in turn.
type redactors []Redactor

func (rs redactors) Redact(s string) string {
	for _, r := range rs {
		if r != nil {
			s = r.Redact(s)
		}
	}
	return s
}

// Outcome is what one attempt of a step produced, for the journal.
type Outcome struct {
	Output string `json:"output,omitempty"`
	Status int    `json:"status,omitempty"`
}

// execute runs one attempt of a rendered step within ctx. What the step
// produced is redacted before anyone records it.
func execute(ctx context.Context, s *Step, r RenderedStep, env Env) (Outcome, error) {
	out, err := executeKind(ctx, s, r, env)
	if env.Redactor != nil {
		out.Output = env.Redactor.Redact(out.Output)
		if err != nil {
			if red := env.Redactor.Redact(err.Error()); red != err.Error() {
				err = redactedError{msg: red, err: err}
			}
		}
	}
	return out, err
}

// redactedError shows a redacted message and keeps the original for
// errors.Is (a deadline, a cancellation).
type redactedError struct {
	msg string
	err error
}

func (e redactedError) Error() string { return e.msg }
func (e redactedError) Unwrap() error { return e.err }

func executeKind(ctx context.Context, s *Step, r RenderedStep, env Env) (Outcome, error) {
	k := kindOf(s.Config)
	if k == nil {
		return Outcome{}, fmt.Errorf("step %q has no kind", s.Name)
	}
	return k.execute(ctx, s.Config, r, env)
}

// redactSlack is how far past its limit output is kept until it has been
// redacted. Cutting first could split a secret at the limit and keep its
// head, which no redactor would then recognise; a secret longer than this
// that straddles the limit can still leave its head.
const redactSlack = 4 << 10

// boundedBuffer keeps the first max+redactSlack bytes written and counts
// the rest. It is redacted as a whole (text), never per Write: a program
// may print a secret in pieces.
type boundedBuffer struct {
	buf     bytes.Buffer
	max     int
	dropped int
	// uncounted: the source was not read to its end, so the note on
	// what was cut gives no number.
	uncounted bool
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	room := b.max + redactSlack - b.buf.Len()
	if room > 0 {
		b.buf.Write(p[:min(room, len(p))])
	}
	if len(p) > room {
		b.dropped += len(p) - max(room, 0)
	}
	return len(p), nil
}

// text returns the output trimmed, with every value red knows masked, and
// only then cut to max bytes (at a character boundary), with a note of how
// much was not kept.
func (b *boundedBuffer) text(red Redactor) string {
	s := strings.TrimSpace(b.buf.String())
	if red != nil {
		s = red.Redact(s)
	}
	dropped := b.dropped
	if len(s) > b.max {
		cut := b.max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		dropped += len(s) - cut
		s = s[:cut]
	}
	switch {
	case dropped > 0 && b.uncounted:
		return s + "\n… more bytes not kept"
	case dropped > 0:
		return fmt.Sprintf("%s\n… %d more bytes not kept", s, dropped)
	}
	return s
}

type runIDKey struct{}

// WithRunID marks ctx as carrying a step of the given run (a notify step's
// message names its run).
func WithRunID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, runIDKey{}, id)
}

// RunIDFrom is the run a Pager call comes from, "" outside a run.
func RunIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(runIDKey{}).(string)
	return id
}
