package rules

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/template"
)

// queryFunc runs an instant query.
type queryFunc func(ctx context.Context, q string, ts time.Time) (promql.Vector, error)

// status is what every rule reports about its last evaluation; its mutex
// also guards an alerting rule's alerts.
type status struct {
	mu     sync.Mutex
	health string
	err    error
	evalAt time.Time
	evalD  time.Duration
	// returned are the series the rule's last successful evaluation
	// wrote (by label hash): those missing from the next one are marked
	// stale.
	returned map[uint64]labels.Labels
}

// statusOf is the status of a rule.
func statusOf(r any) *status {
	switch r := r.(type) {
	case *AlertingRule:
		return &r.status
	case *RecordingRule:
		return &r.status
	}
	return nil
}

func (s *status) lastErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *status) fail(err error) {
	s.mu.Lock()
	s.err, s.health = err, "err"
	s.mu.Unlock()
}

// RecordingRule stores an expression's result as a new series.
type RecordingRule struct {
	name   string
	expr   parser.Expr
	labels labels.Labels
	status
}

// Eval runs the rule and returns the samples to append.
func (r *RecordingRule) Eval(ctx context.Context, ts time.Time, query queryFunc) (promql.Vector, error) {
	start := time.Now()
	vec, err := query(ctx, r.expr.String(), ts)
	if err == nil {
		lb := labels.NewBuilder(labels.EmptyLabels())
		for i := range vec {
			lb.Reset(vec[i].Metric)
			lb.Set(model.MetricNameLabel, r.name)
			r.labels.Range(func(l labels.Label) { lb.Set(l.Name, l.Value) })
			vec[i].Metric = lb.Labels()
		}
		if vec.ContainsSameLabelset() {
			err = fmt.Errorf("vector contains metrics with the same labelset after applying rule labels")
		}
	}
	r.mu.Lock()
	r.evalAt, r.evalD, r.err = ts, time.Since(start), err
	r.health = healthOf(err)
	r.mu.Unlock()
	return vec, err
}

func healthOf(err error) string {
	if err != nil {
		return "err"
	}
	return "ok"
}

// AlertingRule turns an expression's results into alerts.
type AlertingRule struct {
	name          string
	expr          parser.Expr
	holdDuration  time.Duration
	keepFiringFor time.Duration
	labels        labels.Labels
	annotations   labels.Labels
	external      map[string]string
	externalURL   string
	log           *slog.Logger

	// key identifies the rule in persisted state (set by Manager.Update).
	key string
	// relabel is the manager's Options.Relabel.
	relabel func(labels.Labels) labels.Labels

	status
	active map[uint64]*Alert
	saved  string // signature of the last persisted state
	// changes are the state changes of the last Eval (TakeChanges).
	changes []StateChange
}

// StateChange is an alert moving from one state to another in an
// evaluation: Inactive→Pending, Pending→Firing, Firing→Inactive (resolved)
// and Pending→Inactive (the condition cleared before `for`).
type StateChange struct {
	Alert    Alert
	From, To State
}

// takeChanges returns the state changes since the last call.
func (r *AlertingRule) takeChanges() []StateChange {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.changes
	r.changes = nil
	return c
}

// Eval evaluates the rule at ts and updates its alerts (Prometheus'
// semantics: pending until `for` has passed, firing, kept firing for
// keep_firing_for after the condition clears, resolved alerts kept 15m).
// It returns the ALERTS and ALERTS_FOR_STATE samples.
func (r *AlertingRule) Eval(ctx context.Context, ts time.Time, query queryFunc) (promql.Vector, error) {
	start := time.Now()
	res, err := query(ctx, r.expr.String(), ts)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evalAt = ts
	defer func() { r.evalD = time.Since(start) }()
	if err != nil {
		r.err, r.health = err, "err"
		return nil, err
	}

	seen := map[uint64]bool{}
	lb := labels.NewBuilder(labels.EmptyLabels())
	for _, smpl := range res {
		var data any
		expand := func(text string) string {
			// Text without an action expands to itself: most label
			// values (severity: page) skip the template engine.
			if !strings.Contains(text, "{{") {
				return text
			}
			if data == nil {
				data = template.AlertTemplateData(smpl.Metric.Map(), r.external, r.externalURL, smpl)
			}
			return r.expand(ctx, text, data, ts, query)
		}
		lb.Reset(smpl.Metric)
		lb.Del(model.MetricNameLabel)
		r.labels.Range(func(l labels.Label) { lb.Set(l.Name, expand(l.Value)) })
		lb.Set(labels.AlertName, r.name)
		lset := lb.Labels()
		if r.relabel != nil {
			lset = r.relabel(lset)
		}
		ab := labels.NewBuilder(labels.EmptyLabels())
		r.annotations.Range(func(l labels.Label) { ab.Set(l.Name, expand(l.Value)) })
		annotations := ab.Labels()

		h := lset.Hash()
		if seen[h] {
			r.err, r.health = fmt.Errorf("vector contains metrics with the same labelset after applying alert labels"), "err"
			return nil, r.err
		}
		seen[h] = true
		if a, ok := r.active[h]; ok && a.State != StateInactive {
			a.Value, a.Annotations = smpl.F, annotations
			continue
		}
		r.active[h] = &Alert{State: StatePending, Labels: lset, Annotations: annotations, Value: smpl.F, ActiveAt: ts}
		r.changes = append(r.changes, StateChange{Alert: *r.active[h], From: StateInactive, To: StatePending})
	}

	var vec promql.Vector
	for h, a := range r.active {
		if !seen[h] {
			if a.State == StateFiring && r.keepFiringFor > 0 {
				if a.KeepFiringSince.IsZero() {
					a.KeepFiringSince = ts
				}
				if ts.Sub(a.KeepFiringSince) < r.keepFiringFor {
					vec = append(vec, r.series(a, ts)...)
					continue
				}
			}
			if a.State == StatePending || (!a.ResolvedAt.IsZero() && ts.Sub(a.ResolvedAt) > resolvedRetention) {
				delete(r.active, h)
			}
			if a.State != StateInactive {
				from := a.State
				a.State, a.ResolvedAt = StateInactive, ts
				r.changes = append(r.changes, StateChange{Alert: *a, From: from, To: StateInactive})
			}
			continue
		}
		a.KeepFiringSince = time.Time{}
		if a.State == StatePending && ts.Sub(a.ActiveAt) >= r.holdDuration {
			a.State, a.FiredAt = StateFiring, ts
			r.changes = append(r.changes, StateChange{Alert: *a, From: StatePending, To: StateFiring})
		}
		vec = append(vec, r.series(a, ts)...)
	}
	r.err, r.health = nil, "ok"
	return vec, nil
}

// clearOverLimit drops every alert of the rule when more than limit are
// pending or firing, and returns how many there were (0 when within it).
func (r *AlertingRule) clearOverLimit(limit int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, a := range r.active {
		if a.State != StateInactive {
			n++
		}
	}
	if n <= limit {
		return 0
	}
	r.active = map[uint64]*Alert{}
	return n
}

func (r *AlertingRule) expand(ctx context.Context, text string, data any, ts time.Time, query queryFunc) string {
	defs := "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}"
	var u *url.URL
	if r.externalURL != "" {
		u, _ = url.Parse(r.externalURL)
	}
	tmpl := template.NewTemplateExpander(ctx, defs+text, "__alert_"+r.name, data, model.Time(timestamp.FromTime(ts)),
		template.QueryFunc(query), u, nil)
	out, err := tmpl.Expand()
	if err != nil {
		r.log.Warn("expanding alert template failed", "alert", r.name, "err", err)
		return fmt.Sprintf("<error expanding template: %s>", err)
	}
	return out
}

// series are the ALERTS and ALERTS_FOR_STATE samples of an active alert.
func (r *AlertingRule) series(a *Alert, ts time.Time) promql.Vector {
	alerts, forState := a.Series()
	return promql.Vector{
		{Metric: alerts, T: ts.UnixMilli(), F: 1},
		{Metric: forState, T: ts.UnixMilli(), F: float64(a.ActiveAt.Unix())},
	}
}

// Series are the labels of the alert's ALERTS series (value 1) and of its
// ALERTS_FOR_STATE series (value ActiveAt in Unix seconds), which an
// evaluation writes while the alert is pending or firing.
func (a *Alert) Series() (alerts, forState labels.Labels) {
	lb := labels.NewBuilder(a.Labels)
	lb.Set(model.MetricNameLabel, "ALERTS")
	lb.Set("alertstate", a.State.String())
	alerts = lb.Labels()
	lb = labels.NewBuilder(a.Labels)
	lb.Set(model.MetricNameLabel, "ALERTS_FOR_STATE")
	return alerts, lb.Labels()
}

// Alerts returns copies of the rule's active (pending, firing, recently
// resolved) alerts.
func (r *AlertingRule) Alerts() []Alert {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Alert, 0, len(r.active))
	for _, a := range r.active {
		out = append(out, *a)
	}
	return out
}

// toSend marks and returns the alerts the notifier should receive now.
func (r *AlertingRule) toSend(ts time.Time, resendDelay time.Duration) []*Alert {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*Alert
	for _, a := range r.active {
		if !a.needsSending(ts, resendDelay) {
			continue
		}
		a.LastSentAt = ts
		// Like Prometheus, a firing alert is valid for a few resend
		// periods, so receivers resolve it if the agent goes away.
		a.ValidUntil = ts.Add(4 * max(resendDelay, time.Minute))
		c := *a
		out = append(out, &c)
	}
	return out
}
