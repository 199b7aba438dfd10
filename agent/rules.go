package agent

import (
	"context"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/prometheus/promql"

	"github.com/vigil-project/vigil/agent/config"
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
	re.manager = rules.NewManager(rules.Options{Store: re.store, Engine: re.engine, Scrape: re.scrape, Logger: a.log})
	return re
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
