package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/vigil-project/vigil/internal/testenv"
	"github.com/vigil-project/vigil/probes"
)

func openStore(t testing.TB, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// rawDB opens the store's file behind its back, as another process would.
func rawDB(t testing.TB, path string, params ...string) *sql.DB {
	t.Helper()
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", dsn(abs, params...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func sample(check string, start time.Time, ok bool) Record {
	r := probes.Result{
		Success:  ok,
		Start:    start,
		Duration: 1234567 * time.Nanosecond,
		Phases:   []probes.Phase{{Name: "cpu", Duration: time.Second}, {Name: "memory", Duration: 3 * time.Millisecond}},
		Values: []probes.Value{
			{Name: "vigil_host_load1", Value: 0.5, Key: true},
			{Name: "vigil_host_filesystem_avail_bytes", Value: 1e9, Labels: []probes.Label{{Name: "mountpoint", Value: "/"}}},
		},
	}
	if !ok {
		r.Reason = probes.ReasonDiskLow
		r.Message = "disk_low: / 4.1% free < 10.0%"
		r.Diagnostics = map[string]any{"problems": []any{"disk_low: / 4.1% free < 10.0%"}}
	}
	return Record{Check: check, Type: "host", Result: r}
}

func flush(t testing.TB, s *Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// countRows counts the results in both tables: merged and still recent.
func countRows(t testing.TB, s *Store) int {
	t.Helper()
	var n int
	if err := s.r.QueryRow("SELECT (SELECT count(*) FROM check_results) + (SELECT count(*) FROM recent_results)").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// mergeAll moves every recent result into check_results.
func mergeAll(t testing.TB, s *Store) {
	t.Helper()
	if _, err := s.merge(context.Background(), false); err != nil {
		t.Fatal(err)
	}
}

// nanToMarker makes NaN values comparable with reflect.DeepEqual.
func nanToMarker(rec Record) Record {
	vals := append([]probes.Value(nil), rec.Result.Values...)
	for i := range vals {
		if math.IsNaN(vals[i].Value) {
			vals[i].Value = -424242
		}
	}
	rec.Result.Values = vals
	return rec
}

func TestOpenPragmasAndPools(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "a", "b", "vigil.db")
	s := openStore(t, path, Options{})
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database file: %v", err)
	}
	for _, tc := range []struct {
		pool         string
		pragma, want string
	}{
		{"writer", "journal_mode", "wal"},
		{"writer", "synchronous", "1"}, // NORMAL
		{"writer", "foreign_keys", "1"},
		{"writer", "busy_timeout", "5000"},
		{"writer", "journal_size_limit", "0"},
		{"writer", "wal_autocheckpoint", "10000"},
		{"writer", "cache_size", "-512"},
		{"reader", "query_only", "1"},
		{"reader", "busy_timeout", "5000"},
		{"reader", "cache_size", "-256"},
	} {
		t.Run(tc.pool+"/"+tc.pragma, func(t *testing.T) {
			db := s.w
			if tc.pool == "reader" {
				db = s.r
			}
			var got string
			if err := db.QueryRowContext(ctx, "PRAGMA "+tc.pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("%s PRAGMA %s = %s, want %s", tc.pool, tc.pragma, got, tc.want)
			}
		})
	}
	if _, err := s.r.ExecContext(ctx, "DELETE FROM check_results"); err == nil {
		t.Error("the read pool accepted a write")
	}
}

func TestPathNeedingEscapes(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "odd ?dir# 100%", "vigil?.db")
	s := openStore(t, path, Options{})
	s.Record(sample("host", time.Now(), true))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database not at the given path: %v", err)
	}
	s = openStore(t, path, Options{})
	if h, err := s.History(ctx, "host", 0); err != nil || len(h) != 1 {
		t.Fatalf("History after reopen = %d rows, %v", len(h), err)
	}
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 3, 14, 15, 9, 26, 535_897_932, time.UTC)
	full := sample("full", t0, false)
	full.Result.Diagnostics = map[string]any{
		"hops":    []any{map[string]any{"ttl": 1.0, "addr": "10.0.0.1", "rtt_ms": 0.42}, map[string]any{"ttl": 2.0, "addr": nil}},
		"partial": true,
		"count":   3.0,
		"note":    "résumé 发票 ✓",
	}
	full.Result.Reason = probes.ReasonQRMismatch
	full.Result.Message = "qr: amount 64.9 != 64.90\nsecond line, 'quotes' and \"doubles\""

	special := Record{Check: "special", Type: "http", Result: probes.Result{
		Success: true, Start: t0, Duration: time.Nanosecond,
		Values: []probes.Value{
			{Name: "vigil_nan", Value: math.NaN()},
			{Name: "vigil_pinf", Value: math.Inf(1), Key: true},
			{Name: "vigil_ninf", Value: math.Inf(-1)},
			{Name: "vigil_tiny", Value: 5e-324},
			{Name: "vigil_big", Value: math.MaxFloat64},
			{Name: "vigil_neg_zero_ok", Value: -1.5},
			{Name: "vigil_labels", Value: 7, Labels: []probes.Label{{Name: "a", Value: "1"}, {Name: "b", Value: ""}}},
		},
	}}
	unserialisable := Record{Check: "baddiag", Type: "icmp", Result: probes.Result{
		Start: t0, Reason: probes.ReasonTimeout, Diagnostics: map[string]any{"rtt": math.NaN()},
	}}

	tests := []struct {
		name string
		in   Record
		want Record // zero: same as in
	}{
		{name: "every field", in: full},
		{name: "minimal success", in: Record{Check: "min", Type: "tcp", Result: probes.Result{Success: true, Start: t0}}},
		{name: "empty slices come back nil", in: Record{Check: "empty", Type: "tcp", Result: probes.Result{
			Start: t0, Phases: []probes.Phase{}, Values: []probes.Value{}, Diagnostics: map[string]any{},
		}}, want: Record{Check: "empty", Type: "tcp", Result: probes.Result{Start: t0}}},
		{name: "NaN and Inf values", in: special},
		{name: "unserialisable diagnostics keep the row", in: unserialisable, want: Record{Check: "baddiag", Type: "icmp", Result: probes.Result{
			Start: t0, Reason: probes.ReasonTimeout,
			Diagnostics: map[string]any{"store_error": "diagnostics not stored: json: unsupported value: NaN"},
		}}},
		{name: "long duration", in: Record{Check: "long", Type: "host", Result: probes.Result{Start: t0, Duration: 90*time.Minute + 7}}},
	}
	s := openStore(t, filepath.Join(t.TempDir(), "vigil.db"), Options{})
	for _, tc := range tests {
		s.Record(tc.in)
	}
	flush(t, s)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.want
			if want.Check == "" {
				want = tc.in
			}
			h, err := s.History(ctx, tc.in.Check, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(h) != 1 {
				t.Fatalf("got %d records, want 1", len(h))
			}
			got := h[0]
			if wantStart := want.Result.Start.Truncate(time.Millisecond); !got.Result.Start.Equal(wantStart) {
				t.Errorf("Start = %v, want %v (to the millisecond)", got.Result.Start, wantStart)
			}
			got.Result.Start = want.Result.Start
			if !reflect.DeepEqual(nanToMarker(got), nanToMarker(want)) {
				t.Errorf("round trip changed the record:\n got %#v\nwant %#v", got, want)
			}
		})
	}
	if s.Written() != uint64(len(tests)) || s.Dropped() != 0 {
		t.Errorf("Written = %d, Dropped = %d; want %d, 0", s.Written(), s.Dropped(), len(tests))
	}
}

func TestRecordCopiesResult(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, filepath.Join(t.TempDir(), "vigil.db"), Options{})
	rec := sample("host", time.Now(), false)
	s.Record(rec)
	// The scheduler may reuse its buffers once Record returns.
	rec.Result.Values[0].Value = 99
	rec.Result.Diagnostics["problems"] = "changed"
	flush(t, s)
	h, err := s.History(ctx, "host", 1)
	if err != nil {
		t.Fatal(err)
	}
	if h[0].Result.Values[0].Value != 0.5 || h[0].Result.Diagnostics["problems"] == "changed" {
		t.Errorf("stored record saw a later change by the caller: %+v", h[0].Result)
	}
}

func TestHistoryOrderAndLimit(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, filepath.Join(t.TempDir(), "vigil.db"), Options{})
	t0 := time.UnixMilli(1_700_000_000_000)
	// Recorded out of order; two share a start time and then the later
	// insert counts as newer.
	for _, off := range []int{3, 1, 5, 2, 5, 4} {
		r := sample("host", t0.Add(time.Duration(off)*time.Second), true)
		r.Result.Message = fmt.Sprint(off)
		s.Record(r)
	}
	s.Record(sample("other", t0.Add(time.Hour), true))
	flush(t, s)

	tests := []struct {
		limit int
		want  []string
	}{
		{limit: 0, want: []string{"5", "5", "4", "3", "2", "1"}},
		{limit: -1, want: []string{"5", "5", "4", "3", "2", "1"}},
		{limit: 2, want: []string{"5", "5"}},
		{limit: 4, want: []string{"5", "5", "4", "3"}},
		{limit: 100, want: []string{"5", "5", "4", "3", "2", "1"}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint("limit=", tc.limit), func(t *testing.T) {
			h, err := s.History(ctx, "host", tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for i, r := range h {
				got = append(got, r.Result.Message)
				if i > 0 && r.Result.Start.After(h[i-1].Result.Start) {
					t.Errorf("record %d is newer than record %d", i, i-1)
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("messages = %v, want %v", got, tc.want)
			}
		})
	}
	if h, err := s.History(ctx, "missing", 10); err != nil || len(h) != 0 {
		t.Errorf("History(missing) = %v, %v; want empty", h, err)
	}
}

func TestLatest(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, filepath.Join(t.TempDir(), "vigil.db"), Options{})
	if got, err := s.Latest(ctx); err != nil || len(got) != 0 {
		t.Fatalf("Latest on an empty store = %v, %v", got, err)
	}
	t0 := time.UnixMilli(1_700_000_000_000)
	in := []struct {
		check string
		off   time.Duration
		msg   string
	}{
		{"a", 1 * time.Second, "a old"},
		{"a", 3 * time.Second, "a newest"},
		{"a", 2 * time.Second, "a recorded last but older"},
		{"b", 0, "b only"},
		{"", 0, "empty name"},
		{"c", 5 * time.Second, "c tie first"},
		{"c", 5 * time.Second, "c tie second"},
	}
	for _, r := range in {
		rec := sample(r.check, t0.Add(r.off), true)
		rec.Result.Message = r.msg
		s.Record(rec)
	}
	flush(t, s)
	got, err := s.Latest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "a newest", "b": "b only", "": "empty name", "c": "c tie second"}
	if len(got) != len(want) {
		t.Errorf("Latest returned %d checks, want %d: %v", len(got), len(want), got)
	}
	for check, msg := range want {
		if got[check].Result.Message != msg || got[check].Check != check {
			t.Errorf("Latest[%q] = %q, want %q", check, got[check].Result.Message, msg)
		}
	}
}

func TestPrune(t *testing.T) {
	ctx := context.Background()
	now := time.UnixMilli(time.Now().UnixMilli())
	cutoff := now.Add(-7 * 24 * time.Hour)
	tests := []struct {
		name  string
		chunk int
		old   int
	}{
		{name: "one chunk", chunk: pruneChunk, old: 10},
		{name: "many chunks", chunk: 3, old: 10},
		{name: "exact multiple of chunk", chunk: 5, old: 10},
		{name: "nothing old", chunk: 3, old: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, filepath.Join(t.TempDir(), "vigil.db"), Options{})
			s.pruneChunk = tc.chunk
			for i := range tc.old {
				s.Record(sample("host", cutoff.Add(-time.Duration(i+1)*time.Minute), false))
			}
			keep := []time.Time{cutoff, cutoff.Add(time.Millisecond), now}
			for _, at := range keep {
				s.Record(sample("host", at, true))
			}
			flush(t, s)
			n, err := s.Prune(ctx, cutoff)
			if err != nil {
				t.Fatal(err)
			}
			if n != int64(tc.old) {
				t.Errorf("Prune deleted %d rows, want %d", n, tc.old)
			}
			assertCounts(t, s)
			h, err := s.History(ctx, "host", 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(h) != len(keep) {
				t.Fatalf("%d rows left, want %d", len(h), len(keep))
			}
			for _, r := range h {
				if r.Result.Start.Before(cutoff) {
					t.Errorf("row from %v survived a prune before %v", r.Result.Start, cutoff)
				}
			}
		})
	}
}

func TestRetentionLoop(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "vigil.db")
	s := openStore(t, path, Options{})
	s.Record(sample("host", time.Now().Add(-48*time.Hour), true))
	s.Record(sample("host", time.Now(), true))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, path, Options{Retention: 24 * time.Hour, PruneInterval: 50 * time.Millisecond})
	testenv.Eventually(t, 10*time.Second, "the start-up prune", func() bool { return countRows(t, s) == 1 })

	// And again on the interval, for rows that age out while running.
	s.Record(sample("host", time.Now().Add(-25*time.Hour), true))
	flush(t, s)
	testenv.Eventually(t, 10*time.Second, "a periodic prune", func() bool { return countRows(t, s) == 1 })
	if h, err := s.History(ctx, "host", 0); err != nil || len(h) != 1 || time.Since(h[0].Result.Start) > time.Hour {
		t.Errorf("History after prune = %+v, %v", h, err)
	}
}

// TestDropWhenQueueFull stalls the writer behind another connection's write
// lock and checks that Record gives up after EnqueueTimeout instead of
// blocking the scheduler, and that drops are counted exactly.
func TestDropWhenQueueFull(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "vigil.db")
	s := openStore(t, path, Options{QueueSize: 1, EnqueueTimeout: 20 * time.Millisecond})

	other := rawDB(t, path, "_txlock=immediate", "_pragma=busy_timeout(5000)")
	lock, err := other.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Record(sample("host", time.Now(), true))
	// Once the writer has taken the flush request it is committing, and
	// waiting on the lock, until the lock goes away.
	flushed := make(chan error, 1)
	s.flushReq <- flushed

	const more = 4
	start := time.Now()
	for range more {
		s.Record(sample("host", time.Now(), true))
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Record blocked for %v with a stalled writer", took)
	}
	// The writer holds at most one of them and the queue one more.
	if d := s.Dropped(); d < more-2 {
		t.Errorf("Dropped = %d, want at least %d", d, more-2)
	}
	if err := lock.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := <-flushed; err != nil {
		t.Fatalf("write after the lock was released: %v", err)
	}
	flush(t, s)
	if w, d := s.Written(), s.Dropped(); w+d != 1+more {
		t.Errorf("Written %d + Dropped %d != %d recorded", w, d, 1+more)
	}
	if n := countRows(t, s); uint64(n) != s.Written() {
		t.Errorf("%d rows in the table, Written = %d", n, s.Written())
	}
}

// TestReadersDoNotWaitForWriter holds the write lock with an uncommitted
// insert; reads must still answer at once, without seeing it.
func TestReadersDoNotWaitForWriter(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, filepath.Join(t.TempDir(), "vigil.db"), Options{})
	s.Record(sample("host", time.Now(), true))
	flush(t, s)

	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO check_results (check_id, started_at, seq, n, duration_ns, success, shape_id)
		SELECT id, 1, 0, 2, 1, 1, (SELECT min(id) FROM result_shapes) FROM checks WHERE name = 'host'`); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	h, err := s.History(rctx, "host", 0)
	if err != nil {
		t.Fatalf("History while a write is open: %v", err)
	}
	if len(h) != 1 {
		t.Errorf("History saw %d rows, want the 1 committed", len(h))
	}
	if _, err := s.Latest(rctx); err != nil {
		t.Fatalf("Latest while a write is open: %v", err)
	}
}

func TestCloseFlushesAndAfterwards(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "vigil.db")
	s := openStore(t, path, Options{Retention: time.Hour})
	const n = 600 // more than one batch
	for range n {
		s.Record(sample("host", time.Now(), true))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s.Written() != n {
		t.Errorf("Written = %d after Close, want %d", s.Written(), n)
	}
	s.Record(sample("host", time.Now(), true))
	if s.Dropped() != 1 {
		t.Errorf("Dropped = %d after a Record on a closed store, want 1", s.Dropped())
	}
	if err := s.Flush(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Flush after Close = %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	s = openStore(t, path, Options{})
	if c := countRows(t, s); c != n {
		t.Errorf("%d rows after reopen, want %d", c, n)
	}
	// Close checkpoints the WAL into the main file and removes it.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + "-wal"); !os.IsNotExist(err) {
		t.Errorf("WAL file left after Close: %v", err)
	}
}

func TestFlushContext(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "vigil.db"), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Flush(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Flush with a cancelled context = %v", err)
	}
}

func TestConcurrentRecordAndRead(t *testing.T) {
	ctx := context.Background()
	// Eight goroutines recording flat out, under -race, can keep the queue
	// full past the default EnqueueTimeout; that drop path has its own test,
	// and this one is about losing nothing to a race.
	s := openStore(t, filepath.Join(t.TempDir(), "vigil.db"), Options{EnqueueTimeout: time.Minute})
	const writers, each = 8, 250
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range each {
				s.Record(sample(fmt.Sprintf("c%d", g), time.Now(), i%2 == 0))
			}
		})
	}
	done := make(chan struct{})
	var readers sync.WaitGroup
	for g := range 3 {
		readers.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				var err error
				switch g {
				case 0:
					_, err = s.History(ctx, "c1", 20)
				case 1:
					_, err = s.Latest(ctx)
				case 2:
					err = s.Flush(ctx)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(done)
	readers.Wait()
	flush(t, s)
	if s.Written() != writers*each || s.Dropped() != 0 {
		t.Errorf("Written = %d, Dropped = %d; want %d, 0", s.Written(), s.Dropped(), writers*each)
	}
	latest, err := s.Latest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(latest) != writers {
		t.Errorf("Latest has %d checks, want %d", len(latest), writers)
	}
	for g := range writers {
		h, err := s.History(ctx, fmt.Sprintf("c%d", g), 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(h) != each {
			t.Errorf("c%d: %d rows, want %d", g, len(h), each)
		}
	}
}

// BenchmarkRecord measures sustained throughput: records per second
// committed to disk, the final Flush included.
func BenchmarkRecord(b *testing.B) {
	s := openStore(b, filepath.Join(b.TempDir(), "vigil.db"), Options{})
	rec := sample("host", time.Now(), false)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		s.Record(rec)
	}
	flush(b, s)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	if d := s.Dropped(); d > 0 {
		b.Fatalf("%d records dropped", d)
	}
}

// BenchmarkHistory measures the API's read: the last 100 results of one
// check among 20 checks.
func BenchmarkHistory(b *testing.B) {
	ctx := context.Background()
	s := openStore(b, filepath.Join(b.TempDir(), "vigil.db"), Options{})
	t0 := time.Now()
	for i := range 20_000 {
		s.Record(sample(fmt.Sprintf("c%d", i%20), t0.Add(time.Duration(i)*time.Second), i%7 != 0))
	}
	flush(b, s)
	b.ReportAllocs()
	for b.Loop() {
		h, err := s.History(ctx, "c3", 100)
		if err != nil || len(h) != 100 {
			b.Fatalf("History = %d rows, %v", len(h), err)
		}
	}
}

// BenchmarkSummariesPage measures what one /api/v1/checks page reads:
// the last 20 runs of each of 100 checks among 5,000.
func BenchmarkSummariesPage(b *testing.B) {
	ctx := context.Background()
	s := openStore(b, filepath.Join(b.TempDir(), "vigil.db"), Options{})
	t0 := time.Now()
	for i := range 100_000 {
		s.Record(sample(fmt.Sprintf("c%04d", i%5000), t0.Add(time.Duration(i)*time.Millisecond), i%7 != 0))
	}
	flush(b, s)
	b.ReportAllocs()
	page := make([]string, 100)
	for c := range page {
		page[c] = fmt.Sprintf("c%04d", 2000+c)
	}
	b.Run("one query each", func(b *testing.B) {
		for b.Loop() {
			for _, c := range page {
				if h, err := s.Summaries(ctx, c, 20); err != nil || len(h) != 20 {
					b.Fatalf("Summaries = %d rows, %v", len(h), err)
				}
			}
		}
	})
	b.Run("SummariesOf", func(b *testing.B) {
		for b.Loop() {
			hs, err := s.SummariesOf(ctx, page, 20)
			if err != nil || len(hs) != 100 || len(hs[page[99]]) != 20 {
				b.Fatalf("SummariesOf = %d checks, %v", len(hs), err)
			}
		}
	})
}

func TestRunbookJournal(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "v.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.UnixMilli(time.Now().UnixMilli())
	if err := s.CreateRun(ctx, RunRow{ID: "r1", Runbook: "invoice-failover", Target: "e-invoice", Trigger: "alert InvoiceQRFailing", Labels: `{"a":"b"}`,
		Mode: "enforce", State: "running", CreatedAt: now}, RunEvent{At: now, Kind: "created"}); err != nil {
		t.Fatal(err)
	}
	s.AddRunEvent(ctx, "r1", RunEvent{At: now, Kind: "step_start", Phase: "step", Step: 0, Name: "switch", Attempt: 1, Detail: `{"url":"x"}`})
	s.UpdateRun(ctx, "r1", "succeeded", "", 7, now.Add(time.Second), &RunEvent{At: now.Add(time.Second), Kind: "finished", Took: 1500 * time.Millisecond})
	r, evs, err := s.Run(ctx, "r1")
	if err != nil || r.State != "succeeded" || r.Fencing != 7 || !r.FinishedAt.Equal(now.Add(time.Second)) || len(evs) != 3 ||
		evs[1].Seq != 2 || evs[1].Name != "switch" || evs[2].Took != 1500*time.Millisecond {
		t.Fatalf("run %+v events %+v err %v", r, evs, err)
	}
	if _, _, err := s.Run(ctx, "nope"); !errors.Is(err, ErrNoRun) {
		t.Errorf("unknown run: %v", err)
	}
	if runs, _ := s.Runs(ctx, 10, "running"); len(runs) != 0 {
		t.Errorf("running runs: %+v", runs)
	}
	if runs, _ := s.Runs(ctx, 10); len(runs) != 1 {
		t.Errorf("runs: %+v", runs)
	}
	s.RunbookStatePut(ctx, "cooldown/x", "2026")
	if v, ok, _ := s.RunbookStateGet(ctx, "cooldown/x"); !ok || v != "2026" {
		t.Errorf("state %q %v", v, ok)
	}
	s.RunbookStatePut(ctx, "cooldown/x", "")
	if _, ok, _ := s.RunbookStateGet(ctx, "cooldown/x"); ok {
		t.Error("state not deleted")
	}
}

// TestSummariesOf: the batched read answers each check as Summaries does,
// and a check without runs with none.
func TestSummariesOf(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, filepath.Join(t.TempDir(), "vigil.db"), Options{})
	t0 := time.Now()
	for i := range 30 {
		s.Record(sample(fmt.Sprintf("c%d", i%3), t0.Add(time.Duration(i)*time.Second), i%4 != 0))
	}
	flush(t, s)
	names := []string{"c0", "c2", "never-ran"}
	got, err := s.SummariesOf(ctx, names, 5)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		want, err := s.Summaries(ctx, name, 5)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got[name], want) {
			t.Errorf("%s: SummariesOf %v, Summaries %v", name, got[name], want)
		}
	}
	if len(got["c0"]) != 5 || len(got["never-ran"]) != 0 {
		t.Errorf("c0 %d runs (want 5), never-ran %d (want 0)", len(got["c0"]), len(got["never-ran"]))
	}
}
