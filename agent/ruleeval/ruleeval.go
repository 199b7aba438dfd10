// Package ruleeval runs the agent's Prometheus rules: it scrapes the
// agent's own metrics into the in-memory sample store every evaluation
// interval, evaluates the loaded rule groups with the PromQL engine, and
// keeps alert state in the agent's store so a restart neither forgets `for`
// timers nor pages again. Firing and resolved alerts go to the Notifier.
package ruleeval

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"

	"github.com/vigil-project/vigil/agent/config"
	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/rules"
)

// Options are the evaluator's dependencies.
type Options struct {
	// Series are the agent's own series, the ones rules read (the
	// exporter's, read in-process).
	Series rules.Source
	// State persists alert state; nil keeps it in memory.
	State AlertStore
	// Ready holds back evaluation until the checks have run since start.
	Ready func() bool
	// Notifier receives firing and resolved alerts.
	Notifier rules.Notifier
	// Relabel may add labels to an alert before its identity is taken.
	Relabel func(labels.Labels) labels.Labels
	// ExternalLabels are added to alerts that lack them when they are paged;
	// the state-change log lines carry the fingerprint pages will have.
	ExternalLabels func() map[string]string
	Logger         *slog.Logger
}

// Evaluator is the agent's rule side: its own metrics scraped into a
// sample store, the PromQL engine, and the rule manager.
type Evaluator struct {
	opts     Options
	store    *rules.Store
	engine   *promql.Engine
	manager  *rules.Manager
	scrapeMu sync.Mutex
	scraper  *rules.Scraper
	// sel is what the scraper keeps: the loaded rules' selectors and the
	// expressions drills have queried (guarded by scrapeMu).
	sel *rules.Selection

	mu        sync.Mutex
	interval  time.Duration
	retention time.Duration
}

// New builds an evaluator with no groups; Apply installs them.
func New(opts Options) *Evaluator {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Evaluator{
		opts:   opts,
		store:  rules.NewStore(),
		engine: promql.NewEngine(promql.EngineOpts{MaxSamples: 50_000_000, Timeout: 2 * time.Minute, LookbackDelta: 5 * time.Minute}),
	}
	e.scraper = rules.NewScraper(e.store, opts.Series)
	mo := rules.Options{Store: e.store, Engine: e.engine, Scrape: e.scrape, Logger: opts.Logger,
		Ready: opts.Ready, Notifier: opts.Notifier, Relabel: opts.Relabel, OnStateChange: e.logChange}
	if opts.State != nil {
		mo.State = alertState{st: opts.State}
	}
	e.manager = rules.NewManager(mo)
	return e
}

// Load parses the config's rule files (relative to the config file).
func Load(cfg *config.Config) ([]*rules.Group, error) {
	if len(cfg.RuleFiles) == 0 {
		return nil, nil
	}
	base := "."
	if cfg.File != config.DefaultFile {
		base = filepath.Dir(cfg.File)
	}
	return rules.LoadFiles(base, cfg.RuleFiles.Patterns(), time.Duration(cfg.Global.EvaluationInterval), cfg.Global.Labels, "", nil)
}

// Apply installs groups and the config's timing.
func (e *Evaluator) Apply(cfg *config.Config, groups []*rules.Group) {
	e.mu.Lock()
	e.interval, e.retention = time.Duration(cfg.Global.EvaluationInterval), time.Duration(cfg.Global.SampleRetention)
	e.mu.Unlock()
	sel := rules.SelectionOf(groups)
	e.scrapeMu.Lock()
	e.sel = sel
	e.scraper.Select(sel)
	e.scrapeMu.Unlock()
	e.manager.Update(groups)
}

// scrape appends the agent's current metrics to the store.
func (e *Evaluator) scrape(ts time.Time) {
	e.scrapeMu.Lock()
	defer e.scrapeMu.Unlock()
	if _, err := e.scraper.Scrape(ts); err != nil {
		e.opts.Logger.Warn("rules read the agent's series", "err", err)
	}
}

// Run scrapes every evaluation interval (so queries see fresh data even
// without rules), drops samples past the retention, and runs the groups,
// until ctx is done; it returns once the rule manager has stopped, so no
// evaluation writes alert state after it.
func (e *Evaluator) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { e.manager.Run(ctx) })
	for {
		e.mu.Lock()
		interval, retention := e.interval, e.retention
		e.mu.Unlock()
		now := time.Now()
		e.scrape(now)
		e.store.Truncate(now.Add(-retention).UnixMilli())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}

// Engine is the PromQL engine.
func (e *Evaluator) Engine() *promql.Engine { return e.engine }

// Queryable is the sample store the rules read.
func (e *Evaluator) Queryable() storage.Queryable { return e.store }

// Groups are the loaded rule groups.
func (e *Evaluator) Groups() []*rules.Group { return e.manager.Groups() }

// ActiveAlerts are the pending and firing alerts of every alerting rule.
func (e *Evaluator) ActiveAlerts() []rules.Alert {
	var out []rules.Alert
	for _, g := range e.manager.Groups() {
		for _, r := range g.Rules {
			if ar, ok := r.(*rules.AlertingRule); ok {
				out = append(out, ar.Alerts()...)
			}
		}
	}
	return out
}

// AlertSeries is a rules.Source of the ALERTS and ALERTS_FOR_STATE series
// of every pending and firing alert, as the last evaluation wrote them to
// the sample store (remote write sends them with the exporter's series).
func (e *Evaluator) AlertSeries(want func(name string) bool, emit func(lset labels.Labels, v float64)) error {
	wantAlerts, wantFor := want("ALERTS"), want("ALERTS_FOR_STATE")
	if !wantAlerts && !wantFor {
		return nil
	}
	for _, a := range e.ActiveAlerts() {
		if a.State == rules.StateInactive {
			continue
		}
		alerts, forState := a.Series()
		if wantAlerts {
			emit(alerts, 1)
		}
		if wantFor {
			emit(forState, float64(a.ActiveAt.Unix()))
		}
	}
	return nil
}

// Count runs an instant query now and returns the number of elements of
// its result (a scalar counts as one).
//
// The series expr selects are kept from now on if no rule selected them:
// the first query of a new expression scrapes at once, so its current
// values are there (a range over them fills as time passes).
func (e *Evaluator) Count(ctx context.Context, expr string) (int, error) {
	e.scrapeMu.Lock()
	sel := e.sel
	e.scrapeMu.Unlock()
	if sel != nil {
		added, err := sel.AddExpr(expr)
		if err != nil {
			return 0, err
		}
		if added {
			e.scrape(time.Now())
		}
	}
	q, err := e.engine.NewInstantQuery(ctx, e.store, nil, expr, time.Now())
	if err != nil {
		return 0, err
	}
	defer q.Close()
	res := q.Exec(ctx)
	if res.Err != nil {
		return 0, res.Err
	}
	switch v := res.Value.(type) {
	case promql.Vector:
		return len(v), nil
	case promql.Scalar:
		return 1, nil
	case promql.Matrix:
		return len(v), nil
	}
	return 0, nil
}

// Sum runs an instant query at ts and returns the sum of its result's
// values (a scalar's value); ok is false when the result is empty. Unlike
// Count it adds nothing to what is scraped: the series must be selected
// by a loaded rule (SLO rules select their SLI's).
func (e *Evaluator) Sum(ctx context.Context, expr string, ts time.Time) (float64, bool, error) {
	q, err := e.engine.NewInstantQuery(ctx, e.store, nil, expr, ts)
	if err != nil {
		return 0, false, err
	}
	defer q.Close()
	res := q.Exec(ctx)
	if res.Err != nil {
		return 0, false, res.Err
	}
	switch v := res.Value.(type) {
	case promql.Vector:
		sum := 0.0
		for _, s := range v {
			sum += s.F
		}
		return sum, len(v) > 0, nil
	case promql.Scalar:
		return v.V, true, nil
	}
	return 0, false, nil
}

// EvalNow scrapes and evaluates every group once at ts, whatever their
// interval, synchronously (tests that need the rules to have seen a
// result).
func (e *Evaluator) EvalNow(ctx context.Context, ts time.Time) {
	e.scrape(ts)
	for _, g := range e.manager.Groups() {
		e.manager.EvalGroup(ctx, g, ts)
	}
}

// logChange logs an alert's state change at info level, with the
// fingerprint its pages carry (external labels included).
func (e *Evaluator) logChange(c rules.StateChange) {
	lbls := c.Alert.Labels.Map()
	if e.opts.ExternalLabels != nil {
		for k, v := range e.opts.ExternalLabels() {
			if _, ok := lbls[k]; !ok {
				lbls[k] = v
			}
		}
	}
	msg := "alert " + c.To.String()
	switch {
	case c.To == rules.StateInactive && c.From == rules.StateFiring:
		msg = "alert resolved"
	case c.To == rules.StateInactive:
		msg = "alert no longer pending"
	}
	e.opts.Logger.Info(msg, "alert", lbls[labels.AlertName], "fingerprint", notify.Fingerprint(lbls), "labels", c.Alert.Labels.String())
}

// LabelSets are the label sets alerts and silences can be about: every
// series in the sample store (ALERTS included) and, for every alerting
// rule, its name with its fixed labels (templated ones left out), so a
// silence made before an alert fires is not taken for a typo.
func (e *Evaluator) LabelSets(ctx context.Context) []map[string]string {
	var out []map[string]string
	for _, g := range e.manager.Groups() {
		for _, ri := range g.Info().Rules {
			if ri.Type != "alerting" {
				continue
			}
			set := map[string]string{labels.AlertName: ri.Name}
			ri.Labels.Range(func(l labels.Label) {
				if !strings.Contains(l.Value, "{{") {
					set[l.Name] = l.Value
				}
			})
			out = append(out, set)
		}
	}
	now := time.Now()
	q, err := e.store.Querier(now.Add(-15*time.Minute).UnixMilli(), now.UnixMilli())
	if err != nil {
		return out
	}
	defer q.Close()
	ss := q.Select(ctx, false, nil, labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, ".+"))
	for ss.Next() {
		out = append(out, ss.At().Labels().Map())
	}
	return out
}

// EvaluateSoon evaluates every group now instead of at its next interval
// (a check's result changed), at most once a second.
func (e *Evaluator) EvaluateSoon() { e.manager.EvaluateSoon() }
