// Package scheduler is the one place that owns timing: when each check runs,
// how long it may take, how many run at once, and what happens when a probe
// hangs or panics. Probes only measure; they never sleep or loop themselves.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"sync"
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
	// [0, min(Splay, Interval)), at a point derived from the name.
	Splay time.Duration
	// Fingerprint identifies the job's configuration; Update keeps a running
	// job whose fingerprint is unchanged.
	Fingerprint string
	Prober      probes.Prober
}

// Options configures a Scheduler.
type Options struct {
	// MaxConcurrency bounds how many probes run at the same time.
	MaxConcurrency int
	Logger         *slog.Logger
	// OnResult receives every completed run. It is called from the job's own
	// goroutine: sequentially for one job, concurrently across jobs.
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
}

// ErrUnknownCheck is returned by RunNow for a name the scheduler does not run.
var ErrUnknownCheck = errors.New("unknown check")

// Scheduler runs jobs on their intervals.
type Scheduler struct {
	opts    Options
	log     *slog.Logger
	sem     chan struct{}
	updates chan update

	mu      sync.Mutex
	runners map[string]*runner
}

type update struct {
	jobs []Job
	done chan struct{}
}

type runner struct {
	job    Job
	cancel context.CancelFunc
	done   chan struct{}
	now    chan chan probes.Result
	// abandoned is set while a timed-out probe has not yet returned; no
	// new run starts until it does, so runs of one check never overlap.
	abandoned <-chan probes.Result
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
		sem:     make(chan struct{}, opts.MaxConcurrency),
		updates: make(chan update),
		runners: map[string]*runner{},
	}
}

// Run runs the jobs until ctx is done, then stops every job and waits for
// in-flight runs to return (they see ctx cancelled).
func (s *Scheduler) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			s.apply(ctx, nil)
			return
		case u := <-s.updates:
			s.apply(ctx, u.jobs)
			close(u.done)
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

func (s *Scheduler) apply(ctx context.Context, jobs []Job) {
	want := make(map[string]Job, len(jobs))
	for _, j := range jobs {
		want[j.Name] = j
	}
	s.mu.Lock()
	current := s.runners
	s.mu.Unlock()

	next := make(map[string]*runner, len(jobs))
	var stopping []*runner
	for name, r := range current {
		if j, ok := want[name]; ok && j.Fingerprint == r.job.Fingerprint && ctx.Err() == nil {
			next[name] = r
			continue
		}
		r.cancel()
		stopping = append(stopping, r)
	}
	for _, r := range stopping {
		<-r.done
		s.opts.OnStop(&r.job)
	}
	if ctx.Err() == nil {
		for _, j := range jobs {
			if _, ok := next[j.Name]; ok {
				continue
			}
			rctx, cancel := context.WithCancel(ctx)
			r := &runner{job: j, cancel: cancel, done: make(chan struct{}), now: make(chan chan probes.Result)}
			next[j.Name] = r
			s.opts.OnStart(&r.job)
			go s.loop(rctx, r)
		}
	}
	s.mu.Lock()
	s.runners = next
	s.mu.Unlock()
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
	case r.now <- reply:
	case <-r.done:
		return probes.Result{}, fmt.Errorf("check %q was stopped", name)
	case <-ctx.Done():
		return probes.Result{}, ctx.Err()
	}
	select {
	case res := <-reply:
		return res, nil
	case <-r.done:
		return probes.Result{}, fmt.Errorf("check %q was stopped", name)
	case <-ctx.Done():
		return probes.Result{}, ctx.Err()
	}
}

// RunOnce runs the given jobs once, concurrently within the concurrency
// bound, and returns their results in job order (used by `vigil once`).
func (s *Scheduler) RunOnce(ctx context.Context, jobs []Job) []probes.Result {
	out := make([]probes.Result, len(jobs))
	var wg sync.WaitGroup
	for i := range jobs {
		wg.Go(func() {
			r := &runner{job: jobs[i]}
			res, ok := s.execute(ctx, r)
			if !ok {
				res = probes.Failf(probes.ReasonTimeout, "not run: %v", ctx.Err())
			}
			out[i] = res
		})
	}
	wg.Wait()
	return out
}

func (s *Scheduler) loop(ctx context.Context, r *runner) {
	defer close(r.done)
	if rn, ok := r.job.Prober.(probes.Runner); ok {
		var wg sync.WaitGroup
		wg.Go(func() { s.stream(ctx, &r.job, rn) })
		defer wg.Wait()
	}
	timer := time.NewTimer(SplayOffset(r.job.Name, r.job.Splay, r.job.Interval))
	defer timer.Stop()
	for {
		var reply chan probes.Result
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case reply = <-r.now:
		}
		start := time.Now()
		res, ok := s.execute(ctx, r)
		if !ok {
			return
		}
		s.opts.OnResult(&r.job, res)
		if reply != nil {
			reply <- res
		}
		timer.Reset(time.Until(start.Add(NextDelay(r.job, res.Success, rand.Float64()))))
	}
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

// execute runs one probe under the concurrency bound and the job's timeout.
// It returns false when ctx ended before a result worth reporting.
func (s *Scheduler) execute(ctx context.Context, r *runner) (probes.Result, bool) {
	job := &r.job
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
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return probes.Result{}, false
	}
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, job.Timeout)
	defer cancel()
	ch := make(chan probes.Result, 1)
	// An abandoned probe gives its slot back at once, so probes that ignore
	// their deadline cannot starve the other checks.
	release := sync.OnceFunc(func() { <-s.sem })
	go func() {
		defer release()
		ch <- s.safeProbe(rctx, job)
	}()

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
		ch <- d.Diagnose(dctx, s.log.With("check", job.Name, "type", job.Type), failed)
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
	return job.Prober.Probe(ctx, s.log.With("check", job.Name, "type", job.Type))
}
