// Package uptime keeps every check's uptime over 24 hours, 7 days and 30
// days: the share of its runs that passed, counted from the store's hourly
// run counts. The overview, /api/v1/checks and /metrics read it for
// thousands of checks at once, so it is cached and refreshed in the
// background: the 24-hour window every minute, the longer ones every 15
// minutes. A single check's page reads the store directly (Store.CheckUptime)
// and is never stale.
package uptime

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/vigil-project/vigil/agent/store"
)

// Windows are the uptime windows, in the order of every [3] array here.
var Windows = [3]time.Duration{24 * time.Hour, 7 * 24 * time.Hour, 30 * 24 * time.Hour}

// WindowNames label the windows on /metrics, in the API and on pages.
var WindowNames = [3]string{"24h", "7d", "30d"}

// Refresh cadences.
const (
	shortEvery = time.Minute
	longEvery  = 15 * time.Minute
)

// Source reads hourly run counts (the store).
type Source interface {
	Uptime(ctx context.Context, now time.Time, windows []time.Duration) (map[string][]store.Counts, error)
	// Flush commits the runs recorded so far.
	Flush(ctx context.Context) error
}

// firstRunDelay is the least time between two refreshes brought on by
// checks' first runs (Observe): at start, thousands of checks run for the
// first time within the splay.
const firstRunDelay = 10 * time.Second

// counts is one window's runs and successes; uint32 keeps a check's three
// windows in 24 bytes (a check run every second has 2.6 million runs in 30
// days).
type counts struct{ runs, ok uint32 }

// Tracker is safe for concurrent use; the zero value is empty.
type Tracker struct {
	mu     sync.RWMutex
	checks map[string][3]counts
	// kick asks Run for a refresh: a check without counts ran.
	kickOnce sync.Once
	kick     chan struct{}
}

func (t *Tracker) kicks() chan struct{} {
	t.kickOnce.Do(func() { t.kick = make(chan struct{}, 1) })
	return t.kick
}

// Observe notes a run of check. A check the tracker has no counts for (new,
// or the agent just started) brings a refresh within firstRunDelay instead
// of at the next minute, so its uptime shows at once.
func (t *Tracker) Observe(check string) {
	t.mu.RLock()
	_, known := t.checks[check]
	t.mu.RUnlock()
	if !known {
		select {
		case t.kicks() <- struct{}{}:
		default:
		}
	}
}

// Get returns a check's counts per window; a window without runs has zero
// Runs.
func (t *Tracker) Get(check string) [3]store.Counts {
	t.mu.RLock()
	c := t.checks[check]
	t.mu.RUnlock()
	var out [3]store.Counts
	for i, w := range c {
		out[i] = store.Counts{Runs: int64(w.runs), OK: int64(w.ok)}
	}
	return out
}

// Ratios returns a check's uptime per window and whether the window has
// runs.
func (t *Tracker) Ratios(check string) (r [3]float64, ok [3]bool) {
	for i, c := range t.Get(check) {
		r[i], ok[i] = c.Ratio()
	}
	return r, ok
}

// Refresh reads the windows (all when long, else the 24-hour one) from src.
func (t *Tracker) Refresh(ctx context.Context, src Source, now time.Time, long bool) error {
	ws := Windows[:1]
	if long {
		ws = Windows[:]
	}
	got, err := src.Uptime(ctx, now, ws)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	next := make(map[string][3]counts, max(len(got), len(t.checks)))
	if !long {
		// The long windows stay until they are read again.
		for name, w := range t.checks {
			w[0] = counts{}
			next[name] = w
		}
	}
	for name, cs := range got {
		w := next[name]
		for i, c := range cs {
			w[i] = counts{uint32(min(c.Runs, 1<<32-1)), uint32(min(c.OK, 1<<32-1))}
		}
		// A longer window holds the shorter ones: until its next read, it
		// has at least their runs (a check added since shows its first
		// day's runs in all three windows, not none).
		for i := 1; i < len(w); i++ {
			if w[i].runs < w[i-1].runs {
				w[i] = w[i-1]
			}
		}
		next[name] = w
	}
	t.checks = next
	return nil
}

// Run refreshes the tracker until ctx is done: at once, then on the
// cadences above. Errors are logged; the last counts stay.
func (t *Tracker) Run(ctx context.Context, src Source, log *slog.Logger) {
	tick := time.NewTicker(shortEvery)
	defer tick.Stop()
	kick := t.kicks()
	var lastLong, lastKick time.Time
	for {
		now := time.Now()
		long := now.Sub(lastLong) >= longEvery
		if err := t.Refresh(ctx, src, now, long); err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn("could not read uptime from the store", "err", err)
		} else if long {
			lastLong = now
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-kick:
			if wait := firstRunDelay - time.Since(lastKick); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
			lastKick = time.Now()
			if err := src.Flush(ctx); err != nil && ctx.Err() == nil {
				log.Warn("could not flush the store for uptime", "err", err)
			}
		}
	}
}
