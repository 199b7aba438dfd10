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
