// Package slo computes service level objectives over checks: each SLO's
// attainment (the share of its checks' runs that passed over its window)
// and its error budget, from the store's hourly run counts; exports them
// as vigil_slo_* series; draws the budget's burn-down; and generates the
// multiwindow, multi-burn-rate alerting rules the agent evaluates and a
// central Prometheus can load (rules.go).
package slo

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"reflect"
	"sync"
	"time"

	"github.com/prometheus/common/model"

	"github.com/vigil-project/vigil/agent/config"
	"github.com/vigil-project/vigil/agent/store"
)

// Source reads hourly run counts (the store) and keeps the hourly events
// of PromQL SLIs.
type Source interface {
	Hours(ctx context.Context, checks []string, from time.Time) ([]store.Hour, error)
	SLOHours(ctx context.Context, slo string, from time.Time) ([]store.Hour, error)
	SetSLOHour(ctx context.Context, slo string, hour time.Time, total, errors int64) error
	// Flush commits the runs recorded so far.
	Flush(ctx context.Context) error
}

// Status is an SLO as of one evaluation.
type Status struct {
	config.SLO
	// At is when it was computed.
	At time.Time
	// Runs and Failed are its checks' runs and failed runs over the window
	// (counted in whole hours).
	Runs, Failed int64
	// Burn is the error budget remaining at the end of each hour of the
	// window that had runs, oldest first: the burn-down chart.
	Burn []Point
}

// Point is the error budget remaining at a time.
type Point struct {
	At        time.Time
	Remaining float64
}

// Attainment is the share of runs that passed; ok is false without runs.
func (s Status) Attainment() (float64, bool) {
	if s.Runs == 0 {
		return 0, false
	}
	return float64(s.Runs-s.Failed) / float64(s.Runs), true
}

// BudgetRemaining is the share of the error budget left: 1 with no
// failures, 0 when failures reached (1-objective) of the runs, negative
// beyond. ok is false without runs.
func (s Status) BudgetRemaining() (float64, bool) {
	if s.Runs == 0 {
		return 0, false
	}
	return remaining(s.Failed, s.Runs, s.Objective), true
}

// remaining is the budget left after failed of runs (budget = (1 -
// objective) * runs).
func remaining(failed, runs int64, objective float64) float64 {
	return 1 - float64(failed)/(float64(runs)*(1-objective))
}

// Query evaluates a PromQL expression at ts over the agent's sample
// store and sums its result; ok is false for an empty result.
type Query func(ctx context.Context, expr string, ts time.Time) (v float64, ok bool, err error)

// Compute reads an SLO's window ending at now from src: its checks' runs,
// or its PromQL SLI's events.
func Compute(ctx context.Context, src Source, s config.SLO, now time.Time) (Status, error) {
	st := Status{SLO: s, At: now}
	var (
		hours []store.Hour
		err   error
	)
	if s.SLI != nil {
		hours, err = src.SLOHours(ctx, s.Name, now.Add(-time.Duration(s.Window)))
	} else {
		hours, err = src.Hours(ctx, s.Checks, now.Add(-time.Duration(s.Window)))
	}
	if err != nil {
		return st, fmt.Errorf("slo %s: %w", s.Name, err)
	}
	for _, h := range hours {
		st.Runs += h.Runs
		st.Failed += h.Runs - h.OK
	}
	// The burn-down: failures so far against the budget of the whole
	// window's runs so far, so the line ends at BudgetRemaining.
	var failed int64
	for _, h := range hours {
		if h.Runs == 0 {
			// A PromQL SLI's hour without events (its SLO may have none
			// at all: 0/0 is no point, and NaN is no JSON).
			continue
		}
		failed += h.Runs - h.OK
		end := h.Start.Add(time.Hour)
		if end.After(now) {
			end = now
		}
		st.Burn = append(st.Burn, Point{At: end, Remaining: remaining(failed, st.Runs, s.Objective)})
	}
	return st, nil
}

// refreshEvery is how often the SLOs are recomputed: a 30-day window moves
// by the hour, and the current hour's runs come in by the minute.
const refreshEvery = time.Minute

// Engine keeps the configured SLOs' statuses current. Safe for
// concurrent use.
type Engine struct {
	src   Source
	query Query
	log   *slog.Logger
	// sampled is when each PromQL SLO's events were last read.
	sampled map[string]time.Time

	mu     sync.RWMutex
	slos   []config.SLO
	status map[string]Status
	// unseen are the checks of SLOs that have no runs yet: their first
	// result refreshes the SLOs at once instead of within a minute.
	unseen map[string]bool
	// members are the checks of any SLO.
	members map[string]bool
	kick    chan struct{}
}

// NewEngine returns an engine reading src; query evaluates PromQL SLIs
// (nil: SLOs with an sli: have no events).
func NewEngine(src Source, query Query, log *slog.Logger) *Engine {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Engine{src: src, query: query, log: log, status: map[string]Status{}, sampled: map[string]time.Time{}, kick: make(chan struct{}, 1)}
}

// minSample is the shortest window a PromQL SLI is read over: a rate over
// less than a minute of the agent's samples says little.
const minSample = time.Minute

// sample records a PromQL SLO's events of the current hour so far, and
// completes the previous hour when the hour turned since the last read.
func (e *Engine) sample(ctx context.Context, s config.SLO, now time.Time) error {
	if e.query == nil {
		return nil
	}
	hour := now.Truncate(time.Hour)
	e.mu.Lock()
	last := e.sampled[s.Name]
	e.mu.Unlock()
	if !last.IsZero() && last.Before(hour) {
		if err := e.sampleHour(ctx, s, last.Truncate(time.Hour), time.Hour); err != nil {
			return err
		}
	}
	if w := now.Sub(hour).Truncate(time.Second); w >= minSample {
		if err := e.sampleHour(ctx, s, hour, w); err != nil {
			return err
		}
	}
	e.mu.Lock()
	e.sampled[s.Name] = now
	e.mu.Unlock()
	return nil
}

// sampleHour reads the SLI over window w from the start of hour and
// records its events: the per-second rates times the seconds.
func (e *Engine) sampleHour(ctx context.Context, s config.SLO, hour time.Time, w time.Duration) error {
	at := hour.Add(w)
	read := func(q string) (float64, error) {
		v, ok, err := e.query(ctx, config.SLIQuery(q, model.Duration(w)), at)
		if err != nil || !ok || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return 0, err
		}
		return v * w.Seconds(), nil
	}
	total, err := read(s.SLI.TotalQuery)
	if err != nil {
		return fmt.Errorf("slo %s: total_query: %w", s.Name, err)
	}
	bad, err := read(s.SLI.ErrorQuery)
	if err != nil {
		return fmt.Errorf("slo %s: error_query: %w", s.Name, err)
	}
	return e.src.SetSLOHour(ctx, s.Name, hour, int64(math.Round(total)), int64(math.Round(min(bad, total))))
}

// Set installs the SLOs of a (re)loaded config; they are computed at once.
func (e *Engine) Set(slos []config.SLO) {
	e.mu.Lock()
	e.slos = slos
	keep := make(map[string]Status, len(slos))
	for _, s := range slos {
		if st, ok := e.status[s.Name]; ok {
			keep[s.Name] = st
		}
	}
	e.status = keep
	e.unseen = unseenChecks(slos, keep)
	e.members = map[string]bool{}
	for _, s := range slos {
		for _, c := range s.Checks {
			e.members[c] = true
		}
	}
	e.mu.Unlock()
	e.poke()
}

func (e *Engine) poke() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// unseenChecks are the checks of SLOs without runs in status.
func unseenChecks(slos []config.SLO, status map[string]Status) map[string]bool {
	out := map[string]bool{}
	for _, s := range slos {
		if status[s.Name].Runs == 0 {
			for _, c := range s.Checks {
				out[c] = true
			}
		}
	}
	return out
}

// Observe notes a run of check. The first run of an SLO's checks, and a
// failed run of one, refresh the SLOs soon (at most every kickEvery, once
// the store has committed the run): a new SLO shows its attainment at
// once, and an outage shows in the budget while it happens, not up to a
// minute later.
func (e *Engine) Observe(check string, success bool) {
	e.mu.RLock()
	poke := e.unseen[check] || (!success && e.members[check])
	e.mu.RUnlock()
	if poke {
		e.poke()
	}
}

// kickEvery bounds the refreshes Observe brings: a check failing every
// 10 s in each of many SLOs still costs one refresh per interval.
const kickEvery = 5 * time.Second

// Statuses are the SLOs in config order, as last computed (an SLO not yet
// computed has no runs).
func (e *Engine) Statuses() []Status {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make([]Status, 0, len(e.slos))
	for _, s := range e.slos {
		st, ok := e.status[s.Name]
		if !ok || !sameSLO(st.SLO, s) {
			st = Status{SLO: s}
		}
		out = append(out, st)
	}
	return out
}

func sameSLO(a, b config.SLO) bool { return reflect.DeepEqual(a, b) }

// Refresh recomputes every SLO now.
func (e *Engine) Refresh(ctx context.Context, now time.Time) error {
	e.mu.RLock()
	slos := e.slos
	e.mu.RUnlock()
	var firstErr error
	for _, s := range slos {
		if s.SLI != nil {
			if err := e.sample(ctx, s, now); err != nil && firstErr == nil {
				firstErr = err
			}
		}
		st, err := Compute(ctx, e.src, s, now)
		if err != nil {
			firstErr = err
			continue
		}
		e.mu.Lock()
		e.status[s.Name] = st
		e.mu.Unlock()
	}
	e.mu.Lock()
	e.unseen = unseenChecks(e.slos, e.status)
	e.mu.Unlock()
	return firstErr
}

// Run refreshes the SLOs every minute and after each Set until ctx is done.
func (e *Engine) Run(ctx context.Context) {
	tick := time.NewTicker(refreshEvery)
	defer tick.Stop()
	var lastKick time.Time
	for {
		if err := e.Refresh(ctx, time.Now()); err != nil && ctx.Err() == nil {
			e.log.Warn("could not compute SLOs", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-e.kick:
			if wait := kickEvery - time.Since(lastKick); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
			lastKick = time.Now()
			// Read the run once the store has it.
			if err := e.src.Flush(ctx); err != nil && ctx.Err() == nil {
				e.log.Warn("could not flush the store for SLOs", "err", err)
			}
		}
	}
}

// WritePrometheus writes the vigil_slo_* series.
func (e *Engine) WritePrometheus(w io.Writer) {
	sts := e.Statuses()
	if len(sts) == 0 {
		return
	}
	family := func(name, help string, value func(Status) (float64, bool)) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name)
		for _, st := range sts {
			if v, ok := value(st); ok {
				fmt.Fprintf(w, "%s{slo=%q} %s\n", name, st.Name, formatFloat(v))
			}
		}
	}
	family("vigil_slo_attainment_ratio", "Share of the SLO's check runs that passed over its window (counted in whole hours; absent without runs).", Status.Attainment)
	family("vigil_slo_error_budget_remaining_ratio", "Share of the SLO's error budget left over its window: 1 without failures, 0 when failed runs reach (1 - objective) of its runs, negative beyond (absent without runs).", Status.BudgetRemaining)
	family("vigil_slo_objective_ratio", "The SLO's objective: the share of its checks' runs that should pass over its window.", func(st Status) (float64, bool) { return st.Objective, true })
	family("vigil_slo_window_failed_runs", "Failed runs of the SLO's checks (or bad events of its PromQL SLI) over its window.", func(st Status) (float64, bool) { return float64(st.Failed), st.Runs > 0 })
	family("vigil_slo_window_runs", "Runs of the SLO's checks (or events of its PromQL SLI) over its window.", func(st Status) (float64, bool) { return float64(st.Runs), true })
	family("vigil_slo_window_seconds", "The SLO's rolling window.", func(st Status) (float64, bool) { return time.Duration(st.Window).Seconds(), true })
}
