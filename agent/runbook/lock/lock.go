// Package lock holds the backends that keep runbooks (automated failover)
// from stepping on each other: per-key locks so that one run at a time acts
// on a target, and the state that outlives a run (cooldowns,
// acknowledgements, the global pause switch).
//
// Two backends exist. The local one suits a single agent: locks live in the
// process and the state in the agent's store. The etcd one suits a fleet:
// every agent sees the same locks and state, so two agents that notice the
// same outage do not both fail the target over.
//
// A lock can be lost while a run still believes it holds it (an etcd
// session that expires during a network partition). Leases therefore carry
// a fencing token that runs pass on to targets, which can then refuse a
// holder older than one they have already seen.
package lock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Locker takes per-key locks so that at most one run of a runbook for a
// target is active, across a fleet when the backend is etcd.
type Locker interface {
	// TryAcquire takes the lock for key without waiting; ErrHeld
	// (errors.Is) when another holder has it, on this agent or another.
	TryAcquire(ctx context.Context, key string) (Lease, error)
	// Close gives up every lease the Locker holds.
	Close() error
}

// Lease is a held lock.
type Lease interface {
	// Token is a fencing token: strictly increasing per key across
	// holders, passed to steps so that targets can reject stale holders.
	Token() int64
	// Lost is closed when the lease is lost (etcd session expired or
	// revoked, connection gone past the TTL, Locker closed); runs check it
	// before each step. Release does not close it, and a lost lease keeps
	// its key taken on this agent until released, since its run may still
	// be inside a step.
	Lost() <-chan struct{}
	// Release gives the lock back. Releasing twice is harmless.
	Release(ctx context.Context) error
}

// State holds cooldowns, acknowledgements and the global pause switch; with
// etcd it is shared by every agent of the fleet.
type State interface {
	// CooldownUntil is the end of key's cooldown; the zero time when none
	// was set or it was acknowledged.
	CooldownUntil(ctx context.Context, key string) (time.Time, error)
	SetCooldown(ctx context.Context, key string, until time.Time) error
	// Ack clears the cooldown for key, recording who.
	Ack(ctx context.Context, key string, by string) error
	// Paused reports the pause switch and who paused (empty when not
	// paused).
	Paused(ctx context.Context) (bool, string, error)
	SetPaused(ctx context.Context, paused bool, by string) error
}

var (
	// ErrHeld means another holder has the lock.
	ErrHeld = errors.New("lock held by another run")
	// ErrClosed means the Locker was closed.
	ErrClosed = errors.New("locker closed")
)

// Key layout under each backend's namespace. Both backends use the same
// relative names so that an operator reading etcd or the store sees the
// same thing.
const (
	cooldownPrefix = "cooldown/"
	ackedPrefix    = "acked_by/"
	pausedKey      = "paused"
)

// mark records who did something and when; stored as JSON so that it stays
// readable with etcdctl or sqlite3.
type mark struct {
	By string    `json:"by"`
	At time.Time `json:"at"`
}

func encodeMark(by string, at time.Time) string {
	b, _ := json.Marshal(mark{By: by, At: at.UTC()}) // cannot fail: two plain fields
	return string(b)
}

// ackedMark decodes a stored acknowledgement as the states' get returns
// it: who and when, ok false when none was recorded.
func ackedMark(v string, found bool, err error) (by string, at time.Time, ok bool, _ error) {
	if err != nil || !found || v == "" {
		return "", time.Time{}, false, err
	}
	m, err := decodeMark(v)
	if err != nil {
		return "", time.Time{}, false, err
	}
	return m.By, m.At, true, nil
}

func decodeMark(v string) (mark, error) {
	var m mark
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		return mark{}, fmt.Errorf("bad stored value %q: %w", v, err)
	}
	return m, nil
}

func encodeTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// decodeTime fails on a value it cannot read rather than returning the zero
// time, which would silently end a cooldown; an Ack overwrites the value.
func decodeTime(v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad stored cooldown %q: %w", v, err)
	}
	return t, nil
}

func checkKey(key string) error {
	if key == "" {
		return errors.New("empty lock key")
	}
	return nil
}
