package runbook

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	vm "github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/agent/notify/route"
	"github.com/vigil-project/vigil/agent/runbook/lock"
	"github.com/vigil-project/vigil/agent/store"
	"github.com/vigil-project/vigil/internal/redact"

	"github.com/vigil-project/vigil/internal/promhelp"
)

// The lock and state backends (local, etcd) live in agent/runbook/lock.
type (
	// Locker takes the one-run-at-a-time lock of a runbook and target.
	Locker = lock.Locker
	// Lease is a held lock with its fencing token.
	Lease = lock.Lease
	// State keeps cooldowns, acknowledgements and the pause switch.
	State = lock.State
)

// ErrLocked means another run (on this agent or another) holds the lock.
var ErrLocked = lock.ErrHeld

// JournalStore is the agent store's journal.
type JournalStore interface {
	CreateRun(ctx context.Context, r store.RunRow, first store.RunEvent) error
	UpdateRun(ctx context.Context, id, state, errMsg string, fencing int64, finished time.Time, ev *store.RunEvent) error
	AddRunEvent(ctx context.Context, id string, ev store.RunEvent) error
	Runs(ctx context.Context, limit int, states ...string) ([]store.RunRow, error)
	Run(ctx context.Context, id string) (store.RunRow, []store.RunEvent, error)
}

// Run states besides the results.
const (
	StateRunning          = "running"
	StateWaitingApproval  = "waiting_approval"
	StateBlocked          = "blocked"
	StateInterrupted      = "interrupted"
	StateRejected         = "rejected"
	StateApprovalTimedOut = "approval_timed_out"
)

// Options configures a Manager.
type Options struct {
	Journal JournalStore
	Locker  Locker
	State   State
	// Env builds the step environment (HTTP client, checks, pager).
	Env    Env
	Logger *slog.Logger
	Now    func() time.Time
}

// Manager triggers runbooks from alerts and by hand, and runs them.
type Manager struct {
	opts    Options
	metrics *vm.Set

	mu       sync.Mutex
	runbooks map[string]*Runbook
	active   map[string]*activeRun // by run ID
	// triggered maps runbook + alert fingerprint to the StartsAt (unix ms)
	// of the incident a run was started for, until the alert resolves;
	// seeded from the journal at start so a restart does not act twice.
	triggered map[string]int64
	wg        sync.WaitGroup
	// started is set by Start; stopped once Start's ctx ended, when
	// every run was cancelled and new ones start cancelled.
	started, stopped bool
	// secrets masks the secret_env values of every loaded runbook in
	// every run's output, besides what Env.Redactor knows.
	secrets *redact.Redactor
	// reap deals with the processes a dead agent's steps left.
	reap reaper
}

type activeRun struct {
	cancel   context.CancelFunc // also called when Start's ctx ends
	approval chan approval
}

type approval struct {
	ok bool
	by string
}

// NewManager returns a manager; Start begins accepting triggers.
func NewManager(opts Options) *Manager {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m := &Manager{opts: opts, metrics: vm.NewSet(), runbooks: map[string]*Runbook{}, active: map[string]*activeRun{}, triggered: map[string]int64{},
		secrets: redact.New(nil), reap: defaultReaper()}
	m.metrics.NewGauge("vigil_runbook_running", func() float64 {
		m.mu.Lock()
		defer m.mu.Unlock()
		return float64(len(m.active))
	})
	return m
}

// metricHelp is the HELP text of the runbook metrics.
var metricHelp = map[string]string{
	"vigil_runbook_runs_total":            "Finished runbook runs by result (succeeded, failed, rolled_back, precondition_failed, aborted, lock_lost, dry_run, blocked, rejected, approval_timed_out, interrupted).",
	"vigil_runbook_blocked_total":         "Runbook triggers not run: cooldown, paused, or another run holds the lock.",
	"vigil_runbook_running":               "Runbook runs in progress, those waiting for approval included.",
	"vigil_runbook_step_duration_seconds": "Duration of runbook step attempts by phase (precondition, step, rollback).",
}

// WritePrometheus writes the runbook metrics.
func (m *Manager) WritePrometheus(w io.Writer) {
	promhelp.Write(w, m.metrics, metricHelp)
}

// SetRunbooks replaces the loaded runbooks (config reload); runs in
// progress continue with the definition they started with.
func (m *Manager) SetRunbooks(rbs []*Runbook) {
	m.secrets.Set(SecretValues(rbs))
	m.mu.Lock()
	defer m.mu.Unlock()
	m.runbooks = map[string]*Runbook{}
	for _, rb := range rbs {
		m.runbooks[rb.Name] = rb
		for _, r := range []string{ResultSucceeded, ResultFailed, ResultRolledBack, ResultPreconditionFailed, ResultAborted, ResultLockLost, ResultDryRun, StateBlocked, StateRejected, StateApprovalTimedOut, StateInterrupted} {
			m.metrics.GetOrCreateCounter(fmt.Sprintf(`vigil_runbook_runs_total{runbook=%q,result=%q}`, rb.Name, r))
		}
	}
}

// Runbooks lists the loaded runbooks by name.
func (m *Manager) Runbooks() []*Runbook {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Runbook, 0, len(m.runbooks))
	for _, rb := range m.runbooks {
		out = append(out, rb)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Start deals with the runs a previous process left unfinished — marked
// interrupted, never resumed blindly; resumed at the step in flight only
// when the runbook declares its steps idempotent (resumable: true) — and
// accepts triggers until ctx ends. Runs live until ctx ends (or they are
// aborted), whatever the context of the call that triggered them.
func (m *Manager) Start(ctx context.Context) error {
	m.mu.Lock()
	m.started = true
	m.mu.Unlock()
	context.AfterFunc(ctx, m.stop)
	recent, err := m.opts.Journal.Runs(ctx, 1000)
	if err != nil {
		return err
	}
	m.mu.Lock()
	for _, r := range recent { // newest first: the first per key wins
		fp, ms, ok := parseAlertID(r.Alert)
		if !ok {
			continue
		}
		if _, seen := m.triggered[r.Runbook+"\x00"+fp]; !seen {
			m.triggered[r.Runbook+"\x00"+fp] = ms
		}
	}
	m.mu.Unlock()
	runs, err := m.opts.Journal.Runs(ctx, 1000, StateRunning, StateWaitingApproval)
	if err != nil {
		return err
	}
	now := m.opts.Now()
	for _, r := range runs {
		// A step's processes may have outlived the agent (a grandchild
		// that Pdeathsig does not reach): they act outside any lock now,
		// and a resumed step must not run beside them.
		killed, orphanErr := m.stopLeftovers(ctx, r.ID)
		if killed > 0 {
			m.opts.Logger.Warn("killed processes a step of an interrupted run left running", "run", r.ID, "runbook", r.Runbook, "processes", killed)
		}
		msg := "the agent stopped during this run; its steps are not re-run automatically (the runbook is not resumable): check the target and re-trigger by hand"
		if orphanErr != nil {
			msg = "the agent stopped during this run and it is not resumed, so that no second copy of its step runs beside the first: " + orphanErr.Error() + "; kill them, check the target and re-trigger by hand"
		} else if rb := m.runbook(r.Runbook); rb != nil && rb.Resumable {
			err := m.resume(ctx, rb, r)
			if err == nil {
				continue
			}
			msg = "the agent stopped during this run and it could not be resumed: " + err.Error()
		}
		if err := m.opts.Journal.UpdateRun(ctx, r.ID, StateInterrupted, msg, r.Fencing, now, &store.RunEvent{At: now, Kind: "interrupted", Error: msg}); err != nil {
			return err
		}
		m.count(r.Runbook, StateInterrupted)
		m.opts.Logger.Warn("runbook run interrupted by a restart", "run", r.ID, "runbook", r.Runbook, "target", r.Target)
	}
	return nil
}

// stopLeftovers kills what the steps of an interrupted run left running:
// the process groups its journal recorded and the processes carrying its
// marker. An error means some could not be made to go.
func (m *Manager) stopLeftovers(ctx context.Context, id string) (int, error) {
	_, evs, err := m.opts.Journal.Run(ctx, id)
	if err != nil {
		// The marker still finds what kept its environment; a resume
		// reads the journal again and fails on its own.
		m.opts.Logger.Error("runbook journal unreadable: only marked processes are looked for", "run", id, "err", err)
	}
	var groups []Process
	for _, ev := range evs {
		var p Process
		if ev.Kind == "process" && json.Unmarshal([]byte(ev.Detail), &p) == nil {
			groups = append(groups, p)
		}
	}
	return m.reap.stop(id, groups)
}

// resume continues an unfinished run of a resumable runbook at the step
// that was in flight (it runs again: the runbook says its steps are
// idempotent), under a new lock and fencing token.
func (m *Manager) resume(ctx context.Context, rb *Runbook, r store.RunRow) error {
	_, evs, err := m.opts.Journal.Run(ctx, r.ID)
	if err != nil {
		return err
	}
	pos, approved := resumePoint(evs)
	if pos.Phase == "step" && pos.Index > len(rb.Steps) || pos.Phase == "rollback" && pos.Index > len(rb.Rollback) {
		return fmt.Errorf("the runbook changed: it has no %s %d any more", pos.Phase, pos.Index+1)
	}
	var lbls map[string]string
	if err := json.Unmarshal([]byte(r.Labels), &lbls); err != nil {
		return fmt.Errorf("labels: %w", err)
	}
	mode := Mode(r.Mode)
	key := rb.Name + "/" + r.Target
	lease, err := m.opts.Locker.TryAcquire(ctx, key)
	if err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	state := StateRunning
	if mode == Approve && !approved {
		state = StateWaitingApproval
	}
	r.Fencing = lease.Token()
	now := m.opts.Now()
	detail := "from the start"
	if pos.Phase != "" {
		detail = fmt.Sprintf("from %s %d", pos.Phase, pos.Index+1)
	}
	if err := m.opts.Journal.UpdateRun(ctx, r.ID, state, "", r.Fencing, time.Time{}, &store.RunEvent{At: now, Kind: "resumed", Phase: pos.Phase, Step: pos.Index, Detail: detail}); err != nil {
		lease.Release(context.WithoutCancel(ctx))
		return err
	}
	m.opts.Logger.Warn("runbook run resumed after a restart", "run", r.ID, "runbook", r.Runbook, "target", r.Target, "at", detail)
	d := Data{Labels: lbls, Runbook: rb.Name, Run: r.ID, Target: r.Target}
	m.start(ctx, rb, runStart{row: r, mode: mode, key: key, data: d, lease: lease, from: pos, approved: approved || mode != Approve})
	return nil
}

// resumePoint reads a run's timeline: the step in flight when it stopped
// (or the one after the last finished step), and whether it was approved.
func resumePoint(evs []store.RunEvent) (Position, bool) {
	var pos Position
	approved := false
	for _, ev := range evs {
		switch ev.Kind {
		case "approved":
			approved = true
		case "step_start":
			pos = Position{Phase: ev.Phase, Index: ev.Step}
		case "step_end":
			pos = Position{Phase: ev.Phase, Index: ev.Step}
			if ev.Error == "" {
				pos.Index++
			}
		}
	}
	if pos.Phase == "precondition" {
		pos = Position{} // preconditions are checks: all run again
	}
	return pos, approved
}

func alertID(fp string, startsAt time.Time) string {
	return fp + "@" + strconv.FormatInt(startsAt.UnixMilli(), 10)
}

func parseAlertID(s string) (string, int64, bool) {
	fp, ms, ok := strings.Cut(s, "@")
	if !ok {
		return "", 0, false
	}
	n, err := strconv.ParseInt(ms, 10, 64)
	return fp, n, err == nil
}

// stop cancels every run, and those started from now on, when Start's
// ctx ends.
func (m *Manager) stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stopped = true
	for _, ar := range m.active {
		ar.cancel()
	}
}

// Wait blocks until every run started has finished (after ctx ended).
func (m *Manager) Wait() { m.wg.Wait() }

func (m *Manager) runbook(name string) *Runbook {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.runbooks[name]
}

// triggerTimeout bounds how long starting one run may wait for the lock
// backend.
const triggerTimeout = 15 * time.Second

// OnAlerts starts the runbooks whose trigger matches a firing alert, once
// per alert incident (its StartsAt) until it resolves.
//
// Each trigger waits at most triggerTimeout for the lock backend (etcd):
// the caller is the alert fan-out, whose other consumers do not wait for
// it, but a frozen backend must not hold every later alert either.
func (m *Manager) OnAlerts(ctx context.Context, alerts []notify.Alert) {
	now := m.opts.Now()
	for _, a := range alerts {
		for _, rb := range m.Runbooks() {
			if rb.Trigger.Alert == "" || rb.Trigger.Alert != a.Labels[labels.AlertName] {
				continue
			}
			ms, err := rb.Trigger.Matchers.Parse()
			if err != nil || !route.Matches(ms, a.Labels) {
				continue
			}
			fp := notify.Fingerprint(a.Labels)
			key := rb.Name + "\x00" + fp
			m.mu.Lock()
			prev, seen := m.triggered[key]
			resolved := a.Resolved(now)
			if resolved {
				delete(m.triggered, key)
			} else {
				m.triggered[key] = a.StartsAt.UnixMilli()
			}
			m.mu.Unlock()
			if resolved {
				if seen && rb.OnResolve != "" {
					mode := Approve // failback waits for a person unless the runbook only plans
					if fb := m.runbook(rb.OnResolve); fb != nil && fb.Mode == DryRun {
						mode = DryRun
					}
					tctx, cancel := context.WithTimeout(ctx, triggerTimeout)
					_, err := m.Trigger(tctx, rb.OnResolve, a.Labels, a.Annotations, "resolved "+rb.Trigger.Alert, mode)
					cancel()
					if err != nil {
						m.opts.Logger.Error("on_resolve runbook not started", "runbook", rb.OnResolve, "err", err)
					}
				}
				continue
			}
			if seen && prev == a.StartsAt.UnixMilli() {
				continue
			}
			tctx, cancel := context.WithTimeout(ctx, triggerTimeout)
			_, err = m.trigger(tctx, rb.Name, a.Labels, a.Annotations, "alert "+rb.Trigger.Alert, "", alertID(fp, a.StartsAt))
			cancel()
			if err != nil {
				// Not started (the lock backend did not answer in time, …):
				// the alert's next resend tries again.
				m.mu.Lock()
				if m.triggered[key] == a.StartsAt.UnixMilli() {
					delete(m.triggered, key)
				}
				m.mu.Unlock()
				m.opts.Logger.Error("runbook not started; the alert's next resend retries", "runbook", rb.Name, "err", err)
			}
		}
	}
}

// ErrUnknownRunbook is returned for a name that is not loaded.
var ErrUnknownRunbook = errors.New("no such runbook")

// Trigger starts a run (or records why it is blocked) and returns its ID.
// mode overrides the runbook's mode when not empty (on_resolve runs in
// approve mode by default).
func (m *Manager) Trigger(ctx context.Context, name string, lbls, annotations map[string]string, by string, mode Mode) (string, error) {
	return m.trigger(ctx, name, lbls, annotations, by, mode, "")
}

// trigger is Trigger with the triggering alert's identity (alertID),
// recorded so a restart does not run the runbook again for it.
func (m *Manager) trigger(ctx context.Context, name string, lbls, annotations map[string]string, by string, mode Mode, alert string) (string, error) {
	rb := m.runbook(name)
	if rb == nil {
		return "", fmt.Errorf("%w %q", ErrUnknownRunbook, name)
	}
	if mode == "" {
		mode = rb.Mode
	}
	m.mu.Lock()
	started := m.started
	m.mu.Unlock()
	if !started {
		return "", errors.New("runbooks are not started")
	}
	id := newID()
	d := Data{Labels: lbls, Annotations: annotations, Runbook: rb.Name, Run: id}
	target := rb.Name
	if rb.Target != "" {
		t, err := render(ctxText, rb.Target, d)
		if err != nil {
			return "", fmt.Errorf("target: %w", err)
		}
		target = t
	}
	d.Target = target
	key := rb.Name + "/" + target
	now := m.opts.Now()
	lj, _ := json.Marshal(lbls)
	row := store.RunRow{ID: id, Runbook: rb.Name, Target: target, Trigger: by, Labels: string(lj), Alert: alert, Mode: string(mode), CreatedAt: now}

	block := func(reason string) (string, error) {
		row.State, row.Error, row.FinishedAt = StateBlocked, reason, now
		m.count(rb.Name, StateBlocked)
		m.metrics.GetOrCreateCounter(fmt.Sprintf(`vigil_runbook_blocked_total{runbook=%q}`, rb.Name)).Inc()
		m.opts.Logger.Warn("runbook trigger blocked", "runbook", rb.Name, "target", target, "reason", reason)
		return id, m.opts.Journal.CreateRun(ctx, row, store.RunEvent{At: now, Kind: "blocked", Error: reason})
	}
	if mode != DryRun {
		if paused, pby, err := m.opts.State.Paused(ctx); err != nil {
			return "", err
		} else if paused {
			return block("runbooks are paused by " + pby + " (vigil runbook resume)")
		}
		if _, drill := DrillOf(lbls); drill {
			// No cooldown for a drill's runs: each drill is its own incident
			// (its own drill_id), run once per drill alert; drills repeated
			// to collect percentiles must not block each other or leave a
			// cooldown that blocks the failover of a real outage after them.
		} else if until, err := m.opts.State.CooldownUntil(ctx, key); err != nil {
			return "", err
		} else if until.After(now) {
			return block(fmt.Sprintf("cooldown until %s after the last run (vigil runbook ack %s %s)", until.UTC().Format(time.RFC3339), rb.Name, target))
		}
	}
	var lease Lease
	if mode != DryRun {
		l, err := m.opts.Locker.TryAcquire(ctx, key)
		if errors.Is(err, ErrLocked) {
			return block("another run of this runbook for this target is active")
		}
		if err != nil {
			return "", fmt.Errorf("lock: %w", err)
		}
		lease = l
		row.Fencing = l.Token()
	}
	row.State = StateRunning
	if mode == Approve {
		row.State = StateWaitingApproval
	}
	if err := m.opts.Journal.CreateRun(ctx, row, store.RunEvent{At: now, Kind: "created", Detail: by}); err != nil {
		if lease != nil {
			lease.Release(context.Background())
		}
		return "", err
	}
	// The run outlives the call that triggered it (an API request):
	// Start's ctx ending cancels it (stop).
	m.start(context.WithoutCancel(ctx), rb, runStart{row: row, mode: mode, key: key, data: d, lease: lease, approved: mode != Approve})
	return id, nil
}

// runStart is what a run goroutine needs.
type runStart struct {
	row      store.RunRow
	mode     Mode
	key      string // lock and cooldown key: runbook/target
	data     Data
	lease    Lease // nil for dry runs
	from     Position
	approved bool // false: wait for a person before the first step
}

// start runs a run in a goroutine of its own, under a context that stop
// cancels when Start's ctx ends.
func (m *Manager) start(ctx context.Context, rb *Runbook, rs runStart) {
	rctx, cancel := context.WithCancel(ctx)
	ar := &activeRun{cancel: cancel, approval: make(chan approval, 1)}
	m.mu.Lock()
	if m.stopped {
		cancel() // the agent is stopping: the run ends as aborted
	}
	m.active[rs.row.ID] = ar
	m.mu.Unlock()
	m.wg.Add(1)
	go m.run(rctx, rb, rs, ar)
}

func (m *Manager) run(ctx context.Context, rb *Runbook, rs runStart, ar *activeRun) {
	row, key, lease := rs.row, rs.key, rs.lease
	// The lock goes before the run is journaled as finished: whoever sees
	// the final state and triggers again must not find the lock still held
	// (and be recorded as blocked by a run that is over).
	release := sync.OnceFunc(func() {
		if lease != nil {
			lease.Release(context.Background())
		}
	})
	defer m.wg.Done()
	defer ar.cancel()
	defer func() {
		m.mu.Lock()
		delete(m.active, row.ID)
		m.mu.Unlock()
		release()
	}()
	var lost <-chan struct{}
	if lease != nil {
		lost = lease.Lost()
	}
	finish := func(state string, err error) {
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		release()
		now := m.opts.Now()
		if uerr := m.opts.Journal.UpdateRun(context.WithoutCancel(ctx), row.ID, state, msg, row.Fencing, now, &store.RunEvent{At: now, Kind: "finished", Detail: state, Error: msg}); uerr != nil {
			m.opts.Logger.Error("runbook journal", "run", row.ID, "err", uerr)
		}
		m.count(rb.Name, state)
		lvl := slog.LevelInfo
		if state != ResultSucceeded && state != ResultDryRun {
			lvl = slog.LevelWarn
		}
		m.opts.Logger.Log(ctx, lvl, "runbook run finished", "run", row.ID, "runbook", rb.Name, "target", row.Target, "result", state, "err", msg)
	}
	if !rs.approved {
		t := time.NewTimer(time.Duration(rb.ApprovalTimeout))
		select {
		case <-ctx.Done():
			t.Stop()
			finish(ResultAborted, ctx.Err())
			return
		case <-t.C:
			finish(StateApprovalTimedOut, fmt.Errorf("nobody approved within %s", rb.ApprovalTimeout))
			return
		case a := <-ar.approval:
			t.Stop()
			now := m.opts.Now()
			if !a.ok {
				m.opts.Journal.AddRunEvent(context.WithoutCancel(ctx), row.ID, store.RunEvent{At: now, Kind: "rejected", Detail: a.by})
				finish(StateRejected, fmt.Errorf("rejected by %s", a.by))
				return
			}
			m.opts.Journal.UpdateRun(context.WithoutCancel(ctx), row.ID, StateRunning, "", row.Fencing, time.Time{}, &store.RunEvent{At: now, Kind: "approved", Detail: a.by})
		}
	}
	env := m.opts.Env
	env.RunID, env.Fencing = row.ID, row.Fencing
	env.Redactor = redactors{m.opts.Env.Redactor, m.secrets}
	if id, ok := DrillOf(rs.data.Labels); ok && env.Pager != nil {
		env.Pager = drillPager{p: env.Pager, id: id}
	}
	env.Approved = func(ctx context.Context) (bool, error) {
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("no approval: %w", ctx.Err())
		case a := <-ar.approval:
			m.opts.Journal.AddRunEvent(context.WithoutCancel(ctx), row.ID, store.RunEvent{At: m.opts.Now(), Kind: map[bool]string{true: "approved", false: "rejected"}[a.ok], Detail: a.by})
			return a.ok, nil
		}
	}
	mode := rs.mode
	if mode == Approve {
		mode = Enforce // approved: run the steps
	}
	result, err := Execute(ctx, rb, rs.data, env, journal{m: m, id: row.ID}, ExecOptions{Mode: mode, Lost: lost, From: rs.from})
	_, drill := DrillOf(rs.data.Labels)
	if result != ResultDryRun && result != ResultPreconditionFailed && rb.Cooldown > 0 && !drill {
		if cerr := m.opts.State.SetCooldown(context.WithoutCancel(ctx), key, m.opts.Now().Add(time.Duration(rb.Cooldown))); cerr != nil {
			m.opts.Logger.Error("runbook cooldown not recorded", "runbook", rb.Name, "err", cerr)
		}
	}
	finish(result, err)
}

func (m *Manager) count(runbook, result string) {
	m.metrics.GetOrCreateCounter(fmt.Sprintf(`vigil_runbook_runs_total{runbook=%q,result=%q}`, runbook, result)).Inc()
}

// journal writes a run's step transitions to the store.
type journal struct {
	m  *Manager
	id string
}

func (j journal) StepStarted(ctx context.Context, phase string, i, attempt int, r RenderedStep, planned bool) error {
	detail, _ := json.Marshal(r)
	kind := "step_start"
	if planned {
		kind = "planned"
	}
	return j.m.opts.Journal.AddRunEvent(context.WithoutCancel(ctx), j.id, store.RunEvent{At: j.m.opts.Now(), Kind: kind, Phase: phase, Step: i, Name: r.Name, Attempt: attempt, Detail: string(detail)})
}

func (j journal) StepFinished(ctx context.Context, phase string, i, attempt int, out Outcome, err error, took time.Duration) error {
	detail, _ := json.Marshal(out)
	ev := store.RunEvent{At: j.m.opts.Now(), Kind: "step_end", Phase: phase, Step: i, Attempt: attempt, Detail: string(detail), Took: took}
	if err != nil {
		ev.Error = err.Error()
	}
	j.m.metrics.GetOrCreateSummary(fmt.Sprintf(`vigil_runbook_step_duration_seconds{phase=%q}`, phase)).Update(took.Seconds())
	return j.m.opts.Journal.AddRunEvent(context.WithoutCancel(ctx), j.id, ev)
}

// StepProcess records the process group an exec step started, for
// stopLeftovers after a restart.
func (j journal) StepProcess(ctx context.Context, phase string, i, attempt int, p Process) error {
	detail, _ := json.Marshal(p)
	return j.m.opts.Journal.AddRunEvent(context.WithoutCancel(ctx), j.id, store.RunEvent{At: j.m.opts.Now(), Kind: "process", Phase: phase, Step: i, Attempt: attempt,
		Detail: string(detail)})
}

// ErrNotActive is returned when a run is not waiting for what was asked.
var ErrNotActive = errors.New("run is not active")

// Approve answers a run waiting for approval (before its first step or at
// an approve step).
func (m *Manager) Approve(id, by string, ok bool) error {
	m.mu.Lock()
	ar := m.active[id]
	m.mu.Unlock()
	if ar == nil {
		return ErrNotActive
	}
	select {
	case ar.approval <- approval{ok: ok, by: by}:
		return nil
	default:
		return errors.New("an answer is already pending for this run")
	}
}

// Abort stops a run before its next step (the current step's context is
// cancelled).
func (m *Manager) Abort(ctx context.Context, id, by string) error {
	m.mu.Lock()
	ar := m.active[id]
	m.mu.Unlock()
	if ar == nil {
		return ErrNotActive
	}
	if err := m.opts.Journal.AddRunEvent(ctx, id, store.RunEvent{At: m.opts.Now(), Kind: "aborted", Detail: by}); err != nil {
		return err
	}
	ar.cancel()
	return nil
}

// Ack clears the cooldown of a runbook and target.
func (m *Manager) Ack(ctx context.Context, name, target, by string) error {
	if m.runbook(name) == nil {
		return fmt.Errorf("%w %q", ErrUnknownRunbook, name)
	}
	if target == "" {
		target = name
	}
	return m.opts.State.Ack(ctx, name+"/"+target, by)
}

// Pause stops new runs everywhere that shares the state; Resume allows them.
func (m *Manager) Pause(ctx context.Context, paused bool, by string) error {
	return m.opts.State.SetPaused(ctx, paused, by)
}

// DrillOf reports whether labels mark something a drill caused
// (drill="true"), and the drill's id.
func DrillOf(lbls map[string]string) (string, bool) {
	if lbls["drill"] != "true" {
		return "", false
	}
	return lbls["drill_id"], true
}

// NewID returns a sortable unique id (runs, drills).
func NewID() string { return newID() }

func newID() string {
	b := make([]byte, 6)
	rand.Read(b)
	return time.Now().UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b)
}

// State returns the manager's state backend (pause status for the API).
func (m *Manager) State() State { return m.opts.State }
