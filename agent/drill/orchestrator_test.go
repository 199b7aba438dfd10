package drill

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/agent/scheduler"
	"github.com/vigil-project/vigil/agent/store"
	"github.com/vigil-project/vigil/internal/testenv"
	"github.com/vigil-project/vigil/probes"
	"github.com/vigil-project/vigil/rules"
)

// schedFake runs checks through the orchestrator's override, as the
// scheduler does: a simulated check fails, others pass.
type schedFake struct {
	o *Orchestrator

	mu   sync.Mutex
	runs int
}

func (s *schedFake) RunNow(_ context.Context, name string) (probes.Result, error) {
	s.mu.Lock()
	s.runs++
	s.mu.Unlock()
	r, ok := s.o.Override(&scheduler.Job{Name: name})
	if !ok {
		r = probes.Result{Success: true, Start: time.Now()}
	}
	s.o.OnResult(name, r)
	return r, nil
}

type noAlerts struct{}

func (noAlerts) ActiveAlerts() []rules.Alert                { return nil }
func (noAlerts) Count(context.Context, string) (int, error) { return 0, nil }

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "vigil.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newOrchestrator(t *testing.T, st *store.Store, drills ...*Drill) (*Orchestrator, *schedFake, string) {
	t.Helper()
	dir := t.TempDir()
	sf := &schedFake{}
	o := NewOrchestrator(OrchestratorOptions{Checks: sf, Alerts: noAlerts{}, Query: noAlerts{}, Pages: st, Runs: st, Reports: st,
		KnownCheck: func(name string) bool { return name == "db" }, ReportsDir: func() string { return dir }}, drills)
	sf.o = o
	return o, sf, dir
}

func runOrchestrator(t *testing.T, o *Orchestrator) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { o.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Error("Run did not return")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func simDrill(t *testing.T) *Drill {
	t.Helper()
	d, err := Parse("sim.yml", []byte(`name: sim
hypothesis: the agent sees a database outage
checks: [db]
inject:
  - simulate: {checks: [db], reason: connection_refused}
duration: 1m
`))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestOrchestratorLifecycle: one drill at a time; while it runs its check
// fails in the scheduler and its alerts are marked; an abort runs the
// rollback and keeps the report in the store, the reports directory and
// the metrics; Run waits for it.
func TestOrchestratorLifecycle(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	d := simDrill(t)
	o, sf, dir := newOrchestrator(t, st, d)
	stop := runOrchestrator(t, o)
	id, err := o.Start(d, "ops")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Start(d, "ops"); !errors.Is(err, ErrActive) {
		t.Errorf("second Start: %v, want ErrActive", err)
	}
	testenv.Eventually(t, 20*time.Second, "the simulated failure", func() bool {
		r, _ := sf.RunNow(context.Background(), "db")
		return !r.Success && r.Reason == probes.ReasonConnectionRefused && r.Diagnostics["drill_id"] == id
	})
	if ls := o.Relabel(labels.FromStrings("alertname", "DatabaseDown", "check", "db")); ls.Get("drill") != "true" || ls.Get("drill_id") != id {
		t.Errorf("alert about the drill's check not marked: %v", ls)
	}
	if ls := o.Relabel(labels.FromStrings("alertname", "DiskFull", "check", "host")); ls.Get("drill") != "" {
		t.Errorf("alert about another check marked: %v", ls)
	}
	if err := o.Abort("nope", "ops"); err == nil {
		t.Error("abort of an unknown run accepted")
	}
	if err := o.Abort(id, "ops"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, "the drill to finish", func() bool { return o.Current() == nil })
	if _, simulated := o.Override(&scheduler.Job{Name: "db"}); simulated {
		t.Error("the check is still simulated after the drill")
	}
	rows, err := st.DrillRuns(context.Background(), "sim", 10)
	if err != nil || len(rows) != 1 || rows[0].State != StateAborted {
		t.Fatalf("stored runs %+v, %v", rows, err)
	}
	var rep Report
	if err := json.Unmarshal([]byte(rows[0].Report), &rep); err != nil || rep.Aborted != "aborted by ops" {
		t.Errorf("stored report %+v, %v", rep, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "sim-"+id+".md")); err != nil {
		t.Errorf("markdown report: %v", err)
	}
	var buf bytes.Buffer
	o.WritePrometheus(&buf)
	for _, want := range []string{`vigil_drill_runs_total{drill="sim",result="aborted"} 1`, "vigil_drill_active 0"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("metrics lack %s:\n%s", want, buf.String())
		}
	}
	stop()
	if _, err := o.Start(d, "ops"); !errors.Is(err, errNotRunning) {
		t.Errorf("Start after Run returned: %v", err)
	}
}

// TestOrchestratorWaitsForRollback: stopping the agent during a drill
// returns only after the drill has finished (its rollback ran).
func TestOrchestratorWaitsForRollback(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	d := simDrill(t)
	o, _, _ := newOrchestrator(t, st, d)
	stop := runOrchestrator(t, o)
	if _, err := o.Start(d, "ops"); err != nil {
		t.Fatal(err)
	}
	stop()
	if o.Current() != nil {
		t.Error("Run returned while the drill was still running")
	}
	rows, err := st.DrillRuns(context.Background(), "sim", 10)
	if err != nil || len(rows) != 1 || rows[0].State == StateRunning {
		t.Errorf("stored runs after stop %+v, %v", rows, err)
	}
}

// TestOrchestratorRecoversInterrupted: a drill a dead agent left running
// is rolled back and marked interrupted when Run starts.
func TestOrchestratorRecoversInterrupted(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	d := simDrill(t)
	if err := st.SaveDrillRun(context.Background(), store.DrillRow{ID: "dead1", Drill: "sim", State: StateRunning,
		StartedAt: time.Now().Add(-time.Minute), Spec: d.Source}); err != nil {
		t.Fatal(err)
	}
	o, _, _ := newOrchestrator(t, st, d)
	runOrchestrator(t, o)
	testenv.Eventually(t, 20*time.Second, "the interrupted drill", func() bool {
		rows, err := st.DrillRuns(context.Background(), "sim", 10, StateInterrupted)
		return err == nil && len(rows) == 1 && rows[0].ID == "dead1"
	})
}

// TestPagesByDecodedLabels: a drill's pages are the delivered
// notifications with an alert labelled with its id; the id appearing
// elsewhere in the payload does not make a page.
func TestPagesByDecodedLabels(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	ctx := context.Background()
	since := time.Now().Add(-time.Minute)
	msg := func(lbls, ann map[string]string) []byte {
		b, _ := json.Marshal(notify.Message{Receiver: "drills", Alerts: []notify.Alert{{Labels: lbls, Annotations: ann,
			StartsAt: time.Now(), EndsAt: time.Now().Add(time.Hour)}}})
		return b
	}
	items := []*store.OutboxItem{
		{Target: "drills/webhook[0]", OrderKey: "a", Payload: msg(map[string]string{"alertname": "DatabaseDown", "drill_id": "d1"}, nil), CreatedAt: time.Now()},
		{Target: "oncall/webhook[0]", OrderKey: "b", Payload: msg(map[string]string{"alertname": "Other"}, map[string]string{"note": `"drill_id":"d1"`}), CreatedAt: time.Now()},
		{Target: "drills/webhook[0]", OrderKey: "c", Payload: msg(map[string]string{"alertname": "OtherDrill", "drill_id": "d2"}, nil), CreatedAt: time.Now()},
	}
	if err := st.Enqueue(ctx, items); err != nil {
		t.Fatal(err)
	}
	var sent []store.OutboxItem
	for _, it := range items {
		done := *it
		done.State, done.DoneAt = store.OutboxSent, time.Now()
		sent = append(sent, done)
	}
	if err := st.UpdateOutbox(ctx, sent); err != nil {
		t.Fatal(err)
	}
	o, _, _ := newOrchestrator(t, st)
	pages, err := o.pages(ctx, "d1", since)
	if err != nil {
		t.Fatal(err)
	}
	if len(pages) != 1 || pages[0].Target != "drills/webhook[0]" || strings.Join(pages[0].Alerts, ",") != "DatabaseDown" || pages[0].Status != "firing" {
		t.Errorf("pages %+v", pages)
	}
}
