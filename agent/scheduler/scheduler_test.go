package scheduler

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-project/vigil/probes"
)

// collector records results per check.
type collector struct {
	mu   sync.Mutex
	runs map[string][]probes.Result
}

func newCollector() *collector { return &collector{runs: map[string][]probes.Result{}} }

func (c *collector) onResult(j *Job, r probes.Result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.runs[j.Name] = append(c.runs[j.Name], r)
}

func (c *collector) get(name string) []probes.Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]probes.Result(nil), c.runs[name]...)
}

// waitFor polls cond for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", d, what)
}

func start(t *testing.T, opts Options, jobs ...Job) *Scheduler {
	t.Helper()
	s := New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	if err := s.Update(ctx, jobs); err != nil {
		t.Fatal(err)
	}
	return s
}

// concurrency tracks the most probe calls running at once.
type concurrency struct{ running, max atomic.Int32 }

// enter counts a call in; the returned func counts it out.
func (c *concurrency) enter() func() {
	n := c.running.Add(1)
	for {
		m := c.max.Load()
		if n <= m || c.max.CompareAndSwap(m, n) {
			break
		}
	}
	return func() { c.running.Add(-1) }
}

var pass = probes.ProberFunc(func(context.Context, *slog.Logger) probes.Result { return probes.Result{Success: true} })

func TestInterval(t *testing.T) {
	c := newCollector()
	start(t, Options{MaxConcurrency: 4, OnResult: c.onResult},
		Job{Name: "a", Interval: 50 * time.Millisecond, Timeout: time.Second, Prober: pass})
	time.Sleep(540 * time.Millisecond)
	runs := c.get("a")
	// Splay is 0, so runs happen at 0, 50, ..., 500 ms: 11. More would break
	// the interval; a loaded machine may delay some, so fewer is tolerated.
	if len(runs) < 4 || len(runs) > 11 {
		t.Fatalf("got %d runs in 540ms at a 50ms interval, want up to 11", len(runs))
	}
	for i := 1; i < len(runs); i++ {
		if gap := runs[i].Start.Sub(runs[i-1].Start); gap < 45*time.Millisecond {
			t.Errorf("run %d started %s after the previous one, want >= 50ms", i, gap)
		}
	}
}

func TestNextDelay(t *testing.T) {
	j := Job{Interval: time.Hour, Recheck: 30 * time.Second, Jitter: 10 * time.Second}
	tests := []struct {
		name    string
		job     Job
		success bool
		u       float64
		want    time.Duration
	}{
		{"passing uses interval", j, true, 0, time.Hour},
		{"failing uses recheck", j, false, 0, 30 * time.Second},
		{"jitter at upper end", j, true, 0.999, time.Hour + 9990*time.Millisecond},
		{"jitter on recheck", j, false, 0.5, 35 * time.Second},
		{"recheck longer than interval is ignored", Job{Interval: 10 * time.Second, Recheck: time.Minute}, false, 0, 10 * time.Second},
		{"no recheck configured", Job{Interval: 10 * time.Second}, false, 0, 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NextDelay(tt.job, tt.success, tt.u); got != tt.want {
				t.Errorf("NextDelay = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestJitterBounds(t *testing.T) {
	c := newCollector()
	j := Job{Name: "j", Interval: 20 * time.Millisecond, Jitter: 30 * time.Millisecond, Timeout: time.Second, Prober: pass}
	start(t, Options{MaxConcurrency: 1, OnResult: c.onResult}, j)
	waitFor(t, 5*time.Second, "20 runs", func() bool { return len(c.get("j")) >= 20 })
	runs := c.get("j")
	var spread []time.Duration
	for i := 1; i < len(runs); i++ {
		gap := runs[i].Start.Sub(runs[i-1].Start)
		if gap < 20*time.Millisecond {
			t.Errorf("gap %s below the interval", gap)
		}
		if gap > 50*time.Millisecond+250*time.Millisecond { // interval+jitter plus generous timer slack
			t.Errorf("gap %s above interval+jitter", gap)
		}
		spread = append(spread, gap)
	}
	// With 19 uniform draws over 30ms, all gaps being equal means jitter is not applied.
	lo, hi := spread[0], spread[0]
	for _, g := range spread {
		lo, hi = min(lo, g), max(hi, g)
	}
	if hi-lo < 5*time.Millisecond {
		t.Errorf("gaps span only %s; jitter does not seem to be applied", hi-lo)
	}
}

func TestSplayOffset(t *testing.T) {
	seen := map[time.Duration]bool{}
	for _, name := range []string{"host", "db", "qr", "tax-authority", "logs"} {
		off := SplayOffset(name, 10*time.Second, time.Hour)
		if off < 0 || off >= 10*time.Second {
			t.Errorf("offset of %q = %s, want within [0,10s)", name, off)
		}
		if off != SplayOffset(name, 10*time.Second, time.Hour) {
			t.Errorf("offset of %q is not stable", name)
		}
		seen[off] = true
	}
	if len(seen) < 4 {
		t.Errorf("offsets are not spread: %v", seen)
	}
	if off := SplayOffset("x", 10*time.Second, time.Second); off >= time.Second {
		t.Errorf("offset %s not bounded by a shorter interval", off)
	}
	if off := SplayOffset("x", 0, time.Hour); off != 0 {
		t.Errorf("offset with no splay = %s", off)
	}
}

func TestToPhase(t *testing.T) {
	epoch := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return epoch.Add(d) }
	tests := []struct {
		name       string
		phase, due time.Time
		interval   time.Duration
		want       time.Duration
	}{
		{"due on phase", at(20 * time.Second), at(20 * time.Second), time.Minute, 0},
		{"due a whole number of intervals after the phase", at(20 * time.Second), at(3*time.Minute + 20*time.Second), time.Minute, 0},
		{"phase later in the interval", at(50 * time.Second), at(5 * time.Second), time.Minute, 45 * time.Second},
		{"phase earlier in the interval", at(5 * time.Second), at(50 * time.Second), time.Minute, 15 * time.Second},
		{"a nanosecond past the phase waits almost an interval", at(0), at(1), time.Minute, time.Minute - 1},
		{"no interval", at(5 * time.Second), at(50 * time.Second), 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := toPhase(tt.phase, tt.due, tt.interval); got != tt.want {
				t.Errorf("toPhase = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestTimeout(t *testing.T) {
	tests := []struct {
		name   string
		prober probes.ProberFunc
	}{
		{"probe honours ctx", func(ctx context.Context, _ *slog.Logger) probes.Result {
			<-ctx.Done()
			return probes.Failf(probes.ReasonError, "gave up: %v", ctx.Err())
		}},
		{"probe ignores ctx", func(ctx context.Context, _ *slog.Logger) probes.Result {
			time.Sleep(3 * time.Second)
			return probes.Result{Success: true}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Options{MaxConcurrency: 2, Grace: 100 * time.Millisecond})
			begin := time.Now()
			res := s.RunOnce(context.Background(), []Job{{Name: "slow", Timeout: 100 * time.Millisecond, Prober: tt.prober}})[0]
			if took := time.Since(begin); took > 2*time.Second {
				t.Errorf("RunOnce took %s with a 100ms timeout", took)
			}
			if res.Success || res.Reason != probes.ReasonTimeout {
				t.Errorf("got success=%v reason=%q, want timeout", res.Success, res.Reason)
			}
		})
	}
}

func TestTimeoutDoesNotBlockOthers(t *testing.T) {
	c := newCollector()
	hang := probes.ProberFunc(func(ctx context.Context, _ *slog.Logger) probes.Result {
		<-ctx.Done()
		return probes.Result{}
	})
	start(t, Options{MaxConcurrency: 2, OnResult: c.onResult},
		Job{Name: "hung", Interval: time.Hour, Timeout: 2 * time.Second, Prober: hang},
		Job{Name: "fast", Interval: 20 * time.Millisecond, Timeout: time.Second, Prober: pass})
	waitFor(t, time.Second, "fast check to run 10 times while the other hangs", func() bool { return len(c.get("fast")) >= 10 })
}

func TestNoOverlap(t *testing.T) {
	var calls atomic.Int32
	var conc concurrency
	p := probes.ProberFunc(func(ctx context.Context, _ *slog.Logger) probes.Result {
		calls.Add(1)
		defer conc.enter()()
		time.Sleep(30 * time.Millisecond) // longer than the interval
		return probes.Result{Success: true}
	})
	s := start(t, Options{MaxConcurrency: 8}, Job{Name: "o", Interval: 5 * time.Millisecond, Timeout: time.Second, Prober: p})
	// Run-now requests pile on top of the schedule.
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			if _, err := s.RunNow(context.Background(), "o"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	waitFor(t, 2*time.Second, "10 calls", func() bool { return calls.Load() >= 10 })
	if m := conc.max.Load(); m != 1 {
		t.Fatalf("%d runs of one check overlapped", m)
	}
}

func TestAbandonedProbeBlocksNextRun(t *testing.T) {
	var conc concurrency
	release := make(chan struct{})
	p := probes.ProberFunc(func(ctx context.Context, _ *slog.Logger) probes.Result {
		defer conc.enter()()
		<-release // ignores ctx entirely
		return probes.Result{Success: true}
	})
	c := newCollector()
	start(t, Options{MaxConcurrency: 4, Grace: 10 * time.Millisecond, OnResult: c.onResult},
		Job{Name: "stuck", Interval: 20 * time.Millisecond, Timeout: 20 * time.Millisecond, Prober: p})
	waitFor(t, 2*time.Second, "3 timeout results", func() bool { return len(c.get("stuck")) >= 3 })
	for _, r := range c.get("stuck") {
		if r.Reason != probes.ReasonTimeout {
			t.Errorf("reason %q, want timeout", r.Reason)
		}
	}
	if m := conc.max.Load(); m != 1 {
		t.Errorf("%d probe calls ran at once; an abandoned run must block the next", m)
	}
	close(release)
	waitFor(t, 2*time.Second, "a passing run after release", func() bool {
		runs := c.get("stuck")
		return runs[len(runs)-1].Success
	})
}

func TestRecheck(t *testing.T) {
	var healthy atomic.Bool
	p := probes.ProberFunc(func(context.Context, *slog.Logger) probes.Result {
		if healthy.Load() {
			return probes.Result{Success: true}
		}
		return probes.Failf(probes.ReasonDiskLow, "disk low")
	})
	c := newCollector()
	// clock runs on the recheck's rhythm beside r: its runs show the
	// scheduler's timers firing, so r's absence is asserted after as many
	// of them as would have brought several rechecks, not after a sleep.
	start(t, Options{MaxConcurrency: 1, OnResult: c.onResult},
		Job{Name: "r", Interval: time.Hour, Recheck: 20 * time.Millisecond, Timeout: time.Second, Prober: p},
		Job{Name: "clock", Interval: 20 * time.Millisecond, Timeout: time.Second, Prober: pass})
	waitFor(t, 2*time.Second, "5 rechecks while failing", func() bool { return len(c.get("r")) >= 5 })
	healthy.Store(true)
	waitFor(t, 2*time.Second, "a passing run", func() bool {
		runs := c.get("r")
		return runs[len(runs)-1].Success
	})
	n, ticks := len(c.get("r")), len(c.get("clock"))
	waitFor(t, 5*time.Second, "8 more runs of the 20ms clock job", func() bool { return len(c.get("clock")) >= ticks+8 })
	if got := len(c.get("r")); got != n {
		t.Errorf("check ran %d more times after passing; want it back on its 1h interval", got-n)
	}
	for _, r := range c.get("r")[:5] {
		if r.Reason != probes.ReasonDiskLow {
			t.Errorf("reason %q, want disk_low", r.Reason)
		}
	}
}

func TestPanicRecovery(t *testing.T) {
	c := newCollector()
	boom := probes.ProberFunc(func(context.Context, *slog.Logger) probes.Result {
		panic("probe bug")
	})
	start(t, Options{MaxConcurrency: 2, OnResult: c.onResult},
		Job{Name: "boom", Interval: 20 * time.Millisecond, Recheck: 20 * time.Millisecond, Timeout: time.Second, Prober: boom},
		Job{Name: "ok", Interval: 20 * time.Millisecond, Timeout: time.Second, Prober: pass})
	waitFor(t, 2*time.Second, "3 panicking runs and 3 good ones", func() bool {
		return len(c.get("boom")) >= 3 && len(c.get("ok")) >= 3
	})
	r := c.get("boom")[0]
	if r.Success || r.Reason != probes.ReasonPanic || r.Message == "" {
		t.Errorf("got %+v, want a failed result with reason panic", r)
	}
}

func TestConcurrencyBound(t *testing.T) {
	var conc concurrency
	p := probes.ProberFunc(func(ctx context.Context, _ *slog.Logger) probes.Result {
		defer conc.enter()()
		time.Sleep(20 * time.Millisecond)
		return probes.Result{Success: true}
	})
	var jobs []Job
	for _, n := range []string{"a", "b", "c", "d", "e", "f"} {
		jobs = append(jobs, Job{Name: n, Timeout: time.Second, Prober: p})
	}
	res := New(Options{MaxConcurrency: 2}).RunOnce(context.Background(), jobs)
	for i, r := range res {
		if !r.Success {
			t.Errorf("job %d failed: %+v", i, r)
		}
	}
	if m := conc.max.Load(); m != 2 {
		t.Errorf("max concurrent runs = %d, want 2", m)
	}
}

func TestRunNowAndUpdate(t *testing.T) {
	c := newCollector()
	ctx := context.Background()
	s := start(t, Options{MaxConcurrency: 2, OnResult: c.onResult},
		Job{Name: "a", Interval: time.Hour, Splay: time.Hour, Timeout: time.Second, Fingerprint: Fingerprint{49}, Prober: pass})
	res, err := s.RunNow(ctx, "a")
	if err != nil || !res.Success || res.Start.IsZero() {
		t.Fatalf("RunNow = %+v, %v", res, err)
	}
	if _, err := s.RunNow(ctx, "nope"); err == nil {
		t.Fatal("RunNow of an unknown check succeeded")
	}
	fail := probes.ProberFunc(func(context.Context, *slog.Logger) probes.Result {
		return probes.Failf(probes.ReasonCPUHigh, "busy")
	})
	// Same fingerprint: the old prober keeps running; new fingerprint: replaced.
	if err := s.Update(ctx, []Job{{Name: "a", Interval: time.Hour, Timeout: time.Second, Fingerprint: Fingerprint{49}, Prober: fail}}); err != nil {
		t.Fatal(err)
	}
	if res, _ := s.RunNow(ctx, "a"); !res.Success {
		t.Errorf("unchanged job was replaced")
	}
	if err := s.Update(ctx, []Job{{Name: "a", Interval: time.Hour, Timeout: time.Second, Fingerprint: Fingerprint{50}, Prober: fail}}); err != nil {
		t.Fatal(err)
	}
	if res, _ := s.RunNow(ctx, "a"); res.Success {
		t.Errorf("changed job was not replaced")
	}
	if err := s.Update(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RunNow(ctx, "a"); err == nil {
		t.Errorf("removed job still runs")
	}
}

func TestUnknownReasonNormalised(t *testing.T) {
	tests := []struct {
		name string
		in   probes.Result
		want probes.Reason
	}{
		{"missing reason", probes.Result{}, probes.ReasonError},
		{"made-up reason", probes.Result{Reason: "something_else"}, probes.ReasonError},
		{"success clears reason", probes.Result{Success: true, Reason: probes.ReasonDiskLow}, probes.ReasonNone},
		{"known reason kept", probes.Result{Reason: probes.ReasonDiskLow}, probes.ReasonDiskLow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := probes.ProberFunc(func(context.Context, *slog.Logger) probes.Result { return tt.in })
			got := New(Options{}).RunOnce(context.Background(), []Job{{Name: "x", Timeout: time.Second, Prober: p}})[0]
			if got.Reason != tt.want {
				t.Errorf("reason = %q, want %q", got.Reason, tt.want)
			}
		})
	}
}

// diagProber fails and explains itself through Diagnose.
type diagProber struct {
	block bool
}

func (p diagProber) Probe(context.Context, *slog.Logger) probes.Result {
	return probes.Result{Reason: probes.ReasonTimeout, Message: "no answer", Diagnostics: map[string]any{"own": 1}}
}

func (p diagProber) Diagnose(ctx context.Context, _ *slog.Logger, failed probes.Result) map[string]any {
	if p.block {
		<-ctx.Done()
		time.Sleep(time.Hour) // ignores its budget
	}
	return map[string]any{"traced": string(failed.Reason)}
}

func TestDiagnose(t *testing.T) {
	s := New(Options{MaxConcurrency: 1, DiagnoseTimeout: 50 * time.Millisecond, Grace: 50 * time.Millisecond})
	res := s.RunOnce(context.Background(), []Job{{Name: "d", Timeout: time.Second, Prober: diagProber{}}})[0]
	if res.Diagnostics["traced"] != "timeout" || res.Diagnostics["own"] != 1 {
		t.Errorf("diagnostics not merged: %v", res.Diagnostics)
	}
	begin := time.Now()
	res = s.RunOnce(context.Background(), []Job{{Name: "d", Timeout: time.Second, Prober: diagProber{block: true}}})[0]
	if time.Since(begin) > 2*time.Second || res.Diagnostics["traced"] != nil || res.Reason != probes.ReasonTimeout {
		t.Errorf("overrunning diagnostics: took %s, result %+v", time.Since(begin), res)
	}
	// The stuck diagnostics gave their slot back: with a bound of one, the
	// next check still runs.
	res = s.RunOnce(context.Background(), []Job{{Name: "next", Timeout: time.Second, Prober: pass}})[0]
	if !res.Success {
		t.Errorf("next check after abandoned diagnostics: %+v", res)
	}
}

func TestAbandonedProbeFreesSlot(t *testing.T) {
	hang := probes.ProberFunc(func(context.Context, *slog.Logger) probes.Result {
		time.Sleep(time.Hour) // ignores its deadline
		return probes.Result{}
	})
	s := New(Options{MaxConcurrency: 1, Grace: 20 * time.Millisecond})
	res := s.RunOnce(context.Background(), []Job{
		{Name: "hung", Timeout: 20 * time.Millisecond, Prober: hang},
	})
	if res[0].Reason != probes.ReasonTimeout {
		t.Fatalf("hung probe: %+v", res[0])
	}
	done := make(chan probes.Result, 1)
	go func() {
		done <- s.RunOnce(context.Background(), []Job{{Name: "ok", Timeout: time.Second, Prober: pass}})[0]
	}()
	select {
	case r := <-done:
		if !r.Success {
			t.Errorf("%+v", r)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("an abandoned probe kept the only concurrency slot")
	}
}

// streamer is a streaming prober: Run counts its starts and can panic once.
type streamer struct {
	starts, stops atomic.Int32
	panicFirst    bool
}

func (s *streamer) Probe(context.Context, *slog.Logger) probes.Result {
	return probes.Result{Success: true}
}

func (s *streamer) Run(ctx context.Context, _ *slog.Logger) {
	n := s.starts.Add(1)
	if s.panicFirst && n == 1 {
		panic("reader broke")
	}
	<-ctx.Done()
	s.stops.Add(1)
}

func TestStreamingRunner(t *testing.T) {
	var started, stopped atomic.Int32
	st := &streamer{panicFirst: true}
	opts := Options{MaxConcurrency: 2, RestartDelay: 20 * time.Millisecond,
		OnStart: func(*Job) { started.Add(1) }, OnStop: func(*Job) { stopped.Add(1) }}
	s := New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	job := Job{Name: "logs", Type: "logscan", Interval: time.Hour, Recheck: time.Hour, Timeout: time.Second, Fingerprint: Fingerprint{97}, Prober: st}
	if err := s.Update(ctx, []Job{job}); err != nil {
		t.Fatal(err)
	}
	// The panic is recovered and Run started again.
	waitFor(t, 2*time.Second, "restart after panic", func() bool { return st.starts.Load() == 2 })
	// An unchanged job keeps its runner; a changed one is stopped, then started afresh.
	s.Update(ctx, []Job{job})
	if started.Load() != 1 || st.starts.Load() != 2 {
		t.Fatalf("unchanged job restarted: OnStart %d, Run starts %d", started.Load(), st.starts.Load())
	}
	st2 := &streamer{}
	job2 := job
	job2.Fingerprint, job2.Prober = Fingerprint{98}, st2
	s.Update(ctx, []Job{job2})
	if st.stops.Load() != 1 || stopped.Load() != 1 || started.Load() != 2 {
		t.Fatalf("changed job: old stops %d, OnStop %d, OnStart %d", st.stops.Load(), stopped.Load(), started.Load())
	}
	waitFor(t, time.Second, "new runner", func() bool { return st2.starts.Load() == 1 })
	cancel()
	<-done
	if st2.stops.Load() != 1 || stopped.Load() != 2 {
		t.Fatalf("shutdown: stops %d, OnStop %d", st2.stops.Load(), stopped.Load())
	}
}

// TestOverride: an override answers for a check without running its probe
// (a drill's simulated failure), for scheduled runs and RunNow alike, and
// the probe runs again once the override lets go.
func TestOverride(t *testing.T) {
	c := newCollector()
	var probed atomic.Int32
	p := probes.ProberFunc(func(context.Context, *slog.Logger) probes.Result {
		probed.Add(1)
		return probes.Result{Success: true}
	})
	var simulate atomic.Bool
	simulate.Store(true)
	override := func(j *Job) (probes.Result, bool) {
		if simulate.Load() && j.Name == "db" {
			return probes.Failf(probes.ReasonConnectionRefused, "simulated by a drill"), true
		}
		return probes.Result{}, false
	}
	s := start(t, Options{MaxConcurrency: 2, OnResult: c.onResult, Override: override},
		Job{Name: "db", Interval: 20 * time.Millisecond, Recheck: 20 * time.Millisecond, Timeout: time.Second, Prober: p})
	waitFor(t, 2*time.Second, "two simulated runs", func() bool { return len(c.get("db")) >= 2 })
	r, err := s.RunNow(context.Background(), "db")
	if err != nil || r.Success || r.Reason != probes.ReasonConnectionRefused || probed.Load() != 0 {
		t.Fatalf("simulated run: %+v %v, probe ran %d times", r, err, probed.Load())
	}
	simulate.Store(false)
	waitFor(t, 2*time.Second, "a real run after the override", func() bool { return probed.Load() > 0 })
}

// TestNextRun: the next run is known while a check waits, unknown while a
// run is in flight, and follows the interval once it has run; an unknown
// name is not ok.
func TestNextRun(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	slow := probes.ProberFunc(func(ctx context.Context, _ *slog.Logger) probes.Result {
		entered <- struct{}{}
		<-release
		return probes.Result{Success: true}
	})
	before := time.Now()
	s := start(t, Options{MaxConcurrency: 2},
		Job{Name: "idle", Interval: time.Hour, Splay: time.Hour, Timeout: time.Second, Prober: pass},
		Job{Name: "busy", Interval: time.Hour, Timeout: time.Second, Prober: slow})
	next, ok := s.NextRun("idle")
	if !ok || next.Before(before) || next.After(time.Now().Add(time.Hour)) {
		t.Errorf("idle: next run %v (ok %v), want within the hour's splay", next, ok)
	}
	<-entered
	if next, ok := s.NextRun("busy"); !ok || !next.IsZero() {
		t.Errorf("busy while running: next run %v (ok %v), want zero", next, ok)
	}
	close(release)
	waitFor(t, time.Second, "busy's next run", func() bool {
		next, _ := s.NextRun("busy")
		return !next.IsZero()
	})
	// After a passing first run the check moves to its phase: within two
	// intervals of now.
	if next, _ := s.NextRun("busy"); next.Before(before.Add(time.Hour)) || next.After(time.Now().Add(2*time.Hour)) {
		t.Errorf("busy after its run: next run %v, want an interval or two ahead", next)
	}
	if _, ok := s.NextRun("nope"); ok {
		t.Error("an unknown check has a next run")
	}
}
