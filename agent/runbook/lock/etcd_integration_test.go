//go:build linux

// The integration tests run a real etcd and freeze it with SIGSTOP; CI
// runs them on Linux, where Debian's etcd-server package provides it.

package lock

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vigil-project/vigil/internal/testenv"
)

// testEtcd is a real etcd server owned by one test.
type testEtcd struct {
	endpoint string
	cmd      *exec.Cmd
	out      *syncBuffer
}

// startEtcd runs the etcd binary (Debian package etcd-server) on random
// local ports. Without it the test is skipped, unless
// VIGIL_REQUIRE_INTEGRATION is set, as in CI, where skipping would hide a
// broken setup (testenv).
func startEtcd(t *testing.T) *testEtcd {
	t.Helper()
	bin := testenv.NeedBinary(t, "etcd", "etcd-server")
	// Free ports can be taken between the probe and etcd's bind; retry.
	var lastErr error
	for range 3 {
		e, err := tryStartEtcd(t, bin)
		if err == nil {
			return e
		}
		lastErr = err
	}
	t.Fatal(lastErr)
	return nil
}

func tryStartEtcd(t *testing.T, bin string) (*testEtcd, error) {
	client, peer := freePort(t), freePort(t)
	clientURL, peerURL := "http://"+client, "http://"+peer
	out := &syncBuffer{}
	cmd := exec.Command(bin,
		"--data-dir", t.TempDir(),
		"--name", "default",
		"--listen-client-urls", clientURL,
		"--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL,
		"--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "default="+peerURL,
	)
	cmd.Stdout, cmd.Stderr = out, out
	// No stray server if the test binary is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start etcd: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		cmd.Process.Signal(syscall.SIGCONT) // in case a test left it stopped
		cmd.Process.Kill()
		<-exited
	}

	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			stop()
			return nil, fmt.Errorf("etcd exited early (%v):\n%s", err, out)
		default:
		}
		if etcdHealthy(clientURL) {
			t.Cleanup(stop)
			return &testEtcd{endpoint: clientURL, cmd: cmd, out: out}, nil
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("etcd not healthy after 20s:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func etcdHealthy(url string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(url + "/health")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode == http.StatusOK && strings.Contains(b.String(), `"health":"true"`)
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const testTTL = 5 * time.Second

// agent is one vigil agent's view of the etcd backend.
type agent struct {
	Locker
	State
}

func newAgents(t *testing.T, e *testEtcd, prefix string, n int) []agent {
	t.Helper()
	var out []agent
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		l, s, err := NewEtcd(ctx, EtcdConfig{Endpoints: []string{e.endpoint}, Prefix: prefix, TTL: testTTL})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		out = append(out, agent{l, s})
	}
	return out
}

func rawClient(t *testing.T, e *testEtcd) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{e.endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// race has every agent try key at once and returns the index of the one
// winner and its lease.
func race(t *testing.T, ctx context.Context, agents []agent, key string) (int, Lease) {
	t.Helper()
	leases := make([]Lease, len(agents))
	errs := make([]error, len(agents))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, a := range agents {
		wg.Go(func() {
			<-start
			leases[i], errs[i] = a.TryAcquire(ctx, key)
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("agents %d and %d both hold %q", winner, i, key)
			}
			winner = i
		case !errors.Is(err, ErrHeld):
			t.Fatalf("agent %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatalf("no agent took %q: %v", key, errs)
	}
	return winner, leases[winner]
}

func waitLost(t *testing.T, le Lease, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	select {
	case <-le.Lost():
		return time.Since(start)
	case <-time.After(within):
		t.Fatalf("lease not reported lost within %s", within)
		return 0
	}
}

func notLost(t *testing.T, le Lease) {
	t.Helper()
	select {
	case <-le.Lost():
		t.Fatal("lease reported lost while held")
	default:
	}
}

// TestEtcd runs its parts against one etcd server, each under its own
// prefix, to keep the start-up cost to one.
func TestEtcd(t *testing.T) {
	e := startEtcd(t)
	ctx := context.Background()

	t.Run("one winner, then a larger token", func(t *testing.T) {
		agents := newAgents(t, e, "/test/race/", 3)
		const key = "failover/db-primary"
		w, first := race(t, ctx, agents, key)
		if first.Token() <= 0 {
			t.Fatalf("token %d", first.Token())
		}
		notLost(t, first)
		// The winner's own agent must not take it twice either.
		if _, err := agents[w].TryAcquire(ctx, key); !errors.Is(err, ErrHeld) {
			t.Fatalf("winner again: got %v, want ErrHeld", err)
		}
		if err := first.Release(ctx); err != nil {
			t.Fatal(err)
		}
		if err := first.Release(ctx); err != nil {
			t.Fatalf("second Release: %v", err)
		}
		others := append(append([]agent{}, agents[:w]...), agents[w+1:]...)
		_, second := race(t, ctx, others, key)
		if second.Token() <= first.Token() {
			t.Fatalf("token after release %d, not above %d", second.Token(), first.Token())
		}
		second.Release(ctx)
		// And the first winner can come back, later still.
		third, err := agents[w].TryAcquire(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if third.Token() <= second.Token() {
			t.Fatalf("token %d, not above %d", third.Token(), second.Token())
		}
		third.Release(ctx)
	})

	t.Run("keys that nest do not collide", func(t *testing.T) {
		agents := newAgents(t, e, "/test/nest/", 2)
		a, err := agents[0].TryAcquire(ctx, "rb/http://host")
		if err != nil {
			t.Fatal(err)
		}
		defer a.Release(ctx)
		b, err := agents[1].TryAcquire(ctx, "rb/http://host/path")
		if err != nil {
			t.Fatalf("nested key: %v", err)
		}
		defer b.Release(ctx)
		if _, err := agents[1].TryAcquire(ctx, "rb/http://host"); !errors.Is(err, ErrHeld) {
			t.Fatalf("got %v, want ErrHeld", err)
		}
	})

	t.Run("revoked session", func(t *testing.T) {
		agents := newAgents(t, e, "/test/revoke/", 2)
		const key = "failover/cache"
		held, err := agents[0].TryAcquire(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := agents[1].TryAcquire(ctx, key); !errors.Is(err, ErrHeld) {
			t.Fatalf("got %v, want ErrHeld", err)
		}
		// As an operator breaking a stuck lock would, from outside.
		id := held.(*etcdLease).sess.Lease()
		if _, err := rawClient(t, e).Revoke(ctx, id); err != nil {
			t.Fatal(err)
		}
		// Keep-alives go every TTL/3, so the loss shows within that.
		d := waitLost(t, held, testTTL)
		t.Logf("lost %s after revoke", d)

		taken, err := agents[1].TryAcquire(ctx, key)
		if err != nil {
			t.Fatalf("after revoke: %v", err)
		}
		if taken.Token() <= held.Token() {
			t.Fatalf("token %d, not above %d", taken.Token(), held.Token())
		}
		// The loser releases what it no longer has: no error, and the
		// new holder keeps the lock.
		if err := held.Release(ctx); err != nil {
			t.Fatalf("Release of a lost lease: %v", err)
		}
		if _, err := agents[0].TryAcquire(ctx, key); !errors.Is(err, ErrHeld) {
			t.Fatalf("got %v, want ErrHeld", err)
		}
		// The revoked agent locks again through a new session.
		other, err := agents[0].TryAcquire(ctx, "failover/other")
		if err != nil {
			t.Fatalf("after losing the session: %v", err)
		}
		if other.(*etcdLease).sess.Lease() == id {
			t.Fatal("old session reused")
		}
		notLost(t, other)
		other.Release(ctx)
		taken.Release(ctx)
	})

	t.Run("revoked before the keep-alive notices", func(t *testing.T) {
		agents := newAgents(t, e, "/test/revoke-fast/", 1)
		l := agents[0].Locker.(*etcdLocker)
		s, err := l.session(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rawClient(t, e).Revoke(ctx, s.Lease()); err != nil {
			t.Fatal(err)
		}
		// Straight away, well inside TTL/3: the put with the dead lease
		// fails and TryAcquire retries with a new session.
		le, err := l.TryAcquire(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		if le.(*etcdLease).sess == s {
			t.Fatal("lock taken on the revoked session")
		}
		le.Release(ctx)
	})

	t.Run("close frees locks at once", func(t *testing.T) {
		agents := newAgents(t, e, "/test/close/", 2)
		held, err := agents[0].TryAcquire(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		if err := agents[0].Close(); err != nil {
			t.Fatal(err)
		}
		waitLost(t, held, time.Second)
		if _, err := agents[1].TryAcquire(ctx, "k"); err != nil {
			t.Fatalf("after Close: %v", err)
		}
		if _, err := agents[0].TryAcquire(ctx, "j"); !errors.Is(err, ErrClosed) {
			t.Fatalf("TryAcquire after Close: got %v, want ErrClosed", err)
		}
		if err := agents[0].Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})

	t.Run("shared state", func(t *testing.T) {
		agents := newAgents(t, e, "/test/state/", 2)
		a, b := agents[0].State, agents[1].State
		const key = "failover/db-primary"
		until := time.Now().Add(10 * time.Minute).Round(0)

		if got, err := b.CooldownUntil(ctx, key); err != nil || !got.IsZero() {
			t.Fatalf("initially: %v, %v", got, err)
		}
		if err := a.SetCooldown(ctx, key, until); err != nil {
			t.Fatal(err)
		}
		if got, err := b.CooldownUntil(ctx, key); err != nil || !got.Equal(until) {
			t.Fatalf("seen by the other agent: %v, %v; want %v", got, err, until)
		}
		if err := b.Ack(ctx, key, "bob"); err != nil {
			t.Fatal(err)
		}
		if got, err := a.CooldownUntil(ctx, key); err != nil || !got.IsZero() {
			t.Fatalf("after Ack: %v, %v", got, err)
		}
		resp, err := rawClient(t, e).Get(ctx, "/test/state/state/acked_by/"+key)
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("acked_by: %v, %v", resp, err)
		}
		if m, err := decodeMark(string(resp.Kvs[0].Value)); err != nil || m.By != "bob" {
			t.Fatalf("acked_by = %q (%v)", resp.Kvs[0].Value, err)
		}

		if p, by, err := b.Paused(ctx); err != nil || p || by != "" {
			t.Fatalf("initially paused: %v %q %v", p, by, err)
		}
		if err := a.SetPaused(ctx, true, "alice"); err != nil {
			t.Fatal(err)
		}
		if p, by, err := b.Paused(ctx); err != nil || !p || by != "alice" {
			t.Fatalf("pause seen by the other agent: %v %q %v", p, by, err)
		}
		if err := b.SetPaused(ctx, false, "bob"); err != nil {
			t.Fatal(err)
		}
		if p, _, err := a.Paused(ctx); err != nil || p {
			t.Fatalf("resume seen by the other agent: %v %v", p, err)
		}
	})

	// Last, since it freezes the server: an agent cut off from etcd for
	// longer than the TTL must consider its locks gone, because etcd
	// expires them and another agent may take them.
	t.Run("etcd unreachable past the TTL", func(t *testing.T) {
		agents := newAgents(t, e, "/test/partition/", 1)
		held, err := agents[0].TryAcquire(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		if err := e.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		resumed := false
		resume := func() {
			if !resumed {
				e.cmd.Process.Signal(syscall.SIGCONT)
				resumed = true
			}
		}
		defer resume()
		d := waitLost(t, held, testTTL+3*time.Second)
		t.Logf("lost %s after etcd stopped answering", d)
		resume()
		// The run stops and lets go; until then the key stays taken on
		// this agent, as the run may still be in a step.
		if _, err := agents[0].TryAcquire(ctx, "k"); !errors.Is(err, ErrHeld) {
			t.Fatalf("before Release: got %v, want ErrHeld", err)
		}
		if err := held.Release(ctx); err != nil {
			t.Fatalf("Release of a lost lease: %v", err)
		}

		// Once etcd is back the agent locks again on a new session; etcd
		// may take a moment to expire the old key.
		tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		var le Lease
		for {
			le, err = agents[0].TryAcquire(tctx, "k")
			if err == nil || tctx.Err() != nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("after etcd came back: %v", err)
		}
		if le.Token() <= held.Token() {
			t.Fatalf("token %d, not above %d", le.Token(), held.Token())
		}
		le.Release(ctx)
	})
}
