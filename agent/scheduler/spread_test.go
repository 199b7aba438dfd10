package scheduler_test

import (
	"context"
	"log/slog"
	"runtime"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vigil-project/vigil/agent/scheduler"
	"github.com/vigil-project/vigil/probes"
)

// TestRunsSettleOnPhase: a check's first run falls within the splay, and
// from its first passing run on its runs fall on its phase, one interval
// apart, so checks started within a short splay spread over the whole
// interval; runs never come closer than the interval, and a failing check
// is rechecked on time rather than moved to its phase.
func TestRunsSettleOnPhase(t *testing.T) {
	const interval = time.Minute
	tests := []struct {
		name  string
		splay time.Duration
		fail  bool // the first run fails, the rest pass
	}{
		{"splay shorter than the interval", 10 * time.Second, false},
		{"no splay", 0, false},
		{"splay of the whole interval", interval, false},
		{"first run fails", 10 * time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				jobs := simJobs(200, interval, tt.splay, 0, nil)
				if tt.fail {
					for i := range jobs {
						var calls atomic.Int32
						jobs[i].Recheck = 20 * time.Second
						jobs[i].Prober = probes.ProberFunc(func(context.Context, *slog.Logger) probes.Result {
							if calls.Add(1) == 1 {
								return probes.Failf(probes.ReasonError, "down")
							}
							return probes.Result{Success: true}
						})
					}
				}
				sm, err := startSim(scheduler.Options{MaxConcurrency: 4}, jobs)
				if err != nil {
					t.Fatal(err)
				}
				time.Sleep(5*interval + time.Second)
				sm.stop()
				for _, j := range jobs {
					starts := sm.log.get(j.Name)
					if len(starts) < 4 {
						t.Fatalf("%s ran %d times in five intervals: %v", j.Name, len(starts), starts)
					}
					if want := scheduler.SplayOffset(j.Name, tt.splay, interval); starts[0] != want {
						t.Errorf("%s: first run at %s, want its splay offset %s", j.Name, starts[0], want)
					}
					second := 1
					if tt.fail {
						if starts[1] != starts[0]+j.Recheck {
							t.Errorf("%s: recheck at %s after a failed first run at %s, want %s later", j.Name, starts[1], starts[0], j.Recheck)
						}
						second = 2
					}
					phase := scheduler.PhaseOffset(j.Name, interval)
					if tt.splay >= interval && starts[second] != starts[0]+interval {
						t.Errorf("%s: second run at %s, want one interval after the first: the splay put it on its phase", j.Name, starts[second])
					}
					for i, s := range starts[second:] {
						if s%interval != phase {
							t.Errorf("%s: run %d at %s, not on its phase %s of the interval", j.Name, second+i, s, phase)
						}
						if gap := s - starts[second+i-1]; gap < interval {
							t.Errorf("%s: run %d at %s, %s after the previous one: closer than the interval", j.Name, second+i, s, gap)
						}
					}
				}
			})
		})
	}
}

// TestDueRunsWaitForSlots: checks that come due together while every slot
// is taken wait in the dispatcher's queue, not in a goroutine each; they
// all run once slots free up, never more at a time than the bound.
func TestDueRunsWaitForSlots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n, slots = 1000, 4
		release := make(chan struct{})
		var running, most, calls atomic.Int32
		p := probes.ProberFunc(func(context.Context, *slog.Logger) probes.Result {
			calls.Add(1)
			now := running.Add(1)
			defer running.Add(-1)
			for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
			}
			<-release
			return probes.Result{Success: true}
		})
		jobs := simJobs(n, time.Hour, 0, 0, nil)
		for i := range jobs {
			jobs[i].Prober = p
		}
		before := runtime.NumGoroutine()
		sm, err := startSim(scheduler.Options{MaxConcurrency: slots}, jobs)
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // every check is due; the first runs hold the slots
		// Each run in flight is two goroutines (the run and its probe);
		// the dispatcher is one more.
		if extra := runtime.NumGoroutine() - before; extra > 2*slots+4 {
			t.Errorf("%d goroutines above the %d before while %d checks were due and %d slots taken; want no goroutine per waiting check",
				extra, before, n, slots)
		}
		if c := calls.Load(); c != slots {
			t.Errorf("%d probes started with %d slots", c, slots)
		}
		close(release)
		synctest.Wait()
		sm.stop()
		if c := calls.Load(); c != n {
			t.Errorf("%d of %d due checks ran after the slots freed up", c, n)
		}
		if m := most.Load(); m > slots {
			t.Errorf("%d probes ran at once with %d slots", m, slots)
		}
	})
}

// TestRunOnceWaitsForSlots: `vigil once` over many checks starts a
// goroutine per check only once a slot is free for it.
func TestRunOnceWaitsForSlots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n, slots = 1000, 4
		release := make(chan struct{})
		p := probes.ProberFunc(func(context.Context, *slog.Logger) probes.Result {
			<-release
			return probes.Result{Success: true}
		})
		jobs := simJobs(n, time.Hour, 0, 0, nil)
		for i := range jobs {
			jobs[i].Prober = p
		}
		before := runtime.NumGoroutine()
		done := make(chan []probes.Result)
		go func() {
			done <- scheduler.New(scheduler.Options{MaxConcurrency: slots}).RunOnce(context.Background(), jobs)
		}()
		synctest.Wait()
		// RunOnce's caller, and two goroutines per run in flight.
		if extra := runtime.NumGoroutine() - before; extra > 2*slots+2 {
			t.Errorf("%d goroutines above the %d before while %d checks waited for %d slots; want no goroutine per waiting check",
				extra, before, n, slots)
		}
		close(release)
		for i, r := range <-done {
			if !r.Success {
				t.Fatalf("%s: %+v", jobs[i].Name, r)
			}
		}
	})
}
