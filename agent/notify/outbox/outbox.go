// Package outbox delivers notifications at least once: every notification
// is committed to the store before the first attempt, a worker per
// delivery target sends with retries (exponential backoff with jitter,
// Retry-After honoured), per-target concurrency and rate limits, records
// success only after the receiver acknowledged, and resumes pending items
// after a restart. Items of one order key (an alert group, an Alertmanager
// peer) go out strictly in order, so "resolved" never overtakes "firing".
// Items still failing after MaxAge, or failing permanently, are
// dead-lettered and counted.
package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	vm "github.com/VictoriaMetrics/metrics"
	"golang.org/x/time/rate"

	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/agent/store"

	"github.com/vigil-project/vigil/internal/promhelp"
)

// Store is the outbox's persistence (agent/store implements it).
type Store interface {
	Enqueue(ctx context.Context, items []*store.OutboxItem) error
	UpdateOutbox(ctx context.Context, items []store.OutboxItem) error
	PendingOutbox(ctx context.Context) ([]*store.OutboxItem, error)
}

// Target is one place notifications are delivered to: an integration of a
// receiver ("oncall/pagerduty[0]") or an Alertmanager peer.
type Target struct {
	Name     string
	Receiver string
	// Integration is the kind ("pagerduty", "alertmanager", ...), a label
	// on the metrics.
	Integration string
	Notifier    notify.Notifier
	// Concurrency bounds parallel sends (default 1).
	Concurrency int
	// Rate limits sends per second (0: unlimited) with Burst.
	Rate  float64
	Burst int
}

// Options configures the outbox.
type Options struct {
	Store  Store
	Logger *slog.Logger
	// Timeout of one delivery attempt.
	Timeout time.Duration
	// MinBackoff and MaxBackoff bound the exponential retry delay.
	MinBackoff, MaxBackoff time.Duration
	// MaxAge is how long an item is retried before it is dead-lettered.
	MaxAge time.Duration
	Now    func() time.Time
}

// Defaults.
const (
	DefaultTimeout    = 10 * time.Second
	DefaultMinBackoff = time.Second
	DefaultMaxBackoff = 5 * time.Minute
	DefaultMaxAge     = 24 * time.Hour
)

// Outbox queues and delivers notifications.
type Outbox struct {
	opts    Options
	metrics *vm.Set

	mu      sync.Mutex
	targets map[string]*worker
	started bool
	wg      sync.WaitGroup

	// launches carries workers that SetTargets added after Start to the
	// launcher, the goroutine Start runs with its ctx; launcherDone closes
	// when it stops.
	launches     chan launch
	launcherDone chan struct{}

	// records carries attempt outcomes to the recorder, which commits them
	// in batches, in the order they happened. Pointers to copies: a buffer
	// of 1,024 items by value was 176 KiB of live heap in every agent, paging
	// or not, which the GC's heap goal then grew by half again.
	records  chan *store.OutboxItem
	recDone  chan struct{}
	closeRec sync.Once

	// memoryID numbers unsaved items (negative, so they never collide
	// with the store's row ids).
	memoryID atomic.Int64
}

// launch asks the launcher to start workers; done closes once they run.
type launch struct {
	workers []*worker
	done    chan struct{}
}

type worker struct {
	o       *Outbox
	target  Target
	limiter *rate.Limiter
	wake    chan struct{}

	mu    sync.Mutex
	queue []*store.OutboxItem // pending, id order
	busy  map[string]bool     // order keys being sent
	slots int                 // free concurrency slots
	stop  chan struct{}
	gone  bool // removed by a reload: drains nothing, keeps items on disk
	// loaded are the IDs read from the store when the worker started: an
	// item committed just before and handed over (Accept) just after is
	// one of them, queued, in flight or sent already, and must not be
	// queued again. Entries go as they are matched; the set never grows
	// past what the start read.
	loaded map[int64]bool
}

// New returns an outbox; call Start to load pending items and deliver.
func New(opts Options) *Outbox {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = DefaultMaxAge
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Outbox{opts: opts, metrics: vm.NewSet(), targets: map[string]*worker{}, records: make(chan *store.OutboxItem, 1024), recDone: make(chan struct{}),
		launches: make(chan launch), launcherDone: make(chan struct{})}
}

// WritePrometheus writes the outbox's metrics.
func (o *Outbox) WritePrometheus(w io.Writer) { promhelp.Write(w, o.metrics, metricHelp) }

// metricHelp is the HELP text of the outbox's metrics.
var metricHelp = map[string]string{
	"vigil_notify_queue_length":             "Notifications waiting for delivery, per receiver integration (receiver=\"alertmanager\" for the peers).",
	"vigil_notify_oldest_pending_seconds":   "Age of the oldest notification waiting for delivery; 0 when none waits.",
	"vigil_notify_sent_total":               "Notifications the receiver acknowledged.",
	"vigil_notify_failed_total":             "Failed delivery attempts, retried or dead-lettered.",
	"vigil_notify_retried_total":            "Failed delivery attempts that will be retried.",
	"vigil_notify_dead_letter_total":        "Notifications given up: failed permanently or older than notify.max_age.",
	"vigil_notify_delivery_latency_seconds": "Time from queueing to acknowledgement of each delivered notification.",
	"vigil_notify_attempt_duration_seconds": "Duration of each successful delivery request.",
	"vigil_notify_unsaved_total":            "Notifications the store could not save (full disk, damaged file), delivered from memory instead.",
}

// Start loads pending items (those a previous run left, including any that
// were being sent when it died) and starts a worker per target; workers
// and deliveries run until ctx ends. Items for targets that no longer
// exist stay on disk until the target returns.
func (o *Outbox) Start(ctx context.Context, targets []Target) error {
	pending, err := o.opts.Store.PendingOutbox(ctx)
	if err != nil {
		return err
	}
	o.mu.Lock()
	o.started = true
	o.mu.Unlock()
	go o.recorder()
	o.wg.Add(1)
	go o.launcher(ctx)
	// New workers load their pending items as they start (SetTargets).
	o.SetTargets(targets)
	known := map[string]bool{}
	for _, t := range targets {
		known[t.Name] = true
	}
	orphans := map[string]int{}
	for _, it := range pending {
		if !known[it.Target] {
			orphans[it.Target]++
		}
	}
	for name, n := range orphans {
		o.opts.Logger.Warn("pending notifications for a target no longer configured stay queued", "target", name, "items", n)
	}
	return nil
}

// SetTargets replaces the delivery targets (config reload). A target whose
// settings are unchanged keeps its worker and queue. After Start, a new
// target's worker is running, with what earlier configs left queued for
// it, when SetTargets returns.
func (o *Outbox) SetTargets(targets []Target) {
	o.mu.Lock()
	defer o.mu.Unlock()
	next := map[string]*worker{}
	var added []*worker
	for _, t := range targets {
		if t.Concurrency < 1 {
			t.Concurrency = 1
		}
		if old := o.targets[t.Name]; old != nil {
			old.mu.Lock()
			old.slots += t.Concurrency - old.target.Concurrency
			old.target = t
			old.limiter = newLimiter(t)
			old.mu.Unlock()
			next[t.Name] = old
			delete(o.targets, t.Name)
			continue
		}
		w := &worker{o: o, target: t, limiter: newLimiter(t), wake: make(chan struct{}, 1), busy: map[string]bool{},
			slots: t.Concurrency, stop: make(chan struct{})}
		next[t.Name] = w
		added = append(added, w)
		o.registerMetrics(t)
	}
	for _, w := range o.targets {
		w.mu.Lock()
		w.gone = true
		w.mu.Unlock()
		close(w.stop)
	}
	o.targets = next
	if !o.started || len(added) == 0 {
		return
	}
	// o.mu stays held until the workers run, so no item is accepted
	// before their pending items are loaded (it would be queued twice).
	l := launch{workers: added, done: make(chan struct{})}
	select {
	case o.launches <- l:
		<-l.done
	case <-o.launcherDone:
		// Stopped: there is nothing left to deliver with.
	}
}

// launcher starts the workers of targets that SetTargets adds, bound to
// the ctx of Start, until it ends.
func (o *Outbox) launcher(ctx context.Context) {
	defer o.wg.Done()
	defer close(o.launcherDone)
	for {
		select {
		case <-ctx.Done():
			return
		case l := <-o.launches:
			o.startWorkers(ctx, l.workers)
			close(l.done)
		}
	}
}

// startWorkers starts workers bound to ctx; each first picks up what an
// earlier run or config left queued for its target (one read of the
// store for all of them).
func (o *Outbox) startWorkers(ctx context.Context, workers []*worker) {
	pending, err := o.opts.Store.PendingOutbox(ctx)
	if err != nil {
		for _, w := range workers {
			o.opts.Logger.Error("load pending notifications", "target", w.target.Name, "err", err)
		}
	}
	byTarget := map[string][]*store.OutboxItem{}
	for _, it := range pending {
		byTarget[it.Target] = append(byTarget[it.Target], it)
	}
	for _, w := range workers {
		w.mu.Lock()
		w.queue = append(w.queue, byTarget[w.target.Name]...)
		w.loaded = make(map[int64]bool, len(byTarget[w.target.Name]))
		for _, it := range byTarget[w.target.Name] {
			w.loaded[it.ID] = true
		}
		w.mu.Unlock()
		o.wg.Add(1)
		go w.run(ctx)
		w.poke()
	}
}

// Wait blocks until every worker and delivery has stopped (after ctx
// ended) and their outcomes are recorded.
func (o *Outbox) Wait() {
	o.wg.Wait()
	o.mu.Lock()
	started := o.started
	o.mu.Unlock()
	if started {
		o.closeRec.Do(func() { close(o.records) })
		<-o.recDone
	}
}

// recorder commits attempt outcomes: whatever has queued up goes in one
// transaction, so a burst costs a commit per batch rather than per item.
// An outcome not yet committed when the process dies leaves its item
// pending: it is sent again after the restart (at-least-once), and since
// batches commit in order, an item is never recorded before an earlier
// item of its order key.
func (o *Outbox) recorder() {
	defer close(o.recDone)
	for first := range o.records {
		batch := make([]store.OutboxItem, 0, 1)
		if !first.Unsaved {
			batch = append(batch, *first)
		}
	more:
		for len(batch) < 512 {
			select {
			case it, ok := <-o.records:
				if !ok {
					break more
				}
				if !it.Unsaved {
					batch = append(batch, *it)
				}
			default:
				break more
			}
		}
		if len(batch) == 0 {
			continue
		}
		if err := o.opts.Store.UpdateOutbox(context.Background(), batch); err != nil {
			o.opts.Logger.Error("record notification outcomes; those items stay pending and are sent again after a restart", "items", len(batch), "err", err)
		}
	}
}

func newLimiter(t Target) *rate.Limiter {
	if t.Rate <= 0 {
		return rate.NewLimiter(rate.Inf, 0)
	}
	return rate.NewLimiter(rate.Limit(t.Rate), max(t.Burst, 1))
}

// Enqueue commits one item per target for the message and wakes the
// workers. orderKey orders items that must not overtake each other.
func (o *Outbox) Enqueue(ctx context.Context, m *notify.Message, orderKey string, targets []string) error {
	_, err := o.EnqueueItems(ctx, m, orderKey, targets)
	return err
}

// EnqueueItems is Enqueue returning the items queued, whose IDs find
// their outcome in the store (an unsaved item has a negative ID).
func (o *Outbox) EnqueueItems(ctx context.Context, m *notify.Message, orderKey string, targets []string) ([]*store.OutboxItem, error) {
	items, err := o.items(m, orderKey, targets)
	if err != nil || len(items) == 0 {
		return nil, err
	}
	if err := o.opts.Store.Enqueue(ctx, items); err != nil {
		o.AcceptUnsaved(items, err)
		return items, nil
	}
	o.Accept(items)
	return items, nil
}

// AcceptUnsaved hands items whose write to the store failed to their
// workers anyway: a sick disk must not stop paging. They are delivered
// from memory (at least once while the agent runs, lost if it stops
// first) and counted in vigil_notify_unsaved_total; the store counts the
// write error itself.
func (o *Outbox) AcceptUnsaved(items []*store.OutboxItem, err error) {
	for _, it := range items {
		it.ID = o.memoryID.Add(-1)
		it.State = store.OutboxPending
		it.Unsaved = true
	}
	o.metrics.GetOrCreateCounter("vigil_notify_unsaved_total").Add(len(items))
	o.opts.Logger.Error("could not save notifications; delivering them from memory (lost if the agent stops before they are sent)",
		"items", len(items), "err", err)
	o.Accept(items)
}

// Items builds the rows for a message without storing them, for callers
// that commit them in their own transaction (then call Accept).
func (o *Outbox) Items(m *notify.Message, orderKey string, targets []string) ([]*store.OutboxItem, error) {
	return o.items(m, orderKey, targets)
}

func (o *Outbox) items(m *notify.Message, orderKey string, targets []string) ([]*store.OutboxItem, error) {
	payload, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode notification: %w", err)
	}
	now := o.opts.Now()
	items := make([]*store.OutboxItem, 0, len(targets))
	for _, t := range targets {
		items = append(items, &store.OutboxItem{Target: t, OrderKey: orderKey, Payload: payload, CreatedAt: now, NextAt: now})
	}
	return items, nil
}

// Accept hands committed items to their workers.
func (o *Outbox) Accept(items []*store.OutboxItem) {
	o.mu.Lock()
	defer o.mu.Unlock()
	touched := map[*worker]bool{}
	for _, it := range items {
		w := o.targets[it.Target]
		if w == nil {
			continue
		}
		w.mu.Lock()
		if w.loaded[it.ID] {
			delete(w.loaded, it.ID) // loaded at the start: not twice
		} else {
			w.queue = append(w.queue, it)
		}
		w.mu.Unlock()
		touched[w] = true
	}
	for w := range touched {
		w.poke()
	}
}

func (w *worker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run picks ready items: the first pending item of each order key, due,
// while slots are free; the rest wait their turn.
func (w *worker) run(ctx context.Context) {
	defer w.o.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := w.o.opts.Now()
		picked, next := w.pick(now)
		for _, it := range picked {
			w.o.wg.Add(1)
			go func() {
				defer w.o.wg.Done()
				w.deliver(ctx, it)
			}()
		}
		wait := time.Minute
		if !next.IsZero() {
			wait = max(next.Sub(now), time.Millisecond)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-w.stop:
			return
		case <-w.wake:
		case <-timer.C:
		}
	}
}

func (w *worker) pick(now time.Time) (picked []*store.OutboxItem, next time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	seen := map[string]bool{}
	for _, it := range w.queue {
		if seen[it.OrderKey] {
			continue
		}
		seen[it.OrderKey] = true
		if w.busy[it.OrderKey] {
			continue
		}
		if it.NextAt.After(now) {
			if next.IsZero() || it.NextAt.Before(next) {
				next = it.NextAt
			}
			continue
		}
		if w.slots == 0 {
			break
		}
		w.slots--
		w.busy[it.OrderKey] = true
		picked = append(picked, it)
	}
	return picked, next
}

func (w *worker) deliver(ctx context.Context, it *store.OutboxItem) {
	w.mu.Lock()
	t, limiter := w.target, w.limiter
	w.mu.Unlock()
	err := limiter.Wait(ctx)
	var m notify.Message
	if err == nil {
		if err = json.Unmarshal(it.Payload, &m); err != nil {
			err = notify.Permanent(fmt.Errorf("decode queued notification: %w", err))
		}
	}
	if err == nil {
		actx, cancel := context.WithTimeout(ctx, w.o.opts.Timeout)
		start := time.Now()
		err = safeNotify(actx, t.Notifier, &m)
		cancel()
		if err == nil {
			w.o.metrics.GetOrCreateHistogram(fmt.Sprintf(`vigil_notify_attempt_duration_seconds{receiver=%q,integration=%q}`, t.Receiver, t.Integration)).UpdateDuration(start)
		}
	}
	if ctx.Err() != nil {
		// Shutting down: the item stays pending on disk and goes out after
		// the restart.
		w.release(it, false)
		return
	}
	now := w.o.opts.Now()
	it.Attempts++
	switch {
	case err == nil:
		it.State, it.DoneAt, it.LastError = store.OutboxSent, now, ""
		w.o.metrics.GetOrCreateCounter(series("vigil_notify_sent_total", t)).Inc()
		w.o.opts.Logger.Info("page delivered", "target", t.Name, "id", it.ID, "status", m.Status(), "alerts", alertList(&m),
			"attempts", it.Attempts, "latency", now.Sub(it.CreatedAt).Round(time.Millisecond))
		w.o.metrics.GetOrCreateHistogram(series("vigil_notify_delivery_latency_seconds", t)).Update(now.Sub(it.CreatedAt).Seconds())
	case notify.IsPermanent(err) || now.Sub(it.CreatedAt) >= w.o.opts.MaxAge:
		it.State, it.DoneAt, it.LastError = store.OutboxDead, now, err.Error()
		w.o.metrics.GetOrCreateCounter(series("vigil_notify_failed_total", t)).Inc()
		w.o.metrics.GetOrCreateCounter(series("vigil_notify_dead_letter_total", t)).Inc()
		w.o.opts.Logger.Error("notification dead-lettered", "target", t.Name, "id", it.ID, "alerts", alertList(&m), "attempts", it.Attempts, "err", err)
	default:
		it.NextAt, it.LastError = now.Add(w.o.backoff(it.Attempts, err)), err.Error()
		w.o.metrics.GetOrCreateCounter(series("vigil_notify_failed_total", t)).Inc()
		w.o.metrics.GetOrCreateCounter(series("vigil_notify_retried_total", t)).Inc()
		w.o.opts.Logger.Warn("notification failed, will retry", "target", t.Name, "id", it.ID, "alerts", alertList(&m), "attempt", it.Attempts, "retry_at", it.NextAt.Format(time.RFC3339), "err", err)
	}
	rec := *it // the outcome as of now; the worker goes on using it
	w.o.records <- &rec
	w.release(it, it.State != store.OutboxPending)
}

func series(name string, t Target) string {
	return fmt.Sprintf(`%s{receiver=%q,integration=%q}`, name, t.Receiver, t.Integration)
}

// release frees the item's slot and order key; done items leave the queue.
func (w *worker) release(it *store.OutboxItem, done bool) {
	w.mu.Lock()
	w.slots++
	delete(w.busy, it.OrderKey)
	if done {
		for i, q := range w.queue {
			if q == it {
				w.queue = append(w.queue[:i], w.queue[i+1:]...)
				break
			}
		}
	}
	w.mu.Unlock()
	w.poke()
}

// safeNotify turns a panicking integration into a failed attempt.
func safeNotify(ctx context.Context, n notify.Notifier, m *notify.Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("integration panicked: %v", r)
		}
	}()
	return n.Notify(ctx, m)
}

// backoff is exponential from MinBackoff, capped at MaxBackoff, with full
// jitter in its upper half; a receiver's Retry-After wins when longer.
func (o *Outbox) backoff(attempt int, err error) time.Duration {
	d := o.opts.MinBackoff
	for i := 1; i < attempt && d < o.opts.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, o.opts.MaxBackoff)
	d = d/2 + rand.N(d/2+1)
	var ra *notify.RetryAfterError
	if errors.As(err, &ra) && ra.After > d {
		d = min(ra.After, o.opts.MaxBackoff)
	}
	return d
}

// registerMetrics creates a target's series up front (zero until used) so
// rules see them from the start.
func (o *Outbox) registerMetrics(t Target) {
	o.metrics.GetOrCreateCounter("vigil_notify_unsaved_total")
	lb := fmt.Sprintf(`{receiver=%q,integration=%q}`, t.Receiver, t.Integration)
	for _, name := range []string{"vigil_notify_sent_total", "vigil_notify_failed_total", "vigil_notify_retried_total", "vigil_notify_dead_letter_total"} {
		o.metrics.GetOrCreateCounter(name + lb)
	}
	name := t.Name
	o.metrics.GetOrCreateGauge(`vigil_notify_queue_length`+lb, func() float64 {
		n, _ := o.queueStats(name)
		return float64(n)
	})
	o.metrics.GetOrCreateGauge(`vigil_notify_oldest_pending_seconds`+lb, func() float64 {
		_, oldest := o.queueStats(name)
		if oldest.IsZero() {
			return 0
		}
		return o.opts.Now().Sub(oldest).Seconds()
	})
}

func (o *Outbox) queueStats(target string) (int, time.Time) {
	o.mu.Lock()
	w := o.targets[target]
	o.mu.Unlock()
	if w == nil {
		return 0, time.Time{}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var oldest time.Time
	for _, it := range w.queue {
		if oldest.IsZero() || it.CreatedAt.Before(oldest) {
			oldest = it.CreatedAt
		}
	}
	return len(w.queue), oldest
}

// Stats is a target's queue for the API.
type Stats struct {
	Target  string    `json:"target"`
	Pending int       `json:"pending"`
	Oldest  time.Time `json:"oldest,omitzero"`
}

// Queues returns every target's queue length and oldest item.
func (o *Outbox) Queues() []Stats {
	o.mu.Lock()
	names := make([]string, 0, len(o.targets))
	for n := range o.targets {
		names = append(names, n)
	}
	o.mu.Unlock()
	sort.Strings(names)
	out := make([]Stats, 0, len(names))
	for _, n := range names {
		c, oldest := o.queueStats(n)
		out = append(out, Stats{Target: n, Pending: c, Oldest: oldest})
	}
	return out
}

// alertList names a message's alerts for the log: alertname, status and
// fingerprint, e.g. "InvoiceQRFailing/firing/3f2a…".
func alertList(m *notify.Message) []string {
	out := make([]string, 0, len(m.Alerts))
	for _, a := range m.Alerts {
		out = append(out, a.Labels["alertname"]+"/"+a.Status(m.Created)+"/"+a.Fingerprint)
	}
	return out
}
