package drill

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vigil-project/vigil/agent/runbook"
	"github.com/vigil-project/vigil/agent/store"
	"github.com/vigil-project/vigil/probes"
)

// Milestones, in the order a failover drill normally meets them.
const (
	MarkStarted      = "drill_started"
	MarkSteadyState  = "steady_state_verified"
	MarkInjected     = "fault_injected" // T0
	MarkFirstFailure = "first_failed_check"
	MarkPending      = "alert_pending"
	MarkFiring       = "alert_firing"
	MarkPaged        = "page_delivered"
	MarkRunbook      = "runbook_started"
	MarkSwitched     = "traffic_switched"
	MarkPassing      = "check_passing_again"
	MarkStopped      = "stop_condition_met"
	MarkAborted      = "aborted"
	MarkRemoved      = "fault_removed"
	MarkRestored     = "steady_state_restored"
)

// Measures, each from MarkInjected.
const (
	MeasureDetect   = "time_to_detect"   // → first failed check
	MeasurePage     = "time_to_page"     // → page delivered
	MeasureFailover = "time_to_failover" // → traffic switched
	MeasureRecover  = "time_to_recover"  // → check passing again
)

var measureMark = map[string]string{MeasureDetect: MarkFirstFailure, MeasurePage: MarkPaged, MeasureFailover: MarkSwitched, MeasureRecover: MarkPassing}

// Measures lists the measure names in order.
var Measures = []string{MeasureDetect, MeasurePage, MeasureFailover, MeasureRecover}

// Drill run states.
const (
	StateRunning     = "running"
	StatePassed      = "passed"
	StateFailed      = "failed"
	StateAborted     = "aborted"
	StateInterrupted = "interrupted"
)

// AlertInfo is an alert as the rule engine holds it.
type AlertInfo struct {
	Labels   map[string]string
	State    string // pending | firing | inactive
	ActiveAt time.Time
	FiredAt  time.Time
}

// RunInfo is a runbook run with its timeline.
type RunInfo struct {
	Row    store.RunRow
	Events []store.RunEvent
}

// Env is what a drill needs from the agent.
type Env struct {
	// RunCheck runs a configured check now.
	RunCheck func(ctx context.Context, name string) (probes.Result, error)
	// Steps runs http, exec and wait actions.
	Steps runbook.Env
	// Simulate makes checks fail inside the agent until Unsimulate.
	Simulate   func(drillID string, s Simulate)
	Unsimulate func(drillID string)
	// Alerts lists the rule engine's alerts.
	Alerts func() []AlertInfo
	// Pages lists notifications delivered since the time that carry the
	// drill's id; Runs the runbook runs the drill caused.
	Pages func(ctx context.Context, drillID string, since time.Time) ([]Page, error)
	Runs  func(ctx context.Context, drillID string, since time.Time) ([]RunInfo, error)
	// Query evaluates a PromQL expression now and returns how many
	// samples it produced.
	Query func(ctx context.Context, expr string) (int, error)
	// Tick is the polling period (default 250ms).
	Tick time.Duration
}

// Run is one execution of a drill.
type Run struct {
	ID    string
	Drill *Drill
	env   Env
	// OnUpdate receives a copy of the report whenever it changes.
	OnUpdate func(Report)

	mu       sync.Mutex
	rep      Report
	t0       time.Time
	failedAt map[string]time.Time // scoped check → first failure after T0
	lastOK   map[string]bool      // scoped check → its latest result passed
	stop     string               // a stop condition's reason, once met
	alerting bool                 // a drill alert is pending or firing (last poll)
}

// NewRun prepares a run of d with the given id.
func NewRun(id string, d *Drill, env Env) *Run {
	if env.Tick <= 0 {
		env.Tick = 250 * time.Millisecond
	}
	return &Run{ID: id, Drill: d, env: env, failedAt: map[string]time.Time{}, lastOK: map[string]bool{},
		rep: Report{ID: id, Drill: d.Name, Hypothesis: d.Hypothesis, State: StateRunning, Checks: d.Checks}}
}

// Report returns a copy of the current report.
func (r *Run) Report() Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rep.clone()
}

func (r *Run) update(f func(*Report)) {
	r.mu.Lock()
	f(&r.rep)
	rep := r.rep.clone()
	r.mu.Unlock()
	if r.OnUpdate != nil {
		r.OnUpdate(rep)
	}
}

// mark records a milestone once (the first time it happens).
func (r *Run) mark(name string, at time.Time, detail string) {
	r.update(func(rep *Report) {
		for _, m := range rep.Marks {
			if m.Name == name {
				return
			}
		}
		rep.Marks = append(rep.Marks, Mark{Name: name, At: at, Detail: detail})
		slices.SortStableFunc(rep.Marks, func(a, b Mark) int { return a.At.Compare(b.At) })
	})
}

func (r *Run) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.update(func(rep *Report) { rep.Problems = append(rep.Problems, msg) })
}

func (r *Run) has(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.rep.Marks {
		if m.Name == name {
			return true
		}
	}
	return false
}

// OnResult takes every check result the agent produces while the drill
// runs: failures and recoveries of the drill's checks are milestones, and
// a failing stop-condition check stops the drill.
func (r *Run) OnResult(check string, res probes.Result) {
	r.mu.Lock()
	t0 := r.t0
	r.mu.Unlock()
	if t0.IsZero() || res.Start.Before(t0) {
		return
	}
	at := res.Start.Add(res.Duration)
	if slices.Contains(r.Drill.Checks, check) {
		r.mu.Lock()
		_, failed := r.failedAt[check]
		first := !res.Success && !failed
		if first {
			r.failedAt[check] = at
		}
		r.lastOK[check] = res.Success
		// Passing again: every check that failed has passed since.
		back := len(r.failedAt) > 0
		for c := range r.failedAt {
			back = back && r.lastOK[c]
		}
		r.mu.Unlock()
		if first {
			r.mark(MarkFirstFailure, at, fmt.Sprintf("%s: %s: %s", check, res.Reason, res.Message))
		}
		if back {
			r.mark(MarkPassing, at, check+" passes")
		}
	}
	for _, sc := range r.Drill.StopConditions {
		if sc.Check == check && !res.Success {
			r.mu.Lock()
			if r.stop == "" {
				r.stop = fmt.Sprintf("%s: %s: %s", sc, res.Reason, res.Message)
			}
			r.mu.Unlock()
		}
	}
}

// Execute runs the drill: steady state, inject, observe until recovered,
// stopped, aborted (ctx cancelled, with the cause) or the duration is
// over; then the rollback — always — and the steady state again.
func (r *Run) Execute(ctx context.Context) Report {
	started := time.Now()
	r.update(func(rep *Report) { rep.StartedAt = started })
	r.mark(MarkStarted, started, "")
	aborted := ""
	injected := r.steadyBefore(ctx)
	if !injected {
		aborted = "the steady state did not hold before the fault; nothing was injected"
	} else if err := r.inject(ctx); err != nil {
		aborted = err.Error()
	}
	if aborted == "" {
		aborted = r.observe(ctx)
	}
	if aborted != "" {
		r.mark(MarkAborted, time.Now(), aborted)
	}
	// The rollback always runs, with its own time, even when ctx ended.
	rctx := context.WithoutCancel(ctx)
	r.rollback(rctx)
	if stopping(ctx) {
		r.problem("the agent stopped during the drill: the rollback ran, the steady state was not verified")
	} else {
		r.steadyAfter(rctx)
		r.settleRunbooks(rctx)
	}
	return r.finish(aborted)
}

func (r *Run) steadyBefore(ctx context.Context) bool {
	for _, c := range r.Drill.SteadyState.Checks {
		res, err := r.env.RunCheck(ctx, c)
		if err != nil {
			r.problem("steady state before the fault: %s: %v", c, err)
			return false
		}
		if !res.Success {
			r.problem("steady state before the fault: %s fails: %s: %s", c, res.Reason, res.Message)
			return false
		}
	}
	r.mark(MarkSteadyState, time.Now(), fmt.Sprintf("%d check(s) pass", len(r.Drill.SteadyState.Checks)))
	return true
}

// inject runs the inject actions. T0 is when the first one starts: a
// fault made of several actions (a fault, then traffic, then a wait) can
// be noticed before the last is done, and a detection must never come out
// earlier than the fault.
func (r *Run) inject(ctx context.Context) error {
	t0 := time.Now()
	r.mu.Lock()
	r.t0 = t0
	r.mu.Unlock()
	for i := range r.Drill.Inject {
		a := &r.Drill.Inject[i]
		if err := r.action(ctx, "inject", i, a); err != nil {
			return fmt.Errorf("inject %q failed: %w", a.Name, err)
		}
	}
	r.mark(MarkInjected, t0, fmt.Sprintf("%d action(s) done in %s", len(r.Drill.Inject), time.Since(t0).Round(time.Millisecond)))
	return nil
}

// action runs one inject or rollback action and records it.
func (r *Run) action(ctx context.Context, phase string, i int, a *Action) error {
	start := time.Now()
	var err error
	if a.Simulate != nil {
		r.env.Simulate(r.ID, *a.Simulate)
	} else {
		j := &actionJournal{}
		env := r.env.Steps
		env.RunID = r.ID
		step := a.Step
		step.OnFailure = runbook.Abort
		rb := &runbook.Runbook{Name: r.Drill.Name, Mode: runbook.Enforce, Steps: []runbook.Step{step}}
		_, err = runbook.Execute(ctx, rb, runbook.Data{Runbook: r.Drill.Name, Run: r.ID}, env, j, runbook.ExecOptions{})
		if err == nil && ctx.Err() != nil {
			err = ctx.Err()
		}
	}
	ar := ActionResult{Phase: phase, Index: i, Name: a.Name, At: start, Took: time.Since(start)}
	if err != nil {
		ar.Error = err.Error()
	}
	r.update(func(rep *Report) { rep.Actions = append(rep.Actions, ar) })
	return err
}

type actionJournal struct{}

func (actionJournal) StepStarted(context.Context, string, int, int, runbook.RenderedStep, bool) error {
	return nil
}

func (actionJournal) StepFinished(context.Context, string, int, int, runbook.Outcome, error, time.Duration) error {
	return nil
}

// observe polls the real events until the drill is done; it returns why it
// was aborted, or "".
func (r *Run) observe(ctx context.Context) string {
	deadline := r.t0.Add(time.Duration(r.Drill.Duration))
	t := time.NewTicker(r.env.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if stopping(ctx) {
				return "the agent stopped"
			}
			return context.Cause(ctx).Error()
		case <-t.C:
		}
		r.poll(ctx)
		if reason := r.stopReason(ctx); reason != "" {
			r.mark(MarkStopped, time.Now(), reason)
			return "stop condition: " + reason
		}
		if r.done() {
			return ""
		}
		if time.Now().After(deadline) {
			return ""
		}
	}
}

// stopping: ctx ended without a cause of its own, i.e. the agent is
// shutting down (an abort through the API cancels with its reason).
func stopping(ctx context.Context) bool {
	return ctx.Err() != nil && errors.Is(context.Cause(ctx), context.Canceled)
}

// done: for a failover drill, the checks pass again and the page is out
// — or can no longer come, the drill's alerts having resolved before their
// group was due (the runbook was faster than group_wait); for a drill
// without failover (its checks recover only once the fault is removed),
// the fault was detected and, when the drill expects a page, paged — the
// rollback then ends it and recovery is measured after.
func (r *Run) done() bool {
	paged := r.Drill.Objectives.PageWithin == 0 || r.has(MarkPaged)
	if r.Drill.Objectives.FailoverWithin > 0 || r.Drill.FailoverStep != "" {
		r.mu.Lock()
		alerting := r.alerting
		r.mu.Unlock()
		return r.has(MarkPassing) && (paged || !alerting)
	}
	return r.has(MarkFirstFailure) && paged
}

func (r *Run) stopReason(ctx context.Context) string {
	r.mu.Lock()
	stop := r.stop
	r.mu.Unlock()
	if stop != "" {
		return stop
	}
	for _, sc := range r.Drill.StopConditions {
		if sc.Expr == "" || r.env.Query == nil {
			continue
		}
		n, err := r.env.Query(ctx, sc.Expr)
		if err != nil {
			if ctx.Err() == nil {
				r.problem("stop condition %s: %v", sc, err)
			}
			continue
		}
		if n > 0 {
			return sc.String()
		}
	}
	return ""
}

// poll reads alerts, pages and runbook runs carrying the drill's id.
func (r *Run) poll(ctx context.Context) {
	if r.env.Alerts != nil {
		alerting := false
		defer func() {
			r.mu.Lock()
			r.alerting = alerting
			r.mu.Unlock()
		}()
		for _, a := range r.env.Alerts() {
			if a.Labels["drill_id"] != r.ID {
				continue
			}
			alerting = alerting || a.State == "pending" || a.State == "firing"
			name := a.Labels["alertname"]
			if !a.ActiveAt.IsZero() {
				r.mark(MarkPending, a.ActiveAt, name)
			}
			if !a.FiredAt.IsZero() {
				r.mark(MarkFiring, a.FiredAt, name)
			}
		}
	}
	since := r.startedAt()
	if r.env.Pages != nil {
		pages, err := r.env.Pages(ctx, r.ID, since)
		if err != nil && ctx.Err() == nil {
			r.problem("reading pages: %v", err)
		}
		for _, p := range pages {
			if p.isPage() {
				r.mark(MarkPaged, p.DoneAt, p.Target+": "+strings.Join(p.Alerts, ", "))
			}
		}
		r.update(func(rep *Report) { rep.Pages = pages })
	}
	if r.env.Runs != nil {
		runs, err := r.env.Runs(ctx, r.ID, since)
		if err != nil && ctx.Err() == nil {
			r.problem("reading runbook runs: %v", err)
		}
		var views []RunbookRun
		for _, run := range runs {
			r.mark(MarkRunbook, run.Row.CreatedAt, run.Row.Runbook+" "+run.Row.ID)
			if at, name, ok := switched(run.Events, r.Drill.FailoverStep); ok {
				r.mark(MarkSwitched, at, run.Row.Runbook+": "+name)
			}
			views = append(views, RunbookRun{ID: run.Row.ID, Runbook: run.Row.Runbook, State: run.Row.State, Error: run.Row.Error, CreatedAt: run.Row.CreatedAt})
		}
		r.update(func(rep *Report) { rep.Runbooks = views })
	}
}

func (r *Run) startedAt() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rep.StartedAt
}

// switched finds when the failover step (by name; default the first step
// of the run) finished successfully.
func switched(evs []store.RunEvent, step string) (time.Time, string, bool) {
	names := map[int]string{}
	for _, ev := range evs {
		if ev.Phase != "step" {
			continue
		}
		switch ev.Kind {
		case "step_start":
			names[ev.Step] = ev.Name
		case "step_end":
			name := names[ev.Step]
			if ev.Error == "" && (step == "" && ev.Step == 0 || step != "" && name == step) {
				return ev.At, name, true
			}
		}
	}
	return time.Time{}, "", false
}

func (r *Run) rollback(ctx context.Context) {
	for i := range r.Drill.Rollback {
		a := &r.Drill.Rollback[i]
		if err := r.action(ctx, "rollback", i, a); err != nil {
			r.problem("rollback %q failed: %v", a.Name, err)
		}
	}
	if r.env.Unsimulate != nil {
		r.env.Unsimulate(r.ID)
	}
	r.mark(MarkRemoved, time.Now(), "")
}

// settleRunbooks waits (within the steady-state timeout) for the runbook
// runs the drill caused to finish, so the report says how they ended.
func (r *Run) settleRunbooks(ctx context.Context) {
	deadline := time.Now().Add(time.Duration(r.Drill.SteadyState.Timeout))
	for {
		r.poll(ctx)
		busy := false
		for _, rr := range r.Report().Runbooks {
			busy = busy || rr.State == "running" || rr.State == "waiting_approval"
		}
		if !busy {
			return
		}
		if time.Now().After(deadline) {
			r.problem("runbook runs still running after %s", time.Duration(r.Drill.SteadyState.Timeout))
			return
		}
		time.Sleep(max(r.env.Tick, 250*time.Millisecond))
	}
}

// Resume rebuilds a run a dead agent left behind from the report it last
// saved (the zero Report when none was saved), for Interrupted.
func Resume(id string, d *Drill, env Env, saved Report) *Run {
	r := NewRun(id, d, env)
	if saved.ID == id {
		saved.State = StateRunning
		r.rep = saved.clone()
		r.t0 = saved.at(MarkInjected)
	}
	return r
}

// Interrupted finishes a resumed run: the rollback runs (it always does),
// the pages and runbook runs the drill caused are read back from the
// outbox and the runbook journal, and the report keeps the timeline and
// the measures taken before the agent stopped, in state interrupted.
func (r *Run) Interrupted(ctx context.Context, why string) Report {
	// An inject step's program died with the agent, but what it started
	// may still be injecting the fault (it carries the drill's id in
	// VIGIL_RUN_ID): it goes before the rollback removes the fault.
	if n, err := runbook.KillLeftovers(r.ID); err != nil {
		r.problem("processes an inject step left running could not be stopped: %v", err)
	} else if n > 0 {
		r.problem("killed %d process(es) an inject step left running when the agent stopped", n)
	}
	r.rollback(ctx)
	r.poll(ctx)
	r.finish(why)
	r.update(func(rep *Report) { rep.State = StateInterrupted })
	return r.Report()
}

// steadyAfter waits for the steady state to come back, watching events in
// between (recoveries and resolved pages are part of the drill).
func (r *Run) steadyAfter(ctx context.Context) {
	deadline := time.Now().Add(time.Duration(r.Drill.SteadyState.Timeout))
	// The steady-state checks, and every drill check that failed: the
	// drill has recovered only when those pass again too.
	checks := slices.Clone(r.Drill.SteadyState.Checks)
	r.mu.Lock()
	for c := range r.failedAt {
		if !slices.Contains(checks, c) {
			checks = append(checks, c)
		}
	}
	r.mu.Unlock()
	slices.Sort(checks[len(r.Drill.SteadyState.Checks):])
	var last string
	for {
		ok := true
		for _, c := range checks {
			res, err := r.env.RunCheck(ctx, c)
			if err != nil || !res.Success {
				ok = false
				last = fmt.Sprintf("%s: %v %s %s", c, err, res.Reason, res.Message)
				break
			}
		}
		r.poll(ctx)
		if ok {
			r.mark(MarkRestored, time.Now(), "")
			return
		}
		if time.Now().After(deadline) {
			r.problem("steady state not restored within %s: %s", time.Duration(r.Drill.SteadyState.Timeout), last)
			return
		}
		time.Sleep(max(r.env.Tick, time.Second))
	}
}

func (r *Run) finish(aborted string) Report {
	now := time.Now()
	r.update(func(rep *Report) {
		rep.FinishedAt = now
		rep.Aborted = aborted
		t0 := rep.at(MarkInjected)
		rep.Measures = map[string]float64{}
		for _, m := range Measures {
			if at := rep.at(measureMark[m]); !at.IsZero() && !t0.IsZero() {
				rep.Measures[m] = at.Sub(t0).Seconds()
			}
		}
		ok := aborted == "" && !rep.at(MarkRestored).IsZero()
		rep.Objectives = nil
		for _, o := range r.Drill.Objectives.list() {
			res := ObjectiveResult{Measure: o.Measure, Limit: o.Limit.Seconds()}
			if v, measured := rep.Measures[o.Measure]; measured {
				res.Measured = &v
				res.Passed = v <= o.Limit.Seconds()
			}
			ok = ok && res.Passed
			rep.Objectives = append(rep.Objectives, res)
		}
		switch {
		case aborted != "":
			rep.State = StateAborted
		case ok:
			rep.State = StatePassed
		default:
			rep.State = StateFailed
		}
	})
	return r.Report()
}
