// Package memtune keeps an idle agent small: it hands free heap back to the
// OS after a burst of check runs and drops the code pages only start-up
// needed. Both are measured in BENCHMARKS.md (idle RSS).
package memtune

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"
	"time"
)

// The collector's heap headroom (GOGC). An agent with a few checks idles
// most of the time; half the default headroom keeps its small heap small
// without collecting for every scrape (the heap goal's 4 MB floor scales
// with it). At thousands of checks the heap is per-check state and a
// quarter headroom saves megabytes: the collection cost per run depends
// on the headroom, not on the number of checks, and measured at 10,000
// checks it was 0.01 ms per run more than at half (BENCHMARKS.md, "Scale").
const (
	gcPercent      = 50
	gcPercentLarge = 25
	largeConfig    = 1000
)

// GCPercent is the GOGC an agent with this many checks runs with.
func GCPercent(checks int) int {
	if checks >= largeConfig {
		return gcPercentLarge
	}
	return gcPercent
}

// TuneGC sets GCPercent(checks), unless GOGC is in the environment: it
// wins. The agent calls it at start and after every reload.
func TuneGC(checks int) {
	if os.Getenv("GOGC") != "" {
		return
	}
	debug.SetGCPercent(GCPercent(checks))
}

// startupSettle is how long after start-up the agent lets go of the code
// pages only start-up needed: long enough for the first runs of the checks
// (start-up splay defaults to 10s).
const startupSettle = 30 * time.Second

// pageReleaseInterval is how often the agent hands back code pages again
// after the start-up release. Checks that run hourly fault their code in
// once an hour; without a periodic release it would stay resident for the
// rest of the hour. Pages in steady use fault back in at once, which costs
// a few milliseconds of minor faults per release.
const pageReleaseInterval = 5 * time.Minute

// ReleasePages releases code pages after start-up and then periodically
// until ctx is done.
func ReleasePages(ctx context.Context, log *slog.Logger) {
	wait := startupSettle
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		before, after, err := ReleaseStartupPages()
		if err != nil {
			log.Debug("could not release code pages", "err", err)
			return
		}
		log.Debug("released code pages", "rss_before_bytes", before, "rss_after_bytes", after)
		wait = pageReleaseInterval
	}
}

// heapTrimDelay is how long after the last check result the agent hands
// the heap those runs left free back to the OS; heapTrimMinInterval bounds
// how often it does (each trim is a forced GC).
const (
	heapTrimDelay       = time.Second
	heapTrimMinInterval = 30 * time.Second
)

// HeapTrimmer returns free heap to the OS once a burst of work is over. A
// run of invoice_qr decodes a PNG and a PDF (several MB of short-lived
// images), a status page at 10,000 checks allocates a few MB; after the
// next GC those pages are free but stay resident: the background scavenger
// only releases what exceeds 110% of the heap goal, slowly, so an agent
// keeps them until long after the burst. The zero value is ready to use.
type HeapTrimmer struct {
	mu    sync.Mutex
	timer *time.Timer
	last  time.Time
	// firm: a BurstDone's trim is due, and check runs do not put it off.
	firm bool
	// free releases the heap (debug.FreeOSMemory when nil); tests count.
	free func()
	// pageOut, when set, follows a burst's trim (PageOutAfterBursts).
	pageOut func()
}

// PageOutAfterBursts makes the trim after a burst also hand the
// executable's code pages back (ReleaseStartupPages, as ReleasePages does
// every few minutes): a status page or API render faults in ~2.6 MiB of
// templates and rendering code that check runs never touch (measured at
// 10,000 checks, BENCHMARKS.md), and without this they stay resident until
// the next periodic release. Bursts are trimmed at most every
// heapTrimMinInterval, so the pages that check runs do use fault back in
// (a few milliseconds of minor faults) at most that often.
func (t *HeapTrimmer) PageOutAfterBursts(log *slog.Logger) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pageOut = func() {
		before, after, err := ReleaseStartupPages()
		if err != nil {
			log.Debug("could not release code pages after a page render", "err", err)
			return
		}
		log.Debug("released code pages after a page render", "rss_before_bytes", before, "rss_after_bytes", after)
	}
}

// Kick notes a check run: the trim follows heapTrimDelay after the last
// kick, once the runs go quiet.
func (t *HeapTrimmer) Kick() { t.kick(false) }

// BurstDone notes the end of a burst that stands out from the check runs
// (a page render): its trim follows heapTrimDelay after it even while
// check runs keep kicking, as at thousands of checks they never go quiet.
func (t *HeapTrimmer) BurstDone() { t.kick(true) }

func (t *HeapTrimmer) kick(firm bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.timer == nil {
		t.firm = firm
		t.timer = time.AfterFunc(heapTrimDelay, t.fire)
		return
	}
	if t.firm && !firm {
		return
	}
	t.firm = firm
	t.timer.Reset(heapTrimDelay)
}

// Stop cancels a pending trim.
func (t *HeapTrimmer) Stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.timer != nil {
		t.timer.Stop()
	}
}

func (t *HeapTrimmer) fire() {
	t.mu.Lock()
	if wait := heapTrimMinInterval - time.Since(t.last); wait > 0 {
		t.timer.Reset(wait)
		t.mu.Unlock()
		return
	}
	t.last = time.Now()
	burst := t.firm
	t.firm = false
	free, pageOut := t.free, t.pageOut
	t.mu.Unlock()
	if free == nil {
		free = debug.FreeOSMemory
	}
	// Code pages first, so that the trim (what tests wait for) comes
	// last.
	if burst && pageOut != nil {
		pageOut()
	}
	free()
}
