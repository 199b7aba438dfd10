package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vigil-project/vigil/probes"
)

// idleJobs returns n hourly jobs whose first run, SplayOffset into an hour
// splay, is at least a minute away: after Update they all sit idle.
func idleJobs(n int, p probes.Prober) []Job {
	jobs := make([]Job, 0, n)
	for i := 0; len(jobs) < n; i++ {
		name := fmt.Sprintf("idle-%d", i)
		if SplayOffset(name, time.Hour, time.Hour) < time.Minute {
			continue
		}
		jobs = append(jobs, Job{Name: name, Interval: time.Hour, Splay: time.Hour, Timeout: time.Second, Fingerprint: Fingerprint{49}, Prober: p})
	}
	return jobs
}

// eventLog records what happened, in order, across goroutines.
type eventLog struct {
	mu     sync.Mutex
	events []string
}

func (l *eventLog) add(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, fmt.Sprintf(format, args...))
}

func (l *eventLog) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.events...)
}

// TestIdleJobsCostNoGoroutine: a thousand checks with nothing due leave
// the goroutine count where it was, give or take the dispatcher.
func TestIdleJobsCostNoGoroutine(t *testing.T) {
	var probed atomic.Int32
	p := probes.ProberFunc(func(context.Context, *slog.Logger) probes.Result {
		probed.Add(1)
		return probes.Result{Success: true}
	})
	jobs := idleJobs(1000, p)
	before := runtime.NumGoroutine()
	s := start(t, Options{MaxConcurrency: 4}, jobs...)
	after := runtime.NumGoroutine()
	if after-before > 10 || after >= 100 {
		t.Fatalf("%d goroutines before 1,000 idle jobs, %d after; want no goroutine per idle job", before, after)
	}
	if n := probed.Load(); n != 0 {
		t.Fatalf("%d runs before any was due", n)
	}
	// The checks are live all the same.
	if res, err := s.RunNow(context.Background(), jobs[7].Name); err != nil || !res.Success || probed.Load() != 1 {
		t.Fatalf("RunNow = %+v, %v", res, err)
	}
	waitFor(t, 2*time.Second, "the goroutine count to settle after RunNow", func() bool {
		return runtime.NumGoroutine() <= after
	})
}

// TestRunNowWhileRunning: RunNow on a check whose run is in flight waits
// for it, then gets a run of its own; the two never overlap.
func TestRunNowWhileRunning(t *testing.T) {
	var conc concurrency
	var calls atomic.Int32
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	p := probes.ProberFunc(func(context.Context, *slog.Logger) probes.Result {
		defer conc.enter()()
		if calls.Add(1) == 1 {
			entered <- struct{}{}
			<-release
		}
		return probes.Result{Success: true}
	})
	c := newCollector()
	s := start(t, Options{MaxConcurrency: 4, OnResult: c.onResult},
		Job{Name: "busy", Interval: time.Hour, Timeout: 10 * time.Second, Prober: p})
	<-entered // the first run, due at once, is in flight

	type answer struct {
		res probes.Result
		err error
	}
	got := make(chan answer, 1)
	go func() {
		res, err := s.RunNow(context.Background(), "busy")
		got <- answer{res, err}
	}()
	select {
	case a := <-got:
		t.Fatalf("RunNow returned %+v, %v while the previous run was in flight", a.res, a.err)
	case <-time.After(50 * time.Millisecond):
	}
	released := time.Now()
	close(release)
	a := <-got
	if a.err != nil || !a.res.Success {
		t.Fatalf("RunNow = %+v, %v", a.res, a.err)
	}
	if a.res.Start.Before(released) || calls.Load() != 2 {
		t.Errorf("RunNow answered with a run started at %s (released at %s), %d probe calls; want a run of its own after the one in flight",
			a.res.Start.Format(time.StampMicro), released.Format(time.StampMicro), calls.Load())
	}
	if runs := c.get("busy"); len(runs) != 2 {
		t.Errorf("%d results reported, want 2 (the scheduled run and RunNow's)", len(runs))
	}
	if m := conc.max.Load(); m != 1 {
		t.Errorf("%d runs of one check overlapped", m)
	}
}

// TestUpdateReplacesJobMidRun: a changed job whose run is in flight sees
// its context cancelled; Update returns once that run has returned, after
// OnStop of the old job and OnStart of the new, and the other checks keep
// running meanwhile.
func TestUpdateReplacesJobMidRun(t *testing.T) {
	var log eventLog
	entered := make(chan struct{}, 1)
	slow := probes.ProberFunc(func(ctx context.Context, _ *slog.Logger) probes.Result {
		entered <- struct{}{}
		<-ctx.Done()
		time.Sleep(150 * time.Millisecond) // winds down slowly
		log.add("old run returned")
		return probes.Failf(probes.ReasonError, "cancelled")
	})
	c := newCollector()
	opts := Options{MaxConcurrency: 4, OnResult: c.onResult,
		OnStart: func(j *Job) { log.add("start %s/%s", j.Name, j.Fingerprint[:1]) },
		OnStop:  func(j *Job) { log.add("stop %s/%s", j.Name, j.Fingerprint[:1]) }}
	tick := Job{Name: "tick", Interval: 10 * time.Millisecond, Timeout: time.Second, Fingerprint: Fingerprint{49}, Prober: pass}
	s := start(t, opts, Job{Name: "a", Interval: time.Hour, Timeout: 10 * time.Second, Fingerprint: Fingerprint{49}, Prober: slow}, tick)
	<-entered

	ticks := len(c.get("tick"))
	if err := s.Update(context.Background(), []Job{
		{Name: "a", Interval: time.Hour, Timeout: time.Second, Fingerprint: Fingerprint{50}, Prober: pass}, tick,
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{"start a/1", "start tick/1", "old run returned", "stop a/1", "start a/2"}
	if got := log.get(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events %q, want %q", got, want)
	}
	if n := len(c.get("tick")) - ticks; n < 3 {
		t.Errorf("the other check ran %d times while the update waited 150ms for the old run, want it to keep its 10ms schedule", n)
	}
	waitFor(t, 2*time.Second, "the new job's first run", func() bool { return len(c.get("a")) == 1 })
	if r := c.get("a")[0]; !r.Success {
		t.Errorf("the replaced run was reported, or the new job failed: %+v", r)
	}
}

// TestDueRunWaitsForOverrun: a run that comes due while the previous one
// still runs starts right after it returns, never alongside it.
func TestDueRunWaitsForOverrun(t *testing.T) {
	var conc concurrency
	p := probes.ProberFunc(func(context.Context, *slog.Logger) probes.Result {
		defer conc.enter()()
		time.Sleep(100 * time.Millisecond) // twice the interval
		return probes.Result{Success: true}
	})
	c := newCollector()
	start(t, Options{MaxConcurrency: 4, OnResult: c.onResult},
		Job{Name: "slow", Interval: 50 * time.Millisecond, Timeout: time.Second, Prober: p})
	waitFor(t, 5*time.Second, "5 runs", func() bool { return len(c.get("slow")) >= 5 })
	runs := c.get("slow")
	var waited time.Duration
	for i := 1; i < len(runs); i++ {
		prevEnd := runs[i-1].Start.Add(runs[i-1].Duration)
		gap := runs[i].Start.Sub(prevEnd)
		if gap < 0 {
			t.Errorf("run %d started %s before the previous one returned", i, -gap)
		}
		waited += gap
	}
	// Each run was due 50ms before the previous one returned: it starts at
	// once, not an interval later.
	if avg := waited / time.Duration(len(runs)-1); avg > 25*time.Millisecond {
		t.Errorf("runs started on average %s after the previous one returned, want right after", avg)
	}
	if m := conc.max.Load(); m != 1 {
		t.Errorf("%d runs of one check overlapped", m)
	}
}

// BenchmarkIdleJobs measures what an idle check costs: heap and stack in
// use before and after an Update with 10,000 jobs whose first run is far
// away.
func BenchmarkIdleJobs(b *testing.B) {
	const n = 10000
	nop := probes.ProberFunc(func(context.Context, *slog.Logger) probes.Result { return probes.Result{Success: true} })
	jobs := idleJobs(n, nop)
	inUse := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse + m.StackInuse
	}
	var bytes, goroutines float64
	iters := 0
	for b.Loop() {
		s := New(Options{MaxConcurrency: 4})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { s.Run(ctx); close(done) }()
		g0, m0 := runtime.NumGoroutine(), inUse()
		if err := s.Update(ctx, jobs); err != nil {
			b.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // let whatever Update started settle
		g1, m1 := runtime.NumGoroutine(), inUse()
		bytes += (float64(m1) - float64(m0)) / n
		goroutines += float64(g1-g0) / n
		iters++
		cancel()
		<-done
	}
	b.ReportMetric(bytes/float64(iters), "B/idle-job")
	b.ReportMetric(goroutines/float64(iters), "goroutines/idle-job")
}

// TestProbeWorkersReused: runs in a row go to the worker the first one
// started, not to a new goroutine each (whose stack the network code would
// grow again), and the worker goes away once runs stop coming.
func TestProbeWorkersReused(t *testing.T) {
	var mu sync.Mutex
	goroutines := map[string]bool{}
	p := probes.ProberFunc(func(context.Context, *slog.Logger) probes.Result {
		buf := make([]byte, 64)
		id, _, _ := strings.Cut(strings.TrimPrefix(string(buf[:runtime.Stack(buf, false)]), "goroutine "), " ")
		mu.Lock()
		goroutines[id] = true
		mu.Unlock()
		return probes.Result{Success: true}
	})
	jobs := idleJobs(1, p)
	s := start(t, Options{MaxConcurrency: 4}, jobs...)
	before := runtime.NumGoroutine()
	for range 50 {
		if res, err := s.RunNow(context.Background(), jobs[0].Name); err != nil || !res.Success {
			t.Fatalf("RunNow = %+v, %v", res, err)
		}
	}
	mu.Lock()
	n := len(goroutines)
	mu.Unlock()
	if n > 2 {
		t.Errorf("50 runs in a row probed on %d goroutines; want the same worker", n)
	}
	waitFor(t, 3*workerIdle, "the idle worker to exit", func() bool { return runtime.NumGoroutine() <= before })
}

// TestRunNowOfStoppedCheck: RunNow returns "stopped" rather than waiting
// for ever when its check stops first: removed while RunNow waits behind
// a run in flight, removed under RunNow's own run, the scheduler shut down,
// or RunNow called after it has.
func TestRunNowOfStoppedCheck(t *testing.T) {
	tests := []struct {
		name string
		// busy: a scheduled run is in flight when RunNow is called.
		busy bool
		// stop ends the check: an update without it, or Run's end.
		stop func(ctx context.Context, s *Scheduler, cancel func())
		// after: RunNow is called after stop.
		after bool
	}{
		{"removed while RunNow waits for the run in flight", true,
			func(ctx context.Context, s *Scheduler, _ func()) { s.Update(ctx, nil) }, false},
		{"removed under RunNow's own run", false,
			func(ctx context.Context, s *Scheduler, _ func()) { s.Update(ctx, nil) }, false},
		{"scheduler shut down", true, func(_ context.Context, _ *Scheduler, cancel func()) { cancel() }, false},
		// The scheduler has no checks left then: "unknown check".
		{"called after the scheduler shut down", false, func(_ context.Context, _ *Scheduler, cancel func()) { cancel() }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				// The probe runs until its run is cancelled.
				p := probes.ProberFunc(func(ctx context.Context, _ *slog.Logger) probes.Result {
					<-ctx.Done()
					return probes.Failf(probes.ReasonTimeout, "cancelled")
				})
				splay := time.Hour
				if tt.busy {
					splay = 0 // due at once
				}
				s := New(Options{MaxConcurrency: 2})
				ctx, cancel := context.WithCancel(context.Background())
				exited := make(chan struct{})
				go func() { s.Run(ctx); close(exited) }()
				job := Job{Name: "c", Interval: time.Hour, Splay: splay, Timeout: time.Hour, Prober: p}
				if err := s.Update(ctx, []Job{job}); err != nil {
					t.Fatal(err)
				}
				synctest.Wait()
				var err error
				got := make(chan struct{})
				if tt.after {
					tt.stop(context.Background(), s, cancel)
					<-exited
					_, err = s.RunNow(context.Background(), "c")
				} else {
					go func() {
						_, err = s.RunNow(context.Background(), "c")
						close(got)
					}()
					synctest.Wait() // RunNow waits for its run
					tt.stop(context.Background(), s, cancel)
					<-got
				}
				if err == nil || !strings.Contains(err.Error(), "stopped") && !errors.Is(err, ErrUnknownCheck) {
					t.Errorf("RunNow = %v, want the check stopped", err)
				}
				cancel()
				<-exited
			})
		})
	}
}
