package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	vm "github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"

	"github.com/vigil-project/vigil/agent/config"
	"github.com/vigil-project/vigil/agent/drill"
	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/agent/runbook"
	"github.com/vigil-project/vigil/agent/scheduler"
	"github.com/vigil-project/vigil/agent/store"
	"github.com/vigil-project/vigil/probes"
	"github.com/vigil-project/vigil/rules"
)

// LoadDrills reads the config's drill files and checks them against the
// configured checks. Names must be unique.
func LoadDrills(cfg *config.Config) ([]*drill.Drill, error) {
	files, err := expandGlobs(cfg, "drills", cfg.Drills)
	if err != nil {
		return nil, err
	}
	byName := map[string]string{}
	var out []*drill.Drill
	for _, f := range files {
		d, err := drill.Load(f)
		if err != nil {
			return nil, err
		}
		if prev, dup := byName[d.Name]; dup {
			return nil, fmt.Errorf("%s: drill %q is also defined in %s", f, d.Name, prev)
		}
		byName[d.Name] = f
		if err := d.Validate(checkKnown(cfg)); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

func checkKnown(cfg *config.Config) func(string) bool {
	return func(name string) bool {
		return slices.ContainsFunc(cfg.Checks, func(c config.Check) bool { return c.Name == name })
	}
}

// ErrDrillActive is returned when a drill is asked for while one runs.
var ErrDrillActive = errors.New("a drill is already running on this agent")

// errAborted is the cause of a drill cancelled through the API.
type errAborted struct{ by string }

func (e errAborted) Error() string { return "aborted by " + e.by }

// drills runs one drill at a time on this agent and marks what it causes.
type drills struct {
	a       *Agent
	metrics *vm.Set

	mu        sync.Mutex
	loaded    []*drill.Drill
	active    *activeDrill
	simulated map[string]drill.Simulate // check → the active drill's simulated failure
	wg        sync.WaitGroup
	// ctx is the agent's run context (set by Agent.Run): drills outlive
	// the API request that started them.
	ctx context.Context
}

type activeDrill struct {
	run    *drill.Run
	cancel context.CancelCauseFunc
}

func newDrills(a *Agent, loaded []*drill.Drill) *drills {
	d := &drills{a: a, metrics: vm.NewSet(), simulated: map[string]drill.Simulate{}}
	d.metrics.NewGauge("vigil_drill_active", func() float64 {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.active != nil {
			return 1
		}
		return 0
	})
	d.set(loaded)
	return d
}

func (d *drills) set(loaded []*drill.Drill) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.loaded = loaded
	for _, dr := range loaded {
		for _, st := range []string{drill.StatePassed, drill.StateFailed, drill.StateAborted, drill.StateInterrupted} {
			d.metrics.GetOrCreateCounter(fmt.Sprintf(`vigil_drill_runs_total{drill=%q,result=%q}`, dr.Name, st))
		}
	}
}

func (d *drills) byName(name string) *drill.Drill {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, dr := range d.loaded {
		if dr.Name == name {
			return dr
		}
	}
	return nil
}

func (d *drills) list() []*drill.Drill {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.loaded)
}

// current returns the running drill, if any.
func (d *drills) current() *drill.Run {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.active == nil {
		return nil
	}
	return d.active.run
}

// override answers for checks a drill simulates (scheduler.Options.Override).
func (d *drills) override(job *scheduler.Job) (probes.Result, bool) {
	d.mu.Lock()
	s, ok := d.simulated[job.Name]
	var id string
	if d.active != nil {
		id = d.active.run.ID
	}
	d.mu.Unlock()
	if !ok {
		return probes.Result{}, false
	}
	msg := s.Message
	if msg == "" {
		msg = "failure simulated by a drill; the target was not contacted"
	}
	r := probes.Failf(s.Reason, "%s (drill %s)", msg, id)
	r.Diagnostics = map[string]any{"drill_id": id}
	return r, true
}

// relabel marks alerts about the running drill's checks with drill="true"
// and its id (rules.Options.Relabel): pages go the drill route and the
// runbook runs they start carry the marks too.
func (d *drills) relabel(ls labels.Labels) labels.Labels {
	run := d.current()
	if run == nil || !slices.Contains(run.Drill.Checks, ls.Get("check")) {
		return ls
	}
	b := labels.NewBuilder(ls)
	b.Set("drill", "true")
	b.Set("drill_id", run.ID)
	return b.Labels()
}

// onResult hands check results to the running drill.
func (d *drills) onResult(check string, r probes.Result) {
	if run := d.current(); run != nil {
		run.OnResult(check, r)
	}
}

// start runs dr in the background and returns its id.
func (d *drills) start(dr *drill.Drill, by string) (string, error) {
	d.mu.Lock()
	ctx := d.ctx
	d.mu.Unlock()
	if ctx == nil {
		return "", errors.New("the agent is not running")
	}
	d.a.mu.RLock()
	cfg := d.a.cfg
	d.a.mu.RUnlock()
	if err := dr.Validate(checkKnown(cfg)); err != nil {
		return "", err
	}
	d.mu.Lock()
	if d.active != nil {
		id := d.active.run.ID
		d.mu.Unlock()
		return "", fmt.Errorf("%w (%s)", ErrDrillActive, id)
	}
	id := newDrillID()
	run := drill.NewRun(id, dr, d.env())
	rctx, cancel := context.WithCancelCause(ctx)
	d.active = &activeDrill{run: run, cancel: cancel}
	d.mu.Unlock()
	row := store.DrillRow{ID: id, Drill: dr.Name, State: drill.StateRunning, StartedAt: time.Now(), Spec: dr.Source}
	if err := d.a.store.SaveDrillRun(ctx, row); err != nil {
		d.mu.Lock()
		d.active = nil
		d.mu.Unlock()
		cancel(nil)
		return "", err
	}
	d.a.log.Info("drill started", "drill", dr.Name, "id", id, "by", by)
	prog := &progress{d: d, row: row}
	run.OnUpdate = prog.save
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer cancel(nil)
		rep := run.Execute(rctx)
		prog.stop()
		d.mu.Lock()
		d.active = nil
		clear(d.simulated)
		d.mu.Unlock()
		d.finish(row, rep)
	}()
	return id, nil
}

// finish keeps the report in the store and writes it to the reports
// directory as Markdown and JSON.
func (d *drills) finish(row store.DrillRow, rep drill.Report) {
	js, _ := json.MarshalIndent(rep, "", "  ")
	row.State, row.FinishedAt, row.Report = rep.State, rep.FinishedAt, string(js)
	ctx := context.Background()
	if err := d.a.store.SaveDrillRun(ctx, row); err != nil {
		d.a.log.Error("drill report not stored", "drill", rep.Drill, "id", rep.ID, "err", err)
	}
	d.metrics.GetOrCreateCounter(fmt.Sprintf(`vigil_drill_runs_total{drill=%q,result=%q}`, rep.Drill, rep.State)).Inc()
	for m, v := range rep.Measures {
		d.metrics.GetOrCreateGauge(fmt.Sprintf(`vigil_drill_last_measure_seconds{drill=%q,measure=%q}`, rep.Drill, m), nil).Set(v)
	}
	dir := d.reportsDir()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		d.a.log.Error("drill report not written", "dir", dir, "err", err)
	} else {
		base := filepath.Join(dir, rep.Drill+"-"+rep.ID)
		for path, data := range map[string][]byte{base + ".md": []byte(rep.Markdown()), base + ".json": js} {
			if err := os.WriteFile(path, data, 0o640); err != nil {
				d.a.log.Error("drill report not written", "path", path, "err", err)
			}
		}
	}
	d.a.log.Info("drill finished", "drill", rep.Drill, "id", rep.ID, "result", rep.State, "aborted", rep.Aborted,
		"measures", rep.Measures, "reports", dir)
}

func (d *drills) reportsDir() string {
	d.a.mu.RLock()
	dir := d.a.cfg.DrillReportsDir
	d.a.mu.RUnlock()
	if dir == "" {
		dir = filepath.Join(filepath.Dir(d.a.opts.StoragePath), "drill-reports")
	}
	return dir
}

// abort stops the running drill (its rollback runs).
func (d *drills) abort(id, by string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.active == nil || d.active.run.ID != id {
		return fmt.Errorf("drill run %q is not running", id)
	}
	d.active.cancel(errAborted{by: by})
	return nil
}

// recover runs the rollback of drills a dead agent left running — the
// rollback always runs — and marks them interrupted.
func (d *drills) recover(ctx context.Context) {
	rows, err := d.a.store.DrillRuns(ctx, "", 100, drill.StateRunning)
	if err != nil {
		d.a.log.Error("unfinished drills not checked", "err", err)
		return
	}
	const why = "the agent stopped during this drill; its rollback ran at the next start"
	for _, row := range rows {
		// The report as last saved while the drill ran (the timeline up to
		// the stop); the pages and runbook runs are read again from the
		// outbox and the journal, which may have gone further.
		var saved drill.Report
		if row.Report != "" {
			if err := json.Unmarshal([]byte(row.Report), &saved); err != nil {
				d.a.log.Warn("saved report of an interrupted drill unreadable; rebuilding from the journal alone", "id", row.ID, "err", err)
				saved = drill.Report{}
			}
		}
		if saved.ID != row.ID {
			saved = drill.Report{ID: row.ID, Drill: row.Drill, StartedAt: row.StartedAt}
		}
		var rep drill.Report
		dr, err := drill.Parse(row.Drill+" (as run)", []byte(row.Spec))
		if err != nil {
			rep = saved
			rep.State, rep.FinishedAt, rep.Aborted = drill.StateInterrupted, time.Now(), why
			rep.Problems = append(rep.Problems, "rollback not run: the stored drill does not parse: "+err.Error())
		} else {
			rep = drill.Resume(row.ID, dr, d.env(), saved).Interrupted(ctx, why)
		}
		d.a.log.Warn("drill interrupted by a restart; rollback ran", "drill", row.Drill, "id", row.ID, "problems", rep.Problems)
		d.finish(row, rep)
	}
}

// progress saves a running drill's report whenever it changes, so a drill
// the agent dies in keeps its timeline (recover rebuilds the rest from the
// journal and the outbox). Once the final report is saved no late update
// may overwrite it.
type progress struct {
	d   *drills
	row store.DrillRow

	mu   sync.Mutex
	last string
	done bool
}

func (p *progress) save(rep drill.Report) {
	js, err := json.Marshal(rep)
	if err != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done || string(js) == p.last {
		return
	}
	p.last = string(js)
	row := p.row
	row.Report = p.last
	if err := p.d.a.store.SaveDrillRun(context.Background(), row); err != nil {
		p.d.a.log.Warn("drill progress not saved", "id", row.ID, "err", err)
	}
}

// stop ends saving: the final report follows.
func (p *progress) stop() {
	p.mu.Lock()
	p.done = true
	p.mu.Unlock()
}

func (d *drills) env() drill.Env {
	a := d.a
	return drill.Env{
		RunCheck: a.sched.RunNow,
		Steps:    runbook.Env{HTTP: &http.Client{}, Redactor: a.secrets},
		Simulate: func(id string, s drill.Simulate) {
			d.mu.Lock()
			defer d.mu.Unlock()
			for _, c := range s.Checks {
				d.simulated[c] = s
			}
		},
		Unsimulate: func(string) {
			d.mu.Lock()
			defer d.mu.Unlock()
			clear(d.simulated)
		},
		Alerts: func() []drill.AlertInfo {
			var out []drill.AlertInfo
			for _, g := range a.rules.manager.Groups() {
				for _, r := range g.Rules {
					ar, ok := r.(*rules.AlertingRule)
					if !ok {
						continue
					}
					for _, al := range ar.Alerts() {
						out = append(out, drill.AlertInfo{Labels: al.Labels.Map(), State: al.State.String(), ActiveAt: al.ActiveAt, FiredAt: al.FiredAt})
					}
				}
			}
			return out
		},
		Pages: func(ctx context.Context, id string, since time.Time) ([]drill.Page, error) {
			ds, err := a.store.Delivered(ctx, `"drill_id":"`+id+`"`, since)
			var out []drill.Page
			for _, d := range ds {
				var m notify.Message
				if json.Unmarshal(d.Payload, &m) != nil {
					continue
				}
				p := drill.Page{Target: d.Target, DoneAt: d.DoneAt, Status: "resolved"}
				for _, al := range m.Alerts {
					if al.Labels["drill_id"] != id {
						continue
					}
					p.Alerts = append(p.Alerts, al.Labels[labels.AlertName])
					if !al.Resolved(d.DoneAt) {
						p.Status = "firing"
					}
				}
				out = append(out, p)
			}
			return out, err
		},
		Runs: func(ctx context.Context, id string, since time.Time) ([]drill.RunInfo, error) {
			rows, err := a.store.Runs(ctx, 200)
			if err != nil {
				return nil, err
			}
			var out []drill.RunInfo
			for _, row := range rows {
				var lbls map[string]string
				if row.CreatedAt.Before(since) || json.Unmarshal([]byte(row.Labels), &lbls) != nil || lbls["drill_id"] != id {
					continue
				}
				_, evs, err := a.store.Run(ctx, row.ID)
				if err != nil {
					return nil, err
				}
				out = append(out, drill.RunInfo{Row: row, Events: evs})
			}
			slices.Reverse(out) // oldest first
			return out, nil
		},
		Query: func(ctx context.Context, expr string) (int, error) {
			q, err := a.rules.engine.NewInstantQuery(ctx, a.rules.store, nil, expr, time.Now())
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
		},
	}
}

func newDrillID() string { return runbook.NewID() }
