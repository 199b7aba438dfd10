package drill

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"
)

// TestInterruptedRebuildsReport: a drill the agent died in keeps the
// timeline it had saved (fault injected, first failure) and regains from
// the outbox and the runbook journal what happened before and after the
// save: the page, the runbook run and the failover. The rollback runs and
// the measures taken stand; the state is interrupted.
func TestInterruptedRebuildsReport(t *testing.T) {
	t.Parallel()
	fa := &fakeAgent{}
	srv := httptest.NewServer(fa)
	defer srv.Close()
	d := testDrill(t, srv.URL, "")
	t0 := time.Now().Add(-time.Minute)
	fa.t0, fa.fault = t0, true // the fault the dead agent injected is still in
	saved := Report{ID: "d1", Drill: d.Name, State: StateRunning, StartedAt: t0.Add(-time.Second), Checks: d.Checks,
		Marks: []Mark{
			{Name: MarkStarted, At: t0.Add(-time.Second)},
			{Name: MarkInjected, At: t0},
			{Name: MarkFirstFailure, At: t0.Add(20 * time.Millisecond), Detail: "invoice_qr: qr_mismatch"},
		},
		Actions: []ActionResult{{Phase: "inject", Index: 0, Name: "POST /faults", At: t0}},
	}
	rep := Resume("d1", d, fa.env(), saved).Interrupted(context.Background(), "the agent stopped")
	if rep.State != StateInterrupted || rep.Aborted != "the agent stopped" {
		t.Errorf("state %q aborted %q", rep.State, rep.Aborted)
	}
	for _, m := range []string{MarkInjected, MarkFirstFailure, MarkPaged, MarkRunbook, MarkSwitched, MarkRemoved} {
		if rep.at(m).IsZero() {
			t.Errorf("mark %s missing: %+v", m, rep.Marks)
		}
	}
	if len(rep.Pages) != 2 || len(rep.Runbooks) != 1 || rep.Runbooks[0].ID != "r1" {
		t.Errorf("pages %+v runbooks %+v", rep.Pages, rep.Runbooks)
	}
	if len(rep.Actions) != 2 || rep.Actions[0].Phase != "inject" || rep.Actions[1].Phase != "rollback" {
		t.Errorf("actions %+v", rep.Actions)
	}
	if got := rep.Measures[MeasurePage]; got < 0.049 || got > 0.051 {
		t.Errorf("time_to_page %v, want 0.05 (from the saved T0)", got)
	}
	if _, ok := rep.Measures[MeasureDetect]; !ok {
		t.Errorf("measures %v", rep.Measures)
	}
	fa.mu.Lock()
	defer fa.mu.Unlock()
	if fa.fault || fa.calls[len(fa.calls)-1] != "DELETE /faults" {
		t.Errorf("rollback did not run: %v", fa.calls)
	}
}

// TestInterruptedWithoutSavedReport: nothing was saved (the agent died
// before the first save): the report is rebuilt from the journal and the
// outbox alone.
func TestInterruptedWithoutSavedReport(t *testing.T) {
	t.Parallel()
	fa := &fakeAgent{}
	srv := httptest.NewServer(fa)
	defer srv.Close()
	d := testDrill(t, srv.URL, "")
	fa.t0 = time.Now().Add(-time.Minute)
	rep := Resume("d1", d, fa.env(), Report{}).Interrupted(context.Background(), "stopped")
	if rep.State != StateInterrupted || rep.at(MarkPaged).IsZero() || len(rep.Runbooks) != 1 {
		t.Errorf("report %+v", rep)
	}
}
