//go:build peerbench

// The scheduler at 10,000 checks, for BENCHMARKS.md (issue 21), run with
// `make bench-sched`: how first runs spread over the start-up splay and
// runs over each minute, what a start-up without splay costs in goroutines
// and memory, and how long a reload of 10,000 http checks takes through the
// agent. It reports numbers and asserts no targets: machines here are noisy.
//
// Environment:
//
//	VIGIL_SCHED_N       checks (default 10000)
//	VIGIL_SCHED_RELOADS reloads timed per case (default 7)
package scheduler_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	toolkit "github.com/prometheus/exporter-toolkit/web"

	"github.com/vigil-project/vigil/agent"
	"github.com/vigil-project/vigil/agent/checkstate"
	"github.com/vigil-project/vigil/agent/config"
	"github.com/vigil-project/vigil/agent/scheduler"
	"github.com/vigil-project/vigil/internal/testenv"
	_ "github.com/vigil-project/vigil/probes/all"
)

const (
	benchInterval    = time.Minute
	benchBucket      = 5 * time.Second
	benchConcurrency = 16 // the default max_concurrency
	// benchProbe is each fake run's duration: about what an http check
	// to a local server takes.
	benchProbe = time.Millisecond
)

// histogram counts the offsets in [from, from+n*width) per bucket.
func histogram(offsets []time.Duration, from, width time.Duration, n int) []int {
	h := make([]int, n)
	for _, o := range offsets {
		if o < from {
			continue
		}
		if i := int((o - from) / width); i < n {
			h[i]++
		}
	}
	return h
}

// printHistogram logs a text histogram with its min, max and mean against
// an even spread of the same runs.
func printHistogram(t *testing.T, title string, h []int, from, width time.Duration) {
	t.Helper()
	total, lo, hi := 0, h[0], h[0]
	for _, c := range h {
		total += c
		lo, hi = min(lo, c), max(hi, c)
	}
	even := float64(total) / float64(len(h))
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d runs; per bucket min %d, max %d, mean %.1f against an even %.1f (max/even %.2f)\n",
		title, total, lo, hi, even, even, float64(hi)/max(even, 1))
	for i, c := range h {
		bar := 0
		if hi > 0 {
			bar = (c*50 + hi - 1) / hi
		}
		start := from + time.Duration(i)*width
		fmt.Fprintf(&b, "  [%7s, %7s) %6d %s\n", start, start+width, c, strings.Repeat("#", bar))
	}
	t.Log(b.String())
}

// peak follows the process's goroutines and live heap and stacks while runs
// start; the probes sample it.
type peak struct {
	goroutines atomic.Int64
	bytes      atomic.Uint64
	calls      atomic.Int64
}

var peakMetrics = []string{"/memory/classes/heap/objects:bytes", "/memory/classes/heap/stacks:bytes"}

func liveBytes() uint64 {
	s := make([]metrics.Sample, len(peakMetrics))
	for i, name := range peakMetrics {
		s[i].Name = name
	}
	metrics.Read(s)
	return s[0].Value.Uint64() + s[1].Value.Uint64()
}

func (p *peak) sample() {
	g := int64(runtime.NumGoroutine())
	for m := p.goroutines.Load(); g > m && !p.goroutines.CompareAndSwap(m, g); m = p.goroutines.Load() {
	}
	if p.calls.Add(1)%32 != 1 {
		return
	}
	b := liveBytes()
	for m := p.bytes.Load(); b > m && !p.bytes.CompareAndSwap(m, b); m = p.bytes.Load() {
	}
}

// TestSchedulerScaleSpread runs N fake checks at a one-minute interval for
// three minutes of fake time with the default start-up splay (10s), none,
// and a whole interval, and prints where their runs fell.
func TestSchedulerScaleSpread(t *testing.T) {
	n := testenv.PositiveInt(t, "VIGIL_SCHED_N", 10000)
	t.Logf("machine: %d CPUs, %s; %d checks every %s, each run %s of fake time, max_concurrency %d, synctest fake clock",
		runtime.NumCPU(), runtime.Version(), n, benchInterval, benchProbe, benchConcurrency)
	// Without splay last: its start-up leaves the most stacks cached.
	for _, splay := range []time.Duration{10 * time.Second, benchInterval, 0} {
		t.Run("splay="+splay.String(), func(t *testing.T) {
			var pk peak
			runtime.GC()
			g0, b0 := runtime.NumGoroutine(), liveBytes()
			real0 := time.Now()
			// The peak is taken over the start-up (the splay window and
			// 5s more), before the test's own record of runs grows.
			startup := min(splay, benchInterval) + 5*time.Second
			synctest.Test(t, func(t *testing.T) {
				begin := time.Now()
				jobs := simJobs(n, benchInterval, splay, benchProbe, func() {
					if time.Since(begin) < startup {
						pk.sample()
					}
				})
				sm, err := startSim(scheduler.Options{MaxConcurrency: benchConcurrency}, jobs)
				if err != nil {
					t.Fatal(err)
				}
				time.Sleep(3*benchInterval + time.Second)
				sm.stop()
				first := make([]time.Duration, 0, n)
				late := time.Duration(0)
				for _, j := range jobs {
					s := sm.log.get(j.Name)
					if len(s) == 0 {
						t.Errorf("%s never ran", j.Name)
						continue
					}
					first = append(first, s[0])
					late = max(late, s[0]-scheduler.SplayOffset(j.Name, splay, benchInterval))
				}
				window := min(splay, benchInterval)
				if window > 0 {
					printHistogram(t, fmt.Sprintf("first runs over the %s splay window, per %s", window, window/10), histogram(first, 0, window/10, 10), 0, window/10)
				} else {
					slices.Sort(first)
					t.Logf("first runs: all %d due at once; the last started %s after the first (runs %s each, %d at a time)",
						len(first), first[len(first)-1]-first[0], benchProbe, benchConcurrency)
				}
				t.Logf("latest first run behind its splay offset: %s", late)
				all := sm.log.all()
				for m := 1; m <= 2; m++ {
					from := time.Duration(m) * benchInterval
					printHistogram(t, fmt.Sprintf("run starts per %s in minute %d after start [%s, %s)", benchBucket, m+1, from, from+benchInterval),
						histogram(all, from, benchBucket, int(benchInterval/benchBucket)), from, benchBucket)
				}
			})
			t.Logf("peak over the first %s: %d goroutines above the %d before, live heap+stacks %.1f MiB above the %.1f MiB before; simulation took %s of wall time",
				startup, pk.goroutines.Load()-int64(g0), g0, float64(int64(pk.bytes.Load())-int64(b0))/(1<<20), float64(b0)/(1<<20), time.Since(real0).Round(time.Millisecond))
		})
	}
}

// reloadConfig is n http checks at a one-minute interval spread over it,
// as in bench-scale; version changes the URL of the first changed checks.
func reloadConfig(target string, n, changed, version int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "global: {interval: 1m, timeout: 5s, startup_splay: 1m, max_concurrency: %d}\nchecks:\n", benchConcurrency)
	for i := range n {
		v := 0
		if i < changed {
			v = version
		}
		fmt.Fprintf(&b, "  - {name: t%05d, type: http, http: {url: \"http://%s/t/%d?v=%d\", traceroute_on_failure: false}}\n", i, target, i, v)
	}
	return []byte(b.String())
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d.Microseconds())/1000) }

// TestSchedulerScaleReload times reloads of N http checks: Agent.Reload of
// a running agent end to end (read and validate the file, build the jobs,
// rules, paging plan, runbooks and drills, swap them in, the scheduler's
// Update), and the parts that grow with the checks on their own. Each case
// is timed VIGIL_SCHED_RELOADS times; the median is reported.
func TestSchedulerScaleReload(t *testing.T) {
	n := testenv.PositiveInt(t, "VIGIL_SCHED_N", 10000)
	k := testenv.PositiveInt(t, "VIGIL_SCHED_RELOADS", 7)
	target := testenv.OKServer(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "vigil.yml")
	write := func(changed, version int) {
		t.Helper()
		if err := os.WriteFile(file, reloadConfig(target, n, changed, version), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(0, 0)
	t.Logf("machine: %d CPUs, %s, load %s; %d http checks every 1m (startup_splay 1m) against a local server, %d reloads per case",
		runtime.NumCPU(), runtime.Version(), loadAvg(), n, k)

	ctx, cancel := context.WithCancel(context.Background())
	addr := "127.0.0.1:0"
	cfgFile := ""
	a, err := agent.New(ctx, agent.Options{ConfigFile: file, StoragePath: filepath.Join(dir, "vigil.db"),
		Web: &toolkit.FlagConfig{WebListenAddresses: &[]string{addr}, WebConfigFile: &cfgFile}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	// The first reload waits for the agent's scheduler to take its jobs.
	if err := a.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		changed int
	}{{"unchanged", 0}, {"one check changed", 1}, {"every check changed", n}} {
		var times []time.Duration
		for i := range k {
			write(c.changed, i+1)
			start := time.Now()
			if err := a.Reload(ctx); err != nil {
				t.Fatal(err)
			}
			times = append(times, time.Since(start))
		}
		t.Logf("Agent.Reload, %s: median %s (min %s, max %s)", c.name, ms(median(times)), ms(slices.Min(times)), ms(slices.Max(times)))
	}

	// The parts, on the same file and a scheduler of their own (no run is
	// due during the measurement: splay and interval are an hour).
	data := reloadConfig(target, n, 0, 0)
	s := scheduler.New(scheduler.Options{MaxConcurrency: benchConcurrency})
	sctx, scancel := context.WithCancel(context.Background())
	sdone := make(chan struct{})
	go func() { s.Run(sctx); close(sdone) }()
	defer func() { scancel(); <-sdone }()
	var parse, build, update []time.Duration
	for i := range k + 1 {
		t0 := time.Now()
		cfg, err := config.Parse(file, data)
		if err != nil {
			t.Fatal(err)
		}
		t1 := time.Now()
		jobs, err := checkstate.Jobs(cfg, "", slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		t2 := time.Now()
		for j := range jobs {
			jobs[j].Interval, jobs[j].Splay = time.Hour, time.Hour
		}
		t3 := time.Now()
		if err := s.Update(sctx, jobs); err != nil {
			t.Fatal(err)
		}
		t4 := time.Now()
		if i == 0 {
			continue // the first Update starts every job
		}
		parse, build, update = append(parse, t1.Sub(t0)), append(build, t2.Sub(t1)), append(update, t4.Sub(t3))
	}
	t.Logf("parts, medians: config.Parse (decode and validate) %s, checkstate.Jobs (probers and fingerprints) %s, Scheduler.Update with every job kept %s",
		ms(median(parse)), ms(median(build)), ms(median(update)))
}

// loadAvg is the 1-minute load average, for the record.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

// all returns every run start, in no particular order.
func (l *runLog) all() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []time.Duration
	for _, s := range l.starts {
		out = append(out, s...)
	}
	return out
}
