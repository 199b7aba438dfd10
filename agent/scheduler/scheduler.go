// Package scheduler is the one place that owns timing: when each check runs,
// how long it may take, how many run at once, and what happens when a probe
// hangs or panics. Probes only measure; they never sleep or loop themselves.
package scheduler

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-project/vigil/probes"
)

// Job is one check as the scheduler sees it.
type Job struct {
	Name, Type string
	// Interval between runs while the check passes.
	Interval time.Duration
	// Recheck is the interval while the check fails.
	Recheck time.Duration
	Timeout time.Duration
	// Jitter delays each run by a random amount in [0, Jitter).
	Jitter time.Duration
	// Splay bounds the start-up offset: the first run happens within
	// [0, min(Splay, Interval)), at a point derived from the name. Later
	// runs fall on the job's phase, a point of the whole interval derived
	// from the name (see PhaseOffset), whatever the splay.
	Splay time.Duration
	// Fingerprint identifies the job's configuration; Update keeps a running
	// job whose fingerprint is unchanged.
	Fingerprint Fingerprint
	Prober      probes.Prober
}

// Fingerprint is a hash of a job's configuration: 16 bytes inline rather
// than a string of its own for each of thousands of jobs, twice (the
// agent's jobs and the scheduler's runners).
type Fingerprint [16]byte

// Options configures a Scheduler.
type Options struct {
	// MaxConcurrency bounds how many probes run at the same time.
	MaxConcurrency int
	Logger         *slog.Logger
	// OnResult receives every completed run. It is called from the run's
	// own goroutine: sequentially for one job (its runs never overlap),
	// concurrently across jobs.
	OnResult func(job *Job, r probes.Result)
	// Grace is how long a probe may overrun its timeout before it is
	// abandoned and reported as timed out (default 1s).
	Grace time.Duration
	// DiagnoseTimeout is the budget of a failed run's diagnostics, on top of
	// the check's timeout (default 10s, the traceroute bound).
	DiagnoseTimeout time.Duration
	// OnStart and OnStop are called when a job's runner starts and after it
	// has stopped (including its streaming Run, if any), from the goroutine
	// applying an update. The agent registers live collectors here, so the
	// prober scraped is the one running.
	OnStart, OnStop func(job *Job)
	// Override, when set, may answer for a check without running its probe
	// (a drill's simulated failure: the target is not touched); ok=false
	// runs the probe as usual.
	Override func(job *Job) (res probes.Result, ok bool)
	// RestartDelay is the pause before a streaming Run that returned or
	// panicked while its check still runs is started again (default 5s).
	RestartDelay time.Duration
	// Granularity, when set, puts scheduled runs on a grid: they start at
	// the scheduler's epoch plus a whole number of Granularity steps, so
	// the checks due within one step start together on one wake-up of
	// the dispatcher and its threads instead of one each (see Grid). 0
	// starts every run at its exact time.
	Granularity time.Duration
}

// ErrUnknownCheck is returned by RunNow for a name the scheduler does not run.
var ErrUnknownCheck = errors.New("unknown check")

// Scheduler runs jobs on their intervals.
//
// One dispatcher goroutine, the one in Run, owns the timing: it keeps the
// idle checks in a min-heap ordered by their next run, sleeps on a single
// timer until the earliest is due, and starts each due run in a goroutine
// of its own once a concurrency slot is free. An idle check costs a heap
// entry, not a goroutine, and so does a due check waiting for a slot:
// goroutines exist only for runs in flight (and for streaming probers' Run,
// and RunNow's runs waiting for a slot).
type Scheduler struct {
	opts Options
	log  *slog.Logger
	// epoch is when the scheduler was made: each check's runs fall on
	// epoch + PhaseOffset, modulo its interval, once past the first.
	epoch   time.Time
	sem     chan struct{}
	updates chan update
	// now carries RunNow requests to the dispatcher.
	now chan nowRequest
	// ended tells the dispatcher that a run or a stream has returned.
	ended chan ended
	// work hands a probe to an idle worker (see probe).
	work chan probeWork

	mu      sync.Mutex
	runners map[string]*runner // written only by the dispatcher
	// exited is closed once Run has returned.
	exited chan struct{}
}

type update struct {
	jobs []Job
	done chan struct{}
}

// nowRequest asks the dispatcher for a run of r whose result goes to reply.
type nowRequest struct {
	r     *runner
	reply chan probes.Result
}

// ended reports that one of r's goroutines returned: its stream, or a run
// that was due at due, started at start and passed or not.
type ended struct {
	r          *runner
	stream     bool
	due, start time.Time
	success    bool
}

type runner struct {
	job Job
	// abandoned is set while a timed-out probe has not yet returned; no
	// new run starts until it does, so runs of one check never overlap.
	// Only the run in flight touches it.
	abandoned <-chan probes.Result
	// nextRun mirrors next for readers outside the dispatcher (NextRun):
	// Unix nanoseconds, 0 while a run is in flight.
	nextRun atomic.Int64

	// The fields below belong to the dispatcher goroutine.

	// next is when the check runs next; index is its place in the queue,
	// -1 while it is not queued (running or stopped).
	next  time.Time
	index int
	// aligned is set once the first passing run has moved the check onto
	// its phase.
	aligned bool
	// running is set while a run is in flight; stopped once the runner
	// has been told to stop (it is done when live drops to 0).
	running, stopped bool
	// live counts the runner's goroutines: the run in flight and the stream.
	live int
	// asked holds the replies of waiting RunNow calls, one run each, in
	// order. Each reply gets its run's result, or is closed when the runner
	// stops first: a runner has no channel of its own for that, which at
	// thousands of checks was 100 bytes each.
	asked []chan probes.Result
	// cancelRun cancels the run in flight, cancelStream the stream.
	cancelRun, cancelStream context.CancelFunc
}

// queue is a min-heap (container/heap) of the idle runners by next run.
type queue []*runner

func (q queue) Len() int           { return len(q) }
func (q queue) Less(i, j int) bool { return q[i].next.Before(q[j].next) }
func (q queue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}
func (q *queue) Push(x any) {
	r := x.(*runner)
	r.index = len(*q)
	*q = append(*q, r)
}
func (q *queue) Pop() any {
	old := *q
	r := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	r.index = -1
	return r
}

// dispatcher is the state of the goroutine in Run; nothing else touches it.
type dispatcher struct {
	s     *Scheduler
	queue queue
	// stopping counts the runners told to stop that are not done yet.
	stopping int
	// pending is the update being applied: its new jobs start once every
	// runner it stopped is done.
	pending *update
}

// New returns a scheduler; call Run to start it and Update to give it jobs.
func New(opts Options) *Scheduler {
	if opts.MaxConcurrency < 1 {
		opts.MaxConcurrency = 1
	}
	if opts.Grace <= 0 {
		opts.Grace = time.Second
	}
	if opts.DiagnoseTimeout <= 0 {
		opts.DiagnoseTimeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.OnResult == nil {
		opts.OnResult = func(*Job, probes.Result) {}
	}
	if opts.OnStart == nil {
		opts.OnStart = func(*Job) {}
	}
	if opts.OnStop == nil {
		opts.OnStop = func(*Job) {}
	}
	if opts.RestartDelay <= 0 {
		opts.RestartDelay = 5 * time.Second
	}
	return &Scheduler{
		opts:    opts,
		log:     opts.Logger,
		epoch:   time.Now(),
		sem:     make(chan struct{}, opts.MaxConcurrency),
		updates: make(chan update),
		now:     make(chan nowRequest),
		ended:   make(chan ended),
		work:    make(chan probeWork),
		runners: map[string]*runner{},
		exited:  make(chan struct{}),
	}
}

// Run runs the jobs until ctx is done, then stops every job and waits for
// in-flight runs to return (they see ctx cancelled). Its goroutine is the
// dispatcher: it starts due runs, serves Update and RunNow, and hears every
// run and stream return.
func (s *Scheduler) Run(ctx context.Context) {
	defer close(s.exited)
	d := &dispatcher{s: s}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		// Sleep until the earliest idle check is due, then wait for a
		// concurrency slot for it: a due check waits in the queue, not in
		// a goroutine of its own.
		var due <-chan time.Time
		var slot chan<- struct{}
		if len(d.queue) > 0 {
			if wait := time.Until(d.queue[0].next); wait > 0 {
				timer.Reset(wait)
				due = timer.C
			} else {
				slot = s.sem
			}
		}
		// One update at a time: the next waits until this one has applied.
		updates := s.updates
		if d.pending != nil {
			updates = nil
		}
		select {
		case <-ctx.Done():
			d.shutdown(ctx)
			return
		case u := <-updates:
			d.update(ctx, u)
		case req := <-s.now:
			d.runNow(ctx, req)
		case e := <-s.ended:
			d.ended(ctx, e)
		case slot <- struct{}{}:
			d.run(ctx, heap.Pop(&d.queue).(*runner), true)
		case <-due:
			// The earliest check is due: the next round waits for a slot.
		}
	}
}

// Update replaces the set of jobs. Jobs whose name and fingerprint are
// unchanged keep running on their schedule; changed jobs are stopped (after
// their in-flight run) and started afresh. It blocks until Run has applied
// the jobs or ctx ends, so Run must be running.
func (s *Scheduler) Update(ctx context.Context, jobs []Job) error {
	u := update{jobs: jobs, done: make(chan struct{})}
	select {
	case s.updates <- u:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-u.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// update stops the runners u drops or changes and applies u once they are
// done. Other checks keep running meanwhile.
func (d *dispatcher) update(ctx context.Context, u update) {
	want := make(map[string]Job, len(u.jobs))
	for _, j := range u.jobs {
		want[j.Name] = j
	}
	for name, r := range d.s.runners {
		if j, ok := want[name]; ok && j.Fingerprint == r.job.Fingerprint {
			continue
		}
		d.stop(r)
	}
	d.pending = &u
	d.apply(ctx)
}

// apply completes the pending update once every runner it stopped is done:
// the new jobs start (unless ctx ended) and Update returns.
func (d *dispatcher) apply(ctx context.Context) {
	u := d.pending
	if u == nil || d.stopping > 0 {
		return
	}
	d.pending = nil
	next := make(map[string]*runner, len(u.jobs))
	for name, r := range d.s.runners {
		if !r.stopped {
			next[name] = r
		}
	}
	if ctx.Err() == nil {
		for _, j := range u.jobs {
			if _, ok := next[j.Name]; ok {
				continue
			}
			r := &runner{job: j, index: -1}
			next[j.Name] = r
			d.s.opts.OnStart(&r.job)
			d.begin(ctx, r)
		}
	}
	d.s.mu.Lock()
	d.s.runners = next
	d.s.mu.Unlock()
	close(u.done)
}

// begin starts a new runner: its stream, if its prober has one, and its
// first run, SplayOffset from now.
func (d *dispatcher) begin(ctx context.Context, r *runner) {
	if rn, ok := r.job.Prober.(probes.Runner); ok {
		sctx, cancel := context.WithCancel(ctx)
		r.cancelStream = cancel
		r.live++
		s := d.s
		go func() {
			defer cancel()
			s.stream(sctx, &r.job, rn)
			s.ended <- ended{r: r, stream: true}
		}()
	}
	r.next = d.s.onGrid(&r.job, time.Now().Add(SplayOffset(r.job.Name, r.job.Splay, r.job.Interval)))
	r.nextRun.Store(r.next.UnixNano())
	heap.Push(&d.queue, r)
}

// stop tells a runner to stop: it leaves the queue and its run in flight
// and stream see their contexts cancelled. It is done once both returned.
func (d *dispatcher) stop(r *runner) {
	r.stopped = true
	if r.index >= 0 {
		heap.Remove(&d.queue, r.index)
	}
	if r.cancelRun != nil {
		r.cancelRun()
	}
	if r.cancelStream != nil {
		r.cancelStream()
	}
	d.stopping++
	if r.live == 0 {
		d.retire(r)
	}
}

// retire marks a stopped runner done, with nothing of it still running.
func (d *dispatcher) retire(r *runner) {
	for _, reply := range r.asked {
		close(reply) // RunNow sees the check stopped
	}
	r.asked = nil
	d.s.opts.OnStop(&r.job)
	d.stopping--
}

// run starts a run of an idle runner, answering the first waiting RunNow
// if any; held says the dispatcher took a concurrency slot for it (a
// scheduled run), which the run gives back. The run reports its result
// through OnResult from its own goroutine, then tells the dispatcher it
// ended.
func (d *dispatcher) run(ctx context.Context, r *runner, held bool) {
	var reply chan probes.Result
	if len(r.asked) > 0 {
		reply = r.asked[0]
		r.asked[0] = nil
		r.asked = r.asked[1:]
	}
	due := r.next
	if !held {
		due = time.Now() // RunNow's
	}
	rctx, cancel := context.WithCancel(ctx)
	r.running, r.cancelRun = true, cancel
	r.nextRun.Store(0)
	r.live++
	s := d.s
	go func() {
		defer cancel()
		start := time.Now()
		res, ok := s.execute(rctx, ctx.Done(), r, held)
		switch {
		case ok:
			s.opts.OnResult(&r.job, res)
			if reply != nil {
				reply <- res
			}
		case reply != nil:
			close(reply) // the check stopped under the run
		}
		s.ended <- ended{r: r, due: due, start: start, success: res.Success}
	}()
}

// ended handles a run or stream that returned. A stopped runner is done
// once nothing of it runs; a running one runs again at once if RunNow
// asked meanwhile, or else is queued for start + NextDelay (at once if
// that time has passed: a run never starts before the previous returned).
// After the first passing run, the next waits on until it falls on the
// check's phase, so that checks started together, within a splay shorter
// than their interval, spread over the whole interval from then on.
func (d *dispatcher) ended(ctx context.Context, e ended) {
	r := e.r
	r.live--
	if !e.stream {
		r.running, r.cancelRun = false, nil
	}
	if r.stopped {
		if r.live == 0 {
			d.retire(r)
			d.apply(ctx)
		}
		return
	}
	if e.stream {
		return // its context ended: Run is shutting down and stops r next
	}
	if len(r.asked) > 0 {
		d.run(ctx, r, false)
		return
	}
	delay := NextDelay(r.job, e.success, rand.Float64())
	if e.success && !r.aligned {
		r.aligned = true
		phase := d.s.epoch.Add(PhaseOffset(r.job.Name, r.job.Interval))
		delay += toPhase(phase, e.due, r.job.Interval)
	}
	// On a grid the next run counts from the step this one was due at,
	// not from when it got its slot within the step: counted from the
	// start, every run would slip to the following step.
	from := e.start
	if step := d.s.step(&r.job); step > 0 && e.start.Sub(e.due) < step {
		from = e.due
	}
	r.next = d.s.onGrid(&r.job, from.Add(delay))
	r.nextRun.Store(r.next.UnixNano())
	heap.Push(&d.queue, r)
}

// runNow queues a RunNow request: the run starts at once, or as soon as
// the run in flight returns. A stopped runner ignores it; RunNow sees it
// done.
func (d *dispatcher) runNow(ctx context.Context, req nowRequest) {
	r := req.r
	if r.stopped {
		close(req.reply)
		return
	}
	r.asked = append(r.asked, req.reply)
	if r.running {
		return
	}
	heap.Remove(&d.queue, r.index)
	d.run(ctx, r, false)
}

// shutdown stops every runner and waits, still hearing their runs and
// streams return, until all are done; an update being applied completes
// without starting its new jobs.
func (d *dispatcher) shutdown(ctx context.Context) {
	for _, r := range d.s.runners {
		if !r.stopped {
			d.stop(r)
		}
	}
	if d.pending == nil {
		d.pending = &update{done: make(chan struct{})}
	}
	d.apply(ctx)
	for d.pending != nil {
		d.ended(ctx, <-d.s.ended)
	}
}

// RunNow runs a check immediately (after its in-flight run, if any) and
// returns the result. The check's schedule restarts from this run.
func (s *Scheduler) RunNow(ctx context.Context, name string) (probes.Result, error) {
	s.mu.Lock()
	r, ok := s.runners[name]
	s.mu.Unlock()
	if !ok {
		return probes.Result{}, fmt.Errorf("%w %q", ErrUnknownCheck, name)
	}
	reply := make(chan probes.Result, 1)
	select {
	case s.now <- nowRequest{r: r, reply: reply}:
	case <-s.exited:
		return probes.Result{}, fmt.Errorf("check %q was stopped", name)
	case <-ctx.Done():
		return probes.Result{}, ctx.Err()
	}
	select {
	case res, ok := <-reply:
		if !ok {
			return probes.Result{}, fmt.Errorf("check %q was stopped", name)
		}
		return res, nil
	case <-ctx.Done():
		return probes.Result{}, ctx.Err()
	}
}

// NextRun is when the named check's next run is due: zero while a run of
// it is in flight (the next is set when it ends). ok is false for a name
// the scheduler does not run. A due run may wait a little longer for a
// concurrency slot.
func (s *Scheduler) NextRun(name string) (next time.Time, ok bool) {
	s.mu.Lock()
	r, ok := s.runners[name]
	s.mu.Unlock()
	if !ok {
		return time.Time{}, false
	}
	if ns := r.nextRun.Load(); ns != 0 {
		next = time.Unix(0, ns)
	}
	return next, true
}

// RunOnce runs the given jobs once, concurrently within the concurrency
// bound, and returns their results in job order (used by `vigil once`).
// Each job gets a slot before a goroutine, so the jobs waiting cost none.
func (s *Scheduler) RunOnce(ctx context.Context, jobs []Job) []probes.Result {
	out := make([]probes.Result, len(jobs))
	// Cancelled once every job has run, so the probe workers exit.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	for i := range jobs {
		select {
		case s.sem <- struct{}{}:
		case <-ctx.Done():
			out[i] = probes.Failf(probes.ReasonTimeout, "not run: %v", ctx.Err())
			continue
		}
		wg.Go(func() {
			r := &runner{job: jobs[i]}
			res, ok := s.execute(ctx, ctx.Done(), r, true)
			if !ok {
				res = probes.Failf(probes.ReasonTimeout, "not run: %v", ctx.Err())
			}
			out[i] = res
		})
	}
	wg.Wait()
	return out
}

// stream keeps a streaming prober's Run going for the life of its job: a
// panic is logged with its stack and, like an unexpected return, followed
// by a restart after RestartDelay. The check's Probe keeps reporting
// meanwhile.
func (s *Scheduler) stream(ctx context.Context, job *Job, rn probes.Runner) {
	log := s.log.With("check", job.Name)
	for {
		func() {
			defer func() {
				if p := recover(); p != nil {
					log.Error("streaming check panicked", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				}
			}()
			rn.Run(ctx, log)
		}()
		if ctx.Err() != nil {
			return
		}
		log.Warn("streaming check stopped unexpectedly; restarting", "after", s.opts.RestartDelay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.opts.RestartDelay):
		}
	}
}

// NextDelay is the time from one run's start to the next: the interval, or
// the recheck interval while failing, plus jitter scaled by u in [0, 1).
func NextDelay(j Job, success bool, u float64) time.Duration {
	d := j.Interval
	if !success && j.Recheck > 0 && j.Recheck < d {
		d = j.Recheck
	}
	return d + time.Duration(u*float64(j.Jitter))
}

// SplayOffset is the delay before a job's first run: a point in
// [0, min(splay, interval)) derived from the name, so restarts are stable
// and checks are spread rather than fired together.
func SplayOffset(name string, splay, interval time.Duration) time.Duration {
	window := min(splay, interval)
	if window <= 0 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(name))
	return time.Duration(h.Sum64() % uint64(window))
}

// PhaseOffset is where in its interval a job's runs fall, counted from when
// the scheduler was made, once its first passing run is done: a point in
// [0, interval) derived from the name, the same as its SplayOffset when the
// splay covers the interval. A splay shorter than the interval brings
// results soon after a start; the phase then spreads the checks over the
// whole interval, so that ten thousand checks started within ten seconds
// do not keep running within the same ten seconds of every interval.
func PhaseOffset(name string, interval time.Duration) time.Duration {
	return SplayOffset(name, interval, interval)
}

// Grid is the step a job's scheduled runs are aligned to under the given
// granularity: the granularity itself when the job's interval (and
// recheck interval, if set) are whole multiples of it and the interval is
// at least ten steps, so that aligning moves no run later than one step
// and an interval stays an interval; 0 (exact times) otherwise.
func Grid(j Job, granularity time.Duration) time.Duration {
	g := granularity
	if g <= 0 || j.Interval < 10*g || j.Interval%g != 0 || j.Recheck%g != 0 {
		return 0
	}
	return g
}

func (s *Scheduler) step(j *Job) time.Duration { return Grid(*j, s.opts.Granularity) }

// onGrid is t moved up to the job's next grid point (t when it has none).
func (s *Scheduler) onGrid(j *Job, t time.Time) time.Time {
	step := s.step(j)
	if step <= 0 {
		return t
	}
	d := t.Sub(s.epoch)
	if r := d % step; r > 0 {
		d += step - r
	} else if r < 0 {
		d -= r
	}
	return s.epoch.Add(d)
}

// toPhase is how much later than due+interval the next run must start to
// fall on phase (modulo interval): in [0, interval), so the interval
// between two runs never shrinks; 0 when due already is on phase.
func toPhase(phase, due time.Time, interval time.Duration) time.Duration {
	if interval <= 0 {
		return 0
	}
	d := phase.Sub(due) % interval
	if d < 0 {
		d += interval
	}
	return d
}

// execute runs one probe under the concurrency bound and the job's timeout.
// held says the caller already took the probe's concurrency slot; execute
// gives it back either way. It returns false when ctx ended before a
// result worth reporting. stop ends the probe worker the run may start
// (see probe): the scheduler's life, longer than the run's ctx.
func (s *Scheduler) execute(ctx context.Context, stop <-chan struct{}, r *runner, held bool) (probes.Result, bool) {
	job := &r.job
	// An abandoned probe gives its slot back at once, so probes that ignore
	// their deadline cannot starve the other checks.
	release := sync.OnceFunc(func() { <-s.sem })
	if held {
		defer release() // for the runs that end without probing
	}
	if s.opts.Override != nil {
		if res, ok := s.opts.Override(job); ok {
			return s.finish(job, time.Now(), res), ctx.Err() == nil
		}
	}
	if r.abandoned != nil {
		select {
		case <-r.abandoned:
			r.abandoned = nil
		default:
			return s.finish(job, time.Now(), probes.Failf(probes.ReasonTimeout,
				"previous run has not returned %s after its timeout; not starting another", job.Timeout)), true
		}
	}
	if !held {
		select {
		case s.sem <- struct{}{}:
		case <-ctx.Done():
			return probes.Result{}, false
		}
	}
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, job.Timeout)
	defer cancel()
	ch := make(chan probes.Result, 1)
	s.probe(probeWork{ctx: rctx, stop: stop, job: job, result: ch, release: release})

	var res probes.Result
	select {
	case res = <-ch:
	case <-rctx.Done():
		select {
		case res = <-ch:
		case <-time.After(s.opts.Grace):
			release()
			r.abandoned = ch
			s.log.Warn("probe ignored its deadline; abandoned until it returns", "check", job.Name, "type", job.Type, "timeout", job.Timeout)
			res = probes.Failf(probes.ReasonTimeout, "check did not return within its timeout of %s", job.Timeout)
		}
	}
	if ctx.Err() != nil {
		return probes.Result{}, false // shutting down or job replaced: not a check failure
	}
	if !res.Success && errors.Is(rctx.Err(), context.DeadlineExceeded) && res.Reason != probes.ReasonPanic {
		res.Reason = probes.ReasonTimeout
	}
	res = s.finish(job, start, res)
	if d, ok := job.Prober.(probes.Diagnoser); ok && !res.Success && res.Reason != probes.ReasonPanic && r.abandoned == nil {
		s.diagnose(ctx, job, d, &res)
	}
	return res, ctx.Err() == nil
}

// probeWork is one probe for a worker: its result goes to result, then
// release gives its concurrency slot back.
type probeWork struct {
	ctx context.Context
	// stop ends the worker that w starts (the scheduler stops).
	stop    <-chan struct{}
	job     *Job
	result  chan<- probes.Result
	release func()
}

// workerIdle is how long a probe worker waits for the next probe before it
// exits: at thousands of checks workers never wait that long; an agent of
// hourly checks keeps none.
const workerIdle = time.Second

// probe hands w to an idle worker, or starts one. A worker outlives its
// probe so that the next one runs on a stack the network code has already
// grown: a goroutine per probe grew (copied) its stack on every run, ~8%
// of the agent's CPU at thousands of http checks. Workers are at most as
// many as probes in flight (the concurrency bound) plus abandoned ones; a
// probe that ignores its deadline keeps its worker until it returns, as it
// kept its goroutine before.
func (s *Scheduler) probe(w probeWork) {
	select {
	case s.work <- w:
	default:
		go s.worker(w)
	}
}

// worker runs w, then the probes handed to it, until it has waited
// workerIdle for one or w.stop (the scheduler stops).
func (s *Scheduler) worker(w probeWork) {
	done := w.stop
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		func() {
			defer w.release()
			w.result <- s.safeProbe(w.ctx, w.job)
		}()
		idle.Reset(workerIdle)
		select {
		case w = <-s.work:
		case <-idle.C:
			return
		case <-done:
			return
		}
	}
}

// diagnose runs a failed check's diagnostics under the concurrency bound
// and their own time budget, and merges what they found into res.
func (s *Scheduler) diagnose(ctx context.Context, job *Job, d probes.Diagnoser, res *probes.Result) {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return
	}
	dctx, cancel := context.WithTimeout(ctx, s.opts.DiagnoseTimeout)
	defer cancel()
	ch := make(chan map[string]any, 1)
	failed := *res
	release := sync.OnceFunc(func() { <-s.sem })
	go func() {
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("diagnostics panicked", "check", job.Name, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				ch <- nil
			}
			release()
		}()
		ch <- d.Diagnose(dctx, s.jobLogger(job), failed)
	}()
	var found map[string]any
	select {
	case found = <-ch:
	case <-time.After(s.opts.DiagnoseTimeout + s.opts.Grace):
		release()
		s.log.Warn("diagnostics overran their budget; dropped", "check", job.Name, "budget", s.opts.DiagnoseTimeout)
		return
	}
	if len(found) == 0 {
		return
	}
	merged := make(map[string]any, len(res.Diagnostics)+len(found))
	for k, v := range res.Diagnostics {
		merged[k] = v
	}
	for k, v := range found {
		merged[k] = v
	}
	res.Diagnostics = merged
}

// finish stamps a result and keeps its reason inside the vocabulary.
func (s *Scheduler) finish(job *Job, start time.Time, res probes.Result) probes.Result {
	res.Start = start
	res.Duration = time.Since(start)
	switch {
	case res.Success:
		res.Reason = probes.ReasonNone
	case res.Reason == probes.ReasonNone:
		res.Reason = probes.ReasonError
	case !res.Reason.Known():
		s.log.Error("probe returned a reason outside the vocabulary", "check", job.Name, "reason", string(res.Reason))
		res.Reason = probes.ReasonError
	}
	return res
}

// safeProbe turns a panic inside a probe into a failed result.
func (s *Scheduler) safeProbe(ctx context.Context, job *Job) (res probes.Result) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("probe panicked", "check", job.Name, "type", job.Type, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			res = probes.Failf(probes.ReasonPanic, "probe panicked: %v", p)
		}
	}()
	return job.Prober.Probe(ctx, s.jobLogger(job))
}
