package lock

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// EtcdConfig configures the etcd backend.
type EtcdConfig struct {
	// Endpoints are the etcd client URLs, e.g. "https://etcd-1:2379".
	Endpoints []string
	// Prefix namespaces every key; default "/vigil/runbooks/". Fleets that
	// must not share locks use different prefixes.
	Prefix string
	// TTL is how long locks outlive an agent that stopped answering;
	// default 15s, at least 5s. Shorter means faster takeover after a
	// crash but more risk of losing a lock over a slow network.
	TTL time.Duration
	// DialTimeout bounds authentication and the first keep-alive; default 5s.
	DialTimeout time.Duration
	Username    string
	Password    string
	TLS         *tls.Config
	// Logger receives the etcd client's warnings and errors; nil drops them.
	Logger *slog.Logger
}

// Defaults of EtcdConfig.
const (
	DefaultEtcdPrefix      = "/vigil/runbooks/"
	DefaultEtcdTTL         = 15 * time.Second
	DefaultEtcdDialTimeout = 5 * time.Second
	// MinEtcdTTL keeps keep-alives (sent every TTL/3) from racing expiry
	// on an ordinary network.
	MinEtcdTTL = 5 * time.Second
)

// normalize fills defaults and rejects what cannot work.
func (c EtcdConfig) normalize() (EtcdConfig, error) {
	if len(c.Endpoints) == 0 {
		return c, errors.New("etcd: at least one endpoint is required")
	}
	for _, e := range c.Endpoints {
		if strings.TrimSpace(e) == "" {
			return c, errors.New("etcd: empty endpoint")
		}
	}
	if c.Prefix == "" {
		c.Prefix = DefaultEtcdPrefix
	}
	// Without the slash "/a" would also cover "/ab/...".
	if !strings.HasSuffix(c.Prefix, "/") {
		c.Prefix += "/"
	}
	if c.TTL == 0 {
		c.TTL = DefaultEtcdTTL
	}
	if c.TTL < MinEtcdTTL {
		return c, fmt.Errorf("etcd: ttl %s is below the minimum %s", c.TTL, MinEtcdTTL)
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultEtcdDialTimeout
	}
	if c.DialTimeout < 0 {
		return c, fmt.Errorf("etcd: negative dial timeout %s", c.DialTimeout)
	}
	if c.Password != "" && c.Username == "" {
		return c, errors.New("etcd: password given without username")
	}
	return c, nil
}

// NewEtcd returns the fleet backend. ctx bounds the connection check (the
// first session's lease grant), not the life of the backend. Closing the
// Locker also closes the State, which shares its connection.
func NewEtcd(ctx context.Context, cfg EtcdConfig) (Locker, State, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, nil, err
	}
	client, err := clientv3.New(clientv3.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: cfg.DialTimeout,
		Username:    cfg.Username,
		Password:    cfg.Password,
		TLS:         cfg.TLS,
		Logger:      zapToSlog(cfg.Logger),
	})
	if err != nil {
		return nil, nil, fmt.Errorf("etcd: connect to %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	l := &etcdLocker{
		client: client,
		prefix: cfg.Prefix + "locks/",
		// etcd leases count whole seconds; rounding up never shortens
		// what the operator configured.
		ttl:  int(math.Ceil(cfg.TTL.Seconds())),
		held: map[string]bool{},
	}
	// Creating the first session now turns a wrong endpoint or password
	// into a startup error rather than a failed failover later.
	if _, err := l.session(ctx); err != nil {
		client.Close()
		return nil, nil, err
	}
	return l, &etcdState{client: client, prefix: cfg.Prefix + "state/"}, nil
}

var (
	_ Locker = (*etcdLocker)(nil)
	_ Lease  = (*etcdLease)(nil)
	_ State  = (*etcdState)(nil)
)

// etcdLocker holds one session (one etcd lease kept alive) for all its
// locks, so an agent costs etcd one keep-alive stream however many runs it
// has going.
type etcdLocker struct {
	client *clientv3.Client
	prefix string
	ttl    int

	// sessMu serialises session creation without blocking the held map
	// behind a network round trip.
	sessMu sync.Mutex
	sess   *concurrency.Session

	mu     sync.Mutex
	held   map[string]bool
	closed bool
}

// session returns the live session, making a new one when the last died:
// a lost session must not leave the agent unable to lock for good.
func (l *etcdLocker) session(ctx context.Context) (*concurrency.Session, error) {
	l.sessMu.Lock()
	defer l.sessMu.Unlock()
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if l.sess != nil {
		select {
		case <-l.sess.Done():
		default:
			return l.sess, nil
		}
	}
	// Grant here rather than inside NewSession so that ctx bounds the RPC
	// while the session itself lives on the client's context, until Close.
	grant, err := l.client.Grant(ctx, int64(l.ttl))
	if err != nil {
		return nil, fmt.Errorf("etcd: grant lease: %w", err)
	}
	s, err := concurrency.NewSession(l.client, concurrency.WithLease(grant.ID), concurrency.WithTTL(l.ttl))
	if err != nil {
		return nil, fmt.Errorf("etcd: start session: %w", err)
	}
	l.sess = s
	return s, nil
}

// dropSession abandons s after etcd said its lease is gone, before the
// keep-alive noticed; its leases report Lost at once.
func (l *etcdLocker) dropSession(s *concurrency.Session) {
	l.sessMu.Lock()
	if l.sess == s {
		l.sess = nil
	}
	l.sessMu.Unlock()
	s.Orphan()
}

func (l *etcdLocker) TryAcquire(ctx context.Context, key string) (Lease, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	// etcd's mutex keys one session once per lock, so a second
	// TryAcquire through the same session would succeed; the held set
	// keeps runs of this agent exclusive too.
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, ErrClosed
	}
	if l.held[key] {
		l.mu.Unlock()
		return nil, fmt.Errorf("%q: %w", key, ErrHeld)
	}
	l.held[key] = true
	l.mu.Unlock()

	le, err := l.tryLock(ctx, key)
	if err != nil {
		l.unhold(key)
		return nil, err
	}
	return le, nil
}

func (l *etcdLocker) tryLock(ctx context.Context, key string) (*etcdLease, error) {
	for attempt := 0; ; attempt++ {
		s, err := l.session(ctx)
		if err != nil {
			return nil, err
		}
		// The mutex finds its holder by prefix, so keys are escaped:
		// otherwise the lock "db" would also see the holders of "db/x".
		m := concurrency.NewMutex(s, l.prefix+url.PathEscape(key))
		err = m.TryLock(ctx)
		switch {
		case err == nil:
			// On the uncontended path the header revision is the
			// revision that created the lock key; it grows with every
			// write, so a later holder always gets a larger token.
			return &etcdLease{l: l, key: key, sess: s, m: m, token: m.Header().Revision}, nil
		case errors.Is(err, concurrency.ErrLocked):
			return nil, fmt.Errorf("%q: %w", key, ErrHeld)
		case errors.Is(err, rpctypes.ErrLeaseNotFound) && attempt == 0:
			// Revoked or expired on the server before the keep-alive
			// told us: start over once with a fresh session.
			l.dropSession(s)
		default:
			return nil, fmt.Errorf("etcd: lock %q: %w", key, err)
		}
	}
}

func (l *etcdLocker) unhold(key string) {
	l.mu.Lock()
	delete(l.held, key)
	l.mu.Unlock()
}

// Close revokes the session so that other agents can take the locks at
// once instead of after the TTL, then closes the connection.
func (l *etcdLocker) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()

	var errs []error
	l.sessMu.Lock()
	if l.sess != nil {
		if err := l.sess.Close(); err != nil {
			errs = append(errs, fmt.Errorf("etcd: revoke session: %w", err))
		}
		l.sess = nil
	}
	l.sessMu.Unlock()
	if err := l.client.Close(); err != nil {
		errs = append(errs, fmt.Errorf("etcd: close client: %w", err))
	}
	return errors.Join(errs...)
}

type etcdLease struct {
	l     *etcdLocker
	key   string
	sess  *concurrency.Session
	m     *concurrency.Mutex
	token int64

	mu       sync.Mutex
	released bool
}

func (le *etcdLease) Token() int64 { return le.token }

// Lost follows the session: its keys go with its lease, and the client
// stops the keep-alive when etcd reports the lease gone or has not
// answered for a whole TTL.
func (le *etcdLease) Lost() <-chan struct{} { return le.sess.Done() }

// Release deletes the lock key. When that fails the key stays with the
// session until the session ends, or until this Locker takes key again and
// releases it; the error says so to the caller.
func (le *etcdLease) Release(ctx context.Context) error {
	le.mu.Lock()
	defer le.mu.Unlock()
	if le.released {
		return nil
	}
	// Released even on error: once the held entry is gone a new lease of
	// this Locker may reuse the same etcd key, and a retry here would
	// delete it from under that lease.
	le.released = true
	defer le.l.unhold(le.key)
	select {
	case <-le.sess.Done():
		// The key went, or goes, with the session's lease; nothing to
		// delete, and no reason to wait for an unreachable etcd.
		return nil
	default:
	}
	if err := le.m.Unlock(ctx); err != nil {
		return fmt.Errorf("etcd: unlock %q: %w", le.key, err)
	}
	return nil
}

// etcdState keeps the shared state under prefix: cooldown/<key> as
// RFC 3339 times, acked_by/<key> and paused as {"by","at"} JSON.
type etcdState struct {
	client *clientv3.Client
	prefix string
}

func (s *etcdState) get(ctx context.Context, key string) (string, bool, error) {
	resp, err := s.client.Get(ctx, s.prefix+key)
	if err != nil {
		return "", false, fmt.Errorf("etcd: get %s: %w", s.prefix+key, err)
	}
	if len(resp.Kvs) == 0 {
		return "", false, nil
	}
	return string(resp.Kvs[0].Value), true, nil
}

func (s *etcdState) CooldownUntil(ctx context.Context, key string) (time.Time, error) {
	v, ok, err := s.get(ctx, cooldownPrefix+key)
	if err != nil || !ok {
		return time.Time{}, err
	}
	return decodeTime(v)
}

func (s *etcdState) SetCooldown(ctx context.Context, key string, until time.Time) error {
	k := s.prefix + cooldownPrefix + key
	if _, err := s.client.Put(ctx, k, encodeTime(until)); err != nil {
		return fmt.Errorf("etcd: put %s: %w", k, err)
	}
	return nil
}

// Ack is one transaction so that no agent sees the cooldown cleared
// without the record of who cleared it.
func (s *etcdState) Ack(ctx context.Context, key, by string) error {
	_, err := s.client.Txn(ctx).Then(
		clientv3.OpDelete(s.prefix+cooldownPrefix+key),
		clientv3.OpPut(s.prefix+ackedPrefix+key, encodeMark(by, time.Now())),
	).Commit()
	if err != nil {
		return fmt.Errorf("etcd: ack %q: %w", key, err)
	}
	return nil
}

// Acked is the last acknowledgement of key: who and when (ok false when
// none was recorded).
func (s *etcdState) Acked(ctx context.Context, key string) (by string, at time.Time, ok bool, err error) {
	return ackedMark(s.get(ctx, ackedPrefix+key))
}

func (s *etcdState) Paused(ctx context.Context) (bool, string, error) {
	v, ok, err := s.get(ctx, pausedKey)
	if err != nil || !ok {
		return false, "", err
	}
	m, err := decodeMark(v)
	if err != nil {
		// Unreadable but present: stay paused, the safe side for failover.
		return true, "", fmt.Errorf("etcd: read %s: %w", s.prefix+pausedKey, err)
	}
	return true, m.By, nil
}

func (s *etcdState) SetPaused(ctx context.Context, paused bool, by string) error {
	k := s.prefix + pausedKey
	var err error
	if paused {
		_, err = s.client.Put(ctx, k, encodeMark(by, time.Now()))
	} else {
		_, err = s.client.Delete(ctx, k)
	}
	if err != nil {
		return fmt.Errorf("etcd: set %s: %w", k, err)
	}
	return nil
}
