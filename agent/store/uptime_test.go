package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-project/vigil/probes"
)

// TestUptimeCounts records runs over 40 days and reads them back per
// window, per check and per hour; the sweep keeps the hours past the
// history's retention and deletes them past their own.
func TestUptimeCounts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Without Retention no sweep runs by itself (one at open would race
	// the records below); the sweep's settings are set as Open would.
	s := openStore(t, filepath.Join(t.TempDir(), "vigil.db"), Options{})
	s.retention = 7 * 24 * time.Hour
	s.SetHourRetention(DefaultHourRetention)
	now := time.Date(2026, 12, 4, 10, 30, 0, 0, time.UTC)
	// web: one run an hour for 40 days, failing in the last 3 hours and
	// on day 10 (24 runs); db: runs only in the last 2 hours, all fine.
	for h := range 40 * 24 {
		start := now.Add(-time.Duration(h)*time.Hour - time.Minute)
		ok := h >= 3 && !(h >= 10*24 && h < 11*24)
		s.Record(Record{Check: "web", Type: "http", Result: probes.Result{Start: start, Success: ok}})
	}
	for m := range 120 {
		s.Record(Record{Check: "db", Type: "sql", Result: probes.Result{Start: now.Add(-time.Duration(m) * time.Minute), Success: true}})
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	windows := []time.Duration{24 * time.Hour, 7 * 24 * time.Hour, 30 * 24 * time.Hour}
	all, err := s.Uptime(ctx, now, windows)
	if err != nil {
		t.Fatal(err)
	}
	// Hours count whole: 24h from 10:30 starts at 10:00 the day before,
	// which holds the run of 09:29 + 24h... the run 24 h ago at 10:29.
	want := map[string][]Counts{
		"web": {{25, 22}, {169, 166}, {721, 694}},
		"db":  {{120, 120}, {120, 120}, {120, 120}},
	}
	for name, w := range want {
		got := all[name]
		for i := range w {
			if i >= len(got) || got[i] != w[i] {
				t.Errorf("Uptime[%s] = %v, want %v", name, got, w)
				break
			}
		}
		one, err := s.CheckUptime(ctx, name, now, windows)
		if err != nil {
			t.Fatal(err)
		}
		for i := range w {
			if one[i] != w[i] {
				t.Errorf("CheckUptime(%s) = %v, want %v", name, one, w)
				break
			}
		}
	}
	if none, err := s.CheckUptime(ctx, "nosuch", now, windows); err != nil || none[0] != (Counts{}) {
		t.Errorf("CheckUptime(nosuch) = %v, %v; want zero counts", none, err)
	}
	if r, ok := (Counts{4, 3}).Ratio(); !ok || r != 0.75 {
		t.Errorf("Ratio = %v, %v", r, ok)
	}
	if _, ok := (Counts{}).Ratio(); ok {
		t.Error("Ratio of no runs is ok")
	}

	hours, err := s.Hours(ctx, []string{"web", "db"}, now.Add(-3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// 07:00 .. 10:00: web's run of each hour (failing from 08:29 on), db
	// from 08:31 on.
	wantHours := []Counts{{1, 1}, {1 + 29, 0 + 29}, {1 + 60, 0 + 60}, {1 + 31, 0 + 31}}
	if len(hours) != len(wantHours) {
		t.Fatalf("Hours = %v, want %d hours", hours, len(wantHours))
	}
	for i, h := range hours {
		if h.Counts != wantHours[i] || !h.Start.Equal(now.Truncate(time.Hour).Add(time.Duration(i-3)*time.Hour)) {
			t.Errorf("hour %d = %v at %s, want %v", i, h.Counts, h.Start.UTC(), wantHours[i])
		}
	}

	// The history goes after 7 days; the hours stay for 35 (the default).
	if _, err := s.Prune(ctx, now.Add(-7*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	all, _ = s.Uptime(ctx, now, []time.Duration{40 * 24 * time.Hour})
	if got := all["web"][0].Runs; got != 35*24+1 {
		t.Errorf("after the sweep web has %d hourly runs, want %d (35 days of hours)", got, 35*24+1)
	}
	rec, _ := s.History(ctx, "web", 0)
	if len(rec) != 7*24 {
		t.Errorf("after the sweep web has %d results, want %d", len(rec), 7*24)
	}
}
