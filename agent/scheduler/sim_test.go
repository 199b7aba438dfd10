package scheduler_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/vigil-project/vigil/agent/scheduler"
	"github.com/vigil-project/vigil/probes"
)

// The tests and benchmarks in this package run many checks under the fake
// clock of a testing/synctest bubble: time moves only when every goroutine
// of the bubble waits, so a run starts exactly when the scheduler starts
// it and an hour of schedule takes seconds.

// simJobs returns n checks at interval with the given start-up splay; each
// run calls hook (when not nil), takes probe of fake time (0: none) and
// passes.
func simJobs(n int, interval, splay, probe time.Duration, hook func()) []scheduler.Job {
	p := probes.ProberFunc(func(context.Context, *slog.Logger) probes.Result {
		if hook != nil {
			hook()
		}
		if probe > 0 {
			time.Sleep(probe)
		}
		return probes.Result{Success: true}
	})
	jobs := make([]scheduler.Job, n)
	for i := range jobs {
		jobs[i] = scheduler.Job{Name: fmt.Sprintf("check-%05d", i), Type: "fake", Interval: interval,
			Timeout: 5 * time.Second, Splay: splay, Fingerprint: scheduler.Fingerprint{49}, Prober: p}
	}
	return jobs
}

// runLog records when each check's runs started, as offsets from t0.
type runLog struct {
	t0     time.Time
	mu     sync.Mutex
	starts map[string][]time.Duration
}

func (l *runLog) onResult(j *scheduler.Job, r probes.Result) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.starts[j.Name] = append(l.starts[j.Name], r.Start.Sub(l.t0))
}

func (l *runLog) get(name string) []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Duration(nil), l.starts[name]...)
}

// sim is a scheduler running in the calling synctest bubble.
type sim struct {
	s    *scheduler.Scheduler
	ctx  context.Context
	log  *runLog
	stop func()
}

// startSim starts a scheduler with opts (OnResult is set to the run log)
// and gives it jobs; t0 is the moment of that first Update. Call stop
// before the bubble ends.
func startSim(opts scheduler.Options, jobs []scheduler.Job) (*sim, error) {
	l := &runLog{starts: map[string][]time.Duration{}}
	opts.OnResult = l.onResult
	s := scheduler.New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	stop := func() { cancel(); <-done }
	l.t0 = time.Now()
	if err := s.Update(ctx, jobs); err != nil {
		stop()
		return nil, err
	}
	return &sim{s: s, ctx: ctx, log: l, stop: stop}, nil
}
