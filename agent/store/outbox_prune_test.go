package store

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestPruneOutbox: the sweep deletes delivered and dead-lettered
// notifications finished before the cutoff, in chunks, and keeps pending
// ones, recent ones and those an incident's timeline shows (its alert's,
// queued within its page window; an open incident's from its start on).
func TestPruneOutbox(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, filepath.Join(t.TempDir(), "vigil.db"), Options{})
	s.pruneChunk = 2
	now := time.UnixMilli(time.Now().UnixMilli())
	day := 24 * time.Hour
	start, resolved := now.Add(-20*day), now.Add(-20*day+time.Hour)
	if _, err := s.OpenIncident(ctx, Incident{Fingerprint: "fp-resolved", Alertname: "A", StartedAt: start, FiringAt: start}); err != nil {
		t.Fatal(err)
	}
	if err := s.ResolveIncident(ctx, "fp-resolved", resolved, time.Time{}); err != nil {
		t.Fatal(err)
	}
	openAt := now.Add(-15 * day)
	if _, err := s.OpenIncident(ctx, Incident{Fingerprint: "fp-open", Alertname: "B", StartedAt: openAt, FiringAt: openAt}); err != nil {
		t.Fatal(err)
	}
	type item struct {
		name, fp, state string
		created         time.Time
		keep            bool
	}
	items := []item{
		{"old sent", "fp-x", OutboxSent, now.Add(-10 * day), false},
		{"old dead", "fp-x", OutboxDead, now.Add(-9 * day), false},
		{"old sent 2", "fp-y", OutboxSent, now.Add(-9 * day), false},
		{"old pending", "fp-x", OutboxPending, now.Add(-10 * day), true},
		{"recent sent", "fp-x", OutboxSent, now.Add(-time.Hour), true},
		{"incident page", "fp-resolved", OutboxSent, start.Add(time.Minute), true},
		{"incident page just before", "fp-resolved", OutboxSent, start.Add(-IncidentPagesBefore), true},
		{"incident resolve after", "fp-resolved", OutboxSent, resolved.Add(IncidentPagesAfter), true},
		{"incident alert long before", "fp-resolved", OutboxSent, start.Add(-IncidentPagesBefore - time.Second), false},
		{"incident alert long after", "fp-resolved", OutboxDead, resolved.Add(IncidentPagesAfter + time.Second), false},
		{"other alert in the window", "fp-z", OutboxSent, start.Add(time.Minute), false},
		{"open incident page", "fp-open", OutboxSent, openAt.Add(3 * day), true},
	}
	ids := map[int64]item{}
	for _, it := range items {
		oi := &OutboxItem{Target: "oncall/webhook[0]", OrderKey: it.name, CreatedAt: it.created, NextAt: it.created,
			Payload: fmt.Appendf(nil, `{"alerts":[{"fingerprint":%q}]}`, it.fp)}
		if err := s.Enqueue(ctx, []*OutboxItem{oi}); err != nil {
			t.Fatal(err)
		}
		if it.state != OutboxPending {
			if err := s.UpdateOutbox(ctx, []OutboxItem{{ID: oi.ID, State: it.state, Attempts: 1, DoneAt: it.created.Add(time.Second)}}); err != nil {
				t.Fatal(err)
			}
		}
		ids[oi.ID] = it
	}
	n, err := s.PruneOutbox(ctx, now.Add(-7*day))
	if err != nil {
		t.Fatal(err)
	}
	left, err := s.OutboxItems(ctx, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, it := range left {
		kept = append(kept, ids[it.ID].name)
	}
	var want []string
	deleted := 0
	for _, it := range items {
		if it.keep {
			want = append(want, it.name)
		} else {
			deleted++
		}
	}
	slices.Sort(kept)
	slices.Sort(want)
	if !slices.Equal(kept, want) {
		t.Errorf("kept %q, want %q", kept, want)
	}
	if n != int64(deleted) {
		t.Errorf("PruneOutbox says %d deleted, want %d", n, deleted)
	}
}

// TestOutboxSweep: the store's retention sweep prunes the outbox with
// Options.OutboxRetention, also when check history is kept forever.
func TestOutboxSweep(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "vigil.db")
	s := openStore(t, path, Options{})
	old := time.Now().Add(-30 * 24 * time.Hour)
	oi := &OutboxItem{Target: "t", OrderKey: "k", Payload: []byte(`{}`), CreatedAt: old, NextAt: old}
	if err := s.Enqueue(ctx, []*OutboxItem{oi}); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateOutbox(ctx, []OutboxItem{{ID: oi.ID, State: OutboxSent, Attempts: 1, DoneAt: old}}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openStore(t, path, Options{OutboxRetention: 7 * 24 * time.Hour})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		left, err := s.OutboxItems(ctx, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sweep left %d old notifications", len(left))
		}
	}
}
