package agent

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"sort"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-project/vigil/agent/config"
	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/agent/runbook"
)

// LoadRunbooks reads the config's runbook files. Names must be unique, and
// the checks and receivers their steps name must be configured.
func LoadRunbooks(cfg *config.Config) ([]*runbook.Runbook, error) {
	if len(cfg.Runbooks) == 0 {
		return nil, nil
	}
	files, err := expandGlobs(cfg, "runbooks", cfg.Runbooks)
	if err != nil {
		return nil, err
	}
	known := runbook.Known{Checks: map[string]bool{}, Receivers: map[string]bool{}}
	for _, c := range cfg.Checks {
		known.Checks[c.Name] = true
	}
	for _, r := range cfg.Notify.Receivers {
		known.Receivers[r.Name] = true
	}
	byName := map[string]string{}
	var out []*runbook.Runbook
	for _, f := range files {
		rb, err := runbook.Load(f)
		if err != nil {
			return nil, err
		}
		if prev, dup := byName[rb.Name]; dup {
			return nil, fmt.Errorf("%s: runbook %q is also defined in %s", f, rb.Name, prev)
		}
		byName[rb.Name] = f
		if err := rb.CheckRefs(known); err != nil {
			return nil, err
		}
		out = append(out, rb)
	}
	for _, rb := range out {
		if rb.OnResolve != "" {
			if _, ok := byName[rb.OnResolve]; !ok {
				return nil, fmt.Errorf("%s: on_resolve names runbook %q, which is not loaded", rb.File, rb.OnResolve)
			}
		}
	}
	return out, nil
}

// expandGlobs expands a config's file globs (relative to the config file),
// sorted.
func expandGlobs(cfg *config.Config, key string, globs []string) ([]string, error) {
	base := "."
	if cfg.File != config.DefaultFile {
		base = filepath.Dir(cfg.File)
	}
	var files []string
	for _, g := range globs {
		if !filepath.IsAbs(g) {
			g = filepath.Join(base, g)
		}
		m, err := filepath.Glob(g)
		if err != nil {
			return nil, fmt.Errorf("%s: bad glob %q: %w", key, g, err)
		}
		files = append(files, m...)
	}
	sort.Strings(files)
	return files, nil
}

// runbookChecker runs checks for runbook steps through the scheduler.
type runbookChecker struct{ a *Agent }

func (c runbookChecker) RunCheck(ctx context.Context, name string) (bool, string, string, error) {
	r, err := c.a.sched.RunNow(ctx, name)
	if err != nil {
		return false, "", "", err
	}
	return r.Success, string(r.Reason), r.Message, nil
}

// runbookPager sends a runbook's notify step to a receiver through the
// outbox, as an alert named RunbookNotification.
type runbookPager struct{ p *pager }

func (rp runbookPager) NotifyReceiver(ctx context.Context, receiver, title, message string) error {
	return rp.send(ctx, receiver, receiver, title, message, nil)
}

// NotifyDrill sends a drill's runbook message to the drill receiver, never
// to the receiver the step names; without a drill receiver it is dropped
// and counted, as drill alerts are.
func (rp runbookPager) NotifyDrill(ctx context.Context, drillID, receiver, title, message string) error {
	rp.p.mu.RLock()
	to := rp.p.plan.drill
	rp.p.mu.RUnlock()
	if to == "" {
		rp.p.a.exporter.Inc("vigil_notify_drill_dropped_total")
		return nil
	}
	return rp.send(ctx, to, receiver, title, message, map[string]string{"drill": "true", "drill_id": drillID})
}

func (rp runbookPager) send(ctx context.Context, to, receiver, title, message string, extra map[string]string) error {
	rp.p.mu.RLock()
	plan := rp.p.plan
	rp.p.mu.RUnlock()
	targets := plan.receivers[to]
	if len(targets) == 0 {
		return fmt.Errorf("receiver %q is not configured", to)
	}
	now := time.Now()
	lbls := map[string]string{labels.AlertName: "RunbookNotification", "receiver": receiver}
	for k, v := range extra {
		lbls[k] = v
	}
	a := notify.Alert{Labels: lbls, Annotations: map[string]string{"summary": title, "description": message},
		StartsAt: now, EndsAt: now.Add(time.Minute), Fingerprint: notify.Fingerprint(lbls)}
	m := &notify.Message{Receiver: to, GroupKey: "{runbook}:" + title, Alerts: []notify.Alert{a}, ExternalURL: plan.externalURL, Created: now}
	return rp.p.outbox.Enqueue(ctx, m, to+"\x00"+m.GroupKey, targets)
}

func runbookEnv(a *Agent) runbook.Env {
	return runbook.Env{HTTP: &http.Client{}, Checker: runbookChecker{a}, Pager: runbookPager{a.pager}, Redactor: a.secrets}
}
