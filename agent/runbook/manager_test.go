package runbook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/agent/store"
)

// memLocks is an in-process Locker and State for manager tests.
type memLocks struct {
	mu       sync.Mutex
	held     map[string]bool
	token    int64
	cooldown map[string]time.Time
	paused   bool
	by       string
}

type memLease struct {
	l    *memLocks
	key  string
	tok  int64
	lost chan struct{}
}

func (l *memLease) Token() int64          { return l.tok }
func (l *memLease) Lost() <-chan struct{} { return l.lost }
func (l *memLease) Release(context.Context) error {
	l.l.mu.Lock()
	defer l.l.mu.Unlock()
	delete(l.l.held, l.key)
	return nil
}

func newMemLocks() *memLocks {
	return &memLocks{held: map[string]bool{}, cooldown: map[string]time.Time{}}
}

func (m *memLocks) TryAcquire(_ context.Context, key string) (Lease, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.held[key] {
		return nil, ErrLocked
	}
	m.held[key] = true
	m.token++
	return &memLease{l: m, key: key, tok: m.token, lost: make(chan struct{})}, nil
}
func (m *memLocks) CooldownUntil(_ context.Context, key string) (time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cooldown[key], nil
}
func (m *memLocks) SetCooldown(_ context.Context, key string, until time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cooldown[key] = until
	return nil
}
func (m *memLocks) Ack(_ context.Context, key, _ string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.cooldown, key)
	return nil
}
func (m *memLocks) Paused(context.Context) (bool, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.paused, m.by, nil
}
func (m *memLocks) SetPaused(_ context.Context, p bool, by string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.paused, m.by = p, by
	return nil
}

func newTestManager(t *testing.T, checks map[string][]bool) (*Manager, *store.Store, *gateway, context.CancelFunc) {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "v.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	gw := &gateway{}
	m, cancel := startManager(t, st, gw, func(rb *Runbook) { rb.Steps[1].Config.(*CheckStep).Within = 300_000_000 }, checks)
	return m, st, gw, cancel
}

// startManager starts a manager over st with the failover runbook pointed
// at gw (edited by edit) and the given check results.
func startManager(t *testing.T, st *store.Store, gw *gateway, edit func(*Runbook), checks map[string][]bool) (*Manager, context.CancelFunc) {
	t.Helper()
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	locks := newMemLocks()
	m := NewManager(Options{Journal: st, Locker: locks, State: locks, Env: Env{Checker: &fakeChecker{results: checks},
		Pager: pagerFunc(func(context.Context, string, string, string) error { return nil })}})
	rb := failoverRunbook(t, srv.URL)
	edit(rb)
	m.SetRunbooks([]*Runbook{rb})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); m.Wait() })
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return m, cancel
}

func firingAlert() notify.Alert {
	return notify.Alert{Labels: map[string]string{"alertname": "InvoiceQRFailing", "check": "invoice_qr", "platform": "e-invoice"},
		StartsAt: time.Now(), EndsAt: time.Now().Add(time.Hour)}
}

func waitState(t *testing.T, st *store.Store, id, want string) store.RunRow {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, _, err := st.Run(context.Background(), id)
		if err == nil && r.State == want {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s: state %q, want %q (%v)", id, r.State, want, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func latestRuns(t *testing.T, st *store.Store) []store.RunRow {
	runs, err := st.Runs(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	return runs
}

// TestAlertTriggersOnceThenCooldownAndAck: a firing alert runs the runbook
// once (re-sends do not start another), a new trigger inside the cooldown
// is recorded as blocked, and an ack lets the next one run.
func TestAlertTriggersOnceThenCooldownAndAck(t *testing.T) {
	m, st, gw, _ := newTestManager(t, map[string][]bool{"invoice_sync_standby": {true}, "invoice_qr": {true}})
	a := firingAlert()
	m.OnAlerts(context.Background(), []notify.Alert{a})
	m.OnAlerts(context.Background(), []notify.Alert{a}) // resend: no second run
	runs := latestRuns(t, st)
	if len(runs) != 1 {
		t.Fatalf("runs %+v", runs)
	}
	r := waitState(t, st, runs[0].ID, ResultSucceeded)
	if gw.active != "standby" || r.Fencing == 0 || r.Target != "e-invoice" || r.Trigger != "alert InvoiceQRFailing" {
		t.Errorf("run %+v, gateway %q", r, gw.active)
	}
	_, evs, _ := st.Run(context.Background(), r.ID)
	var kinds []string
	for _, e := range evs {
		kinds = append(kinds, e.Kind)
	}
	if strings.Join(kinds, ",") != "created,step_start,step_end,step_start,step_end,step_start,step_end,step_start,step_end,finished" {
		t.Errorf("timeline %v", kinds)
	}
	// The alert resolves and fires again: inside the cooldown → blocked.
	res := a
	res.EndsAt = time.Now().Add(-time.Second)
	m.OnAlerts(context.Background(), []notify.Alert{res})
	m.OnAlerts(context.Background(), []notify.Alert{a})
	runs = latestRuns(t, st)
	if len(runs) != 2 || runs[0].State != StateBlocked || !strings.Contains(runs[0].Error, "cooldown until") {
		t.Fatalf("second trigger: %+v", runs)
	}
	if err := m.Ack(context.Background(), "invoice-failover", "e-invoice", "li.wei"); err != nil {
		t.Fatal(err)
	}
	id, err := m.Trigger(context.Background(), "invoice-failover", a.Labels, nil, "manual by li.wei", "")
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, st, id, ResultSucceeded)
}

func TestConcurrentTriggersOneRun(t *testing.T) {
	m, st, _, _ := newTestManager(t, map[string][]bool{"invoice_sync_standby": {true}, "invoice_qr": {false}})
	// Long enough for the others to find the lock taken.
	m.Runbooks()[0].Steps[1].Config.(*CheckStep).Within = 1_000_000_000
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.Trigger(context.Background(), "invoice-failover", firingAlert().Labels, nil, "manual", "")
		}()
	}
	wg.Wait()
	blocked, running := 0, 0
	for _, r := range latestRuns(t, st) {
		switch r.State {
		case StateBlocked:
			blocked++
		default:
			running++
		}
	}
	if running != 1 || blocked != 4 {
		t.Errorf("running %d blocked %d", running, blocked)
	}
}

func TestApprovalAndPause(t *testing.T) {
	m, st, gw, _ := newTestManager(t, map[string][]bool{"invoice_sync_standby": {true}, "invoice_qr": {true}})
	rb := m.Runbooks()[0]
	rb.Mode, rb.ApprovalTimeout, rb.Cooldown = Approve, 200_000_000, 0
	id, _ := m.Trigger(context.Background(), "invoice-failover", firingAlert().Labels, nil, "manual", "")
	waitState(t, st, id, StateWaitingApproval)
	if gw.active != "" {
		t.Fatal("ran before approval")
	}
	waitState(t, st, id, StateApprovalTimedOut)
	id, _ = m.Trigger(context.Background(), "invoice-failover", firingAlert().Labels, nil, "manual", "")
	waitState(t, st, id, StateWaitingApproval)
	if err := m.Approve(id, "li.wei", true); err != nil {
		t.Fatal(err)
	}
	waitState(t, st, id, ResultSucceeded)
	m.Pause(context.Background(), true, "ops")
	id, _ = m.Trigger(context.Background(), "invoice-failover", firingAlert().Labels, nil, "manual", "")
	if r := waitState(t, st, id, StateBlocked); !strings.Contains(r.Error, "paused by ops") {
		t.Errorf("paused: %+v", r)
	}
}

// restartManager is a manager started over an existing store, as after a
// kill -9: the failover runbook pointed at gw, resumable or not.
func restartManager(t *testing.T, st *store.Store, gw *gateway, resumable bool, checks map[string][]bool) *Manager {
	t.Helper()
	m, _ := startManager(t, st, gw, func(rb *Runbook) { rb.Resumable = resumable }, checks)
	return m
}

// leftRunning writes the journal of a run that a killed agent left in the
// middle of step 2 (the gateway already switched), for alert a.
func leftRunning(t *testing.T, a notify.Alert) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "v.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx, now := context.Background(), time.Now()
	lj, _ := json.Marshal(a.Labels)
	if err := st.CreateRun(ctx, store.RunRow{ID: "old", Runbook: "invoice-failover", Target: "e-invoice", Trigger: "alert InvoiceQRFailing",
		Labels: string(lj), Alert: alertID(notify.Fingerprint(a.Labels), a.StartsAt), Mode: "enforce", State: StateRunning, Fencing: 7, CreatedAt: now},
		store.RunEvent{At: now, Kind: "created"}); err != nil {
		t.Fatal(err)
	}
	for _, ev := range []store.RunEvent{
		{Kind: "step_start", Phase: "precondition", Step: 0, Attempt: 1}, {Kind: "step_end", Phase: "precondition", Step: 0, Attempt: 1},
		{Kind: "step_start", Phase: "step", Step: 0, Attempt: 1}, {Kind: "step_end", Phase: "step", Step: 0, Attempt: 1},
		{Kind: "step_start", Phase: "step", Step: 1, Attempt: 1},
	} {
		ev.At = now
		if err := st.AddRunEvent(ctx, "old", ev); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func kinds(evs []store.RunEvent) string {
	var out []string
	for _, e := range evs {
		k := e.Kind
		if e.Phase != "" {
			k += fmt.Sprintf(":%s%d", e.Phase, e.Step)
		}
		out = append(out, k)
	}
	return strings.Join(out, ",")
}

// TestRestartMarksInterrupted: a run left "running" by a dead process is
// marked interrupted at start, nothing is re-executed, and the alert that
// started it (still firing, re-sent by the restored rule state) does not
// start it again; a new incident of the same alert does.
func TestRestartMarksInterrupted(t *testing.T) {
	a := firingAlert()
	st := leftRunning(t, a)
	gw := &gateway{}
	m := restartManager(t, st, gw, false, map[string][]bool{"invoice_sync_standby": {true}, "invoice_qr": {true}})
	r, evs, _ := st.Run(context.Background(), "old")
	if r.State != StateInterrupted || evs[len(evs)-1].Kind != "interrupted" || !strings.Contains(r.Error, "not resumable") {
		t.Errorf("after restart: %+v %s", r, kinds(evs))
	}
	m.OnAlerts(context.Background(), []notify.Alert{a})
	if runs := latestRuns(t, st); len(runs) != 1 {
		t.Fatalf("the restored alert started the runbook again: %+v", runs)
	}
	gw.mu.Lock()
	n := len(gw.headers)
	gw.mu.Unlock()
	if n != 0 {
		t.Errorf("%d requests reached the gateway after the restart", n)
	}
	next := a
	next.StartsAt = a.StartsAt.Add(time.Hour)
	m.OnAlerts(context.Background(), []notify.Alert{next})
	if runs := latestRuns(t, st); len(runs) != 2 || runs[0].Alert == runs[1].Alert {
		t.Fatalf("a new incident did not start a run: %+v", runs)
	}
}

// TestRestartResumesResumable: a resumable runbook's run continues at the
// step in flight under a new lock and fencing token; finished steps are not
// run again.
func TestRestartResumesResumable(t *testing.T) {
	st := leftRunning(t, firingAlert())
	gw := &gateway{}
	restartManager(t, st, gw, true, map[string][]bool{"invoice_sync_standby": {true}, "invoice_qr": {true}})
	r := waitState(t, st, "old", ResultSucceeded)
	_, evs, _ := st.Run(context.Background(), "old")
	want := "created,step_start:precondition0,step_end:precondition0,step_start:step0,step_end:step0,step_start:step1," +
		"resumed:step1,step_start:step1,step_end:step1,step_start:step2,step_end:step2,finished"
	if got := kinds(evs); got != want {
		t.Errorf("timeline\n got %s\nwant %s", got, want)
	}
	gw.mu.Lock()
	defer gw.mu.Unlock()
	if len(gw.headers) != 0 || r.Fencing == 7 || r.Fencing == 0 {
		t.Errorf("gateway called %d times after the restart (switch already done); fencing %d", len(gw.headers), r.Fencing)
	}
}

func TestResumePoint(t *testing.T) {
	ev := func(kind, phase string, step int, errMsg string) store.RunEvent {
		return store.RunEvent{Kind: kind, Phase: phase, Step: step, Error: errMsg}
	}
	for _, tc := range []struct {
		name     string
		evs      []store.RunEvent
		want     Position
		approved bool
	}{
		{"nothing ran", []store.RunEvent{ev("created", "", -1, "")}, Position{}, false},
		{"in a precondition", []store.RunEvent{ev("step_start", "precondition", 0, "")}, Position{}, false},
		{"preconditions done", []store.RunEvent{ev("step_end", "precondition", 0, "")}, Position{}, false},
		{"approved, step in flight", []store.RunEvent{ev("approved", "", -1, ""), ev("step_start", "step", 2, "")}, Position{"step", 2}, true},
		{"after a finished step", []store.RunEvent{ev("step_end", "step", 1, "")}, Position{"step", 2}, false},
		{"after a failed attempt", []store.RunEvent{ev("step_end", "step", 1, "503")}, Position{"step", 1}, false},
		{"in the rollback", []store.RunEvent{ev("step_end", "step", 1, "503"), ev("step_start", "rollback", 0, "")}, Position{"rollback", 0}, false},
	} {
		got, approved := resumePoint(tc.evs)
		if got != tc.want || approved != tc.approved {
			t.Errorf("%s: %+v %v, want %+v %v", tc.name, got, approved, tc.want, tc.approved)
		}
	}
}

// TestManualDryRunOfEnforceRunbook: a dry run asked for by hand renders
// every step and touches nothing, even though the runbook enforces.
func TestManualDryRunOfEnforceRunbook(t *testing.T) {
	m, st, gw, _ := newTestManager(t, map[string][]bool{"invoice_sync_standby": {true}, "invoice_qr": {true}})
	id, err := m.Trigger(context.Background(), "invoice-failover", firingAlert().Labels, nil, "manual", DryRun)
	if err != nil {
		t.Fatal(err)
	}
	r := waitState(t, st, id, ResultDryRun)
	_, evs, _ := st.Run(context.Background(), id)
	if got := kinds(evs); got != "created,planned:precondition0,planned:step0,planned:step1,planned:step2,planned:rollback0,finished" || r.Fencing != 0 {
		t.Errorf("dry run timeline %s, fencing %d", got, r.Fencing)
	}
	gw.mu.Lock()
	defer gw.mu.Unlock()
	if len(gw.headers) != 0 {
		t.Errorf("dry run sent %d requests", len(gw.headers))
	}
}

func (m *memLocks) Close() error { return nil }

// TestDrillRunsKeepApart: a run caused by a drill alert sends its notify
// step through the drill route and leaves no cooldown: neither the next
// drill nor the failover of a real incident right after it is blocked.
func TestDrillRunsKeepApart(t *testing.T) {
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "v.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	checks := map[string][]bool{"invoice_sync_standby": {true}, "invoice_qr": {true}}
	m, _ := startManager(t, st, &gateway{}, func(*Runbook) {}, checks)
	var mu sync.Mutex
	var sent []string
	m.opts.Env.Pager = drillAwarePager{func(s string) { mu.Lock(); sent = append(sent, s); mu.Unlock() }}
	drill := firingAlert()
	drill.Labels["drill"], drill.Labels["drill_id"] = "true", "d-1"
	m.OnAlerts(context.Background(), []notify.Alert{drill})
	waitState(t, st, latestRuns(t, st)[0].ID, ResultSucceeded)
	again := firingAlert()
	again.Labels["drill"], again.Labels["drill_id"] = "true", "d-2"
	m.OnAlerts(context.Background(), []notify.Alert{again})
	waitState(t, st, latestRuns(t, st)[0].ID, ResultSucceeded)
	real := firingAlert()
	m.OnAlerts(context.Background(), []notify.Alert{real})
	runs := latestRuns(t, st)
	if len(runs) != 3 || runs[0].State == StateBlocked {
		t.Fatalf("the drill's cooldown blocked a real incident: %+v", runs)
	}
	waitState(t, st, runs[0].ID, ResultSucceeded)
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(sent, ",") != "drill d-1 oncall,drill d-2 oncall,real oncall" {
		t.Errorf("notifications: %v", sent)
	}
}

type drillAwarePager struct{ record func(string) }

func (p drillAwarePager) NotifyReceiver(_ context.Context, receiver, _, _ string) error {
	p.record("real " + receiver)
	return nil
}

func (p drillAwarePager) NotifyDrill(_ context.Context, id, receiver, _, _ string) error {
	p.record("drill " + id + " " + receiver)
	return nil
}

// TestRunsLiveUntilStartsContextEnds: a run outlives the call that
// triggered it (an API request), and ends, aborted, with Start's ctx;
// so does one triggered after that. Before Start nothing is triggered.
func TestRunsLiveUntilStartsContextEnds(t *testing.T) {
	idle := NewManager(Options{})
	idle.SetRunbooks([]*Runbook{{Name: "x"}})
	if _, err := idle.Trigger(context.Background(), "x", nil, nil, "manual", ""); err == nil || err.Error() != "runbooks are not started" {
		t.Errorf("before Start: %v", err)
	}
	m, st, _, cancel := newTestManager(t, map[string][]bool{"invoice_sync_standby": {true}, "invoice_qr": {true}})
	rb := m.Runbooks()[0]
	rb.Mode, rb.ApprovalTimeout, rb.Cooldown = Approve, model.Duration(time.Hour), 0
	req, endRequest := context.WithCancel(context.Background())
	id, err := m.Trigger(req, "invoice-failover", firingAlert().Labels, nil, "manual", "")
	if err != nil {
		t.Fatal(err)
	}
	endRequest()
	waitState(t, st, id, StateWaitingApproval)
	time.Sleep(50 * time.Millisecond)
	if r, _, _ := st.Run(context.Background(), id); r.State != StateWaitingApproval {
		t.Fatalf("the run ended with the request: %+v", r)
	}
	cancel()
	waitState(t, st, id, ResultAborted)
	id, err = m.Trigger(context.Background(), "invoice-failover", map[string]string{"platform": "other"}, nil, "manual", "")
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, st, id, ResultAborted)
	m.Wait()
}

// frozenLocks is a lock backend that, while frozen, answers nothing until
// the caller gives up (etcd under SIGSTOP).
type frozenLocks struct {
	*memLocks
	frozen atomic.Bool
}

func (f *frozenLocks) wait(ctx context.Context) error {
	if f.frozen.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func (f *frozenLocks) TryAcquire(ctx context.Context, key string) (Lease, error) {
	if err := f.wait(ctx); err != nil {
		return nil, err
	}
	return f.memLocks.TryAcquire(ctx, key)
}

func (f *frozenLocks) CooldownUntil(ctx context.Context, key string) (time.Time, error) {
	if err := f.wait(ctx); err != nil {
		return time.Time{}, err
	}
	return f.memLocks.CooldownUntil(ctx, key)
}

func (f *frozenLocks) Paused(ctx context.Context) (bool, string, error) {
	if err := f.wait(ctx); err != nil {
		return false, "", err
	}
	return f.memLocks.Paused(ctx)
}

// TestTriggerWithFrozenLockBackend: with the lock backend not answering,
// a trigger gives up when its context ends instead of holding the alert
// path, and the alert's next resend starts the run once the backend is
// back.
func TestTriggerWithFrozenLockBackend(t *testing.T) {
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "v.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := httptest.NewServer(&gateway{})
	t.Cleanup(srv.Close)
	locks := &frozenLocks{memLocks: newMemLocks()}
	m := NewManager(Options{Journal: st, Locker: locks, State: locks, Env: Env{Checker: &fakeChecker{results: map[string][]bool{"invoice_sync_standby": {true}, "invoice_qr": {true}}},
		Pager: pagerFunc(func(context.Context, string, string, string) error { return nil })}})
	m.SetRunbooks([]*Runbook{failoverRunbook(t, srv.URL)})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); m.Wait() })
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	a := firingAlert()
	locks.frozen.Store(true)
	tctx, tcancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	m.OnAlerts(tctx, []notify.Alert{a})
	tcancel()
	if runs := latestRuns(t, st); len(runs) != 0 {
		t.Fatalf("runs with the backend frozen: %+v", runs)
	}
	locks.frozen.Store(false)
	m.OnAlerts(context.Background(), []notify.Alert{a}) // the resend
	if runs := latestRuns(t, st); len(runs) != 1 {
		t.Fatalf("the resend did not start the run: %+v", runs)
	}
}
