package runbook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Checker runs a configured check now (the agent's scheduler).
type Checker interface {
	RunCheck(ctx context.Context, name string) (success bool, reason, message string, err error)
}

// Pager sends a runbook's message through a paging receiver.
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
	switch {
	case s.HTTP != nil:
		return doHTTP(ctx, s.HTTP, r, env)
	case s.Exec != nil:
		return doExec(ctx, s.Exec, r, env)
	case s.Check != nil:
		return doCheck(ctx, s.Check, env)
	case s.Wait != nil:
		t := time.NewTimer(time.Duration(*s.Wait))
		defer t.Stop()
		select {
		case <-ctx.Done():
			return Outcome{}, ctx.Err()
		case <-t.C:
			return Outcome{}, nil
		}
	case s.Notify != nil:
		if env.Pager == nil {
			return Outcome{}, errors.New("no paging receivers configured")
		}
		return Outcome{}, env.Pager.NotifyReceiver(ctx, s.Notify.Receiver, "runbook: "+s.Name, r.Message)
	case s.Approve != nil:
		if env.Approved == nil {
			return Outcome{}, errors.New("approvals are not available")
		}
		ok, err := env.Approved(ctx)
		if err != nil {
			return Outcome{}, err
		}
		if !ok {
			return Outcome{}, errors.New("rejected")
		}
		return Outcome{Output: "approved"}, nil
	}
	return Outcome{}, fmt.Errorf("step %q has no kind", s.Name)
}

func doHTTP(ctx context.Context, h *HTTPStep, r RenderedStep, env Env) (Outcome, error) {
	var body io.Reader
	if r.Body != "" {
		body = strings.NewReader(r.Body)
	}
	req, err := http.NewRequestWithContext(ctx, h.Method, r.URL, body)
	if err != nil {
		return Outcome{}, fmt.Errorf("build request: %w", err)
	}
	for k, v := range r.Headers {
		req.Header.Set(k, v)
	}
	if r.Body != "" && req.Header.Get("Content-Type") == "" {
		if json := strings.TrimSpace(r.Body); strings.HasPrefix(json, "{") || strings.HasPrefix(json, "[") {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	if h.IdempotencyKey {
		req.Header.Set("Idempotency-Key", env.RunID+"-"+r.Name)
	}
	if env.Fencing > 0 {
		req.Header.Set(h.FencingHeader, strconv.FormatInt(env.Fencing, 10))
	}
	client := env.HTTP
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return Outcome{}, err
	}
	defer resp.Body.Close()
	// Only what is kept is read: a large body is not drained to count it.
	out := &boundedBuffer{max: maxHTTPOutput, uncounted: true}
	io.Copy(out, io.LimitReader(resp.Body, maxHTTPOutput+redactSlack+1))
	o := Outcome{Status: resp.StatusCode, Output: out.text(env.Redactor)}
	if !slices.Contains(h.ExpectStatus, resp.StatusCode) {
		return o, fmt.Errorf("status %d, expected %v", resp.StatusCode, h.ExpectStatus)
	}
	return o, nil
}

// maxHTTPOutput bounds the response body an http step keeps.
const maxHTTPOutput = 4 << 10

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

// doCheck runs the check until it passed Successes times in a row, within
// Within (or once).
func doCheck(ctx context.Context, c *CheckStep, env Env) (Outcome, error) {
	if env.Checker == nil {
		return Outcome{}, errors.New("checks are not available")
	}
	if c.Within > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(c.Within))
		defer cancel()
	}
	streak, runs := 0, 0
	var last string
	for {
		ok, reason, msg, err := env.Checker.RunCheck(ctx, c.Name)
		runs++
		switch {
		case err != nil:
			return Outcome{Output: last}, fmt.Errorf("run check %s: %w", c.Name, err)
		case ok:
			streak++
			last = fmt.Sprintf("%s passed (%d/%d in a row, %d runs)", c.Name, streak, c.Successes, runs)
		default:
			streak = 0
			last = fmt.Sprintf("%s failed: %s: %s", c.Name, reason, msg)
		}
		if streak >= c.Successes {
			return Outcome{Output: last}, nil
		}
		if c.Successes <= 1 {
			return Outcome{Output: last}, errors.New(last)
		}
		t := time.NewTimer(time.Duration(c.Interval))
		select {
		case <-ctx.Done():
			t.Stop()
			return Outcome{Output: last}, fmt.Errorf("%s did not pass %d times in a row within %s: %s", c.Name, c.Successes, c.Within, last)
		case <-t.C:
		}
	}
}
