//go:build peerbench

package store

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-project/vigil/internal/testenv"
	"github.com/vigil-project/vigil/probes"
)

// TestPeerStoreScale is issue 21's store target: N HTTP checks every minute
// for D days of history (VIGIL_STORE_CHECKS, default 10000;
// VIGIL_STORE_DAYS, default 7; VIGIL_STORE_DIR for the file, default a
// temporary directory). It
//
//  1. fills D days with synthetic HTTP results (phases, values, an
//     occasional failure) through the writer's insert path, minute by
//     minute across all checks as an agent writes them, in transactions
//     of fillBatch rows to get there in minutes instead of days;
//  2. reports rows and bytes per check per day and the file size
//     (database and WAL);
//  3. records live results at the agent's rate (N per minute) through
//     Record, flushing every 250 ms, and measures Record+commit latency
//     per flush: first for 60 s without a sweep, then while the retention sweep
//     deletes the oldest day; it reports p50/p99/max of both, how long
//     each of the sweep's transactions held the write lock, and the
//     status page's history read (Summaries, 30 runs) meanwhile;
//  4. fills one more day (VIGIL_STORE_STEADY=0 skips it) and reports the
//     size again: the swept day's pages are reused, so the file stays at
//     D days plus what one sweep interval adds; then measures as in 3 the
//     hourly sweep the agent runs from then on (20 s baseline).
func TestPeerStoreScale(t *testing.T) {
	checks := testenv.PositiveInt(t, "VIGIL_STORE_CHECKS", 10_000)
	days := testenv.PositiveInt(t, "VIGIL_STORE_DAYS", 7)
	dir := os.Getenv("VIGIL_STORE_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	path := filepath.Join(dir, "vigil.db")
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		os.Remove(p)
	}
	defer func() {
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			os.Remove(p)
		}
	}()
	s := openStore(t, path, Options{})
	g := newHTTPGen(checks)
	// Whole days in the past, so that "now" and the live writes come after
	// the filled history, as on an agent that has run for D days.
	base := time.Now().Truncate(time.Minute).Add(-time.Duration(days) * 24 * time.Hour)

	t.Logf("filling %d checks x %d days at 1/min = %d rows", checks, days, checks*days*1440)
	fillStart := time.Now()
	g.fill(t, s, base, days*1440)
	t.Logf("fill took %v (%.0f rows/s)", time.Since(fillStart).Round(time.Second),
		float64(checks*days*1440)/time.Since(fillStart).Seconds())
	sz := measure(t, s, path)
	t.Logf("after %d days: %s", days, sz)
	rows := float64(sz.rows)
	t.Logf("per check per day: %.0f rows, %.0f bytes (%.1f bytes per row incl. indexes and free space)",
		rows/float64(checks)/float64(days), float64(sz.dbBytes)/float64(checks)/float64(days), float64(sz.dbBytes)/rows)

	// Live writes: the agent's rate, flushed every 250 ms.
	live := &liveWriter{s: s, g: g, at: base.Add(time.Duration(days) * 24 * time.Hour), perTick: max(1, checks/240)}
	sweepUnderLoad(t, s, live, checks, "the oldest day", base.Add(24*time.Hour), time.Minute)
	t.Logf("after the sweep: %s", measure(t, s, path))

	if os.Getenv("VIGIL_STORE_STEADY") != "0" {
		// The live writer used the first minutes of the next day.
		from := live.at.Add(time.Minute).Truncate(time.Minute)
		end := base.Add(time.Duration(days+1) * 24 * time.Hour)
		g.fill(t, s, from, int(end.Sub(from)/time.Minute))
		t.Logf("after one more day (days 2..%d kept): %s", days+1, measure(t, s, path))
		// What the agent does every hour from now on.
		live.at = end
		sweepUnderLoad(t, s, live, checks, "an hour", base.Add(25*time.Hour), 20*time.Second)
	}
}

// sweepUnderLoad records live results for baseline, then sweeps up to
// cutoff while they go on, and reports both windows.
func sweepUnderLoad(t *testing.T, s *Store, live *liveWriter, checks int, what string, cutoff time.Time, baseline time.Duration) {
	t.Helper()
	ctx := context.Background()
	reads := &liveReader{s: s, checks: checks}
	lctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { live.run(lctx) })
	wg.Go(func() { reads.run(lctx) })

	time.Sleep(baseline) // the baseline window: live writes, no sweep
	quiet := live.take()
	quietReads := reads.take()

	sweepStart := time.Now()
	st, err := s.prune(ctx, cutoff)
	sweepTook := time.Since(sweepStart)
	during := live.take()
	duringReads := reads.take()
	stop()
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}

	t.Logf("sweep of %s: %d rows deleted in %v (%.0f rows/s), %d transactions",
		what, st.rows, sweepTook.Round(time.Millisecond), float64(st.rows)/sweepTook.Seconds(), len(st.holds))
	t.Logf("  write-lock hold per transaction: %s; longest: %s", dist(st.holds), longestHolds(st.holds, 5))
	t.Logf("  Record+commit per 250 ms flush (%d results each), no sweep:     %s", live.perTick, dist(quiet))
	t.Logf("  Record+commit per 250 ms flush (%d results each), during sweep: %s", live.perTick, dist(during))
	t.Logf("  Summaries(30) of a random check, no sweep:     %s", dist(quietReads))
	t.Logf("  Summaries(30) of a random check, during sweep: %s", dist(duringReads))
	if d := s.Dropped(); d > 0 {
		t.Errorf("%d live records dropped", d)
	}
}

// httpGen makes results that look like the http probe's against HTTPS
// targets: five phases, the status, size, version, redirect, TLS version
// and certificate expiry values, and about one failure in 200 (timeouts
// and 503s, with the probe's messages).
type httpGen struct {
	n      int
	names  []string
	bytes  []float64 // response size per check
	expiry []float64 // certificate expiry per check
	rng    *rand.Rand
}

func newHTTPGen(n int) *httpGen {
	g := &httpGen{n: n, rng: rand.New(rand.NewPCG(21, 7))}
	for i := range n {
		g.names = append(g.names, fmt.Sprintf("tenant-%05d-issuer-gateway", i))
		g.bytes = append(g.bytes, float64(200+g.rng.IntN(20_000)))
		g.expiry = append(g.expiry, float64(1_790_000_000+g.rng.IntN(90*86400)))
	}
	return g
}

// ms draws a duration around median m, log-normally.
func (g *httpGen) ms(m float64) time.Duration {
	return time.Duration(m * math.Exp(g.rng.NormFloat64()*0.5) * float64(time.Millisecond))
}

// result is check c's run of the minute starting at minute: each check
// has its own offset into the minute, as the scheduler's splay gives it.
func (g *httpGen) result(c int, minute time.Time) Record {
	start := minute.Add(time.Duration(c) * time.Minute / time.Duration(g.n)).Add(time.Duration(g.rng.IntN(50)) * time.Millisecond)
	r := probes.Result{Start: start, Success: true}
	r.Phases = []probes.Phase{
		{Name: "dns", Duration: g.ms(0.4)},
		{Name: "connect", Duration: g.ms(1.5)},
		{Name: "tls", Duration: g.ms(6)},
		{Name: "first_byte", Duration: g.ms(25)},
		{Name: "transfer", Duration: g.ms(0.8)},
	}
	status := 200.0
	switch x := g.rng.IntN(400); {
	case x == 0:
		r.Success, r.Reason = false, probes.ReasonTimeout
		r.Message = fmt.Sprintf("GET https://%s.example.net/health: context deadline exceeded", g.names[c])
		r.Phases = r.Phases[:4]
		r.Phases[3].Duration = 10 * time.Second
	case x == 1:
		r.Success, r.Reason, status = false, probes.ReasonStatusMismatch, 503
		r.Message = "status 503, want 200-299"
	}
	for _, p := range r.Phases {
		r.Duration += p.Duration
	}
	r.Duration += 50 * time.Microsecond
	if r.Reason != probes.ReasonTimeout {
		r.AddKeyValue("vigil_http_status_code", status)
		r.AddValue("vigil_http_response_bytes", g.bytes[c])
		r.AddValue("vigil_http_version", 1.1)
		r.AddValue("vigil_http_redirects", 0)
		r.AddValue("vigil_tls_version_info", 1, probes.Label{Name: "version", Value: "TLS 1.3"})
		r.AddKeyValue("vigil_tls_cert_expiry_timestamp_seconds", g.expiry[c])
	}
	return Record{Check: g.names[c], Type: "http", Result: r}
}

// fillBatch rows are written per transaction while filling: ten minutes of
// 10,000 checks. Each check's newest leaf page then goes to the WAL once
// per ten results instead of once per result, which makes the fill
// minutes faster; the pages end up the same, as rows arrive in the same
// order.
const fillBatch = 100_000

// fill writes minutes minutes of every check's runs from start on,
// minute by minute, through the writer's insert.
func (g *httpGen) fill(t *testing.T, s *Store, start time.Time, minutes int) {
	t.Helper()
	// A larger page cache only while filling: it makes the fill faster,
	// not the file different.
	if _, err := s.w.Exec("PRAGMA cache_size = -262144"); err != nil {
		t.Fatal(err)
	}
	defer s.w.Exec(fmt.Sprintf("PRAGMA cache_size = -%d", writerCacheKiB)) //nolint:errcheck // best effort
	batch := make([]row, 0, fillBatch)
	last := time.Now()
	for m := range minutes {
		minute := start.Add(time.Duration(m) * time.Minute)
		for c := range g.n {
			batch = append(batch, encode(g.result(c, minute)))
			if len(batch) == fillBatch {
				if err := s.insert(batch); err != nil {
					t.Fatal(err)
				}
				batch = batch[:0]
				// As the writer would: the history is laid out by merges.
				if s.recent.rows.Load() >= s.mergeRows {
					mergeAll(t, s)
				}
			}
		}
		if (m+1)%1440 == 0 || time.Since(last) > 5*time.Minute {
			t.Logf("  filled %d of %d minutes", m+1, minutes)
			last = time.Now()
		}
	}
	if err := s.insert(batch); err != nil {
		t.Fatal(err)
	}
	mergeAll(t, s)
}

type sizes struct {
	rows                       int64
	dbBytes, walBytes          int64
	pageSize, pages, freePages int64
	objects                    string
}

func (z sizes) String() string {
	return fmt.Sprintf("%d rows; file %.1f MiB + WAL %.1f MiB; %d pages of %d B, %d free (%.1f MiB); %s",
		z.rows, mib(z.dbBytes), mib(z.walBytes), z.pages, z.pageSize, z.freePages, mib(z.freePages*z.pageSize), z.objects)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func measure(t *testing.T, s *Store, path string) sizes {
	t.Helper()
	var z sizes
	for q, dst := range map[string]*int64{
		"SELECT (SELECT count(*) FROM check_results) + (SELECT count(*) FROM recent_results)": &z.rows,
		"PRAGMA page_size":      &z.pageSize,
		"PRAGMA page_count":     &z.pages,
		"PRAGMA freelist_count": &z.freePages,
	} {
		if err := s.w.QueryRow(q).Scan(dst); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// dbstat splits the pages by table and index where the driver has it.
	if rows, err := s.w.Query("SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC LIMIT 4"); err == nil {
		for rows.Next() {
			var name string
			var b int64
			if rows.Scan(&name, &b) == nil {
				z.objects += fmt.Sprintf("%s %.1f MiB, ", name, mib(b))
			}
		}
		rows.Close()
	}
	if fi, err := os.Stat(path); err == nil {
		z.dbBytes = fi.Size()
	}
	if fi, err := os.Stat(path + "-wal"); err == nil {
		z.walBytes = fi.Size()
	}
	return z
}

// liveWriter records perTick results every 250 ms and flushes; each
// sample is the time from the first Record to the end of the Flush.
type liveWriter struct {
	s       *Store
	g       *httpGen
	perTick int

	mu  sync.Mutex
	lat []time.Duration
	at  time.Time // synthetic start of the next result
	c   int
}

func (l *liveWriter) run(ctx context.Context) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		t0 := time.Now()
		l.mu.Lock()
		for range l.perTick {
			rec := l.g.result(l.c, l.at.Truncate(time.Minute))
			l.s.Record(rec)
			l.c = (l.c + 1) % l.g.n
			l.at = l.at.Add(time.Minute / time.Duration(l.g.n))
		}
		l.mu.Unlock()
		if err := l.s.Flush(ctx); err != nil {
			return
		}
		l.mu.Lock()
		l.lat = append(l.lat, time.Since(t0))
		l.mu.Unlock()
	}
}

func (l *liveWriter) take() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.lat
	l.lat = nil
	return out
}

// liveReader reads one check's last 30 runs every 50 ms, as the status
// page's sparklines do.
type liveReader struct {
	s      *Store
	checks int

	mu  sync.Mutex
	lat []time.Duration
}

func (r *liveReader) run(ctx context.Context) {
	rng := rand.New(rand.NewPCG(3, 4))
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		t0 := time.Now()
		name := fmt.Sprintf("tenant-%05d-issuer-gateway", rng.IntN(r.checks))
		if _, err := r.s.Summaries(ctx, name, 30); err != nil {
			return
		}
		r.mu.Lock()
		r.lat = append(r.lat, time.Since(t0))
		r.mu.Unlock()
	}
}

func (r *liveReader) take() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.lat
	r.lat = nil
	return out
}

func dist(d []time.Duration) string {
	if len(d) == 0 {
		return "no samples"
	}
	d = slices.Clone(d)
	slices.Sort(d)
	q := func(p float64) time.Duration { return d[min(len(d)-1, int(p*float64(len(d))))] }
	return fmt.Sprintf("n=%d p50 %v p99 %v max %v", len(d),
		q(0.50).Round(10*time.Microsecond), q(0.99).Round(10*time.Microsecond), d[len(d)-1].Round(10*time.Microsecond))
}

// longestHolds lists the n longest holds with their transaction's number.
func longestHolds(d []time.Duration, n int) string {
	idx := make([]int, len(d))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(d[b], d[a]) })
	var out []string
	for _, i := range idx[:min(n, len(idx))] {
		out = append(out, fmt.Sprintf("#%d %v", i, d[i].Round(100*time.Microsecond)))
	}
	return strings.Join(out, ", ")
}

// TestPeerStoreInsertCost is what the history writer costs per run as the
// history grows: for each of VIGIL_STORE_HOURS (comma-separated, default
// 0,1,6) it fills that many hours of VIGIL_STORE_CHECKS (default 10,000)
// checks at one run a minute, then writes three more minutes as the agent
// does (a commit of 33 results every 200 ms at 10,000 checks, the
// checkpointer's check after each) and reports this process's CPU per
// result, the synthetic results' making and encoding included.
//
// Rows are clustered by check, so once a check's rows fill a leaf page,
// each new run writes a page of its own to the WAL, which the checkpoint
// copies again; with more pages than the writer's cache holds, the insert
// reads its pages back from disk as well.
func TestPeerStoreInsertCost(t *testing.T) {
	checks := testenv.PositiveInt(t, "VIGIL_STORE_CHECKS", 10_000)
	spec := cmp.Or(os.Getenv("VIGIL_STORE_HOURS"), "0,1,6")
	perCommit := max(1, checks/300) // 200 ms of runs spread over a minute
	for f := range strings.SplitSeq(spec, ",") {
		var hours float64
		if _, err := fmt.Sscan(strings.TrimSpace(f), &hours); err != nil || hours < 0 {
			t.Fatalf("VIGIL_STORE_HOURS: %q is not a number of hours", f)
		}
		path := filepath.Join(t.TempDir(), "vigil.db")
		s := openStore(t, path, Options{})
		// Merge settings to compare, by hand.
		s.mergeRows = int64(testenv.PositiveInt(t, "VIGIL_STORE_MERGE_ROWS", int(s.mergeRows)))
		s.mergeChunk = testenv.PositiveInt(t, "VIGIL_STORE_MERGE_CHUNK", s.mergeChunk)
		g := newHTTPGen(checks)
		minutes := int(hours * 60)
		start := time.Now().Add(-time.Duration(minutes+10) * time.Minute).Truncate(time.Minute)
		g.fill(t, s, start, minutes)
		s.checkpoint(t.Context())
		// The minutes one merge covers at this many checks (five at
		// 10,000), and that merge: the writer's cost per result amortized.
		measured := max(1, int(s.mergeRows)/checks)
		if p := os.Getenv("VIGIL_STORE_PROFILE"); p != "" {
			f, err := os.Create(fmt.Sprintf("%s.%g", p, hours))
			if err != nil {
				t.Fatal(err)
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				t.Fatal(err)
			}
		}
		c0 := processCPU(t)
		batch := make([]row, 0, perCommit)
		rows := 0
		for m := range measured {
			minute := start.Add(time.Duration(minutes+m) * time.Minute)
			for c := range checks {
				batch = append(batch, encode(g.result(c, minute)))
				if len(batch) == perCommit || c == checks-1 {
					if err := s.insert(batch); err != nil {
						t.Fatal(err)
					}
					rows += len(batch)
					batch = batch[:0]
					s.checkpoint(t.Context())
				}
			}
		}
		mst, err := s.merge(t.Context(), false)
		if err != nil {
			t.Fatal(err)
		}
		s.checkpoint(t.Context())
		cpu := processCPU(t) - c0
		pprof.StopCPUProfile()
		z := measure(t, s, path)
		t.Logf("%d checks, %g hours of history (%s): %d results in commits of %d, %.1f µs of CPU per result",
			checks, hours, z, rows, perCommit, float64(cpu.Microseconds())/float64(rows))
		slices.Sort(mst.holds)
		t.Logf("  the merge: %d rows in %d transactions holding the write lock for median %s, longest %s",
			mst.rows, len(mst.holds), mst.holds[len(mst.holds)/2].Round(time.Millisecond), longest(mst.holds).Round(time.Millisecond))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// processCPU is this process's user and system CPU time so far.
func processCPU(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
