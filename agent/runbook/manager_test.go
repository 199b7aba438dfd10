package runbook

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

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
	srv := httptest.NewServer(gw)
	t.Cleanup(srv.Close)
	locks := newMemLocks()
	m := NewManager(Options{Journal: st, Locker: locks, State: locks, Env: Env{Checker: &fakeChecker{results: checks},
		Pager: pagerFunc(func(context.Context, string, string, string) error { return nil })}})
	rb := failoverRunbook(t, srv.URL)
	rb.Steps[1].Check.Within = 300_000_000
	m.SetRunbooks([]*Runbook{rb})
	ctx, cancel := context.WithCancel(context.Background())
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); m.Wait() })
	return m, st, gw, cancel
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
	m.OnAlerts([]notify.Alert{a})
	m.OnAlerts([]notify.Alert{a}) // resend: no second run
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
	m.OnAlerts([]notify.Alert{res})
	m.OnAlerts([]notify.Alert{a})
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
	m.Runbooks()[0].Steps[1].Check.Within = 1_000_000_000
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

// TestRestartMarksInterrupted: a run left "running" by a dead process is
// marked interrupted at start and nothing is re-executed.
func TestRestartMarksInterrupted(t *testing.T) {
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "v.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	st.CreateRun(context.Background(), store.RunRow{ID: "old", Runbook: "invoice-failover", Target: "t", Trigger: "alert", Labels: "{}", Mode: "enforce", State: StateRunning, CreatedAt: now},
		store.RunEvent{At: now, Kind: "created"})
	gw := &gateway{}
	locks := newMemLocks()
	m := NewManager(Options{Journal: st, Locker: locks, State: locks})
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); m.Wait() }()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	r, evs, _ := st.Run(context.Background(), "old")
	if r.State != StateInterrupted || evs[len(evs)-1].Kind != "interrupted" || len(gw.headers) != 0 {
		t.Errorf("after restart: %+v %+v", r, evs)
	}
}

func (m *memLocks) Close() error { return nil }
