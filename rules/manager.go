package rules

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
)

// Options configure a Manager.
type Options struct {
	Store  *Store
	Engine *promql.Engine
	// Scrape refreshes the store with the agent's current metrics before
	// a group is evaluated.
	Scrape func(time.Time)
	// DefaultInterval is the interval of groups that set none.
	DefaultInterval time.Duration
	ExternalLabels  map[string]string
	ExternalURL     string
	Notifier        Notifier
	// ResendDelay is how often a firing alert is sent again (default 1m).
	ResendDelay time.Duration
	// State persists alerts so a restart keeps `for` timers and does not
	// page again; nil keeps them in memory only.
	State StateStore
	// Ready holds back rule evaluation until the inputs are there (the
	// agent's checks have run since start), so restored alerts are not
	// resolved by the empty store of a fresh start. Nil means always.
	Ready func() bool
	// Relabel, when set, may add labels to an alert's label set before its
	// identity is taken (the agent marks the alerts a drill causes with
	// drill="true" and the drill's id); nil leaves them as they are.
	Relabel func(labels.Labels) labels.Labels
	// OnStateChange, when set, hears of every alert state change after
	// the evaluation that made it (the agent logs them).
	OnStateChange func(StateChange)
	Logger        *slog.Logger
}

// StateStore persists alert state by rule key.
type StateStore interface {
	SaveAlerts(ctx context.Context, ruleKey string, alerts []Alert) error
	LoadAlerts(ctx context.Context) (map[string][]Alert, error)
	KeepRules(ctx context.Context, keys []string) error
}

// Group is a rule group as loaded from a file.
type Group struct {
	Name     string
	File     string
	Interval time.Duration
	Limit    int
	Rules    []any // *AlertingRule or *RecordingRule

	mu       sync.Mutex
	lastEval time.Time
	evalD    time.Duration
}

// Manager evaluates rule groups over the store.
type Manager struct {
	opts Options
	mu   sync.RWMutex
	// groups by file and name.
	groups map[string]*Group
	// wake restarts the loops after an update.
	update chan struct{}
	// force makes the next loop evaluate every group (EvaluateSoon), at
	// most once a second (lastForced, Run's own).
	force      atomic.Bool
	lastForced time.Time
	// restored is the persisted state read at the first Update, handed to
	// the rules it belongs to once.
	restored map[string][]Alert
	loaded   bool
}

// NewManager returns a manager without groups.
func NewManager(opts Options) *Manager {
	if opts.ResendDelay <= 0 {
		opts.ResendDelay = time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Notifier == nil {
		opts.Notifier = LogNotifier{Logger: opts.Logger}
	}
	return &Manager{opts: opts, groups: map[string]*Group{}, update: make(chan struct{}, 1)}
}

var ruleParser = parser.NewParser(parser.Options{})

// LoadFiles parses rule files (globs, relative to baseDir) into groups
// without touching the running ones. Every problem is returned.
func LoadFiles(baseDir string, patterns []string, defaultInterval time.Duration, external map[string]string, externalURL string, log *slog.Logger) ([]*Group, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var files []string
	for _, p := range patterns {
		if !filepath.IsAbs(p) {
			p = filepath.Join(baseDir, p)
		}
		m, err := filepath.Glob(p)
		if err != nil {
			return nil, fmt.Errorf("rule_files %q: %w", p, err)
		}
		files = append(files, m...)
	}
	sort.Strings(files)
	var groups []*Group
	var errs []error
	for _, f := range files {
		rgs, perrs := rulefmt.ParseFile(f, false, model.UTF8Validation, ruleParser, log)
		if len(perrs) > 0 {
			errs = append(errs, perrs...)
			continue
		}
		gs, err := buildGroups(f, rgs, defaultInterval, external, externalURL, log)
		groups = append(groups, gs...)
		errs = append(errs, err)
	}
	return groups, errors.Join(errs...)
}

// ParseGroups parses rule-file text that did not come from a file (rules
// the agent generates, e.g. SLO burn-rate alerts); name stands for the
// file in errors, rule keys and the rules API.
func ParseGroups(name string, content []byte, defaultInterval time.Duration, external map[string]string, externalURL string, log *slog.Logger) ([]*Group, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rgs, perrs := rulefmt.Parse(content, false, model.UTF8Validation, ruleParser, log)
	if len(perrs) > 0 {
		return nil, fmt.Errorf("%s: %w", name, errors.Join(perrs...))
	}
	return buildGroups(name, rgs, defaultInterval, external, externalURL, log)
}

// buildGroups turns parsed rule groups of file f into groups to evaluate.
func buildGroups(f string, rgs *rulefmt.RuleGroups, defaultInterval time.Duration, external map[string]string, externalURL string, log *slog.Logger) ([]*Group, error) {
	var (
		groups []*Group
		errs   []error
	)
	for _, rg := range rgs.Groups {
		g := &Group{Name: rg.Name, File: f, Interval: time.Duration(rg.Interval), Limit: rg.Limit}
		if g.Interval == 0 {
			g.Interval = defaultInterval
		}
		for _, r := range rg.Rules {
			expr, err := ruleParser.ParseExpr(r.Expr)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: group %q: %w", f, rg.Name, err))
				continue
			}
			lbls := labels.FromMap(mergeMaps(rg.Labels, r.Labels))
			if r.Record != "" {
				g.Rules = append(g.Rules, &RecordingRule{name: r.Record, expr: expr, labels: lbls})
				continue
			}
			g.Rules = append(g.Rules, &AlertingRule{name: r.Alert, expr: expr, holdDuration: time.Duration(r.For),
				keepFiringFor: time.Duration(r.KeepFiringFor), labels: lbls, annotations: labels.FromMap(r.Annotations),
				external: external, externalURL: externalURL, log: log, active: map[uint64]*Alert{}})
		}
		groups = append(groups, g)
	}
	return groups, errors.Join(errs...)
}

func mergeMaps(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// key identifies a rule across reloads: unchanged rules keep their alerts.
func ruleKey(g *Group, r any) string {
	switch r := r.(type) {
	case *AlertingRule:
		return fmt.Sprintf("%s|%s|alert|%s|%s|%s|%s|%s|%s", g.File, g.Name, r.name, r.expr, r.holdDuration, r.keepFiringFor, r.labels, r.annotations)
	case *RecordingRule:
		return fmt.Sprintf("%s|%s|record|%s|%s|%s", g.File, g.Name, r.name, r.expr, r.labels)
	}
	return ""
}

// Update replaces the groups; alerting rules unchanged by the reload keep
// their active alerts (so `for` timers continue), and every unchanged rule
// the series it last wrote (so they are marked stale when they go).
func (m *Manager) Update(groups []*Group) {
	if m.opts.State != nil && !m.loaded {
		m.loaded = true
		rs, err := m.opts.State.LoadAlerts(context.Background())
		if err != nil {
			m.opts.Logger.Error("alert state not restored", "err", err)
		}
		m.restored = rs
	}
	m.mu.Lock()
	old := map[string]any{}
	for _, g := range m.groups {
		for _, r := range g.Rules {
			old[ruleKey(g, r)] = r
		}
	}
	m.groups = map[string]*Group{}
	var keys []string
	for _, g := range groups {
		for _, r := range g.Rules {
			if prev := old[ruleKey(g, r)]; prev != nil && prev != r {
				ps := statusOf(prev)
				ps.mu.Lock()
				returned := ps.returned
				ps.mu.Unlock()
				st := statusOf(r)
				st.mu.Lock()
				st.returned = returned
				st.mu.Unlock()
			}
			a, ok := r.(*AlertingRule)
			if !ok {
				continue
			}
			a.key = ruleKey(g, a)
			a.relabel = m.opts.Relabel
			keys = append(keys, a.key)
			if prev, _ := old[a.key].(*AlertingRule); prev != nil {
				prev.mu.Lock()
				a.active, a.saved = prev.active, prev.saved
				prev.mu.Unlock()
				continue
			}
			if rs, ok := m.restored[a.key]; ok {
				for i := range rs {
					al := rs[i]
					a.active[al.Labels.Hash()] = &al
				}
				delete(m.restored, a.key)
				m.opts.Logger.Info("alert state restored", "alert", a.name, "alerts", len(rs))
			}
		}
		m.groups[g.File+"\xff"+g.Name] = g
	}
	m.mu.Unlock()
	if m.opts.State != nil {
		if err := m.opts.State.KeepRules(context.Background(), keys); err != nil {
			m.opts.Logger.Error("alert state of removed rules not dropped", "err", err)
		}
	}
	select {
	case m.update <- struct{}{}:
	default:
	}
}

// Groups returns the current groups, sorted by file and name.
func (m *Manager) Groups() []*Group {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]*Group, 0, len(m.groups))
	for _, g := range m.groups {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].File != out[j].File {
			return out[i].File < out[j].File
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// EvaluateSoon has Run evaluate every group now rather than at its next
// interval: the agent calls it when a check's result changes, so a failure
// starts its alert's `for` at once instead of up to an interval later.
func (m *Manager) EvaluateSoon() {
	m.force.Store(true)
	select {
	case m.update <- struct{}{}:
	default:
	}
}

// Run evaluates every group on its interval until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		now := time.Now()
		ready := m.opts.Ready == nil || m.opts.Ready()
		force := ready && m.force.Swap(false)
		if force && now.Sub(m.lastForced) < time.Second {
			// Results changing in a burst: evaluate at the next tick.
			m.force.Store(true)
			force = false
		} else if force {
			m.lastForced = now
		}
		for _, g := range m.Groups() {
			if !ready {
				break
			}
			g.mu.Lock()
			due := force || g.lastEval.IsZero() || now.Sub(g.lastEval) >= g.Interval
			g.mu.Unlock()
			if due {
				m.EvalGroup(ctx, g, now)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-m.update:
		}
	}
}

func (m *Manager) query(ctx context.Context, q string, ts time.Time) (promql.Vector, error) {
	qry, err := m.opts.Engine.NewInstantQuery(ctx, m.opts.Store, nil, q, ts)
	if err != nil {
		return nil, err
	}
	defer qry.Close()
	res := qry.Exec(ctx)
	if res.Err != nil {
		return nil, res.Err
	}
	switch v := res.Value.(type) {
	case promql.Vector:
		return v, nil
	case promql.Scalar:
		return promql.Vector{promql.Sample{T: v.T, F: v.V}}, nil
	default:
		return nil, fmt.Errorf("rule result is not a vector or scalar")
	}
}

// EvalGroup evaluates one group at ts: its rules in order, each seeing the
// results of the ones before.
func (m *Manager) EvalGroup(ctx context.Context, g *Group, ts time.Time) {
	start := time.Now()
	if m.opts.Scrape != nil {
		m.opts.Scrape(ts)
	}
	var send []*Alert
	for _, r := range g.Rules {
		var vec promql.Vector
		var err error
		switch r := r.(type) {
		case *RecordingRule:
			vec, err = r.Eval(ctx, ts, m.query)
			if err == nil && g.Limit > 0 && len(vec) > g.Limit {
				// As in Prometheus: a rule producing more series than the
				// group's limit fails as a whole and records nothing.
				err = fmt.Errorf("exceeded limit of %d with %d series", g.Limit, len(vec))
				r.fail(err)
				vec = nil
			}
		case *AlertingRule:
			vec, err = r.Eval(ctx, ts, m.query)
			if err == nil && g.Limit > 0 {
				// As in Prometheus: more pending and firing alerts than the
				// group's limit clears the rule's alerts — none is sent,
				// kept or recorded — and fails the rule until it is back
				// under the limit.
				if n := r.clearOverLimit(g.Limit); n > 0 {
					err = fmt.Errorf("exceeded limit of %d with %d alerts", g.Limit, n)
					r.fail(err)
					vec = nil
					m.persist(ctx, r)
				}
			}
			if err == nil {
				send = append(send, r.toSend(ts, m.opts.ResendDelay)...)
				m.persist(ctx, r)
			}
			for _, c := range r.takeChanges() {
				if err == nil && m.opts.OnStateChange != nil {
					m.opts.OnStateChange(c)
				}
			}
		}
		if err != nil {
			m.opts.Logger.Warn("rule evaluation failed", "group", g.Name, "file", g.File, "err", err)
			continue
		}
		m.record(g, statusOf(r), vec, ts)
	}
	if len(send) > 0 {
		m.opts.Notifier.Send(send)
	}
	g.mu.Lock()
	g.lastEval, g.evalD = ts, time.Since(start)
	g.mu.Unlock()
}

// record appends a rule's result to the store: floats, and native
// histograms (a recording rule over histograms yields them) as histograms.
// As in Prometheus, a series the rule wrote last time and not now gets a
// stale marker: a recorded series, or the ALERTS series of an alert no
// longer pending, ends at once instead of lingering for the lookback.
func (m *Manager) record(g *Group, st *status, vec promql.Vector, ts time.Time) {
	returned := make(map[uint64]labels.Labels, len(vec))
	for _, s := range vec {
		if s.H == nil {
			m.opts.Store.Append(s.Metric, ts.UnixMilli(), s.F)
		} else if err := m.opts.Store.AppendHistogram(s.Metric, ts.UnixMilli(), s.H); err != nil {
			m.opts.Logger.Warn("rule result not recorded", "group", g.Name, "file", g.File, "err", err)
			continue
		}
		returned[s.Metric.Hash()] = s.Metric
	}
	st.mu.Lock()
	prev := st.returned
	st.returned = returned
	st.mu.Unlock()
	for h, lset := range prev {
		if _, ok := returned[h]; !ok {
			m.opts.Store.MarkStale(lset, ts.UnixMilli())
		}
	}
}

// persist saves a rule's alerts when they changed since the last save.
func (m *Manager) persist(ctx context.Context, r *AlertingRule) {
	if m.opts.State == nil {
		return
	}
	alerts := r.Alerts()
	sig := signature(alerts)
	r.mu.Lock()
	same := sig == r.saved
	r.mu.Unlock()
	if same {
		return
	}
	if err := m.opts.State.SaveAlerts(ctx, r.key, alerts); err != nil {
		m.opts.Logger.Error("alert state not saved", "alert", r.name, "err", err)
		return
	}
	r.mu.Lock()
	r.saved = sig
	r.mu.Unlock()
}

// signature changes whenever anything persisted about the alerts does.
func signature(as []Alert) string {
	parts := make([]string, 0, len(as))
	for _, a := range as {
		parts = append(parts, fmt.Sprintf("%d|%s|%d|%d|%d|%d|%d|%s", a.Labels.Hash(), a.State, a.ActiveAt.UnixNano(),
			a.FiredAt.UnixNano(), a.ResolvedAt.UnixNano(), a.LastSentAt.UnixNano(), a.KeepFiringSince.UnixNano(), a.Annotations))
	}
	sort.Strings(parts)
	return fmt.Sprint(parts)
}

// LogNotifier logs alerts; the stand-in until a real notifier is set.
type LogNotifier struct{ Logger *slog.Logger }

// Send logs each alert.
func (n LogNotifier) Send(alerts []*Alert) {
	for _, a := range alerts {
		state := a.State.String()
		if a.State == StateInactive {
			state = "resolved"
		}
		n.Logger.Info("alert", "state", state, "alertname", a.Labels.Get(labels.AlertName), "labels", a.Labels.String(), "value", a.Value)
	}
}
