package scheduler_test

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
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

// TestReloadKeepsSchedules: reloading 10,000 unchanged checks, twice,
// leaves every run where it was: they run at exactly the times of a run
// without reloads, none early, none skipped. A check changed by a reload
// restarts from the reload with its splay; a removed one stops; the rest
// keep their times.
func TestReloadKeepsSchedules(t *testing.T) {
	const (
		n        = 10000
		interval = time.Minute
		splay    = 10 * time.Second
		horizon  = 4*interval + time.Second
	)
	// Off the splay's and the interval's multiples, so that a check
	// restarted by a reload could not fall on its old times by chance.
	reloads := []time.Duration{93700 * time.Millisecond, 157300 * time.Millisecond}
	// run simulates the checks over the horizon; with edit, the jobs it
	// returns are given to Update at each reload.
	run := func(t *testing.T, edit func(i int, jobs []scheduler.Job) []scheduler.Job) *runLog {
		var log *runLog
		synctest.Test(t, func(t *testing.T) {
			jobs := simJobs(n, interval, splay, 0, nil)
			sm, err := startSim(scheduler.Options{MaxConcurrency: 16}, jobs)
			if err != nil {
				t.Fatal(err)
			}
			for i, at := range reloads {
				if edit == nil {
					break
				}
				time.Sleep(at - time.Since(sm.log.t0))
				if err := sm.s.Update(sm.ctx, edit(i, slices.Clone(jobs))); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(horizon - time.Since(sm.log.t0))
			sm.stop()
			log = sm.log
		})
		return log
	}
	plain := run(t, nil)

	const changed, removed = "check-00007", "check-00042"
	reloaded := run(t, func(i int, jobs []scheduler.Job) []scheduler.Job {
		if i == 0 {
			return jobs // the first reload changes nothing
		}
		for j := range jobs {
			if jobs[j].Name == changed {
				jobs[j].Fingerprint = scheduler.Fingerprint{50}
			}
		}
		return slices.DeleteFunc(jobs, func(j scheduler.Job) bool { return j.Name == removed })
	})

	reload := reloads[1]
	for i := range n {
		name := fmt.Sprintf("check-%05d", i)
		want, got := plain.get(name), reloaded.get(name)
		switch name {
		case changed:
			var before, after []time.Duration
			for _, s := range got {
				if s < reload {
					before = append(before, s)
				} else {
					after = append(after, s)
				}
			}
			if w := slices.DeleteFunc(slices.Clone(want), func(s time.Duration) bool { return s >= reload }); !slices.Equal(before, w) {
				t.Errorf("%s before its change: runs at %v, want %v", name, before, w)
			}
			if first := reload + scheduler.SplayOffset(name, splay, interval); len(after) == 0 || after[0] != first {
				t.Errorf("%s after its change at %s: runs at %v, want the first at %s (its splay offset from the reload)", name, reload, after, first)
			}
		case removed:
			if w := slices.DeleteFunc(slices.Clone(want), func(s time.Duration) bool { return s >= reload }); !slices.Equal(got, w) {
				t.Errorf("%s, removed at %s: runs at %v, want %v", name, reload, got, w)
			}
		default:
			if !slices.Equal(got, want) {
				t.Errorf("%s: runs at %v with reloads, %v without", name, got, want)
			}
		}
	}
	if t.Failed() {
		return
	}
	// The comparison means something only if the checks ran on schedule.
	for i := range n {
		name := fmt.Sprintf("check-%05d", i)
		if got := plain.get(name); len(got) < 3 {
			t.Fatalf("%s ran %d times in %s at a %s interval", name, len(got), horizon, interval)
		}
	}
}

// TestGranularityAlignsRuns: with a granularity every scheduled run of a
// check whose interval is a whole number of steps starts on a step, the
// checks due within one step start together, and the schedule does not
// slip: each check keeps its phase (moved up to a step) interval after
// interval, even when runs wait for slots within their step. A check whose
// interval the granularity does not divide keeps its exact times.
func TestGranularityAlignsRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			interval = time.Minute
			step     = time.Second
		)
		// Runs take 2 ms and two run at once: the 50 or so checks of a
		// step wait up to ~50 ms for a slot within it (300 a step over
		// the start-up splay: up to 300 ms).
		jobs := simJobs(3000, interval, 10*time.Second, 2*time.Millisecond, nil)
		odd := simJobs(1, 90500*time.Millisecond, 10*time.Second, 0, nil)[0]
		odd.Name = "odd"
		jobs = append(jobs, odd)
		sm, err := startSim(scheduler.Options{MaxConcurrency: 2, Granularity: step}, jobs)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(10*interval + time.Second)
		sm.stop()
		steps := map[time.Duration]int{} // runs scheduled per step
		for _, j := range jobs[:len(jobs)-1] {
			starts := sm.log.get(j.Name)
			if len(starts) < 9 {
				t.Fatalf("%s ran %d times in ten intervals", j.Name, len(starts))
			}
			// The phase, moved up to the next step.
			phase := scheduler.PhaseOffset(j.Name, interval)
			if r := phase % step; r > 0 {
				phase += step - r
			}
			for i, s := range starts {
				due := s.Truncate(step)
				if s-due > 500*time.Millisecond {
					t.Errorf("%s: run %d at %s, %s after its step", j.Name, i, s, s-due)
				}
				steps[due]++
				if i == 0 {
					continue
				}
				if gap := s - starts[i-1]; gap < interval-step {
					t.Errorf("%s: run %d %s after the previous one", j.Name, i, gap)
				}
				if i >= 2 && due%interval != phase%interval {
					t.Errorf("%s: run %d due at %s, not on its phase %s (moved up to a step)", j.Name, i, due, phase)
				}
			}
		}
		// 3,000 checks a minute on a 1 s grid: about 50 a step, all of
		// them together.
		most := 0
		for _, n := range steps {
			most = max(most, n)
		}
		if len(steps) > 10*60+12 || most < 25 {
			t.Errorf("runs fell on %d distinct steps (most %d in one); want them grouped on the 1 s grid", len(steps), most)
		}
		starts := sm.log.get("odd") // on its phase from the second run
		for i := 2; i < len(starts); i++ {
			if gap := starts[i] - starts[i-1]; gap != odd.Interval {
				t.Errorf("odd: run %d %s after the previous one, want exactly %s: 1s does not divide its interval", i, gap, odd.Interval)
			}
		}
	})
}
