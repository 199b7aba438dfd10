package lock

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// KV is where the local backend keeps its state; the agent's SQLite store
// implements it so that cooldowns and the pause switch survive restarts.
// Putting the empty value stands for deleting the key: Get may then report
// either not found or "".
type KV interface {
	Get(ctx context.Context, key string) (string, bool, error)
	Put(ctx context.Context, key, value string) error
}

// NewLocal returns the single-agent backend: locks held in this process,
// state kept in kv.
func NewLocal(kv KV) (Locker, State) {
	return &localLocker{held: map[string]*localLease{}, now: time.Now}, &kvState{kv: kv, now: time.Now}
}

var (
	_ Locker = (*localLocker)(nil)
	_ Lease  = (*localLease)(nil)
	_ State  = (*kvState)(nil)
	_ KV     = (*MemKV)(nil)
)

type localLocker struct {
	now func() time.Time

	mu     sync.Mutex
	held   map[string]*localLease
	token  int64
	closed bool
}

func (l *localLocker) TryAcquire(_ context.Context, key string) (Lease, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	if _, ok := l.held[key]; ok {
		return nil, fmt.Errorf("%q: %w", key, ErrHeld)
	}
	// A plain counter would restart at 1 with the agent, and targets that
	// saw larger tokens before would refuse every later run. Starting from
	// the clock keeps tokens growing across restarts without a write to
	// the store per acquisition.
	l.token = max(l.token+1, l.now().UnixMicro())
	le := &localLease{l: l, key: key, token: l.token, lost: make(chan struct{})}
	l.held[key] = le
	return le, nil
}

// Close marks every held lease lost: the process that guarded them is
// shutting the lock down, so runs must stop.
func (l *localLocker) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	for key, le := range l.held {
		close(le.lost)
		delete(l.held, key)
	}
	return nil
}

type localLease struct {
	l     *localLocker
	key   string
	token int64
	lost  chan struct{}
}

func (le *localLease) Token() int64          { return le.token }
func (le *localLease) Lost() <-chan struct{} { return le.lost }

func (le *localLease) Release(context.Context) error {
	le.l.mu.Lock()
	defer le.l.mu.Unlock()
	// Only drop the entry if it is still ours: after a double Release the
	// key may belong to a newer lease.
	if le.l.held[le.key] == le {
		delete(le.l.held, le.key)
	}
	return nil
}

// kvState is State over a KV. Ack is two writes rather than one
// transaction; if the second fails the cooldown is already cleared, which
// is what the operator asked for.
type kvState struct {
	kv  KV
	now func() time.Time
}

func (s *kvState) get(ctx context.Context, key string) (string, bool, error) {
	v, ok, err := s.kv.Get(ctx, key)
	if err != nil {
		return "", false, fmt.Errorf("read %s: %w", key, err)
	}
	return v, ok && v != "", nil
}

func (s *kvState) put(ctx context.Context, key, value string) error {
	if err := s.kv.Put(ctx, key, value); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}

func (s *kvState) CooldownUntil(ctx context.Context, key string) (time.Time, error) {
	v, ok, err := s.get(ctx, cooldownPrefix+key)
	if err != nil || !ok {
		return time.Time{}, err
	}
	return decodeTime(v)
}

func (s *kvState) SetCooldown(ctx context.Context, key string, until time.Time) error {
	return s.put(ctx, cooldownPrefix+key, encodeTime(until))
}

func (s *kvState) Ack(ctx context.Context, key, by string) error {
	if err := s.put(ctx, cooldownPrefix+key, ""); err != nil {
		return err
	}
	return s.put(ctx, ackedPrefix+key, encodeMark(by, s.now()))
}

// Acked is the last acknowledgement of key: who and when (ok false when
// none was recorded).
func (s *kvState) Acked(ctx context.Context, key string) (by string, at time.Time, ok bool, err error) {
	return ackedMark(s.get(ctx, ackedPrefix+key))
}

func (s *kvState) Paused(ctx context.Context) (bool, string, error) {
	v, ok, err := s.get(ctx, pausedKey)
	if err != nil || !ok {
		return false, "", err
	}
	m, err := decodeMark(v)
	if err != nil {
		// Unreadable but present: stay paused, the safe side for failover.
		return true, "", fmt.Errorf("read %s: %w", pausedKey, err)
	}
	return true, m.By, nil
}

func (s *kvState) SetPaused(ctx context.Context, paused bool, by string) error {
	if !paused {
		return s.put(ctx, pausedKey, "")
	}
	return s.put(ctx, pausedKey, encodeMark(by, s.now()))
}

// MemKV is a KV in memory, for tests and for running without a store.
type MemKV struct {
	mu sync.Mutex
	m  map[string]string
}

// NewMemKV returns an empty MemKV.
func NewMemKV() *MemKV { return &MemKV{m: map[string]string{}} }

// Get returns the value of key.
func (kv *MemKV) Get(_ context.Context, key string) (string, bool, error) {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	v, ok := kv.m[key]
	return v, ok, nil
}

// Put sets key; the empty value deletes it, as in the agent's store.
func (kv *MemKV) Put(_ context.Context, key, value string) error {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	if value == "" {
		delete(kv.m, key)
	} else {
		kv.m[key] = value
	}
	return nil
}
