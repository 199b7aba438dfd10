//go:build peerbench

package store

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"modernc.org/libc"
)

// TestPeerStoreCHeap reports what the store's work leaves mapped in
// SQLite's C heap (modernc's allocator keeps freed regions for reuse, up to
// 4 MiB a size class resident, so a one-off sort or temporary table of a
// few MiB stays in the agent's RSS). Run with the allocator's counters:
//
//	go test -tags peerbench,memory.counters -run TestPeerStoreCHeap -count 1 -v ./agent/store/
//
// 10,000 checks with an hour of history: open, five minutes of runs, the
// merge, Uptime, Latest, a check's History, an API page's SummariesOf,
// and again, each line the C heap after it.
func TestPeerStoreCHeap(t *testing.T) {
	if libc.MemStat().Mmaps == 0 {
		t.Skip("build with -tags memory.counters: modernc's allocator counts nothing without it")
	}
	const checks = 10_000
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "vigil.db")
	g := newHTTPGen(checks)
	const minutes = 60
	start := time.Now().Add(-(minutes + 30) * time.Minute).Truncate(time.Minute)
	// Filled in a child process: the fill's page cache would stay in this
	// process's allocator.
	if os.Getenv("VIGIL_CHEAP_FILL") != "" {
		s := openStore(t, os.Getenv("VIGIL_CHEAP_FILL"), Options{})
		g.fill(t, s, start, minutes)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return
	}
	fill := exec.Command(os.Args[0], "-test.run", "^TestPeerStoreCHeap$", "-test.count", "1")
	fill.Env = append(os.Environ(), "VIGIL_CHEAP_FILL="+path)
	if out, err := fill.CombinedOutput(); err != nil {
		t.Fatalf("fill: %v\n%s", err, out)
	}
	s := openStore(t, path, Options{})
	report := func(what string) {
		m := libc.MemStat()
		b, _ := os.ReadFile("/proc/self/status")
		anon := ""
		for l := range strings.SplitSeq(string(b), "\n") {
			if strings.HasPrefix(l, "RssAnon:") {
				anon = strings.Join(strings.Fields(l)[1:], " ")
			}
		}
		t.Logf("| %s | %.2f | %d | %s |", what, float64(m.Bytes)/(1<<20), m.Allocs, anon)
	}
	t.Logf("| after | C heap mapped MiB | C allocations | process RssAnon |")
	t.Logf("|---|---:|---:|---:|")
	report("open")
	page := make([]string, 100)
	for i := range page {
		page[i] = g.names[4000+i]
	}
	for round := range 2 {
		batch := make([]row, 0, checks/300)
		for m := range 5 {
			minute := start.Add(time.Duration(minutes+round*5+m) * time.Minute)
			for c := range checks {
				batch = append(batch, encode(g.result(c, minute)))
				if len(batch) == cap(batch) || c == checks-1 {
					if err := s.insert(batch); err != nil {
						t.Fatal(err)
					}
					batch = batch[:0]
				}
			}
		}
		s.checkpoint(ctx)
		report("5 minutes of runs")
		if _, err := s.Uptime(ctx, time.Now(), []time.Duration{24 * time.Hour}); err != nil {
			t.Fatal(err)
		}
		report("Uptime, 50,000 runs waiting")
		if _, err := s.Latest(ctx); err != nil {
			t.Fatal(err)
		}
		report("Latest, 50,000 runs waiting")
		if _, err := s.History(ctx, g.names[4321], 30); err != nil {
			t.Fatal(err)
		}
		report("History 30, 50,000 runs waiting")
		if _, err := s.SummariesOf(ctx, page, 30); err != nil {
			t.Fatal(err)
		}
		report("SummariesOf 100x30, 50,000 runs waiting")
		if _, err := s.merge(ctx, false); err != nil {
			t.Fatal(err)
		}
		s.checkpoint(ctx)
		report("the merge")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
