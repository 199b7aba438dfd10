//go:build peerbench

// The agent at scale side by side with blackbox_exporter (Debian's
// prometheus-blackbox-exporter), run with `make bench-scale`: N http checks
// at a one-minute interval in one `vigil run`, against blackbox_exporter's
// /probe driven for the same N targets at the same rate. It reports numbers
// for BENCHMARKS.md and asserts no targets: machines here are noisy.
//
// Environment:
//
//	VIGIL_SCALE_N       comma-separated check counts (default 1000,10000)
//	VIGIL_SCALE_WARMUP  time before measuring (default 3m30s: the start-up
//	                    splay, then up to two intervals until every check
//	                    runs on its phase of the interval, plus 30s)
//	VIGIL_SCALE_WINDOW  measuring window (default 60s)
//	VIGIL_SCALE_HISTORY check history already in the store when the agent
//	                    starts (default 6h): a long-running agent's store,
//	                    not an empty one (0 for an empty store)
package agent_test

import (
	"database/sql"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite" // reads the agent's check history after it stops

	"github.com/vigil-project/vigil/agent/store"
	"github.com/vigil-project/vigil/internal/testenv"
	"github.com/vigil-project/vigil/probes"
)

const (
	blackboxExporter = "/usr/bin/prometheus-blackbox-exporter"
	// scaleConcurrency is vigil's max_concurrency (its default) and the
	// bound on /probe requests in flight to blackbox_exporter.
	scaleConcurrency = 16
	scaleInterval    = time.Minute
	scaleBucket      = 5 * time.Second
)

type scaleSettings struct {
	ns                      []int
	nRaw                    string
	warmup, window, history time.Duration
}

func scaleEnv(t *testing.T) scaleSettings {
	t.Helper()
	s := scaleSettings{nRaw: "1000,10000", warmup: 3*scaleInterval + 30*time.Second, window: 60 * time.Second, history: 6 * time.Hour}
	if v := os.Getenv("VIGIL_SCALE_N"); v != "" {
		s.nRaw = v
	}
	for f := range strings.SplitSeq(s.nRaw, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			t.Fatalf("VIGIL_SCALE_N: %q is not a positive count", f)
		}
		s.ns = append(s.ns, n)
	}
	for name, d := range map[string]*time.Duration{"VIGIL_SCALE_WARMUP": &s.warmup, "VIGIL_SCALE_WINDOW": &s.window, "VIGIL_SCALE_HISTORY": &s.history} {
		if v := os.Getenv(name); v != "" {
			var err error
			if *d, err = time.ParseDuration(v); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
	}
	if s.window < scaleBucket {
		t.Fatalf("VIGIL_SCALE_WINDOW must be at least %s", scaleBucket)
	}
	return s
}

// cpuSeconds reads utime+stime of a running process (all its threads).
func cpuSeconds(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return float64(ut+st) / 100 // USER_HZ
}

// writeScaleConfig writes n http checks against target; global adds
// settings to the global block ("key: value, ...").
func writeScaleConfig(t *testing.T, target string, n int, global string) string {
	t.Helper()
	var b strings.Builder
	if global != "" {
		global = ", " + global
	}
	fmt.Fprintf(&b, "global: {interval: 1m, timeout: 5s, startup_splay: 1m, max_concurrency: %d%s}\n", scaleConcurrency, global)
	if n == 0 {
		b.WriteString("checks: []\n")
	} else {
		b.WriteString("checks:\n")
	}
	for i := range n {
		fmt.Fprintf(&b, "  - {name: t%05d, type: http, http: {url: \"http://%s/t/%d\", traceroute_on_failure: false}}\n", i, target, i)
	}
	p := filepath.Join(t.TempDir(), "vigil.yml")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// runsTotal sums vigil_check_runs_total by result from a /metrics scrape.
func runsTotal(t *testing.T, base string) (success, failure float64, size int) {
	success, failure, _, size = scrapeRuns(t, base)
	return success, failure, size
}

// scrapeRuns reads /metrics once: vigil_check_runs_total summed by result,
// and every check's last measured duration in ms, sorted.
func scrapeRuns(t *testing.T, base string) (success, failure float64, durations []float64, size int) {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(line, "vigil_check_duration_seconds{") {
			if v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64); err == nil {
				durations = append(durations, 1000*v)
			}
			continue
		}
		if !strings.HasPrefix(line, "vigil_check_runs_total{") {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("/metrics: %q: %v", line, err)
		}
		if strings.Contains(line, `result="failure"`) {
			failure += v
		} else {
			success += v
		}
	}
	slices.Sort(durations)
	return success, failure, durations, len(b)
}

// timeGet fetches url k times and returns the median wall time (loopback,
// whole body read) and the body size.
func timeGet(t *testing.T, url string, k int) (ms float64, size int) {
	t.Helper()
	var times []float64
	for range k {
		start := time.Now()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		times = append(times, float64(time.Since(start).Microseconds())/1000)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %s", url, resp.Status)
		}
		size = int(n)
	}
	return median(times), size
}

type scaleVigil struct {
	n                      int
	rss, anon, rssMax      float64 // MiB; median and max of samples every 5s in the window
	cpu, window            float64 // seconds
	runs, failures         float64
	pageMS, apiMS          float64
	pageBytes, metricBytes int
	// rssViewed is RSS MiB 15 s after the status page, a check page and
	// the API were fetched (after the window).
	rssViewed            float64
	buckets              []int // check starts per 5 s of the window (from the store)
	perSecMin, perSecMax int
	// durP50, durP99 are percentiles over the checks of their last
	// measured run duration (ms), read at the end of the window.
	durP50, durP99 float64
}

// scaleRun varies a measured run: flags added to vigil's command line,
// settings added to the config's global block, a store to start from.
type scaleRun struct {
	flags  []string
	global string
	// history is a store file (from prefillHistory) copied into place
	// before the agent starts.
	history string
}

var (
	// noPageout turns off memtune.ReleasePages.
	noPageout = scaleRun{flags: []string{"--no-memory.release-code-pages"}}
	// exactTimes turns off the scheduler's grid: every run at its own time.
	exactTimes = scaleRun{global: "schedule_granularity: 0s"}
)

// measureVigil runs `vigil run` with n http checks, waits warmup, and
// measures over window. Endpoint timings are taken after the window, so
// they are not in its CPU.
// measureVigil runs `vigil run` with n checks; extra flags are added to
// its command line.
func measureVigil(t *testing.T, bin, target string, n int, warmup, window time.Duration, runs ...scaleRun) scaleVigil {
	t.Helper()
	var extra []string
	var global []string
	db := filepath.Join(t.TempDir(), "vigil.db")
	for _, r := range runs {
		extra = append(extra, r.flags...)
		if r.global != "" {
			global = append(global, r.global)
		}
		if r.history != "" {
			copyFile(t, r.history, db)
		}
	}
	cfg := writeScaleConfig(t, target, n, strings.Join(global, ", "))
	addr := freeAddr(t)
	base := "http://" + addr
	cmd := exec.Command(bin, append([]string{"run", "--config.file", cfg, "--web.listen-address", addr,
		"--storage.path", db, "--log.level", "warn"}, extra...)...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("vigil with %d checks did not stop in 30s after SIGTERM; killed", n)
			cmd.Process.Kill()
			<-done
		}
	}
	defer stop()
	pid := cmd.Process.Pid
	ready := waitReady(t, base+"/-/ready", time.Now())
	t.Logf("N=%d: vigil ready in %s; warming up for %s", n, ready.Round(time.Millisecond), warmup)
	time.Sleep(warmup)

	r := scaleVigil{n: n}
	s0, f0, _ := runsTotal(t, base)
	c0, w0 := cpuSeconds(t, pid), time.Now()
	var rss, anon []float64
	for end := w0.Add(window); ; {
		a, b, _ := rssKiB(t, pid)
		rss, anon = append(rss, a/1024), append(anon, b/1024)
		r.rssMax = max(r.rssMax, a/1024)
		left := time.Until(end)
		if left <= 0 {
			break
		}
		time.Sleep(min(left, scaleBucket))
	}
	c1, w1 := cpuSeconds(t, pid), time.Now()
	s1, f1, durations, _ := scrapeRuns(t, base)
	if len(durations) > 0 {
		r.durP50, r.durP99 = durations[len(durations)/2], durations[len(durations)*99/100]
	}
	r.rss, r.anon = median(rss), median(anon)
	r.cpu, r.window = c1-c0, w1.Sub(w0).Seconds()
	r.runs, r.failures = s1+f1-s0-f0, f1-f0
	if r.failures > 0 {
		t.Errorf("N=%d: %.0f check runs failed in the window; the target server did not keep up", n, r.failures)
	}

	r.pageMS, r.pageBytes = timeGet(t, base+"/", 5)
	r.apiMS, _ = timeGet(t, base+"/api/v1/checks?limit=100", 5)
	_, r.metricBytes = timeGet(t, base+"/metrics", 1)
	if n > 0 {
		timeGet(t, base+"/checks/t00000", 1)
	}
	time.Sleep(15 * time.Second)
	r.rssViewed, _, _ = rssKiB(t, pid)
	r.rssViewed /= 1024

	// Check starts per second of the window, from the agent's own history
	// (read once it has stopped and flushed).
	stop()
	if n > 0 {
		r.buckets, r.perSecMin, r.perSecMax = startHistogram(t, db, w0, w1)
	}
	return r
}

// prefillHistory writes d of one-minute history for the n checks of
// writeScaleConfig into a new store at path, through the store's own
// writer, as a long-running agent would have it. A long-running
// agent's store is where the history writer's cost settles: once each
// check's rows fill a leaf page, every new row goes to a page of its own.
// The rows go in check by check, which is fast; each check's rows then sit
// in full pages rather than the half-full ones that runs arriving minute by
// minute leave, so the file is smaller than a real one of the same history.
func prefillHistory(t *testing.T, path string, n int, d time.Duration) {
	t.Helper()
	ctx := t.Context()
	s, err := store.Open(ctx, path, store.Options{QueueSize: 4096, EnqueueTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	minutes := int(d / time.Minute)
	first := began.Add(-d).Truncate(time.Minute)
	for c := range n {
		name := fmt.Sprintf("t%05d", c)
		offset := time.Duration(c) * time.Minute / time.Duration(n)
		for m := range minutes {
			start := first.Add(time.Duration(m)*time.Minute + offset)
			r := probes.Result{Start: start, Success: true, Duration: 1800 * time.Microsecond, Phases: []probes.Phase{
				{Name: "dns", Duration: 0},
				{Name: "connect", Duration: time.Duration(200+m%50) * time.Microsecond},
				{Name: "tls", Duration: 0},
				{Name: "first_byte", Duration: time.Duration(900+m%300) * time.Microsecond},
				{Name: "transfer", Duration: time.Duration(20+m%10) * time.Microsecond},
			}}
			r.AddKeyValue("vigil_http_status_code", 200)
			r.AddValue("vigil_http_response_bytes", 2)
			r.AddValue("vigil_http_version", 1.1)
			r.AddValue("vigil_http_redirects", 0)
			s.Record(store.Record{Check: name, Type: "http", Result: r})
		}
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if dropped := s.Dropped(); dropped > 0 {
		t.Fatalf("prefill: %d records dropped", dropped)
	}
	// The sweep merges the runs still waiting (hundreds of thousands:
	// the fill outruns the merge) and prunes none: a long-running agent
	// has at most one merge's worth waiting.
	if _, err := s.Prune(ctx, time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("N=%d: prefilled %s of history (%d rows, %.0f MB) in %s", n, d, n*minutes, float64(fi.Size())/1e6, time.Since(began).Round(time.Second))
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

func pageoutLine(n string, with, without scaleVigil) string {
	perRun := func(v scaleVigil) string {
		if v.runs == 0 {
			return "–"
		}
		return fmt.Sprintf("%.3f", 1000*v.cpu/v.runs)
	}
	return fmt.Sprintf("| %s | %.1f | %.1f | %.1f / %.1f | %.1f / %.1f | %s / %s |", n, with.rss, without.rss,
		with.anon, without.anon, with.rssViewed, without.rssViewed, perRun(with), perRun(without))
}

func gridLine(n int, gran string, v scaleVigil) string {
	return fmt.Sprintf("| %d | %s | %.3f | %.2f | %.2f | %.1f | %d–%d |", n, gran, 1000*v.cpu/max(v.runs, 1),
		v.durP50, v.durP99, v.rss, v.perSecMin, v.perSecMax)
}

func startHistogram(t *testing.T, db string, from, to time.Time) (buckets []int, perSecMin, perSecMax int) {
	t.Helper()
	h, err := sql.Open("sqlite", db)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	// Runs still waiting for the merge are in recent_results (absent from
	// stores of before the merge, which TestPeerScaleAB may compare).
	q := `SELECT started_at FROM check_results WHERE started_at >= ?1 AND started_at < ?2`
	var recent int
	if err := h.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name = 'recent_results'`).Scan(&recent); err != nil {
		t.Fatal(err)
	}
	if recent > 0 {
		q += ` UNION ALL SELECT started_at FROM recent_results WHERE started_at >= ?1 AND started_at < ?2`
	}
	rows, err := h.Query(q, from.UnixMilli(), to.UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	secs := int(to.Sub(from) / time.Second)
	perSec := make([]int, secs)
	buckets = make([]int, (secs+int(scaleBucket/time.Second)-1)/int(scaleBucket/time.Second))
	for rows.Next() {
		var ms int64
		if err := rows.Scan(&ms); err != nil {
			t.Fatal(err)
		}
		off := time.UnixMilli(ms).Sub(from)
		if s := int(off / time.Second); s < secs {
			perSec[s]++
			buckets[int(off/scaleBucket)]++
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	perSecMin, perSecMax = perSec[0], perSec[0]
	for _, c := range perSec {
		perSecMin, perSecMax = min(perSecMin, c), max(perSecMax, c)
	}
	return buckets, perSecMin, perSecMax
}

type scaleBlackbox struct {
	rss, anon   float64 // MiB, median of samples every 5s in the window
	cpu, window float64 // seconds
	probes      int
	failures    int
	firstErr    string
	late        time.Duration // how far the last request started behind its slot
}

// driveProbes sends /probe requests for n targets at n per minute, evenly
// spaced, for d, at most scaleConcurrency at a time; *next is the index of
// the next target, carried from one call to the next. It returns after the
// last request has been answered.
func driveProbes(client *http.Client, bb, target string, n int, d time.Duration, next *int) (r scaleBlackbox) {
	gap := scaleInterval / time.Duration(n)
	sem := make(chan struct{}, scaleConcurrency)
	var wg sync.WaitGroup
	var done, failed atomic.Int64
	var errOnce sync.Once
	start := time.Now()
	for k := 0; ; k++ {
		at := start.Add(time.Duration(k) * gap)
		if at.Sub(start) >= d {
			break
		}
		if wait := time.Until(at); wait > 0 {
			time.Sleep(wait)
		}
		sem <- struct{}{}
		r.late = max(r.late, time.Since(at))
		u := fmt.Sprintf("http://%s/probe?module=http_2xx&target=http://%s/t/%d", bb, target, *next%n)
		*next++
		wg.Go(func() {
			defer func() { <-sem }()
			fail := func(msg string) {
				failed.Add(1)
				errOnce.Do(func() { r.firstErr = msg })
			}
			resp, err := client.Get(u)
			if err != nil {
				fail(err.Error())
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			done.Add(1)
			if !strings.Contains(string(body), "\nprobe_success 1") {
				fail(u + ": probe_success is not 1")
			}
		})
	}
	wg.Wait()
	r.probes, r.failures = int(done.Load()), int(failed.Load())
	return r
}

func measureBlackbox(t *testing.T, bbPid int, client *http.Client, bb, target string, n int, warmup, window time.Duration) scaleBlackbox {
	t.Helper()
	next := 0
	if w := driveProbes(client, bb, target, n, warmup, &next); w.failures > 0 {
		t.Errorf("N=%d: %d blackbox probes failed during warm-up, first: %s", n, w.failures, w.firstErr)
	}
	ch := make(chan scaleBlackbox, 1)
	c0, w0 := cpuSeconds(t, bbPid), time.Now()
	go func() { ch <- driveProbes(client, bb, target, n, window, &next) }()
	var rss, anon []float64
	var r scaleBlackbox
	for sampling := true; sampling; {
		a, b, _ := rssKiB(t, bbPid)
		rss, anon = append(rss, a/1024), append(anon, b/1024)
		select {
		case r = <-ch:
			sampling = false
		case <-time.After(scaleBucket):
		}
	}
	time.Sleep(200 * time.Millisecond) // let the last accounting tick land
	r.cpu, r.window = cpuSeconds(t, bbPid)-c0, time.Since(w0).Seconds()
	r.rss, r.anon = median(rss), median(anon)
	if r.failures > 0 {
		t.Errorf("N=%d: %d blackbox probes failed, first: %s", n, r.failures, r.firstErr)
	}
	return r
}

func startBlackbox(t *testing.T) (pid int, addr string) {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "blackbox.yml")
	if err := os.WriteFile(cfg, []byte("modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr = freeAddr(t)
	cmd := exec.Command(blackboxExporter, "--config.file", cfg, "--web.listen-address", addr, "--log.level", "warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitReady(t, "http://"+addr+"/-/healthy", time.Now())
	return cmd.Process.Pid, addr
}

// TestPeerScale measures the agent with N http checks at a one-minute
// interval (RSS, CPU per check run, status page and API times, /metrics
// size, how evenly the runs spread) beside blackbox_exporter probing the
// same N targets at the same rate.
func TestPeerScale(t *testing.T) {
	if _, err := os.Stat(blackboxExporter); err != nil {
		t.Skipf("%s not installed (apt-get install prometheus-blackbox-exporter)", blackboxExporter)
	}
	// Minutes per N: `make bench-peer` (-run TestPeer) passes it by; it
	// runs when named, as `make bench-scale` does.
	if f := flag.Lookup("test.run"); f == nil || !strings.Contains(f.Value.String(), "TestPeerScale") {
		t.Skip("takes minutes per N; run it by name: make bench-scale (-run TestPeerScale)")
	}
	s := scaleEnv(t)
	t.Logf("command: VIGIL_SCALE_N=%s VIGIL_SCALE_WARMUP=%s VIGIL_SCALE_WINDOW=%s VIGIL_SCALE_HISTORY=%s go test -tags peerbench -run TestPeerScale -count 1 -v -timeout 90m ./agent/  (make bench-scale)",
		s.nRaw, s.warmup, s.window, s.history)
	t.Logf("machine: %d CPUs, %s/%s, %s; checks: http to a local server answering 200 \"ok\", interval 1m, timeout 5s, startup_splay 1m, max_concurrency %d",
		runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), scaleConcurrency)

	bin := buildVigil(t)
	target := testenv.OKServer(t)

	// The idle agent: no checks, a shorter warm-up (nothing to splay).
	idle := measureVigil(t, bin, target, 0, min(s.warmup, 30*time.Second), s.window)
	t.Logf("idle agent (0 checks): RSS %.1f MiB (anon %.1f, max %.1f), CPU %.2f%% of a core, GET / %.1f ms, /metrics %.1f KB",
		idle.rss, idle.anon, idle.rssMax, 100*idle.cpu/idle.window, idle.pageMS, float64(idle.metricBytes)/1024)
	// The same without the periodic MADV_PAGEOUT of the executable
	// (--no-memory.release-code-pages): whether it still earns its place.
	idleKeep := measureVigil(t, bin, target, 0, min(s.warmup, 30*time.Second), s.window, noPageout)
	pageoutLines := []string{pageoutLine("0 (idle)", idle, idleKeep)}
	var gridLines []string

	bbPid, bbAddr := startBlackbox(t)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConnsPerHost: scaleConcurrency, MaxConnsPerHost: scaleConcurrency}}

	header := "| checks | vigil RSS MiB | RssAnon MiB | RSS MiB 15 s after the pages | KB/check above idle (RSS / anon) | vigil CPU % of a core | vigil CPU ms/run | runs in window | blackbox RSS MiB | blackbox CPU ms/probe | CPU ratio vigil/blackbox | GET / ms | GET /api/v1/checks?limit=100 ms | /metrics KB |\n" +
		"|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	lines := []string{fmt.Sprintf("| 0 (idle) | %.1f | %.1f | %.1f | – | %.2f | – | – | – | – | – | %.1f | %.1f | %.1f |",
		idle.rss, idle.anon, idle.rssViewed, 100*idle.cpu/idle.window, idle.pageMS, idle.apiMS, float64(idle.metricBytes)/1024)}
	for _, n := range s.ns {
		var hist scaleRun
		if s.history > 0 {
			hist.history = filepath.Join(t.TempDir(), "history.db")
			prefillHistory(t, hist.history, n, s.history)
		}
		v := measureVigil(t, bin, target, n, s.warmup, s.window, hist)
		perRun := 1000 * v.cpu / max(v.runs, 1)
		t.Logf("N=%d vigil: RSS %.1f MiB (anon %.1f, max %.1f; %.1f after the pages), CPU %.2f s in %.1f s (%.2f%% of a core), %.0f runs (%.0f failed; expected %.0f), %.3f ms CPU per run; check duration p50 %.2f ms, p99 %.2f ms; GET / %.1f ms (%d KB), API page %.1f ms, /metrics %d KB",
			n, v.rss, v.anon, v.rssMax, v.rssViewed, v.cpu, v.window, 100*v.cpu/v.window, v.runs, v.failures,
			float64(n)*v.window/scaleInterval.Seconds(), perRun, v.durP50, v.durP99, v.pageMS, v.pageBytes/1024, v.apiMS, v.metricBytes/1024)
		t.Logf("N=%d check starts per %s of the window (from the store; even would be %.0f, per second %.1f; per second min %d, max %d):",
			n, scaleBucket, float64(n)*scaleBucket.Seconds()/scaleInterval.Seconds(), float64(n)/scaleInterval.Seconds(), v.perSecMin, v.perSecMax)
		most := 1
		for _, c := range v.buckets {
			most = max(most, c)
		}
		for i, c := range v.buckets {
			t.Logf("  +%3ds %6d %s", i*int(scaleBucket/time.Second), c, strings.Repeat("#", c*50/most))
		}

		b := measureBlackbox(t, bbPid, client, bbAddr, target, n, min(s.warmup, 15*time.Second), s.window)
		perProbe := 1000 * b.cpu / max(float64(b.probes), 1)
		t.Logf("N=%d blackbox_exporter: RSS %.1f MiB (anon %.1f), CPU %.2f s in %.1f s (%.2f%% of a core), %d probes (%d failed), %.3f ms CPU per probe; the driver started at most %s behind schedule",
			n, b.rss, b.anon, b.cpu, b.window, 100*b.cpu/b.window, b.probes, b.failures, perProbe, b.late.Round(time.Millisecond))

		line := fmt.Sprintf("| %d | %.1f | %.1f | %.1f | %.2f / %.2f | %.2f | %.3f | %.0f | %.1f | %.3f | %.2f | %.1f | %.1f | %.0f |",
			n, v.rss, v.anon, v.rssViewed, (v.rss-idle.rss)*1024/float64(n), (v.anon-idle.anon)*1024/float64(n),
			100*v.cpu/v.window, perRun, v.runs, b.rss, perProbe, perRun/perProbe, v.pageMS, v.apiMS, float64(v.metricBytes)/1024)
		lines = append(lines, line)
		t.Logf("\n%s\n%s", header, line)
		if n == s.ns[len(s.ns)-1] {
			keep := measureVigil(t, bin, target, n, s.warmup, s.window, noPageout, hist)
			pageoutLines = append(pageoutLines, pageoutLine(strconv.Itoa(n), v, keep))
			exact := measureVigil(t, bin, target, n, s.warmup, s.window, exactTimes, hist)
			gridLines = append(gridLines, gridLine(n, "1s (default)", v), gridLine(n, "0s (exact times)", exact))
		}
	}
	t.Logf("schedule_granularity on and off, each in its own run (check duration: the checks' last measured run, percentiles over the checks at the end of the window):\n%s\n%s",
		"| checks | schedule_granularity | vigil CPU ms/run | check duration p50 ms | p99 ms | RSS MiB | check starts per second min–max |\n|---:|---|---:|---:|---:|---:|---:|",
		strings.Join(gridLines, "\n"))
	t.Logf("release of the executable's pages (MADV_PAGEOUT after start-up and every 5 min) on and off, each in its own run:\n%s\n%s",
		"| checks | RSS MiB with | RSS MiB without | RssAnon with / without | RSS after the pages with / without | CPU ms/run with / without |\n|---:|---:|---:|---:|---:|---:|",
		strings.Join(pageoutLines, "\n"))
	t.Logf("for BENCHMARKS.md (window %s, warm-up %s; RSS medians of samples every %s; endpoint times median of 5 on loopback, taken after the window):\n%s\n%s",
		s.window, s.warmup, scaleBucket, header, strings.Join(lines, "\n"))
}

// TestPeerScaleSoak runs `vigil run` with VIGIL_SOAK_N http checks (default
// 10,000) for VIGIL_SOAK (default 1h), on a store holding VIGIL_SOAK_HISTORY
// of history (default none), fetching the status page, a check
// page and the API every 5 minutes, and prints RSS, anonymous memory, CPU
// per run and the store's size minute by minute: memory must not grow.
func TestPeerScaleSoak(t *testing.T) {
	if f := flag.Lookup("test.run"); f == nil || !strings.Contains(f.Value.String(), "TestPeerScaleSoak") {
		t.Skip("takes an hour; run it by name: make bench-soak (-run TestPeerScaleSoak)")
	}
	n, dur := 10000, time.Hour
	if v := os.Getenv("VIGIL_SOAK_N"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			t.Fatalf("VIGIL_SOAK_N: %q", v)
		}
	}
	if v := os.Getenv("VIGIL_SOAK"); v != "" {
		var err error
		if dur, err = time.ParseDuration(v); err != nil {
			t.Fatalf("VIGIL_SOAK: %v", err)
		}
	}
	var history time.Duration
	if v := os.Getenv("VIGIL_SOAK_HISTORY"); v != "" {
		var err error
		if history, err = time.ParseDuration(v); err != nil {
			t.Fatalf("VIGIL_SOAK_HISTORY: %v", err)
		}
	}
	bin := buildVigil(t)
	target := testenv.OKServer(t)
	cfg := writeScaleConfig(t, target, n, "")
	dir := t.TempDir()
	if history > 0 {
		prefillHistory(t, filepath.Join(dir, "vigil.db"), n, history)
	}
	addr := freeAddr(t)
	base := "http://" + addr
	cmd := exec.Command(bin, "run", "--config.file", cfg, "--web.listen-address", addr,
		"--storage.path", filepath.Join(dir, "vigil.db"), "--log.level", "warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	pid := cmd.Process.Pid
	waitReady(t, base+"/-/ready", time.Now())
	t.Logf("command: VIGIL_SOAK_N=%d VIGIL_SOAK=%s VIGIL_SOAK_HISTORY=%s go test -tags peerbench -run TestPeerScaleSoak -count 1 -v -timeout 3h ./agent/  (make bench-soak)", n, dur, history)
	t.Logf("| minute | RSS MiB | anon MiB | CPU ms/run in the minute | store MB |")
	t.Logf("|---:|---:|---:|---:|---:|")
	c0 := cpuSeconds(t, pid)
	s0, f0, _ := runsTotal(t, base)
	for m := 1; m <= int(dur/time.Minute); m++ {
		time.Sleep(time.Minute)
		if m%5 == 0 {
			for _, p := range []string{"/", "/checks/t00000", "/api/v1/checks?limit=100"} {
				timeGet(t, base+p, 1)
			}
		}
		rss, anon, _ := rssKiB(t, pid)
		c1 := cpuSeconds(t, pid)
		s1, f1, _ := runsTotal(t, base)
		var size int64
		filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if fi, err := d.Info(); err == nil {
					size += fi.Size()
				}
			}
			return nil
		})
		t.Logf("| %d | %.1f | %.1f | %.3f | %.1f |", m, rss/1024, anon/1024, 1000*(c1-c0)/max(s1+f1-s0-f0, 1), float64(size)/1e6)
		c0, s0, f0 = c1, s1, f1
	}
}

// TestPeerScaleAB runs agents side by side, this tree's and the binaries
// at VIGIL_AB_BIN (comma-separated; say, `make build` of an older commit), with VIGIL_AB_N
// http checks each (default 10,000) against one local server, each on its
// own copy of the store VIGIL_AB_STORE (default: a new prefill of
// VIGIL_SCALE_HISTORY, which the older binary must be able to open), and
// prints CPU per run and RSS over the same window (VIGIL_SCALE_WARMUP,
// VIGIL_SCALE_WINDOW). Machines differ from day to day; two agents in one
// window do not.
func TestPeerScaleAB(t *testing.T) {
	other := os.Getenv("VIGIL_AB_BIN")
	if other == "" {
		t.Skip("VIGIL_AB_BIN not set: the vigil binary to compare this tree with")
	}
	s := scaleEnv(t)
	n := testenv.PositiveInt(t, "VIGIL_AB_N", 10_000)
	t.Logf("command: VIGIL_AB_BIN=%s VIGIL_AB_N=%d VIGIL_AB_STORE=%s VIGIL_SCALE_WARMUP=%s VIGIL_SCALE_WINDOW=%s VIGIL_SCALE_HISTORY=%s go test -tags peerbench -run TestPeerScaleAB -count 1 -v -timeout 90m ./agent/",
		other, n, os.Getenv("VIGIL_AB_STORE"), s.warmup, s.window, s.history)
	var hist scaleRun
	if p := os.Getenv("VIGIL_AB_STORE"); p != "" {
		hist.history = p
	} else if s.history > 0 {
		hist.history = filepath.Join(t.TempDir(), "history.db")
		prefillHistory(t, hist.history, n, s.history)
	}
	bins := map[string]string{"this tree": buildVigil(t)}
	names := []string{"this tree"}
	for _, p := range strings.Split(other, ",") {
		bins[p] = p
		names = append(names, p)
	}
	target := testenv.OKServer(t)
	got := map[string]scaleVigil{}
	var mu sync.Mutex
	t.Run("side by side", func(t *testing.T) {
		for name, bin := range bins {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				v := measureVigil(t, bin, target, n, s.warmup, s.window, hist)
				mu.Lock()
				got[name] = v
				mu.Unlock()
			})
		}
	})
	var lines []string
	for _, name := range names {
		v := got[name]
		lines = append(lines, fmt.Sprintf("| %s | %.4f | %.0f | %.1f | %.1f | %.1f | %.1f | %.1f |", name,
			1000*v.cpu/max(v.runs, 1), v.runs, v.rss, v.anon, v.rssViewed, v.pageMS, v.apiMS))
	}
	t.Logf("window %s after %s, %d checks each:\n%s\n%s", s.window, s.warmup, n,
		"| agent | CPU ms/run | runs | RSS MiB | anon MiB | RSS after the pages | GET / ms | API page ms |\n|---|---:|---:|---:|---:|---:|---:|---:|",
		strings.Join(lines, "\n"))
}
