package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Write operations, the op label of vigil_store_write_errors_total.
const (
	opHistory  = "history"
	opAlerts   = "alerts"
	opOutbox   = "outbox"
	opSilences = "silences"
	opRunbooks = "runbooks"
	opDrills   = "drills"
	opPrune    = "prune"
)

var writeOps = []string{opHistory, opAlerts, opOutbox, opSilences, opRunbooks, opDrills, opIncidents, opPrune}

// writeHealth remembers whether the store's writes work. A full disk, a
// file turned read-only or a damaged page makes every write fail while
// reads go on working; the agent must say so (readiness, a metric a shipped
// rule pages on) and keep paging from memory rather than go quiet.
type writeHealth struct {
	mu       sync.Mutex
	errors   map[string]uint64
	failing  bool
	lastErr  error
	lastOp   string
	since    time.Time // first failure of the current failing spell
	lastLog  time.Time
	recovers uint64
}

// track records the outcome of a write and returns err unchanged. A
// cancelled context is the caller giving up (shutdown), not the store
// failing.
func (s *Store) track(op string, err error) error {
	h := &s.health
	if err == nil {
		s.wrote()
	}
	if err != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		if h.failing {
			h.failing = false
			h.recovers++
			s.log.Info("store writes work again", "failing_for", time.Since(h.since).Round(time.Second).String())
		}
		return nil
	}
	if h.errors == nil {
		h.errors = map[string]uint64{}
	}
	h.errors[op]++
	if !h.failing {
		h.failing, h.since = true, time.Now()
	}
	h.lastErr, h.lastOp = err, op
	// Every failing write is counted; one log line per 10 s is enough to
	// say the disk is sick.
	if time.Since(h.lastLog) > 10*time.Second {
		h.lastLog = time.Now()
		s.log.Error("store write failed; paging continues from memory, history and state are not being saved",
			"op", op, "err", err, "errors_total", h.errors[op])
	}
	return err
}

// WriteHealth reports whether the last write failed and, if so, with what
// error and since when; nil when writes work.
func (s *Store) WriteHealth() error {
	h := &s.health
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.failing {
		return nil
	}
	return fmt.Errorf("store writes failing since %s (last: %s: %w)", h.since.UTC().Format(time.RFC3339), h.lastOp, h.lastErr)
}

// WritePrometheus writes the store's series: write errors by operation,
// whether writes are failing now, and check results written and dropped.
func (s *Store) WritePrometheus(w io.Writer) {
	h := &s.health
	h.mu.Lock()
	fmt.Fprintln(w, "# HELP vigil_store_write_errors_total Writes to the agent's store that failed (full disk, read-only or damaged file), by operation. Paging continues from memory.")
	fmt.Fprintln(w, "# TYPE vigil_store_write_errors_total counter")
	for _, op := range writeOps {
		fmt.Fprintf(w, "vigil_store_write_errors_total{op=%q} %d\n", op, h.errors[op])
	}
	failing := 0
	if h.failing {
		failing = 1
	}
	h.mu.Unlock()
	fmt.Fprintln(w, "# HELP vigil_store_write_failing 1 while the last write to the agent's store failed; the agent reports not ready meanwhile.")
	fmt.Fprintln(w, "# TYPE vigil_store_write_failing gauge")
	fmt.Fprintf(w, "vigil_store_write_failing %d\n", failing)
	fmt.Fprintln(w, "# HELP vigil_store_results_written_total Check results committed to the store's history since start.")
	fmt.Fprintln(w, "# TYPE vigil_store_results_written_total counter")
	fmt.Fprintf(w, "vigil_store_results_written_total %d\n", s.written.Load())
	fmt.Fprintln(w, "# HELP vigil_store_results_dropped_total Check results that never reached the store's history (queue full or write failed).")
	fmt.Fprintln(w, "# TYPE vigil_store_results_dropped_total counter")
	fmt.Fprintf(w, "vigil_store_results_dropped_total %d\n", s.dropped.Load())
}
