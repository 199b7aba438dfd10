package incident

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/agent/store"
	"github.com/vigil-project/vigil/probes"
)

// fakeAcks are acknowledgements by key.
type fakeAcks map[string]time.Time

func (f fakeAcks) Acked(_ context.Context, key string) (string, time.Time, bool, error) {
	at, ok := f[key]
	return "li.wei", at, ok, nil
}

// TestIncidentLifecycle: an alert fires after its check failed twice; the
// incident records the first failure and the root cause, lists the page
// that carried it, closes when the alert resolves with its durations, and
// a restarted recorder neither reopens nor forgets it.
func TestIncidentLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "vigil.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	t0 := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	run := func(at time.Duration, ok bool) {
		r := probes.Result{Start: t0.Add(at), Success: ok}
		if !ok {
			r.Reason, r.Message = probes.ReasonTimeout, "no answer in 5s"
			r.Diagnostics = map[string]any{"hops": []string{"10.0.0.1"}}
		}
		st.Record(store.Record{Check: "invoice_sync", Type: "invoice_sync", Result: r})
	}
	run(0, true)
	run(time.Minute, false) // the streak starts here
	run(time.Minute+10*time.Second, false)
	if err := st.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(time.Minute + 30*time.Second)
	r := New(Options{Store: st, RootCause: func(c string) string { return "tax-network" }, Now: func() time.Time { return now }})
	alert := notify.Alert{Labels: map[string]string{"alertname": "SyncFailing", "check": "invoice_sync"},
		Annotations: map[string]string{"summary": "sync fails"}, StartsAt: t0.Add(time.Minute + 20*time.Second), EndsAt: now.Add(time.Hour)}
	alert.Fingerprint = notify.Fingerprint(alert.Labels)
	r.Alerts(ctx, []notify.Alert{alert})
	r.Alerts(ctx, []notify.Alert{alert}) // resent while firing: still one incident

	// The page that carried it, delivered 2 s later.
	msg := notify.Message{Receiver: "oncall", Alerts: []notify.Alert{alert}, Created: now}
	payload, _ := json.Marshal(msg)
	it := &store.OutboxItem{Target: "oncall/webhook[0]", OrderKey: "k", Payload: payload, CreatedAt: now, NextAt: now}
	if err := st.Enqueue(ctx, []*store.OutboxItem{it}); err != nil {
		t.Fatal(err)
	}
	if err := st.UpdateOutbox(ctx, []store.OutboxItem{{ID: it.ID, State: store.OutboxSent, Attempts: 1, DoneAt: now.Add(2 * time.Second)}}); err != nil {
		t.Fatal(err)
	}

	open, err := st.OpenIncidents(ctx)
	if err != nil || len(open) != 1 {
		t.Fatalf("open incidents: %v %v", open, err)
	}
	in := open[0]
	if !in.FirstFailureAt.Equal(t0.Add(time.Minute)) || in.RootCause != "tax-network" || in.Check != "invoice_sync" {
		t.Errorf("incident %+v: want first failure at +1m, root cause tax-network", in)
	}

	// The check recovers, the alert resolves.
	run(2*time.Minute, true)
	st.Flush(ctx)
	now = t0.Add(2*time.Minute + 5*time.Second)
	alert.EndsAt = now
	r2 := New(Options{Store: st, Now: func() time.Time { return now }}) // a restarted agent
	if err := r2.Load(ctx); err != nil {
		t.Fatal(err)
	}
	r2.Alerts(ctx, []notify.Alert{alert})
	if open, _ := st.OpenIncidents(ctx); len(open) != 0 {
		t.Fatalf("still open after the resolve: %+v", open)
	}
	v, err := r2.Timeline(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range v.Events {
		kinds = append(kinds, e.Kind)
	}
	want := []string{"failure", "failure", "alert", "alert", "page", "recovery", "alert"}
	if len(kinds) != len(want) {
		t.Fatalf("timeline %v, want %v", kinds, want)
	}
	for i := range want {
		if kinds[i] != want[i] {
			t.Fatalf("timeline %v, want %v", kinds, want)
		}
	}
	if v.Events[0].Detail[0] != "no answer in 5s" || v.Events[4].Outcome != "sent" || v.Events[3].Title != "SyncFailing firing — root cause: tax-network failing" {
		t.Errorf("events: %+v", v.Events)
	}
	d := v.Durations
	if d.Detect != 30*time.Second || d.Page != 32*time.Second || d.Recover != 65*time.Second {
		t.Errorf("durations %+v, want detect 30s, page 32s, recover 65s", d)
	}
	if got, _ := st.IncidentByID(ctx, in.ID); !got.PagedAt.Equal(now.Add(-65*time.Second + 32*time.Second)) {
		t.Errorf("paged_at %v", got.PagedAt)
	}
	// A runbook run the alert started, and an ack of its target during the
	// incident, join the timeline.
	fp := alert.Fingerprint
	rbRun := store.RunRow{ID: "r1", Runbook: "sync-resync", Target: "invoice_sync", Trigger: "alert", Labels: "{}",
		Alert: fp + "@1", Mode: "enforce", State: "running", CreatedAt: t0.Add(time.Minute + 31*time.Second)}
	if err := st.CreateRun(ctx, rbRun, store.RunEvent{At: rbRun.CreatedAt, Kind: "created"}); err != nil {
		t.Fatal(err)
	}
	r3 := New(Options{Store: st, Now: func() time.Time { return now }, Acks: fakeAcks{"sync-resync/invoice_sync": t0.Add(time.Minute + 40*time.Second)}})
	v, err = r3.Timeline(ctx, in.ID)
	if err != nil {
		t.Fatal(err)
	}
	kinds = nil
	for _, e := range v.Events {
		kinds = append(kinds, e.Kind)
	}
	want = []string{"failure", "failure", "alert", "alert", "runbook", "runbook", "page", "ack", "recovery", "alert"}
	if fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Errorf("timeline with a runbook run and an ack: %v, want %v", kinds, want)
	}
	// The outbox sweep deletes finished notifications, but not the page
	// this incident shows: its timeline outlives the outbox retention.
	other := notify.Alert{Labels: map[string]string{"alertname": "Other"}, StartsAt: now}
	other.Fingerprint = notify.Fingerprint(other.Labels)
	otherPayload, _ := json.Marshal(notify.Message{Receiver: "oncall", Alerts: []notify.Alert{other}, Created: now})
	it2 := &store.OutboxItem{Target: "oncall/webhook[0]", OrderKey: "k2", Payload: otherPayload, CreatedAt: now, NextAt: now}
	if err := st.Enqueue(ctx, []*store.OutboxItem{it2}); err != nil {
		t.Fatal(err)
	}
	st.UpdateOutbox(ctx, []store.OutboxItem{{ID: it2.ID, State: store.OutboxSent, Attempts: 1, DoneAt: now}})
	if n, err := st.PruneOutbox(ctx, time.Now().Add(time.Hour)); err != nil || n != 1 {
		t.Errorf("PruneOutbox deleted %d (%v), want the other alert's page only", n, err)
	}
	v, _ = r3.Timeline(ctx, in.ID)
	pages := 0
	for _, e := range v.Events {
		if e.Kind == "page" {
			pages++
		}
	}
	if pages != 1 {
		t.Errorf("after the outbox sweep the timeline shows %d pages, want 1: %+v", pages, v.Events)
	}
	if _, err := st.IncidentByID(ctx, 999); err != store.ErrNoIncident {
		t.Errorf("unknown id: %v", err)
	}
}
