package outbox

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/agent/store"
	"github.com/vigil-project/vigil/internal/testenv"
)

// scripted is a notifier whose answers the test controls.
type scripted struct {
	mu     sync.Mutex
	got    []string // "orderKey/status" of acknowledged messages
	answer func(m *notify.Message, attempt int) error
	tries  map[string]int
}

func (s *scripted) Notify(_ context.Context, m *notify.Message) error {
	s.mu.Lock()
	if s.tries == nil {
		s.tries = map[string]int{}
	}
	key := m.GroupKey + "/" + m.Status()
	s.tries[key]++
	n := s.tries[key]
	answer := s.answer
	s.mu.Unlock()
	if answer != nil {
		if err := answer(m, n); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.got = append(s.got, key)
	s.mu.Unlock()
	return nil
}

func (s *scripted) acked() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

func openStore(t *testing.T, path string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func msg(group string, resolved bool, created time.Time) *notify.Message {
	end := created.Add(time.Hour)
	if resolved {
		end = created.Add(-time.Second)
	}
	return &notify.Message{Receiver: "oncall", GroupKey: group, Created: created,
		Alerts: []notify.Alert{{Labels: map[string]string{"alertname": group}, StartsAt: created.Add(-time.Minute), EndsAt: end}}}
}

func fast(st Store) Options {
	return Options{Store: st, MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, MaxAge: time.Hour}
}

// TestOrderPerKey: with concurrency, different groups go out in parallel
// but one group's firing and resolved never swap, even when the first
// attempt of "firing" fails.
func TestOrderPerKey(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "v.db"))
	defer st.Close()
	n := &scripted{answer: func(m *notify.Message, attempt int) error {
		if m.Status() == "firing" && attempt < 3 {
			return errors.New("503")
		}
		return nil
	}}
	o := New(fast(st))
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); o.Wait() }()
	if err := o.Start(ctx, []Target{{Name: "oncall/webhook[0]", Receiver: "oncall", Integration: "webhook", Notifier: n, Concurrency: 4}}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i := range 5 {
		g := fmt.Sprintf("g%d", i)
		for _, resolved := range []bool{false, true} {
			if err := o.Enqueue(ctx, msg(g, resolved, now), g, []string{"oncall/webhook[0]"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	testenv.Eventually(t, 10*time.Second, "all delivered", func() bool { return len(n.acked()) == 10 })
	pos := map[string]int{}
	for i, k := range n.acked() {
		pos[k] = i
	}
	for i := range 5 {
		if pos[fmt.Sprintf("g%d/firing", i)] > pos[fmt.Sprintf("g%d/resolved", i)] {
			t.Errorf("group g%d: resolved before firing: %v", i, n.acked())
		}
	}
	testenv.Eventually(t, 10*time.Second, "queue empty", func() bool { return o.Queues()[0].Pending == 0 })
	var b strings.Builder
	o.WritePrometheus(&b)
	for _, want := range []string{
		`vigil_notify_sent_total{receiver="oncall",integration="webhook"} 10`,
		`vigil_notify_retried_total{receiver="oncall",integration="webhook"} 10`,
		`vigil_notify_dead_letter_total{receiver="oncall",integration="webhook"} 0`,
		`vigil_notify_queue_length{receiver="oncall",integration="webhook"} 0`,
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %s:\n%s", want, b.String())
		}
	}
}

// TestDeadLetter: a permanent error and an item older than MaxAge are
// given up and counted; the next item of the same key goes on.
func TestDeadLetter(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "v.db"))
	defer st.Close()
	n := &scripted{answer: func(m *notify.Message, _ int) error {
		switch m.GroupKey {
		case "bad":
			return notify.Permanent(errors.New("400 invalid payload"))
		case "slow":
			return errors.New("503")
		}
		return nil
	}}
	opts := fast(st)
	opts.MaxAge = 200 * time.Millisecond
	o := New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); o.Wait() }()
	o.Start(ctx, []Target{{Name: "t", Receiver: "oncall", Integration: "webhook", Notifier: n}})
	now := time.Now()
	o.Enqueue(ctx, msg("bad", false, now), "k", []string{"t"})
	o.Enqueue(ctx, msg("good", false, now), "k", []string{"t"})
	o.Enqueue(ctx, msg("slow", false, now), "s", []string{"t"})
	testenv.Eventually(t, 10*time.Second, "dead letters", func() bool {
		items, _ := st.OutboxItems(ctx, store.OutboxDead, 10)
		return len(items) == 2
	})
	testenv.Eventually(t, 10*time.Second, "good delivered", func() bool { return len(n.acked()) == 1 })
	items, _ := st.OutboxItems(ctx, store.OutboxDead, 10)
	for _, it := range items {
		if it.LastError == "" || it.DoneAt.IsZero() {
			t.Errorf("dead item without error/time: %+v", it)
		}
	}
	var b strings.Builder
	o.WritePrometheus(&b)
	if !strings.Contains(b.String(), `vigil_notify_dead_letter_total{receiver="oncall",integration="webhook"} 2`) {
		t.Errorf("metrics:\n%s", b.String())
	}
}

// TestResumeAfterRestart: items pending when the process stopped (never
// acknowledged) go out after a restart, in order, and only those.
func TestResumeAfterRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v.db")
	st := openStore(t, path)
	down := &scripted{answer: func(*notify.Message, int) error { return errors.New("connection refused") }}
	o := New(fast(st))
	ctx, cancel := context.WithCancel(context.Background())
	o.Start(ctx, []Target{{Name: "t", Receiver: "oncall", Integration: "webhook", Notifier: down}})
	now := time.Now()
	o.Enqueue(ctx, msg("g", false, now), "g", []string{"t"})
	o.Enqueue(ctx, msg("g", true, now), "g", []string{"t"})
	testenv.Eventually(t, 10*time.Second, "attempts", func() bool {
		down.mu.Lock()
		defer down.mu.Unlock()
		return down.tries["g/firing"] >= 2
	})
	cancel()
	o.Wait()
	st.Close()

	st = openStore(t, path)
	defer st.Close()
	up := &scripted{}
	o = New(fast(st))
	ctx, cancel = context.WithCancel(context.Background())
	defer func() { cancel(); o.Wait() }()
	o.Start(ctx, []Target{{Name: "t", Receiver: "oncall", Integration: "webhook", Notifier: up}})
	testenv.Eventually(t, 10*time.Second, "resumed", func() bool { return len(up.acked()) == 2 })
	if got := strings.Join(up.acked(), " "); got != "g/firing g/resolved" {
		t.Errorf("after restart: %s", got)
	}
	// A duplicate would be queued until delivered: once the queue is
	// empty, everything there was has reached the receiver.
	testenv.Eventually(t, 10*time.Second, "an empty queue", func() bool {
		for _, q := range o.Queues() {
			if q.Pending > 0 {
				return false
			}
		}
		return true
	})
	if len(up.acked()) != 2 {
		t.Errorf("duplicates: %v", up.acked())
	}
}

type panicky struct{}

func (panicky) Notify(context.Context, *notify.Message) error { panic("boom") }

func TestPanickingIntegrationIsAFailedAttempt(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "v.db"))
	defer st.Close()
	o := New(fast(st))
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); o.Wait() }()
	o.Start(ctx, []Target{{Name: "t", Receiver: "r", Integration: "x", Notifier: panicky{}}})
	o.Enqueue(ctx, msg("g", false, time.Now()), "g", []string{"t"})
	testenv.Eventually(t, 10*time.Second, "retried", func() bool {
		items, _ := st.OutboxItems(ctx, store.OutboxPending, 1)
		return len(items) == 1 && items[0].Attempts >= 2 && strings.Contains(items[0].LastError, "panicked")
	})
}

func TestBackoff(t *testing.T) {
	o := New(Options{MinBackoff: time.Second, MaxBackoff: time.Minute})
	for _, tc := range []struct {
		attempt  int
		err      error
		min, max time.Duration
	}{
		{1, errors.New("x"), 500 * time.Millisecond, time.Second},
		{3, errors.New("x"), 2 * time.Second, 4 * time.Second},
		{20, errors.New("x"), 30 * time.Second, time.Minute},
		{1, &notify.RetryAfterError{Err: errors.New("429"), After: 30 * time.Second}, 30 * time.Second, 30 * time.Second},
		{1, &notify.RetryAfterError{Err: errors.New("429"), After: time.Hour}, time.Minute, time.Minute},
	} {
		for range 20 {
			if d := o.backoff(tc.attempt, tc.err); d < tc.min || d > tc.max {
				t.Errorf("backoff(%d, %v) = %s, want [%s, %s]", tc.attempt, tc.err, d, tc.min, tc.max)
			}
		}
	}
}

// TestReloadKeepsQueues: a target removed by a reload keeps its items on
// disk, and they go out when a later reload brings the target back.
func TestReloadKeepsQueues(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "v.db"))
	defer st.Close()
	down := &scripted{answer: func(*notify.Message, int) error { return errors.New("503") }}
	o := New(fast(st))
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); o.Wait() }()
	o.Start(ctx, []Target{{Name: "t", Receiver: "r", Integration: "webhook", Notifier: down}})
	o.Enqueue(ctx, msg("g", false, time.Now()), "g", []string{"t"})
	testenv.Eventually(t, 10*time.Second, "an attempt", func() bool {
		down.mu.Lock()
		defer down.mu.Unlock()
		return down.tries["g/firing"] >= 1
	})
	o.SetTargets(nil)
	time.Sleep(50 * time.Millisecond)
	up := &scripted{}
	o.SetTargets([]Target{{Name: "t", Receiver: "r", Integration: "webhook", Notifier: up}})
	testenv.Eventually(t, 10*time.Second, "delivered after the target came back", func() bool { return len(up.acked()) == 1 })
}

// sickStore is a store whose writes fail, as on a full disk.
type sickStore struct {
	Store
	sick atomic.Bool
}

func (s *sickStore) Enqueue(ctx context.Context, items []*store.OutboxItem) error {
	if s.sick.Load() {
		return errors.New("enqueue: database or disk is full (13)")
	}
	return s.Store.Enqueue(ctx, items)
}

func (s *sickStore) UpdateOutbox(ctx context.Context, items []store.OutboxItem) error {
	if s.sick.Load() {
		return errors.New("update outbox: database or disk is full (13)")
	}
	for _, it := range items {
		if it.Unsaved || it.ID <= 0 {
			return fmt.Errorf("recorder wrote an unsaved item %d", it.ID)
		}
	}
	return s.Store.UpdateOutbox(ctx, items)
}

// TestSickStoreStillDelivers: when the store cannot be written, Enqueue
// still delivers from memory, in order and with retries, counts the items,
// and never writes unsaved items' outcomes back to the store.
func TestSickStoreStillDelivers(t *testing.T) {
	t.Parallel()
	st := &sickStore{Store: openStore(t, filepath.Join(t.TempDir(), "v.db"))}
	defer st.Store.(*store.Store).Close()
	n := &scripted{answer: func(m *notify.Message, attempt int) error {
		if attempt == 1 {
			return errors.New("503") // retried from memory too
		}
		return nil
	}}
	o := New(fast(st))
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); o.Wait() }()
	if err := o.Start(ctx, []Target{{Name: "oncall/webhook[0]", Receiver: "oncall", Integration: "webhook", Notifier: n}}); err != nil {
		t.Fatal(err)
	}
	st.sick.Store(true)
	now := time.Now()
	for _, resolved := range []bool{false, true} {
		if err := o.Enqueue(ctx, msg("g", resolved, now), "g", []string{"oncall/webhook[0]"}); err != nil {
			t.Fatalf("Enqueue with a sick store: %v", err)
		}
	}
	testenv.Eventually(t, 10*time.Second, "both delivered", func() bool { return len(n.acked()) == 2 })
	if got := n.acked(); got[0] != "g/firing" || got[1] != "g/resolved" {
		t.Errorf("order: %v", got)
	}
	testenv.Eventually(t, 10*time.Second, "queue empty", func() bool { return o.Queues()[0].Pending == 0 })
	var b strings.Builder
	o.WritePrometheus(&b)
	if !strings.Contains(b.String(), "vigil_notify_unsaved_total 2") {
		t.Errorf("metrics:\n%s", b.String())
	}
	// Healthy again: the next item is saved as before.
	st.sick.Store(false)
	if err := o.Enqueue(ctx, msg("h", false, now), "h", []string{"oncall/webhook[0]"}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "saved item delivered", func() bool { return len(n.acked()) == 3 })
}

// TestReloadAfterStop: the outbox keeps no context of its own, so a
// reload after Start's ctx ended returns at once and starts nothing; the
// new target's items stay on disk for the next run.
func TestReloadAfterStop(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "v.db"))
	defer st.Close()
	o := New(fast(st))
	ctx, cancel := context.WithCancel(context.Background())
	if err := o.Start(ctx, []Target{{Name: "t", Receiver: "r", Integration: "webhook", Notifier: &scripted{}}}); err != nil {
		t.Fatal(err)
	}
	cancel()
	o.Wait()
	if err := o.Enqueue(context.Background(), msg("g", false, time.Now()), "g", []string{"u"}); err != nil {
		t.Fatal(err)
	}
	late := &scripted{}
	done := make(chan struct{})
	go func() {
		o.SetTargets([]Target{{Name: "u", Receiver: "r", Integration: "webhook", Notifier: late}})
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("SetTargets after the outbox stopped does not return")
	}
	time.Sleep(20 * time.Millisecond)
	if got := late.acked(); len(got) != 0 {
		t.Errorf("a stopped outbox delivered %q", got)
	}
	pending, err := st.PendingOutbox(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 1 || pending[0].Target != "u" {
		t.Errorf("pending = %+v, want the item for u", pending)
	}
}

// TestAcceptAfterStartLoadedIt: an item committed before Start and handed
// over (Accept) after it was loaded with the pending ones is sent once.
func TestAcceptAfterStartLoadedIt(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "v.db"))
	defer st.Close()
	up := &scripted{}
	o := New(fast(st))
	items, err := o.Items(msg("g", false, time.Now()), "g", []string{"t"})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Enqueue(context.Background(), items); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); o.Wait() }()
	if err := o.Start(ctx, []Target{{Name: "t", Receiver: "oncall", Integration: "webhook", Notifier: up}}); err != nil {
		t.Fatal(err)
	}
	o.Accept(items)
	testenv.Eventually(t, 10*time.Second, "an empty queue after a delivery", func() bool {
		for _, q := range o.Queues() {
			if q.Pending > 0 {
				return false
			}
		}
		return len(up.acked()) > 0
	})
	if got := up.acked(); len(got) != 1 {
		t.Errorf("delivered %v, want once", got)
	}
}
