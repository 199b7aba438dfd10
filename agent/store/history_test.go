package store

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/probes"
)

func TestValueEncoding(t *testing.T) {
	tests := []struct {
		v     float64
		bytes int
	}{
		{0, 1}, {1, 1}, {-1, 1}, {200, 2}, {503, 2}, {-4096, 2},
		{1_790_000_000, 5}, {1 << 53, 8}, {-(1 << 53), 8},
		{1<<53 + 2, 9}, {1.1, 9}, {0.5, 9}, {math.Copysign(0, -1), 9},
		{math.NaN(), 9}, {math.Inf(1), 9}, {math.Inf(-1), 9},
		{math.MaxFloat64, 9}, {5e-324, 9}, {-1e300, 9},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.v), func(t *testing.T) {
			b := appendValue(nil, tc.v)
			if len(b) != tc.bytes {
				t.Errorf("encoded in %d bytes, want %d", len(b), tc.bytes)
			}
			got, rest, err := readValue(append(b, 0x7f))
			if err != nil {
				t.Fatal(err)
			}
			if math.Float64bits(got) != math.Float64bits(tc.v) {
				t.Errorf("read back %v (%#x), want %v (%#x)", got, math.Float64bits(got), tc.v, math.Float64bits(tc.v))
			}
			if len(rest) != 1 || rest[0] != 0x7f {
				t.Errorf("left %x after the value, want 7f", rest)
			}
		})
	}
	for _, bad := range [][]byte{nil, {0x80}, {0x01, 1, 2, 3}, {0x03}} {
		if _, _, err := readValue(bad); err == nil {
			t.Errorf("readValue(%x) accepted a broken value", bad)
		}
	}
}

// httpResult is what the http probe reports for an HTTPS target.
func httpResult(start time.Time, bytes float64) probes.Result {
	r := probes.Result{Success: true, Start: start, Duration: 34 * time.Millisecond,
		Phases: []probes.Phase{{Name: "dns", Duration: 412_345}, {Name: "connect", Duration: 1_503_117},
			{Name: "tls", Duration: 6_021_554}, {Name: "first_byte", Duration: 25_873_002}, {Name: "transfer", Duration: 791_230}}}
	r.AddKeyValue("vigil_http_status_code", 200)
	r.AddValue("vigil_http_response_bytes", bytes)
	r.AddValue("vigil_http_version", 1.1)
	r.AddValue("vigil_http_redirects", 0)
	r.AddValue("vigil_tls_version_info", 1, probes.Label{Name: "version", Value: "TLS 1.3"})
	r.AddKeyValue("vigil_tls_cert_expiry_timestamp_seconds", 1_790_123_456)
	return r
}

// TestCompactRows: an HTTP result takes tens of bytes in its row, its
// names live once in result_shapes, and results of the same shape share it.
func TestCompactRows(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, filepath.Join(t.TempDir(), "vigil.db"), Options{})
	t0 := time.UnixMilli(1_700_000_000_000)
	for i := range 10 {
		for _, c := range []string{"gw-a", "gw-b"} {
			s.Record(Record{Check: c, Type: "http", Result: httpResult(t0.Add(time.Duration(i)*time.Minute), float64(1000+i))})
		}
	}
	r := httpResult(t0, 1)
	r.Values[4].Labels[0].Value = "TLS 1.2"
	r.Values[1].Counter = true
	s.Record(Record{Check: "gw-c", Type: "http", Result: r})
	flush(t, s)
	mergeAll(t, s)

	var shapes, payload int
	if err := s.r.QueryRow(`SELECT count(*) FROM result_shapes`).Scan(&shapes); err != nil {
		t.Fatal(err)
	}
	if shapes != 2 {
		t.Errorf("%d result shapes, want 2 (one shared by gw-a and gw-b, one with other labels and flags)", shapes)
	}
	if err := s.r.QueryRow(`SELECT max(length(phases) + length(vals)) FROM check_results`).Scan(&payload); err != nil {
		t.Fatal(err)
	}
	if payload > 40 {
		t.Errorf("phases and values take %d bytes in a row, want at most 40", payload)
	}
	h, err := s.History(ctx, "gw-c", 1)
	if err != nil || len(h) != 1 {
		t.Fatalf("History = %v, %v", h, err)
	}
	if want := (Record{Check: "gw-c", Type: "http", Result: r}); !reflect.DeepEqual(h[0], want) {
		t.Errorf("round trip changed the record:\n got %#v\nwant %#v", h[0], want)
	}
}

func TestQueryPlans(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "vigil.db"), Options{})
	for _, tc := range []struct {
		name string
		q    string
		args []any
	}{
		{"history", historyQuery, []any{"c", 10}},
		{"summaries", summariesQuery, []any{"c", 10}},
		{"merged summaries", mergedSummariesQuery, []any{"c", 10}},
		{"recent summaries", recentSummariesQuery, []any{`["c"]`}},
		{"between", bothTables(`?1, `+storedColumns, `AND started_at BETWEEN ?2 AND ?3`, `started_at, ord`, `?4`), []any{"c", 1, 2, 10}},
		{"latest", latestQuery, []any{"[1]"}},
		{"uptime", mergedUptimeQuery(2, 5), []any{5, 6}},
		{"insert", insertResult, []any{1, 2, 3, true, "", "", 1, nil, nil, nil}},
		{"merge keys", mergeKeys, []any{1, 2, 3}},
		{"merge base", mergeBase, []any{1, 2}},
		{"merge seq", mergeSeq, []any{1, 2}},
		{"merge insert", mergeInsert, []any{1, 2, 3}},
		{"merge hour", mergeHour, []any{1, 2, 3, 4}},
		{"delete oldest", deleteOldest, []any{1, 2, 3}},
		{"check counts", checkCountsQuery, []any{0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := s.w.Query("EXPLAIN QUERY PLAN "+tc.q, tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var plan []string
			for rows.Next() {
				var id, parent, unused int
				var detail string
				if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			recent := false
			for _, step := range plan {
				// Scanning the small checks table once (Latest) is
				// intended, and so is scanning and sorting
				// recent_results, which is bounded (merge.go);
				// scanning check_results, or sorting what is read
				// from it, is not.
				switch {
				case strings.HasPrefix(tc.name, "merge") && strings.Contains(step, "TEMP B-TREE"):
					// The merge sorts in Go: what SQLite's sorter
					// allocates stays mapped in modernc's allocator.
					t.Errorf("the merge sorts in SQL: plan step %q in %q", step, plan)
				case tc.name == "uptime" && (step == "SCAN check_hours" || step == "SCAN u"):
					// Every check's hours, in key order: no sort.
				case step == "SCAN recent_results", step == "SCAN r" && strings.HasPrefix(tc.name, "recent"):
					recent = true
				case strings.HasPrefix(step, "SEARCH recent_results USING INTEGER PRIMARY KEY"),
					strings.HasPrefix(step, "SEARCH r USING INTEGER PRIMARY KEY"): // only recent_results has a rowid
					recent = true
				case strings.Contains(step, "TEMP B-TREE") && recent:
				case strings.HasPrefix(step, "SCAN") && step != "SCAN c" && !strings.HasPrefix(step, "SCAN c ") &&
					!strings.HasPrefix(step, "SCAN (subquery") && !strings.HasPrefix(step, "SCAN json_each") && step != "SCAN r",
					strings.Contains(step, "TEMP B-TREE"):
					t.Errorf("plan step %q in %q", step, plan)
				}
			}
		})
	}
}

// assertCounts checks that the sweep's count of each check's rows
// matches the rows, for results recorded in the order they started.
func assertCounts(t *testing.T, s *Store) {
	t.Helper()
	counts, err := s.checkCounts(context.Background(), math.MinInt64)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range counts {
		var actual int64
		if err := s.r.QueryRow(`SELECT count(*) FROM check_results WHERE check_id = ?`, c.id).Scan(&actual); err != nil {
			t.Fatal(err)
		}
		if c.n != actual {
			t.Errorf("check %d: counted %d, %d rows", c.id, c.n, actual)
		}
	}
}

func TestPruneCapsEachCheck(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		cap, chunk int
	}{
		{"in one transaction", 25, pruneChunk},
		{"over many", 25, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, filepath.Join(t.TempDir(), "vigil.db"), Options{MaxResultsPerCheck: tc.cap})
			s.pruneChunk = tc.chunk
			now := time.UnixMilli(time.Now().UnixMilli())
			// fast: 100 runs a second apart, the newest now; slow: 10 runs.
			for i := 99; i >= 0; i-- {
				s.Record(sample("fast", now.Add(-time.Duration(i)*time.Second), true))
			}
			for i := 9; i >= 0; i-- {
				s.Record(sample("slow", now.Add(-time.Duration(i)*time.Minute), true))
			}
			// Two ancient runs of slow go by the retention, not the cap.
			s.Record(sample("slow", now.Add(-30*24*time.Hour), true))
			s.Record(sample("slow", now.Add(-31*24*time.Hour), true))
			flush(t, s)

			st, err := s.prune(ctx, now.Add(-7*24*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if st.rows != 77 || st.overCap != 75 {
				t.Errorf("deleted %d rows, %d over the cap; want 77, 75", st.rows, st.overCap)
			}
			if want := (77 + tc.chunk - 1) / tc.chunk; len(st.holds) < want {
				t.Errorf("%d transactions for 77 rows in chunks of %d", len(st.holds), tc.chunk)
			}
			assertCounts(t, s)
			h, err := s.History(ctx, "fast", 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(h) != tc.cap || !h[0].Result.Start.Equal(now) || !h[len(h)-1].Result.Start.Equal(now.Add(-24*time.Second)) {
				t.Errorf("fast kept %d runs (%v .. %v), want its newest %d", len(h), h[0].Result.Start, h[len(h)-1].Result.Start, tc.cap)
			}
			if h, err := s.Summaries(ctx, "slow", 0); err != nil || len(h) != 10 {
				t.Errorf("slow kept %d runs, want its 10 recent ones (%v)", len(h), err)
			}
			// A second sweep finds nothing to do.
			if n, err := s.Prune(ctx, now.Add(-7*24*time.Hour)); err != nil || n != 0 {
				t.Errorf("second Prune = %d, %v", n, err)
			}
		})
	}
}

// TestCapOutOfOrder: results recorded out of the order they started make
// the sweep's count low, never high, so the cap trims less, never a run it
// should keep.
func TestCapOutOfOrder(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, filepath.Join(t.TempDir(), "vigil.db"), Options{MaxResultsPerCheck: 25})
	now := time.UnixMilli(time.Now().UnixMilli())
	for i := range 40 {
		s.Record(sample("backwards", now.Add(-time.Duration(i)*time.Second), true))
	}
	for i := range 40 {
		// Every other run recorded before the one that started earlier.
		s.Record(sample("shuffled", now.Add(time.Duration(i^1)*time.Second), true))
	}
	flush(t, s)
	counts, err := s.checkCounts(ctx, math.MinInt64)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range counts {
		if c.n > 40 {
			t.Errorf("check %d counted %d rows of 40", c.id, c.n)
		}
	}
	if _, err := s.Prune(ctx, now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, check := range []string{"backwards", "shuffled"} {
		h, err := s.Summaries(ctx, check, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(h) < 25 {
			t.Errorf("%s: %d runs left, fewer than the cap of 25", check, len(h))
		}
	}
}

func TestDefaultCap(t *testing.T) {
	for _, tc := range []struct {
		opts Options
		want int
	}{
		{Options{}, 0},
		{Options{Retention: 7 * 24 * time.Hour}, 60_480},
		{Options{Retention: 7 * 24 * time.Hour, MaxResultsPerCheck: 100}, 100},
		{Options{Retention: 7 * 24 * time.Hour, MaxResultsPerCheck: -1}, 0},
		{Options{Retention: time.Second}, 1},
	} {
		s := openStore(t, filepath.Join(t.TempDir(), "vigil.db"), tc.opts)
		if s.maxResults != tc.want {
			t.Errorf("Options %+v: cap %d, want %d", tc.opts, s.maxResults, tc.want)
		}
	}
}

// TestShapesCollected: a shape nobody used for longer than the retention
// is deleted by the sweep, and the writer adds it again if a check brings
// it back after the writer's cache went stale.
func TestShapesCollected(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, filepath.Join(t.TempDir(), "vigil.db"), Options{})
	now := time.Now()
	rec := Record{Check: "gw", Type: "http", Result: httpResult(now.Add(-10*24*time.Hour), 5)}
	s.Record(rec)
	flush(t, s)
	// As if the shape had last been used with the row, ten days ago, and
	// the writer had not written it since.
	old := now.Add(-10 * 24 * time.Hour).UnixMilli()
	if _, err := s.w.Exec(`UPDATE result_shapes SET last_used = ?`, old); err != nil {
		t.Fatal(err)
	}
	for k, ref := range s.ids.shapes {
		s.ids.shapes[k] = shapeRef{ref.id, old}
	}
	st, err := s.prune(ctx, now.Add(-7*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if st.rows != 1 || st.shapes != 1 {
		t.Errorf("prune deleted %d rows and %d shapes, want 1 and 1", st.rows, st.shapes)
	}
	rec.Result.Start = now
	s.Record(rec)
	flush(t, s)
	h, err := s.History(ctx, "gw", 0)
	if err != nil || len(h) != 1 {
		t.Fatalf("History after the shape came back = %v, %v", h, err)
	}
	rec.Result.Start = time.UnixMilli(now.UnixMilli())
	if !reflect.DeepEqual(h[0], rec) {
		t.Errorf("got %#v\nwant %#v", h[0], rec)
	}
	// A shape in use is never collected, whatever the caller passes.
	if st, err := s.prune(ctx, now.Add(24*time.Hour)); err != nil || st.shapes != 0 {
		t.Errorf("prune into the future deleted %d shapes, %v", st.shapes, err)
	}
}

// TestMigrateCompactsHistory opens a store written by schema 5 (the JSON
// rows of migration 0001) and reads the same history back, ties, NaN and
// diagnostics included, beside results written after the upgrade.
func TestMigrateCompactsHistory(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "vigil.db")
	migs, err := loadMigrations(migrationFS)
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(path)
	db, err := sql.Open("sqlite", dsn(abs, "_txlock=immediate"))
	if err != nil {
		t.Fatal(err)
	}
	if err := migrate(ctx, db, migs[:5]); err != nil {
		t.Fatal(err)
	}
	t0 := time.UnixMilli(time.Now().Add(-72 * time.Hour).UnixMilli())
	ms := func(d time.Duration) int64 { return t0.Add(d).UnixMilli() }
	old := []struct {
		check, typ      string
		start           int64
		success         bool
		msg             string
		phases, vals, d string
	}{
		{"host", "host", ms(0), true, "first", `[{"name":"cpu","duration_ns":1000000000}]`,
			`[{"name":"vigil_host_load1","value":0.5,"key":true},{"name":"vigil_host_filesystem_avail_bytes","labels":[{"name":"mountpoint","value":"/"}],"value":1000000000}]`, `{}`},
		{"host", "host", ms(time.Minute), false, "tie, written first", `[]`, `[{"name":"vigil_nan","value":"NaN"}]`, `{"problems":["disk_low"]}`},
		{"host", "host", ms(time.Minute), true, "tie, written second", `[]`, `[]`, `{}`},
		{"gw", "http", ms(0), true, "gw", `[{"name":"dns","duration_ns":5}]`, `[{"name":"vigil_http_status_code","value":200,"key":true}]`, `{}`},
	}
	for _, r := range old {
		if _, err := db.Exec(`INSERT INTO check_results (check_name, check_type, started_at, duration_ns, success, reason, message, phases, vals, diagnostics)
			VALUES (?, ?, ?, 7, ?, '', ?, ?, ?, ?)`, r.check, r.typ, r.start, r.success, r.msg, r.phases, r.vals, r.d); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := openStore(t, path, Options{})
	s.Record(Record{Check: "host", Type: "host", Result: probes.Result{Success: true, Start: t0.Add(2 * time.Minute), Message: "after the upgrade"}})
	flush(t, s)
	h, err := s.History(ctx, "host", 0)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, r := range h {
		msgs = append(msgs, r.Result.Message)
	}
	if want := []string{"after the upgrade", "tie, written second", "tie, written first", "first"}; !reflect.DeepEqual(msgs, want) {
		t.Fatalf("history after the upgrade: %q, want %q", msgs, want)
	}
	first := Record{Check: "host", Type: "host", Result: probes.Result{Success: true, Message: "first", Start: t0, Duration: 7,
		Phases: []probes.Phase{{Name: "cpu", Duration: time.Second}},
		Values: []probes.Value{{Name: "vigil_host_load1", Value: 0.5, Key: true},
			{Name: "vigil_host_filesystem_avail_bytes", Value: 1e9, Labels: []probes.Label{{Name: "mountpoint", Value: "/"}}}}}}
	if !reflect.DeepEqual(h[3], first) {
		t.Errorf("migrated row:\n got %#v\nwant %#v", h[3], first)
	}
	if v := h[2].Result.Values; len(v) != 1 || !math.IsNaN(v[0].Value) || h[2].Result.Diagnostics["problems"] == nil {
		t.Errorf("migrated row with NaN and diagnostics: %+v", h[2].Result)
	}
	latest, err := s.Latest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if latest["gw"].Type != "http" || latest["gw"].Result.Values[0].Value != 200 || latest["host"].Result.Message != "after the upgrade" {
		t.Errorf("Latest after the upgrade: %+v", latest)
	}
	assertCounts(t, s)
	// The old rows' shapes go with the last of their rows.
	st, err := s.prune(ctx, time.Now().Add(5*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if st.rows != 5 || st.shapes != 2 {
		t.Errorf("pruning everything deleted %d rows and %d shapes, want 5 and the 2 old shapes", st.rows, st.shapes)
	}
}

// TestTidy: Open forgets checks whose results are gone, and vacuums a file
// that is mostly free pages.
func TestTidy(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "vigil.db")
	// Hours are kept 35 days: the runs 40 days ago leave neither results
	// nor hourly counts behind.
	s := openStore(t, path, Options{HourRetention: DefaultHourRetention})
	t0 := time.Now().Add(-40 * 24 * time.Hour)
	for i := range 3000 {
		s.Record(Record{Check: fmt.Sprintf("gone-%d", i%30), Type: "http", Result: httpResult(t0.Add(time.Duration(i)*time.Second), 1)})
	}
	s.Record(sample("kept", time.Now(), true))
	flush(t, s)
	if _, err := s.Prune(ctx, time.Now().Add(-7*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, path, Options{})
	var names []string
	rows, err := s.r.Query(`SELECT name FROM checks`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n string
		rows.Scan(&n)
		names = append(names, n)
	}
	rows.Close()
	if !reflect.DeepEqual(names, []string{"kept"}) {
		t.Errorf("checks after reopening: %q, want only the one with results and hourly counts", names)
	}

	pages := func() (total, free int) {
		t.Helper()
		if err := s.w.QueryRow(`SELECT page_count, freelist_count FROM pragma_page_count, pragma_freelist_count`).Scan(&total, &free); err != nil {
			t.Fatal(err)
		}
		return total, free
	}
	total, free := pages()
	if free*2 < total {
		t.Fatalf("%d of %d pages free: the test needs a mostly free file", free, total)
	}
	if err := tidy(ctx, s.w, slog.New(slog.DiscardHandler), 1<<30); err != nil {
		t.Fatal(err)
	}
	if _, f := pages(); f != free {
		t.Errorf("vacuumed below the threshold: %d free pages, were %d", f, free)
	}
	if err := tidy(ctx, s.w, slog.New(slog.DiscardHandler), 1); err != nil {
		t.Fatal(err)
	}
	if t2, f := pages(); f != 0 || t2 >= total {
		t.Errorf("after vacuum: %d pages, %d free; were %d, %d", t2, f, total, free)
	}
	if h, err := s.History(ctx, "kept", 0); err != nil || len(h) != 1 {
		t.Errorf("History after vacuum = %v, %v", h, err)
	}
}
