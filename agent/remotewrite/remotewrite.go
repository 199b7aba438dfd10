// Package remotewrite pushes the agent's series to Prometheus remote-write
// receivers (push mode, for agents a central Prometheus cannot scrape).
// Every interval a remote takes a snapshot of every series the agent
// exports on /metrics plus its rules' ALERTS and ALERTS_FOR_STATE series,
// read in-process as the rule engine reads them, and queues it; a sender
// sends the queue oldest first in batches (protobuf WriteRequest, snappy,
// remote-write 1.0), retrying with exponential backoff. The queue is in
// memory and bounded: when it is full the oldest samples are dropped and
// counted. The behaviour follows Prometheus's queue manager
// (storage/remote/queue_manager.go) with one shard per remote.
package remotewrite

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-project/vigil/agent/config"
	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/internal/confkit"
	"github.com/vigil-project/vigil/rules"
)

// Options are the manager's dependencies.
type Options struct {
	// Series are every series the agent exports, read in-process, and the
	// rules' ALERTS series.
	Series rules.Source
	// Ready holds back the first snapshot until the checks have run once
	// (at most one interval), so it is not one of agent series only.
	Ready  func() bool
	Logger *slog.Logger
}

// Manager runs one sender per configured remote. Apply installs a config
// (before or during Run); Run starts and stops the remotes and waits for
// them.
type Manager struct {
	opts Options
	m    *metrics

	mu      sync.Mutex
	want    []spec
	changed chan struct{}
}

// spec is what one remote is built from.
type spec struct {
	cfg      config.RemoteWrite
	external labels.Labels
	// fingerprint identifies the settings: equal means the running remote
	// is kept, queue and all.
	fingerprint string
}

// New returns a manager without remotes.
func New(opts Options) *Manager {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Ready == nil {
		opts.Ready = func() bool { return true }
	}
	return &Manager{opts: opts, m: newMetrics(), changed: make(chan struct{}, 1)}
}

// Apply installs the config's remotes. A remote whose settings are
// unchanged keeps running with its queue; a changed one restarts and
// takes over its predecessor's queue; a removed one stops, its queue and
// series gone. Run applies it; Apply does not wait.
func (m *Manager) Apply(cfg *config.Config) {
	specs := make([]spec, 0, len(cfg.RemoteWrite))
	for _, rw := range cfg.RemoteWrite {
		ext := ExternalLabels(cfg.Global.Labels, rw.ExternalLabels)
		specs = append(specs, spec{cfg: rw, external: ext, fingerprint: fingerprint(rw, ext)})
	}
	m.mu.Lock()
	m.want = specs
	m.mu.Unlock()
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// ExternalLabels are the labels added to every series a remote sends:
// job="vigil" and instance=<host name> (a pushed series has no scrape to
// add them, and without them the series of many agents would collide),
// then global.labels, then the remote's external_labels, each over the
// one before.
func ExternalLabels(global, remote map[string]string) labels.Labels {
	m := map[string]string{"job": "vigil", "instance": hostname()}
	for k, v := range global {
		m[k] = v
	}
	for k, v := range remote {
		m[k] = v
	}
	return labels.FromMap(m)
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}

// fingerprint hashes a remote's settings, secrets by value (they marshal
// redacted): a rotated password restarts the remote.
func fingerprint(rw config.RemoteWrite, ext labels.Labels) string {
	h := sha256.New()
	b, _ := json.Marshal(rw)
	h.Write(b)
	h.Write([]byte(ext.String()))
	for _, s := range []confkit.Secret{rw.BearerToken, basicPassword(rw)} {
		h.Write([]byte{0})
		h.Write([]byte(s.Reveal()))
	}
	for _, rc := range rw.Relabel {
		b, _ := json.Marshal(rc)
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func basicPassword(rw config.RemoteWrite) confkit.Secret {
	if rw.BasicAuth == nil {
		return confkit.Secret{}
	}
	return rw.BasicAuth.Password
}

// Run runs the remotes until ctx is done, following Apply, and returns
// once every remote's goroutines have stopped.
func (m *Manager) Run(ctx context.Context) error {
	running := map[string]*remote{}
	defer func() {
		for _, r := range running {
			r.stop()
		}
	}()
	for {
		m.mu.Lock()
		want := m.want
		m.mu.Unlock()
		m.reconcile(ctx, running, want)
		select {
		case <-ctx.Done():
			return nil
		case <-m.changed:
		}
	}
}

// reconcile makes running match want.
func (m *Manager) reconcile(ctx context.Context, running map[string]*remote, want []spec) {
	keep := map[string]bool{}
	for _, sp := range want {
		keep[sp.cfg.Name] = true
	}
	for name, r := range running {
		if !keep[name] {
			r.stop()
			delete(running, name)
			m.m.remove(name)
			m.opts.Logger.Info("remote write stopped", "remote", name)
		}
	}
	for _, sp := range want {
		old := running[sp.cfg.Name]
		if old != nil && old.spec.fingerprint == sp.fingerprint {
			continue
		}
		var backlog []sample
		if old != nil {
			old.stop()
			backlog = old.q.drain()
		}
		r, err := m.start(ctx, sp, backlog)
		if err != nil {
			// Only a client that cannot be built (an unreadable CA file
			// since validation) gets here; the others keep running.
			m.opts.Logger.Error("remote write not started", "remote", sp.cfg.Name, "err", err)
			delete(running, sp.cfg.Name)
			m.m.remove(sp.cfg.Name)
			continue
		}
		running[sp.cfg.Name] = r
		m.opts.Logger.Info("remote write started", "remote", sp.cfg.Name, "interval", sp.cfg.Interval.String(),
			"capacity", sp.cfg.QueueConfig.Capacity, "carried_over", len(backlog))
	}
}

// start builds a remote and starts its goroutines.
func (m *Manager) start(ctx context.Context, sp spec, backlog []sample) (*remote, error) {
	client, err := newClient(sp.cfg)
	if err != nil {
		return nil, err
	}
	r := &remote{spec: sp, cfg: sp.cfg, client: client, q: newQueue(sp.cfg.QueueConfig.Capacity), m: m.m,
		log: m.opts.Logger.With("remote", sp.cfg.Name), ready: m.opts.Ready,
		snap: newSnapshotter(m.opts.Series, sp.external, sp.cfg.Relabel), done: make(chan struct{})}
	m.m.add(sp.cfg.Name, r.q.capacity())
	if dropped := r.q.push(backlog); dropped > 0 {
		m.m.dropped.WithLabelValues(sp.cfg.Name, reasonQueueFull).Add(float64(dropped))
	}
	m.m.queued.WithLabelValues(sp.cfg.Name).Set(float64(r.q.len()))
	ctx, r.cancel = context.WithCancel(ctx)
	go r.run(ctx)
	return r, nil
}

// WritePrometheus writes the remotes' metrics.
func (m *Manager) WritePrometheus(w io.Writer) { m.m.write(w) }

// remote is one running remote_write entry.
type remote struct {
	spec   spec
	cfg    config.RemoteWrite
	client *http.Client
	q      *queue
	m      *metrics
	log    *slog.Logger
	ready  func() bool
	snap   *snapshotter
	cancel context.CancelFunc
	done   chan struct{}
}

func (r *remote) stop() {
	r.cancel()
	<-r.done
}

// run takes snapshots and sends them until ctx is done.
func (r *remote) run(ctx context.Context) {
	defer close(r.done)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { r.snapshots(ctx) })
	r.send(ctx)
}

// snapshots queues a snapshot every interval. The first waits for the
// checks' first runs (at most one interval).
func (r *remote) snapshots(ctx context.Context) {
	interval := time.Duration(r.cfg.Interval)
	if !r.waitReady(ctx, interval) {
		return
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		r.snapshot(time.Now())
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// waitReady waits until ready() or for at most d; false when ctx ended.
func (r *remote) waitReady(ctx context.Context, d time.Duration) bool {
	limit := time.NewTimer(d)
	defer limit.Stop()
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
	for !r.ready() {
		select {
		case <-ctx.Done():
			return false
		case <-limit.C:
			return true
		case <-poll.C:
		}
	}
	return true
}

func (r *remote) snapshot(now time.Time) {
	if !r.snap.due(now) {
		return // in the millisecond of the last one (see take): not counted
	}
	ss, err := r.snap.take(now)
	if err != nil {
		r.log.Warn("remote write read the agent's series", "err", err)
	}
	if dropped := r.q.push(ss); dropped > 0 {
		r.m.dropped.WithLabelValues(r.cfg.Name, reasonQueueFull).Add(float64(dropped))
	}
	r.m.snapshots.WithLabelValues(r.cfg.Name).Inc()
	r.m.queued.WithLabelValues(r.cfg.Name).Set(float64(r.q.len()))
}

// send sends the queue, oldest first, until ctx is done: a full batch at
// once, a partial one when its oldest sample has waited
// batch_send_deadline (a snapshot smaller than max_samples_per_send goes
// out that long after it was taken).
func (r *remote) send(ctx context.Context) {
	q := r.cfg.QueueConfig
	deadline := time.Duration(q.BatchSendDeadline)
	var (
		enc   encoder
		batch []sample
		timer = time.NewTimer(0)
	)
	defer timer.Stop()
	for {
		n, oldest := r.q.oldest()
		if n > 0 && n < q.MaxSamplesPerSend {
			if wait := time.Until(time.UnixMilli(oldest).Add(deadline)); wait > 0 {
				timer.Reset(wait)
				n = 0
			}
		}
		if n == 0 {
			select {
			case <-ctx.Done():
				return
			case <-r.q.wake:
				continue
			case <-timer.C:
				continue
			}
		}
		batch = r.sendBatch(ctx, &enc, batch[:0])
		if ctx.Err() != nil {
			return
		}
	}
}

// sendBatch sends the oldest max_samples_per_send samples until the
// receiver answers for them: accepted (counted as sent), rejected with a
// 4xx (dropped and counted), or — on a network error, a 5xx, 408 or 429 —
// again after a backoff that doubles from min_backoff to max_backoff, or
// after the receiver's Retry-After. Each attempt re-reads the batch from
// the queue, so samples dropped from a full queue meanwhile are not sent.
// It returns the batch buffer for reuse.
func (r *remote) sendBatch(ctx context.Context, enc *encoder, buf []sample) []sample {
	q := r.cfg.QueueConfig
	backoff := time.Duration(q.MinBackoff)
	name := r.cfg.Name
	for attempt := 0; ; attempt++ {
		batch, start := r.q.peek(q.MaxSamplesPerSend, buf[:0])
		buf = batch
		if len(batch) == 0 {
			return buf
		}
		body, err := enc.encode(batch)
		if err == nil {
			err = r.post(ctx, body, attempt)
		}
		if ctx.Err() != nil {
			// Shutdown or reload: the batch stays queued.
			return buf
		}
		switch {
		case err == nil:
			r.m.sent.WithLabelValues(name).Add(float64(r.q.ack(start, len(batch))))
			r.m.lastSuccess.WithLabelValues(name).Set(float64(time.Now().UnixNano()) / 1e9)
			r.m.queued.WithLabelValues(name).Set(float64(r.q.len()))
			if attempt > 0 {
				r.log.Info("remote write recovered", "attempts", attempt+1)
			}
			return buf
		case notify.IsPermanent(err):
			dropped := r.q.ack(start, len(batch))
			r.m.dropped.WithLabelValues(name, reasonRejected).Add(float64(dropped))
			r.m.queued.WithLabelValues(name).Set(float64(r.q.len()))
			r.log.Warn("remote write batch rejected; its samples are dropped", "samples", dropped, "err", err)
			return buf
		}
		r.m.retried.WithLabelValues(name).Add(float64(len(batch)))
		wait := backoff
		var ra *notify.RetryAfterError
		if errors.As(err, &ra) && ra.After > 0 {
			wait = ra.After
		}
		if attempt == 0 {
			r.log.Warn("remote write failed; retrying", "samples", len(batch), "retry_in", wait, "err", err)
		} else {
			r.log.Debug("remote write failed; retrying", "attempt", attempt+1, "retry_in", wait, "err", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return buf
		case <-t.C:
		}
		backoff = min(wait*2, time.Duration(q.MaxBackoff))
	}
}
