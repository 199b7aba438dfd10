package drill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	vm "github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-project/vigil/agent/config"
	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/agent/runbook"
	"github.com/vigil-project/vigil/agent/scheduler"
	"github.com/vigil-project/vigil/agent/store"
	"github.com/vigil-project/vigil/probes"
	"github.com/vigil-project/vigil/rules"

	"github.com/vigil-project/vigil/internal/promhelp"
)

// LoadConfigured reads the config's drill files and checks them against
// the configured checks. Names must be unique.
func LoadConfigured(cfg *config.Config) ([]*Drill, error) {
	files, err := config.ExpandGlobs(cfg, "drills", cfg.Drills.Patterns())
	if err != nil {
		return nil, err
	}
	byName := map[string]string{}
	var out []*Drill
	for _, f := range files {
		d, err := Load(f)
		if err != nil {
			return nil, err
		}
		if prev, dup := byName[d.Name]; dup {
			return nil, fmt.Errorf("%s: drill %q is also defined in %s", f, d.Name, prev)
		}
		byName[d.Name] = f
		if err := d.Validate(cfg.HasCheck); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// ErrActive is returned when a drill is asked for while one runs.
var ErrActive = errors.New("a drill is already running on this agent")

// errNotRunning is returned by Start once Run has returned.
var errNotRunning = errors.New("the agent is not running")

// errAborted is the cause of a drill cancelled through the API.
type errAborted struct{ by string }

func (e errAborted) Error() string { return "aborted by " + e.by }

// CheckRunner runs a configured check now (the scheduler).
type CheckRunner interface {
	RunNow(ctx context.Context, name string) (probes.Result, error)
}

// AlertSource lists the rule engine's pending and firing alerts.
type AlertSource interface {
	ActiveAlerts() []rules.Alert
}

// Querier evaluates a PromQL expression now and counts its result.
type Querier interface {
	Count(ctx context.Context, expr string) (int, error)
}

// PageLog lists the notifications delivered since a time (the outbox).
type PageLog interface {
	Delivered(ctx context.Context, since time.Time) ([]store.Delivery, error)
}

// RunLog is the runbook journal.
type RunLog interface {
	Runs(ctx context.Context, limit int, states ...string) ([]store.RunRow, error)
	Run(ctx context.Context, id string) (store.RunRow, []store.RunEvent, error)
}

// ReportStore keeps drill runs and their reports.
type ReportStore interface {
	SaveDrillRun(ctx context.Context, row store.DrillRow) error
	DrillRuns(ctx context.Context, drill string, limit int, states ...string) ([]store.DrillRow, error)
}

// OrchestratorOptions are the orchestrator's dependencies.
type OrchestratorOptions struct {
	Checks  CheckRunner
	Alerts  AlertSource
	Query   Querier
	Pages   PageLog
	Runs    RunLog
	Reports ReportStore
	// Steps runs inject and rollback actions (http, exec, wait).
	Steps runbook.Env
	// KnownCheck reports whether the running config has a check.
	KnownCheck func(name string) bool
	// ReportsDir is where reports are written as Markdown and JSON.
	ReportsDir func() string
	Logger     *slog.Logger
}

// Orchestrator runs one drill at a time on this agent and marks what it
// causes: checks it simulates fail in the scheduler (Override), alerts about
// its checks carry drill="true" and its id (Relabel).
type Orchestrator struct {
	opts    OrchestratorOptions
	metrics *vm.Set
	wg      sync.WaitGroup

	mu        sync.Mutex
	loaded    []*Drill
	active    *activeDrill
	simulated map[string]Simulate // check → the active drill's simulated failure
	closed    bool                // Run has returned
}

type activeDrill struct {
	run    *Run
	cancel context.CancelCauseFunc
}

// NewOrchestrator returns an orchestrator with the loaded drills; Run
// starts it.
func NewOrchestrator(opts OrchestratorOptions, loaded []*Drill) *Orchestrator {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	o := &Orchestrator{opts: opts, metrics: vm.NewSet(), simulated: map[string]Simulate{}}
	o.metrics.NewGauge("vigil_drill_active", func() float64 {
		if o.Current() != nil {
			return 1
		}
		return 0
	})
	o.Set(loaded)
	return o
}

// WritePrometheus writes the drill metrics.
func (o *Orchestrator) WritePrometheus(w io.Writer) { promhelp.Write(w, o.metrics, metricHelp) }

// metricHelp is the HELP text of the drill metrics.
var metricHelp = map[string]string{
	"vigil_drill_active":               "1 while a drill runs on this agent.",
	"vigil_drill_runs_total":           "Finished drill runs by result (passed, failed, aborted, interrupted).",
	"vigil_drill_last_measure_seconds": "The last drill run's measures: time_to_detect, time_to_page, time_to_failover, time_to_recover.",
}

// Set installs the drills of a (re)loaded config.
func (o *Orchestrator) Set(loaded []*Drill) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.loaded = loaded
	for _, dr := range loaded {
		for _, st := range []string{StatePassed, StateFailed, StateAborted, StateInterrupted} {
			o.metrics.GetOrCreateCounter(fmt.Sprintf(`vigil_drill_runs_total{drill=%q,result=%q}`, dr.Name, st))
		}
	}
}

// ByName returns a loaded drill, nil if there is none by that name.
func (o *Orchestrator) ByName(name string) *Drill {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, dr := range o.loaded {
		if dr.Name == name {
			return dr
		}
	}
	return nil
}

// List returns the loaded drills.
func (o *Orchestrator) List() []*Drill {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.loaded)
}

// Current returns the running drill, if any.
func (o *Orchestrator) Current() *Run {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.active == nil {
		return nil
	}
	return o.active.run
}

// Override answers for checks a drill simulates (scheduler.Options.Override).
func (o *Orchestrator) Override(job *scheduler.Job) (probes.Result, bool) {
	o.mu.Lock()
	s, ok := o.simulated[job.Name]
	var id string
	if o.active != nil {
		id = o.active.run.ID
	}
	o.mu.Unlock()
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

// Relabel marks alerts about the running drill's checks with drill="true"
// and its id (rules.Options.Relabel): pages go the drill route and the
// runbook runs they start carry the marks too.
func (o *Orchestrator) Relabel(ls labels.Labels) labels.Labels {
	run := o.Current()
	if run == nil || !slices.Contains(run.Drill.Checks, ls.Get("check")) {
		return ls
	}
	b := labels.NewBuilder(ls)
	b.Set("drill", "true")
	b.Set("drill_id", run.ID)
	return b.Labels()
}

// OnResult hands a check result to the running drill.
func (o *Orchestrator) OnResult(check string, r probes.Result) {
	if run := o.Current(); run != nil {
		run.OnResult(check, r)
	}
}

// Run rolls back the drills a dead agent left running, then waits until
// ctx is done. A drill's rollback always runs: at the end Run aborts the
// running drill and returns once it has finished its rollback; Start
// refuses drills from then on.
func (o *Orchestrator) Run(ctx context.Context) error {
	o.recover(ctx)
	<-ctx.Done()
	o.mu.Lock()
	o.closed = true
	if o.active != nil {
		o.active.cancel(context.Cause(ctx))
	}
	o.mu.Unlock()
	o.wg.Wait()
	return nil
}

// Start runs dr in the background and returns its id.
func (o *Orchestrator) Start(dr *Drill, by string) (string, error) {
	if err := dr.Validate(o.opts.KnownCheck); err != nil {
		return "", err
	}
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return "", errNotRunning
	}
	if o.active != nil {
		id := o.active.run.ID
		o.mu.Unlock()
		return "", fmt.Errorf("%w (%s)", ErrActive, id)
	}
	id := runbook.NewID()
	run := NewRun(id, dr, o.env())
	// The drill outlives the request that started it; Run cancels it at
	// shutdown.
	rctx, cancel := context.WithCancelCause(context.Background())
	o.active = &activeDrill{run: run, cancel: cancel}
	o.wg.Add(1)
	o.mu.Unlock()
	row := store.DrillRow{ID: id, Drill: dr.Name, State: StateRunning, StartedAt: time.Now(), Spec: dr.Source}
	if err := o.opts.Reports.SaveDrillRun(rctx, row); err != nil {
		o.mu.Lock()
		o.active = nil
		o.mu.Unlock()
		cancel(nil)
		o.wg.Done()
		return "", err
	}
	o.opts.Logger.Info("drill started", "drill", dr.Name, "id", id, "by", by)
	prog := &progress{o: o, row: row}
	run.OnUpdate = prog.save
	go func() {
		defer o.wg.Done()
		defer cancel(nil)
		rep := run.Execute(rctx)
		prog.stop()
		o.mu.Lock()
		clear(o.simulated)
		o.mu.Unlock()
		// The report is kept before the drill stops being current, so
		// whoever sees no current drill finds its final report stored.
		o.finish(row, rep)
		o.mu.Lock()
		o.active = nil
		o.mu.Unlock()
	}()
	return id, nil
}

// finish keeps the report in the store and writes it to the reports
// directory as Markdown and JSON.
func (o *Orchestrator) finish(row store.DrillRow, rep Report) {
	js, _ := json.MarshalIndent(rep, "", "  ")
	row.State, row.FinishedAt, row.Report = rep.State, rep.FinishedAt, string(js)
	if err := o.opts.Reports.SaveDrillRun(context.Background(), row); err != nil {
		o.opts.Logger.Error("drill report not stored", "drill", rep.Drill, "id", rep.ID, "err", err)
	}
	o.metrics.GetOrCreateCounter(fmt.Sprintf(`vigil_drill_runs_total{drill=%q,result=%q}`, rep.Drill, rep.State)).Inc()
	for m, v := range rep.Measures {
		o.metrics.GetOrCreateGauge(fmt.Sprintf(`vigil_drill_last_measure_seconds{drill=%q,measure=%q}`, rep.Drill, m), nil).Set(v)
	}
	dir := o.opts.ReportsDir()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		o.opts.Logger.Error("drill report not written", "dir", dir, "err", err)
	} else {
		base := filepath.Join(dir, rep.Drill+"-"+rep.ID)
		for path, data := range map[string][]byte{base + ".md": []byte(rep.Markdown()), base + ".json": js} {
			if err := os.WriteFile(path, data, 0o640); err != nil {
				o.opts.Logger.Error("drill report not written", "path", path, "err", err)
			}
		}
	}
	o.opts.Logger.Info("drill finished", "drill", rep.Drill, "id", rep.ID, "result", rep.State, "aborted", rep.Aborted,
		"measures", rep.Measures, "reports", dir)
}

// Abort stops the running drill (its rollback runs).
func (o *Orchestrator) Abort(id, by string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.active == nil || o.active.run.ID != id {
		return fmt.Errorf("drill run %q is not running", id)
	}
	o.active.cancel(errAborted{by: by})
	return nil
}

// recover runs the rollback of drills a dead agent left running — the
// rollback always runs — and marks them interrupted.
func (o *Orchestrator) recover(ctx context.Context) {
	rows, err := o.opts.Reports.DrillRuns(ctx, "", 100, StateRunning)
	if err != nil {
		o.opts.Logger.Error("unfinished drills not checked", "err", err)
		return
	}
	const why = "the agent stopped during this drill; its rollback ran at the next start"
	for _, row := range rows {
		if run := o.Current(); run != nil && run.ID == row.ID {
			continue // started since this agent did
		}
		// The report as last saved while the drill ran (the timeline up to
		// the stop); the pages and runbook runs are read again from the
		// outbox and the journal, which may have gone further.
		var saved Report
		if row.Report != "" {
			if err := json.Unmarshal([]byte(row.Report), &saved); err != nil {
				o.opts.Logger.Warn("saved report of an interrupted drill unreadable; rebuilding from the journal alone", "id", row.ID, "err", err)
				saved = Report{}
			}
		}
		if saved.ID != row.ID {
			saved = Report{ID: row.ID, Drill: row.Drill, StartedAt: row.StartedAt}
		}
		var rep Report
		dr, err := Parse(row.Drill+" (as run)", []byte(row.Spec))
		if err != nil {
			rep = saved
			rep.State, rep.FinishedAt, rep.Aborted = StateInterrupted, time.Now(), why
			rep.Problems = append(rep.Problems, "rollback not run: the stored drill does not parse: "+err.Error())
		} else {
			rep = Resume(row.ID, dr, o.env(), saved).Interrupted(ctx, why)
		}
		o.opts.Logger.Warn("drill interrupted by a restart; rollback ran", "drill", row.Drill, "id", row.ID, "problems", rep.Problems)
		o.finish(row, rep)
	}
}

// progress saves a running drill's report whenever it changes, so a drill
// the agent dies in keeps its timeline (recover rebuilds the rest from the
// journal and the outbox). Once the final report is saved no late update
// may overwrite it.
type progress struct {
	o   *Orchestrator
	row store.DrillRow

	mu   sync.Mutex
	last string
	done bool
}

func (p *progress) save(rep Report) {
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
	if err := p.o.opts.Reports.SaveDrillRun(context.Background(), row); err != nil {
		p.o.opts.Logger.Warn("drill progress not saved", "id", row.ID, "err", err)
	}
}

// stop ends saving: the final report follows.
func (p *progress) stop() {
	p.mu.Lock()
	p.done = true
	p.mu.Unlock()
}

func (o *Orchestrator) env() Env {
	return Env{
		RunCheck: o.opts.Checks.RunNow,
		Steps:    o.opts.Steps,
		Simulate: func(id string, s Simulate) {
			o.mu.Lock()
			defer o.mu.Unlock()
			for _, c := range s.Checks {
				o.simulated[c] = s
			}
		},
		Unsimulate: func(string) {
			o.mu.Lock()
			defer o.mu.Unlock()
			clear(o.simulated)
		},
		Alerts: func() []AlertInfo {
			var out []AlertInfo
			for _, al := range o.opts.Alerts.ActiveAlerts() {
				out = append(out, AlertInfo{Labels: al.Labels.Map(), State: al.State.String(), ActiveAt: al.ActiveAt, FiredAt: al.FiredAt})
			}
			return out
		},
		Pages: o.pages,
		Runs:  o.runs,
		Query: o.opts.Query.Count,
	}
}

// pages are the notifications delivered since the time that carry alerts
// of the drill: read by their decoded labels, never by matching text.
func (o *Orchestrator) pages(ctx context.Context, id string, since time.Time) ([]Page, error) {
	ds, err := o.opts.Pages.Delivered(ctx, since)
	var out []Page
	for _, d := range ds {
		var m notify.Message
		if json.Unmarshal(d.Payload, &m) != nil {
			continue
		}
		p := Page{Target: d.Target, DoneAt: d.DoneAt, Status: "resolved"}
		for _, al := range m.Alerts {
			if al.Labels["drill_id"] != id {
				continue
			}
			p.Alerts = append(p.Alerts, al.Labels[labels.AlertName])
			if !al.Resolved(d.DoneAt) {
				p.Status = "firing"
			}
		}
		if len(p.Alerts) > 0 {
			out = append(out, p)
		}
	}
	return out, err
}

// runs are the runbook runs the drill caused (labelled with its id),
// oldest first.
func (o *Orchestrator) runs(ctx context.Context, id string, since time.Time) ([]RunInfo, error) {
	rows, err := o.opts.Runs.Runs(ctx, 200)
	if err != nil {
		return nil, err
	}
	var out []RunInfo
	for _, row := range rows {
		var lbls map[string]string
		if row.CreatedAt.Before(since) || json.Unmarshal([]byte(row.Labels), &lbls) != nil || lbls["drill_id"] != id {
			continue
		}
		_, evs, err := o.opts.Runs.Run(ctx, row.ID)
		if err != nil {
			return nil, err
		}
		out = append(out, RunInfo{Row: row, Events: evs})
	}
	slices.Reverse(out) // oldest first
	return out, nil
}
