package drill

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-project/vigil/agent/runbook"
	"github.com/vigil-project/vigil/agent/store"
	"github.com/vigil-project/vigil/probes"
)

func TestShippedDrillsParse(t *testing.T) {
	files, _ := filepath.Glob("../../examples/drills/*.yml")
	if len(files) < 4 {
		t.Fatalf("want the four shipped drills, found %v", files)
	}
	for _, f := range files {
		if _, err := Load(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown key", "name: a\nhypothesis: h\nchecks: [c]\ninject: [{wait: 1s}]\nbogus: 1\n", "field bogus not found"},
		{"no inject", "name: a\nhypothesis: h\nchecks: [c]\n", "inject: a drill needs at least one action"},
		{"runbook step kind", "name: a\nhypothesis: h\nchecks: [c]\ninject:\n  - notify: {receiver: x, message: y}\n", ":5: inject.0: notify steps belong in runbooks"},
		{"simulate in rollback", "name: a\nhypothesis: h\nchecks: [c]\ninject: [{wait: 1s}]\nrollback:\n  - simulate: {checks: [c]}\n", "rollback.0.simulate: simulate injects"},
		{"stop on own check", "name: a\nhypothesis: h\nchecks: [c]\ninject: [{wait: 1s}]\nstop_conditions: [{check: c}]\n", "stop_conditions.0.check"},
		{"both", "name: a\nhypothesis: h\nchecks: [c]\ninject: [{wait: 1s}]\nstop_conditions: [{check: d, expr: up}]\n", "set exactly one of check and expr"},
		{"exec shell string", "name: a\nhypothesis: h\nchecks: [c]\ninject:\n  - exec: {argv: []}\n", "inject.0.exec"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("d.yml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestHistoryPercentiles(t *testing.T) {
	var reps []Report
	for _, v := range []float64{10, 20, 30, 40, 50, 60, 70, 80, 90, 100} {
		reps = append(reps, Report{Measures: map[string]float64{MeasureDetect: v}})
	}
	reps = append(reps, Report{Measures: map[string]float64{MeasurePage: 5}})
	got := History(reps)
	if len(got) != 2 || got[0] != (Stats{Measure: MeasureDetect, Count: 10, P50: 50, P90: 90, Max: 100}) || got[1] != (Stats{Measure: MeasurePage, Count: 1, P50: 5, P90: 5, Max: 5}) {
		t.Errorf("history %+v", got)
	}
}

// fakeAgent plays the agent around a drill: a check that fails while the
// platform's fault is in (unless traffic was switched), alerts, a page and
// a runbook run appearing over time.
type fakeAgent struct {
	mu       sync.Mutex
	fault    bool
	switched bool
	t0       time.Time
	run      *Run
	calls    []string
}

func (f *fakeAgent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, r.Method+" "+r.URL.Path)
	switch r.Method {
	case http.MethodPost:
		f.fault, f.t0 = true, time.Now()
	case http.MethodDelete:
		f.fault, f.switched = false, false
	}
}

func (f *fakeAgent) env() Env {
	return Env{
		Tick: 10 * time.Millisecond,
		RunCheck: func(ctx context.Context, name string) (probes.Result, error) {
			f.mu.Lock()
			ok := !f.fault || f.switched || name != "invoice_qr"
			f.mu.Unlock()
			r := probes.Result{Success: ok, Start: time.Now()}
			if !ok {
				r.Reason = probes.ReasonQRMismatch
			}
			if f.run != nil {
				f.run.OnResult(name, r)
			}
			return r, nil
		},
		Steps: runbook.Env{HTTP: &http.Client{}},
		Alerts: func() []AlertInfo {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.t0.IsZero() || !f.fault && !f.switched {
				return nil
			}
			return []AlertInfo{{Labels: map[string]string{"alertname": "InvoiceQRFailing", "drill_id": "d1"}, State: "firing",
				ActiveAt: f.t0.Add(20 * time.Millisecond), FiredAt: f.t0.Add(40 * time.Millisecond)}}
		},
		Pages: func(context.Context, string, time.Time) ([]Page, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.t0.IsZero() || time.Since(f.t0) < 50*time.Millisecond {
				return nil, nil
			}
			// A runbook's message first: it is not the page.
			return []Page{{Target: "drills/webhook[0]", DoneAt: f.t0.Add(30 * time.Millisecond), Status: "firing", Alerts: []string{"RunbookNotification"}},
				{Target: "drills/webhook[0]", DoneAt: f.t0.Add(50 * time.Millisecond), Status: "firing", Alerts: []string{"InvoiceQRFailing"}}}, nil
		},
		Runs: func(context.Context, string, time.Time) ([]RunInfo, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.t0.IsZero() || time.Since(f.t0) < 60*time.Millisecond {
				return nil, nil
			}
			f.switched = true
			at := f.t0.Add(55 * time.Millisecond)
			return []RunInfo{{Row: store.RunRow{ID: "r1", Runbook: "invoice-failover", State: "succeeded", CreatedAt: at},
				Events: []store.RunEvent{{Kind: "step_start", Phase: "step", Step: 0, Name: "switch", At: at}, {Kind: "step_end", Phase: "step", Step: 0, At: at}}}}, nil
		},
	}
}

func testDrill(t *testing.T, url, extra string) *Drill {
	t.Helper()
	d, err := Parse("t.yml", []byte(`name: qr
hypothesis: failover works
checks: [invoice_qr]
steady_state: {checks: [invoice_qr], timeout: 2s}
inject:
  - http: {method: POST, url: `+url+`/faults}
duration: 3s
failover_step: switch
objectives: {detect_within: 1s, page_within: 1s, failover_within: 1s, recover_within: 2s}
rollback:
  - http: {method: DELETE, url: `+url+`/faults}
`+extra))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestRunMilestones: a failover drill against a fake agent has every
// milestone in order, measures from the fault, objectives passed, and the
// rollback ran.
func TestRunMilestones(t *testing.T) {
	fa := &fakeAgent{}
	srv := httptest.NewServer(fa)
	defer srv.Close()
	r := NewRun("d1", testDrill(t, srv.URL, ""), fa.env())
	fa.run = r
	// The scheduler keeps running the check meanwhile.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			fa.env().RunCheck(ctx, "invoice_qr")
			time.Sleep(15 * time.Millisecond)
		}
	}()
	rep := r.Execute(context.Background())
	var names []string
	for _, m := range rep.Marks {
		names = append(names, m.Name)
	}
	want := "drill_started,steady_state_verified,fault_injected,first_failed_check,alert_pending,alert_firing,page_delivered,runbook_started,traffic_switched,check_passing_again,fault_removed,steady_state_restored"
	if strings.Join(names, ",") != want {
		t.Errorf("marks\n got %s\nwant %s", strings.Join(names, ","), want)
	}
	if rep.State != StatePassed || len(rep.Objectives) != 4 || rep.Measures[MeasurePage] < 0.04 {
		t.Errorf("report %+v", rep)
	}
	if fa.calls[len(fa.calls)-1] != "DELETE /faults" {
		t.Errorf("rollback did not run: %v", fa.calls)
	}
	md := rep.Markdown()
	for _, s := range []string{"# Drill qr — PASSED", "| time_to_page | ≤ 1s |", "traffic_switched", "drills/webhook[0]"} {
		if !strings.Contains(md, s) {
			t.Errorf("markdown lacks %q:\n%s", s, md)
		}
	}
}

// TestRunStopConditionAndAbort: a stop condition ends the drill early and
// the rollback runs; so does cancelling it (Ctrl-C through the API).
func TestRunStopConditionAndAbort(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra string
		stop  func(*Run, context.CancelCauseFunc)
		want  string
	}{
		{"stop expr", "stop_conditions: [{expr: 'vigil_notify_queue_length > 50', description: pages pile up}]\n", nil, "stop condition: pages pile up"},
		{"stop check", "stop_conditions: [{check: invoice_qr_standby}]\n", func(r *Run, _ context.CancelCauseFunc) {
			r.OnResult("invoice_qr_standby", probes.Result{Reason: probes.ReasonTimeout, Start: time.Now()})
		}, "stop condition: check invoice_qr_standby fails"},
		{"abort", "", func(_ *Run, cancel context.CancelCauseFunc) { cancel(errors.New("aborted by li.wei")) }, "aborted by li.wei"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fa := &fakeAgent{}
			srv := httptest.NewServer(fa)
			defer srv.Close()
			env := fa.env()
			env.Runs, env.Pages = nil, nil // no failover: it would run to its duration
			env.Query = func(context.Context, string) (int, error) { return 1, nil }
			if tc.stop != nil {
				env.Query = func(context.Context, string) (int, error) { return 0, nil }
			}
			r := NewRun("d1", testDrill(t, srv.URL, tc.extra), env)
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			if tc.stop != nil {
				go func() {
					for !r.has(MarkInjected) {
						time.Sleep(5 * time.Millisecond)
					}
					tc.stop(r, cancel)
				}()
			}
			rep := r.Execute(ctx)
			if rep.State != StateAborted || !strings.Contains(rep.Aborted, tc.want) {
				t.Errorf("got %s %q, want aborted %q", rep.State, rep.Aborted, tc.want)
			}
			fa.mu.Lock()
			defer fa.mu.Unlock()
			if fa.calls[len(fa.calls)-1] != "DELETE /faults" || rep.at(MarkRemoved).IsZero() {
				t.Errorf("rollback did not run: %v", fa.calls)
			}
		})
	}
}

// TestSteadyStateNotMet: nothing is injected when the steady state does
// not hold first; the rollback still runs.
func TestSteadyStateNotMet(t *testing.T) {
	fa := &fakeAgent{fault: true}
	srv := httptest.NewServer(fa)
	defer srv.Close()
	rep := NewRun("d1", testDrill(t, srv.URL, ""), fa.env()).Execute(context.Background())
	if rep.State != StateAborted || !rep.at(MarkInjected).IsZero() || len(fa.calls) != 1 || fa.calls[0] != "DELETE /faults" {
		t.Errorf("state %s, calls %v, aborted %q", rep.State, fa.calls, rep.Aborted)
	}
}

func TestMain(m *testing.M) { os.Exit(m.Run()) }

// TestRecoverNeedsEveryFailedCheck: a drill check that failed and is not
// among the steady-state checks is run again after the rollback, so the
// drill sees it pass ("check passing again" needs every failed check).
func TestRecoverNeedsEveryFailedCheck(t *testing.T) {
	fa := &fakeAgent{}
	srv := httptest.NewServer(fa)
	defer srv.Close()
	d, err := Parse("t.yml", []byte(`name: net
hypothesis: h
checks: [tcp, sync]
steady_state: {checks: [tcp], timeout: 2s}
inject:
  - http: {method: POST, url: `+srv.URL+`/faults}
duration: 1s
rollback:
  - http: {method: DELETE, url: `+srv.URL+`/faults}
`))
	if err != nil {
		t.Fatal(err)
	}
	env := fa.env()
	env.Alerts, env.Pages, env.Runs = nil, nil, nil
	var r *Run
	env.RunCheck = func(_ context.Context, name string) (probes.Result, error) {
		fa.mu.Lock()
		ok := !fa.fault
		fa.mu.Unlock()
		res := probes.Result{Success: ok, Start: time.Now()}
		if !ok {
			res.Reason = probes.ReasonTimeout
		}
		r.OnResult(name, res)
		return res, nil
	}
	r = NewRun("d1", d, env)
	go func() {
		for !r.has(MarkInjected) {
			time.Sleep(5 * time.Millisecond)
		}
		env.RunCheck(context.Background(), "sync") // fails during the fault; not a steady-state check
		env.RunCheck(context.Background(), "tcp")
	}()
	rep := r.Execute(context.Background())
	if rep.at(MarkPassing).IsZero() {
		t.Errorf("recovery not seen: %+v", rep.Marks)
	}
}
