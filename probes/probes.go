// Package probes defines the contract between the scheduler and the check
// families: a Prober measures one thing and reports a Result; it never decides
// whether to page. Families register themselves from init() in one Registry,
// which both config validation and dispatch read.
package probes

import (
	"context"
	"log/slog"
	"time"
)

// Prober runs one check. The deadline comes only from ctx; a prober must
// return promptly once ctx is done.
type Prober interface {
	Probe(ctx context.Context, log *slog.Logger) Result
}

// Diagnoser is implemented by probers that can explain a failure further,
// such as a traceroute to the host that did not answer. The scheduler calls
// Diagnose after a failed run with a budget of its own, so diagnostics never
// eat into the check's timeout; the returned entries are merged into the
// result's Diagnostics.
type Diagnoser interface {
	Diagnose(ctx context.Context, log *slog.Logger, failed Result) map[string]any
}

// Runner is implemented by streaming probers that work between runs, such
// as logscan reading its files continuously. The scheduler calls Run once
// when the check starts, with a context that ends when the check is
// removed or changed or the agent stops; Run returns after saving its
// state. Probe then evaluates what Run has gathered.
type Runner interface {
	Run(ctx context.Context, log *slog.Logger)
}

// Collector is implemented by probers whose values change between runs
// (logscan's counters): the agent reads them at every scrape instead of
// from the last Result.
type Collector interface {
	Collect() []Value
}

// ProberFunc adapts a function to Prober.
type ProberFunc func(ctx context.Context, log *slog.Logger) Result

// Probe calls f.
func (f ProberFunc) Probe(ctx context.Context, log *slog.Logger) Result { return f(ctx, log) }

// Result is what one run of a check found.
type Result struct {
	Success bool
	// Reason is empty on success and one of the Reason constants otherwise.
	Reason Reason
	// Message is for humans; it may contain details such as paths but never secrets.
	Message string
	// Phases are per-phase durations in the order they ran.
	Phases []Phase
	// Values are exported as metrics (family series such as vigil_host_load1).
	Values []Value
	// Diagnostics are structured details for the API and UI, e.g. traceroute hops.
	Diagnostics map[string]any

	// Start and Duration are filled in by the scheduler.
	Start    time.Time
	Duration time.Duration
}

// Phase is the duration of one step of a probe.
type Phase struct {
	Name     string
	Duration time.Duration
}

// Label is one name/value pair of a Value. Values must come from a bounded
// set (a configured process name, a mount point), never raw errors or input.
type Label struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Value is one measurement exported as a metric. Name is the full metric
// name including the vigil_ prefix; the agent adds the check's labels.
type Value struct {
	Name   string  `json:"name"`
	Labels []Label `json:"labels,omitempty"`
	Value  float64 `json:"value"`
	// Key marks values worth showing in one-line summaries (vigil once).
	Key bool `json:"key,omitempty"`
	// Counter marks a monotonically increasing total (exported with
	// `# TYPE counter`); values are gauges otherwise.
	Counter bool `json:"counter,omitempty"`
}

// Failf returns a failed Result with the given reason and message.
func Failf(reason Reason, format string, args ...any) Result {
	return Result{Reason: reason, Message: sprintf(format, args...)}
}

// AddPhase appends a phase measured from start until now.
func (r *Result) AddPhase(name string, start time.Time) {
	r.Phases = append(r.Phases, Phase{Name: name, Duration: time.Since(start)})
}

// AddValue appends a metric value.
func (r *Result) AddValue(name string, v float64, labels ...Label) {
	r.Values = append(r.Values, Value{Name: name, Value: v, Labels: labels})
}

// AddKeyValue appends a metric value that summaries show.
func (r *Result) AddKeyValue(name string, v float64, labels ...Label) {
	r.Values = append(r.Values, Value{Name: name, Value: v, Labels: labels, Key: true})
}
