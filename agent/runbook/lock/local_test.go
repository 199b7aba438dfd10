package lock

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestLocalLocker(t *testing.T) {
	ctx := context.Background()
	l, _ := NewLocal(NewMemKV())
	defer l.Close()

	a, err := l.TryAcquire(ctx, "failover/db")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.TryAcquire(ctx, "failover/db"); !errors.Is(err, ErrHeld) {
		t.Fatalf("second TryAcquire: got %v, want ErrHeld", err)
	}
	// Other keys are independent.
	other, err := l.TryAcquire(ctx, "failover/db/replica")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := l.TryAcquire(ctx, "failover/db")
	if err != nil {
		t.Fatalf("TryAcquire after Release: %v", err)
	}
	if !(a.Token() < other.Token() && other.Token() < b.Token()) {
		t.Errorf("tokens not increasing: %d, %d, %d", a.Token(), other.Token(), b.Token())
	}
	// A stale double Release must not free the newer holder.
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := l.TryAcquire(ctx, "failover/db"); !errors.Is(err, ErrHeld) {
		t.Fatalf("after stale Release: got %v, want ErrHeld", err)
	}
	select {
	case <-b.Lost():
		t.Fatal("local lease lost while held")
	default:
	}

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, le := range []Lease{b, other} {
		select {
		case <-le.Lost():
		default:
			t.Errorf("lease %d not lost after Close", le.Token())
		}
	}
	if _, err := l.TryAcquire(ctx, "x"); !errors.Is(err, ErrClosed) {
		t.Errorf("TryAcquire after Close: got %v, want ErrClosed", err)
	}
	if err := b.Release(ctx); err != nil {
		t.Errorf("Release after Close: %v", err)
	}
}

func TestLocalLockerEmptyKey(t *testing.T) {
	l, _ := NewLocal(NewMemKV())
	if _, err := l.TryAcquire(context.Background(), ""); err == nil {
		t.Fatal("empty key accepted")
	}
}

// Tokens start from the clock so that a restarted agent does not hand out
// tokens its targets have already seen, and still grow when the clock
// stands still or steps back.
func TestLocalTokensFollowClock(t *testing.T) {
	ctx := context.Background()
	now := time.UnixMicro(1_000_000)
	l := &localLocker{held: map[string]*localLease{}, now: func() time.Time { return now }}
	var prev int64
	for i, step := range []time.Duration{0, 0, -time.Second, time.Hour} {
		now = now.Add(step)
		le, err := l.TryAcquire(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		if le.Token() <= prev {
			t.Fatalf("acquisition %d: token %d not above %d", i, le.Token(), prev)
		}
		if le.Token() < now.UnixMicro() {
			t.Fatalf("acquisition %d: token %d below the clock %d", i, le.Token(), now.UnixMicro())
		}
		prev = le.Token()
		le.Release(ctx)
	}
}

func TestLocalState(t *testing.T) {
	ctx := context.Background()
	until := time.Date(2026, 3, 4, 5, 6, 7, 891011121, time.FixedZone("X", 3600))
	tests := []struct {
		name string
		do   func(t *testing.T, s State, kv *MemKV)
	}{
		{"no cooldown", func(t *testing.T, s State, _ *MemKV) {
			got, err := s.CooldownUntil(ctx, "rb/t")
			if err != nil || !got.IsZero() {
				t.Fatalf("got %v, %v; want zero time", got, err)
			}
		}},
		{"cooldown round trip", func(t *testing.T, s State, _ *MemKV) {
			if err := s.SetCooldown(ctx, "rb/t", until); err != nil {
				t.Fatal(err)
			}
			got, err := s.CooldownUntil(ctx, "rb/t")
			if err != nil || !got.Equal(until) {
				t.Fatalf("got %v, %v; want %v", got, err, until)
			}
			if other, _ := s.CooldownUntil(ctx, "rb/u"); !other.IsZero() {
				t.Fatalf("cooldown leaked to another key: %v", other)
			}
		}},
		{"survives a new backend on the same store", func(t *testing.T, s State, kv *MemKV) {
			if err := s.SetCooldown(ctx, "rb/t", until); err != nil {
				t.Fatal(err)
			}
			_, again := NewLocal(kv)
			got, err := again.CooldownUntil(ctx, "rb/t")
			if err != nil || !got.Equal(until) {
				t.Fatalf("got %v, %v; want %v", got, err, until)
			}
		}},
		{"ack clears and records", func(t *testing.T, s State, kv *MemKV) {
			if err := s.SetCooldown(ctx, "rb/t", until); err != nil {
				t.Fatal(err)
			}
			if err := s.Ack(ctx, "rb/t", "alice"); err != nil {
				t.Fatal(err)
			}
			got, err := s.CooldownUntil(ctx, "rb/t")
			if err != nil || !got.IsZero() {
				t.Fatalf("after Ack: got %v, %v; want zero time", got, err)
			}
			v, ok, _ := kv.Get(ctx, ackedPrefix+"rb/t")
			if m, err := decodeMark(v); !ok || err != nil || m.By != "alice" || m.At.IsZero() {
				t.Fatalf("acked_by = %q (%v)", v, err)
			}
			acked := s.(interface {
				Acked(context.Context, string) (string, time.Time, bool, error)
			})
			if by, at, ok, err := acked.Acked(ctx, "rb/t"); err != nil || !ok || by != "alice" || at.IsZero() {
				t.Fatalf("Acked = %q %v %v %v", by, at, ok, err)
			}
			if _, _, ok, err := acked.Acked(ctx, "rb/other"); err != nil || ok {
				t.Fatalf("Acked of a key never acked: %v %v", ok, err)
			}
		}},
		{"pause round trip", func(t *testing.T, s State, _ *MemKV) {
			if p, by, err := s.Paused(ctx); err != nil || p || by != "" {
				t.Fatalf("initially: %v %q %v", p, by, err)
			}
			if err := s.SetPaused(ctx, true, "alice"); err != nil {
				t.Fatal(err)
			}
			if p, by, err := s.Paused(ctx); err != nil || !p || by != "alice" {
				t.Fatalf("after pause: %v %q %v", p, by, err)
			}
			if err := s.SetPaused(ctx, false, "bob"); err != nil {
				t.Fatal(err)
			}
			if p, by, err := s.Paused(ctx); err != nil || p || by != "" {
				t.Fatalf("after resume: %v %q %v", p, by, err)
			}
		}},
		{"unreadable cooldown is an error", func(t *testing.T, s State, kv *MemKV) {
			kv.Put(ctx, cooldownPrefix+"rb/t", "soon")
			if _, err := s.CooldownUntil(ctx, "rb/t"); err == nil {
				t.Fatal("no error for a bad cooldown")
			}
		}},
		{"unreadable pause stays paused", func(t *testing.T, s State, kv *MemKV) {
			kv.Put(ctx, pausedKey, "alice")
			if p, _, err := s.Paused(ctx); err == nil || !p {
				t.Fatalf("got %v, %v; want paused and an error", p, err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kv := NewMemKV()
			_, s := NewLocal(kv)
			tt.do(t, s, kv)
		})
	}
}

type failKV struct{ err error }

func (f failKV) Get(context.Context, string) (string, bool, error) { return "", false, f.err }
func (f failKV) Put(context.Context, string, string) error         { return f.err }

func TestLocalStateStoreErrors(t *testing.T) {
	ctx := context.Background()
	boom := errors.New("disk full")
	_, s := NewLocal(failKV{boom})
	calls := map[string]func() error{
		"CooldownUntil": func() error { _, err := s.CooldownUntil(ctx, "k"); return err },
		"SetCooldown":   func() error { return s.SetCooldown(ctx, "k", time.Now()) },
		"Ack":           func() error { return s.Ack(ctx, "k", "alice") },
		"Paused":        func() error { _, _, err := s.Paused(ctx); return err },
		"SetPaused":     func() error { return s.SetPaused(ctx, true, "alice") },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			err := call()
			if !errors.Is(err, boom) {
				t.Fatalf("got %v, want it to wrap %v", err, boom)
			}
			if !strings.Contains(err.Error(), "k") && !strings.Contains(err.Error(), pausedKey) {
				t.Errorf("error %q does not name the key", err)
			}
		})
	}
}
