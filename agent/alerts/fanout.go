// Package alerts hands the rule engine's firing and resolved alerts to
// their consumers (paging, runbooks) without letting a slow consumer hold
// up rule evaluation: Send converts the alerts to the Alertmanager model and
// puts them on one bounded queue per consumer; one goroutine per consumer
// drains its queue. A full queue drops its oldest alerts and counts them,
// as Prometheus's notifier queue does: a firing alert is sent again at the
// rule's resend delay, so a dropped one is not lost for good.
package alerts

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"sync"

	vm "github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/rules"

	"github.com/vigil-project/vigil/internal/promhelp"
)

// Consumer takes alerts. It may block (paging writes them to the store);
// it has its own queue.
type Consumer interface {
	Alerts(ctx context.Context, alerts []notify.Alert)
}

// ConsumerFunc adapts a function to Consumer.
type ConsumerFunc func(ctx context.Context, alerts []notify.Alert)

// Alerts calls f.
func (f ConsumerFunc) Alerts(ctx context.Context, alerts []notify.Alert) { f(ctx, alerts) }

// DefaultCapacity is how many alerts a consumer's queue holds.
const DefaultCapacity = 10_000

// Options configure a Fanout.
type Options struct {
	// ExternalURL is how people reach the agent (generatorURL of alerts).
	ExternalURL func() string
	// ExternalLabels are added to every alert that lacks them.
	ExternalLabels func() map[string]string
	// CheckInfo is the state of the check an alert is about (label
	// "check"), nil when there is none.
	CheckInfo func(name string) *notify.CheckInfo
	// Capacity bounds each consumer's queue (default DefaultCapacity).
	Capacity int
	Logger   *slog.Logger
}

// Fanout is a rules.Notifier that delivers to consumers asynchronously.
type Fanout struct {
	opts    Options
	metrics *vm.Set
	queues  []*queue
}

var _ rules.Notifier = (*Fanout)(nil)

// New returns a fan-out to the named consumers.
func New(opts Options, consumers ...Named) *Fanout {
	if opts.Capacity <= 0 {
		opts.Capacity = DefaultCapacity
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	f := &Fanout{opts: opts, metrics: vm.NewSet()}
	for _, c := range consumers {
		q := &queue{name: c.Name, c: c.Consumer, capacity: opts.Capacity, wake: make(chan struct{}, 1),
			dropped: f.metrics.NewCounter(fmt.Sprintf(`vigil_alerts_dropped_total{consumer=%q}`, c.Name))}
		f.metrics.NewGauge(fmt.Sprintf(`vigil_alerts_queue_length{consumer=%q}`, c.Name), func() float64 { return float64(q.len()) })
		f.queues = append(f.queues, q)
	}
	f.metrics.NewGauge("vigil_alerts_queue_capacity", func() float64 { return float64(opts.Capacity) })
	return f
}

// Named is a consumer with the name its metrics carry.
type Named struct {
	Name     string
	Consumer Consumer
}

// Send converts the rule engine's alerts and queues them for every
// consumer. It never blocks on a consumer.
func (f *Fanout) Send(alerts []*rules.Alert) {
	if len(alerts) == 0 {
		return
	}
	ext := ""
	if f.opts.ExternalURL != nil {
		ext = f.opts.ExternalURL()
	}
	var extLabels map[string]string
	if f.opts.ExternalLabels != nil {
		extLabels = f.opts.ExternalLabels()
	}
	out := make([]notify.Alert, 0, len(alerts))
	for _, a := range alerts {
		out = append(out, f.convert(a, ext, extLabels))
	}
	for _, q := range f.queues {
		if n := q.put(out); n > 0 {
			q.dropped.Add(n)
			f.opts.Logger.Warn("alert queue full; dropped the oldest alerts", "consumer", q.name, "dropped", n, "capacity", q.capacity)
		}
	}
}

// convert maps a rule-engine alert to the Alertmanager model, with the
// agent's external labels and the state of the check it is about.
func (f *Fanout) convert(a *rules.Alert, externalURL string, extLabels map[string]string) notify.Alert {
	lbls := a.Labels.Map()
	for k, v := range extLabels {
		if _, ok := lbls[k]; !ok {
			lbls[k] = v
		}
	}
	out := notify.Alert{Labels: lbls, Annotations: a.Annotations.Map(), StartsAt: a.FiredAt,
		GeneratorURL: externalURL + "/api/v1/alerts?alertname=" + url.QueryEscape(a.Labels.Get(labels.AlertName))}
	if out.StartsAt.IsZero() {
		out.StartsAt = a.ActiveAt
	}
	if a.State == rules.StateInactive && !a.ResolvedAt.IsZero() {
		out.EndsAt = a.ResolvedAt
	} else {
		out.EndsAt = a.ValidUntil
	}
	out.Fingerprint = notify.Fingerprint(lbls)
	if f.opts.CheckInfo != nil {
		out.Check = f.opts.CheckInfo(lbls["check"])
	}
	return out
}

// Run delivers queued alerts to the consumers until ctx is done and
// returns once every consumer call has returned.
func (f *Fanout) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, q := range f.queues {
		wg.Go(func() { q.run(ctx) })
	}
	wg.Wait()
	return nil
}

// WritePrometheus writes the queue metrics.
func (f *Fanout) WritePrometheus(w io.Writer) { promhelp.Write(w, f.metrics, metricHelp) }

// metricHelp is the HELP text of the queue metrics.
var metricHelp = map[string]string{
	"vigil_alerts_queue_length":   "Rule alerts waiting for each consumer (paging, runbooks); rule evaluation never waits for them.",
	"vigil_alerts_queue_capacity": "Alerts each consumer's queue holds; past it the oldest are dropped and a firing alert is sent again at the resend delay.",
	"vigil_alerts_dropped_total":  "Rule alerts dropped from a full consumer queue.",
}

type queue struct {
	name     string
	c        Consumer
	capacity int
	wake     chan struct{}
	dropped  *vm.Counter

	mu      sync.Mutex
	pending []notify.Alert
}

// put appends alerts, dropping the oldest beyond capacity; it returns how
// many were dropped.
func (q *queue) put(alerts []notify.Alert) int {
	q.mu.Lock()
	q.pending = append(q.pending, alerts...)
	drop := len(q.pending) - q.capacity
	if drop > 0 {
		q.pending = append(q.pending[:0:0], q.pending[drop:]...)
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return max(drop, 0)
}

func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending)
}

func (q *queue) take() []notify.Alert {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.pending
	q.pending = nil
	return out
}

func (q *queue) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
		}
		if batch := q.take(); len(batch) > 0 {
			q.c.Alerts(ctx, batch)
		}
	}
}
