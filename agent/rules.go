package agent

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"

	"github.com/vigil-project/vigil/agent/config"
	"github.com/vigil-project/vigil/agent/store"
	"github.com/vigil-project/vigil/rules"
)

// ruleEngine is the agent's rule side: its own metrics scraped into a
// sample store, the PromQL engine, and the rule manager.
type ruleEngine struct {
	store    *rules.Store
	engine   *promql.Engine
	manager  *rules.Manager
	scrapeMu sync.Mutex
	scraper  *rules.Scraper

	mu        sync.Mutex
	interval  time.Duration
	retention time.Duration
}

func newRuleEngine(a *Agent) *ruleEngine {
	re := &ruleEngine{
		store:  rules.NewStore(),
		engine: promql.NewEngine(promql.EngineOpts{MaxSamples: 50_000_000, Timeout: 2 * time.Minute, LookbackDelta: 5 * time.Minute}),
	}
	re.scraper = rules.NewScraper(re.store, a.exporter.WritePrometheus)
	re.manager = rules.NewManager(rules.Options{Store: re.store, Engine: re.engine, Scrape: re.scrape, Logger: a.log,
		State: alertState{st: a.store}, Ready: a.checksWarm, Notifier: a.pager, Relabel: a.drills.relabel})
	return re
}

// checksWarm reports whether every check has run since the agent started
// (or the warm-up has taken longer than start-up splay plus the longest
// timeout): rules then see data, not the empty store of a fresh start.
func (a *Agent) checksWarm() bool {
	if a.warm.Load() {
		return true
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	limit := time.Duration(a.cfg.Global.StartupSplay) + 5*time.Second
	for _, j := range a.jobs {
		limit = max(limit, time.Duration(a.cfg.Global.StartupSplay)+j.Timeout+5*time.Second)
	}
	if time.Since(a.started) <= limit {
		for _, j := range a.jobs {
			if !a.ranSinceStart[j.Name] {
				return false
			}
		}
	}
	a.warm.Store(true)
	return true
}

// LoadRules parses the config's rule files (relative to the config file).
func LoadRules(cfg *config.Config) ([]*rules.Group, error) {
	if len(cfg.RuleFiles) == 0 {
		return nil, nil
	}
	base := "."
	if cfg.File != config.DefaultFile {
		base = filepath.Dir(cfg.File)
	}
	return rules.LoadFiles(base, cfg.RuleFiles, time.Duration(cfg.Global.EvaluationInterval), cfg.Global.Labels, "", nil)
}

// apply installs groups and the config's timing.
func (re *ruleEngine) apply(cfg *config.Config, groups []*rules.Group) {
	re.mu.Lock()
	re.interval, re.retention = time.Duration(cfg.Global.EvaluationInterval), time.Duration(cfg.Global.SampleRetention)
	re.mu.Unlock()
	re.manager.Update(groups)
}

// scrape appends the agent's current metrics to the store.
func (re *ruleEngine) scrape(ts time.Time) {
	re.scrapeMu.Lock()
	defer re.scrapeMu.Unlock()
	re.scraper.Scrape(ts)
}

// run scrapes every evaluation interval (so queries see fresh data even
// without rules), drops samples past the retention, and runs the groups.
func (re *ruleEngine) run(ctx context.Context) {
	go re.manager.Run(ctx)
	for {
		re.mu.Lock()
		interval, retention := re.interval, re.retention
		re.mu.Unlock()
		now := time.Now()
		re.scrape(now)
		re.store.Truncate(now.Add(-retention).UnixMilli())
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

// alertState adapts the agent's SQLite store to the rule manager.
type alertState struct{ st *store.Store }

func (s alertState) SaveAlerts(ctx context.Context, key string, alerts []rules.Alert) error {
	rows := make([]store.AlertRow, 0, len(alerts))
	for _, a := range alerts {
		lb, _ := json.Marshal(a.Labels.Map())
		an, _ := json.Marshal(a.Annotations.Map())
		rows = append(rows, store.AlertRow{Labels: string(lb), Annotations: string(an), State: a.State.String(), Value: a.Value,
			ActiveAt: msOrZero(a.ActiveAt), FiredAt: msOrZero(a.FiredAt), ResolvedAt: msOrZero(a.ResolvedAt),
			LastSentAt: msOrZero(a.LastSentAt), KeepFiringSince: msOrZero(a.KeepFiringSince)})
	}
	return s.st.SaveAlerts(ctx, key, rows)
}

func (s alertState) LoadAlerts(ctx context.Context) (map[string][]rules.Alert, error) {
	rows, err := s.st.LoadAlerts(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string][]rules.Alert{}
	for key, rs := range rows {
		for _, r := range rs {
			var lb, an map[string]string
			if json.Unmarshal([]byte(r.Labels), &lb) != nil || json.Unmarshal([]byte(r.Annotations), &an) != nil {
				continue
			}
			out[key] = append(out[key], rules.Alert{State: rules.ParseState(r.State), Labels: labels.FromMap(lb),
				Annotations: labels.FromMap(an), Value: r.Value, ActiveAt: timeOrZero(r.ActiveAt), FiredAt: timeOrZero(r.FiredAt),
				ResolvedAt: timeOrZero(r.ResolvedAt), LastSentAt: timeOrZero(r.LastSentAt), KeepFiringSince: timeOrZero(r.KeepFiringSince)})
		}
	}
	return out, nil
}

func (s alertState) KeepRules(ctx context.Context, keys []string) error {
	return s.st.KeepAlertRules(ctx, keys)
}

func msOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func timeOrZero(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}
