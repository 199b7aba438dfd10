// Package checkstate holds the configured checks and what the agent knows
// of them: the running config, each check's job fingerprint and its last
// result. It builds the scheduler jobs (Jobs) but keeps none: the
// scheduler owns them. The rule engine asks it whether the checks are warm,
// pages read the state of the check an alert is about, the API and status
// page read the config and last results.
package checkstate

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-project/vigil/agent/config"
	"github.com/vigil-project/vigil/agent/lastrun"
	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/agent/scheduler"
	"github.com/vigil-project/vigil/probes"
)

// State is safe for concurrent use.
//
// Per check it keeps an index entry, a fingerprint and a pointer: at
// thousands of checks it holds no copy of the scheduler's jobs (their
// probers live in the scheduler's runners) and no map of last results.
type State struct {
	mu sync.RWMutex
	// started, ranSinceStart and warm tell the rule engine when the checks
	// have produced data since start (Warm).
	started       time.Time
	ranSinceStart map[string]bool
	warm          atomic.Bool
	cfg           *config.Config
	// checks indexes cfg.Checks by name; fps and last are in the order of
	// cfg.Checks: each check's job fingerprint and last result (nil before
	// its first).
	checks map[string]int
	fps    []scheduler.Fingerprint
	last   []*lastrun.Result
}

// New returns the state of a freshly started agent.
func New(cfg *config.Config, jobs []scheduler.Job) *State {
	s := &State{started: time.Now(), ranSinceStart: map[string]bool{}}
	s.Set(cfg, jobs)
	return s
}

// Set installs a (re)loaded config and the fingerprints of its jobs. It
// returns the checks whose series are stale: removed ones (their last
// result is forgotten) and changed ones (a changed type or label set would
// otherwise leave the old series behind; they re-create theirs on their
// next run).
func (s *State) Set(cfg *config.Config, jobs []scheduler.Job) (stale []string) {
	checks := make(map[string]int, len(cfg.Checks))
	for i, c := range cfg.Checks {
		checks[c.Name] = i
	}
	fps := make([]scheduler.Fingerprint, len(cfg.Checks))
	for _, j := range jobs {
		if i, ok := checks[j.Name]; ok {
			fps[i] = j.Fingerprint
		}
	}
	last := make([]*lastrun.Result, len(cfg.Checks))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg != nil {
		for i, c := range s.cfg.Checks {
			j, ok := checks[c.Name]
			if !ok || fps[j] != s.fps[i] {
				stale = append(stale, c.Name)
			}
			if ok {
				last[j] = s.last[i]
			}
		}
	}
	s.cfg, s.checks, s.fps, s.last = cfg, checks, fps, last
	return stale
}

// Config is the running config.
func (s *State) Config() *config.Config {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cfg
}

// Checks are the running config's checks in config order.
func (s *State) Checks() []config.Check {
	return s.Config().Checks
}

// Check is a configured check (the zero Check for an unknown name).
func (s *State) Check(name string) config.Check {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if i, ok := s.checks[name]; ok {
		return s.cfg.Checks[i]
	}
	return config.Check{}
}

// Last is a check's last result (from the store until it runs again).
func (s *State) Last(name string) (probes.Result, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if r := s.lastOf(name); r != nil {
		return r.Result(), true
	}
	return probes.Result{}, false
}

// Outcome says whether a check has a last result and whether it passed,
// without copying the result: pages and the API filter thousands of checks
// by it.
func (s *State) Outcome(name string) (ran, success bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if r := s.lastOf(name); r != nil {
		return true, r.Success
	}
	return false, false
}

// lastOf is a check's last result, nil before its first or for a name
// that is not a configured check; s.mu is held.
func (s *State) lastOf(name string) *lastrun.Result {
	if i, ok := s.checks[name]; ok {
		return s.last[i]
	}
	return nil
}

// FailingDependency names the dependency that explains a failure of the
// check: following depends_on, the deepest check whose last run failed —
// the root cause when a chain fails together (tax network down, so the
// gateway check fails, so invoice_sync fails). "" when every dependency's
// last run passed, or it has none.
func (s *State) FailingDependency(check string) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	seen := map[string]bool{check: true}
	var root func(name string) string
	root = func(name string) string {
		i, ok := s.checks[name]
		if !ok {
			return ""
		}
		for _, dep := range s.cfg.Checks[i].DependsOn {
			if seen[dep] {
				continue
			}
			seen[dep] = true
			if r := s.lastOf(dep); r != nil && !r.Success {
				if deeper := root(dep); deeper != "" {
					return deeper
				}
				return dep
			}
		}
		return ""
	}
	return root(check)
}

// Restore seeds last results read from the store at start.
func (s *State) Restore(last map[string]probes.Result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, r := range last {
		if i, ok := s.checks[name]; ok {
			s.last[i] = lastrun.From(r)
		}
	}
}

// Record keeps a check's new result, which must not be modified
// afterwards (the exporter holds the same one). A result of a check that
// a reload has just removed is dropped.
func (s *State) Record(name string, r *lastrun.Result) {
	s.mu.Lock()
	if i, ok := s.checks[name]; ok {
		s.last[i] = r
	}
	s.mu.Unlock()
}

// MarkRan notes that a check's result has reached the exporter: only then
// may the rules treat the check as warm. Marking it earlier lets a
// restarted agent evaluate an empty series, resolve a restored firing
// alert and page it again.
func (s *State) MarkRan(name string) {
	if s.warm.Load() {
		return
	}
	s.mu.Lock()
	if s.ranSinceStart != nil {
		s.ranSinceStart[name] = true
	}
	s.mu.Unlock()
}

// Warm reports whether every check has run since the agent started (or the
// warm-up has taken longer than start-up splay plus the longest timeout):
// rules then see data, not the empty store of a fresh start.
func (s *State) Warm() bool {
	if s.warm.Load() {
		return true
	}
	if !s.warming() {
		return false
	}
	s.warm.Store(true)
	// Warm for good: which checks ran is not needed any more.
	s.mu.Lock()
	s.ranSinceStart = nil
	s.mu.Unlock()
	return true
}

// warming is Warm's test.
func (s *State) warming() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	splay := time.Duration(s.cfg.Global.StartupSplay)
	limit := splay + 5*time.Second
	for _, c := range s.cfg.Checks {
		limit = max(limit, splay+time.Duration(c.Timeout)+5*time.Second)
	}
	if time.Since(s.started) <= limit {
		for _, c := range s.cfg.Checks {
			if !s.ranSinceStart[c.Name] {
				return false
			}
		}
	}
	return true
}

// LabelSets are the labels each check's series and alerts carry (check,
// type, the check's labels and the global ones): what a silence can be
// about even when no series of the check is stored.
func (s *State) LabelSets(context.Context) []map[string]string {
	cfg := s.Config()
	out := make([]map[string]string, 0, len(cfg.Checks))
	for _, c := range cfg.Checks {
		set := map[string]string{"check": c.Name, "type": c.Type}
		for k, v := range cfg.Global.Labels {
			set[k] = v
		}
		for k, v := range c.Labels {
			set[k] = v
		}
		out = append(out, set)
	}
	return out
}

// ExternalLabels are the config's global labels.
func (s *State) ExternalLabels() map[string]string {
	return s.Config().Global.Labels
}

// CheckInfo is the last result of a configured check, for pages; nil for
// a name that is not a configured check.
func (s *State) CheckInfo(name string) *notify.CheckInfo {
	if name == "" {
		return nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	i, ok := s.checks[name]
	if !ok {
		return nil
	}
	c := s.cfg.Checks[i]
	r := s.last[i]
	if r == nil {
		return &notify.CheckInfo{Name: name, Type: c.Type}
	}
	return &notify.CheckInfo{Name: name, Type: c.Type, Success: r.Success, Reason: string(r.Reason), Message: notify.Truncate(r.Message, 500),
		Diagnostics: DiagnosticLines(r.Diagnostics)}
}

// DiagnosticLines renders diagnostics one line each (hops one per line),
// at most 40 lines.
func DiagnosticLines(d map[string]any) []string {
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		// Lists (traceroute hops, violations) one element per line; hops
		// print through their String method.
		if v := reflect.ValueOf(d[k]); v.Kind() == reflect.Slice && v.Type().Elem().Kind() != reflect.Uint8 {
			for i := range v.Len() {
				out = append(out, fmt.Sprintf("%s: %v", k, v.Index(i).Interface()))
			}
			continue
		}
		out = append(out, fmt.Sprintf("%s: %v", k, d[k]))
	}
	if len(out) > 40 {
		out = append(out[:40], fmt.Sprintf("… %d more lines", len(out)-40))
	}
	return out
}
