package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// writeTimeout bounds one batch commit, which includes up to busy_timeout
// of waiting for another process's lock.
const writeTimeout = 30 * time.Second

// Record queues a check result for writing and returns without waiting for
// the disk. The result is encoded before Record returns.
//
// Drop policy: if the queue is full, Record waits up to
// Options.EnqueueTimeout (250ms by default) for room, then drops the record
// and counts it in Dropped. The queue only fills when the disk has stalled
// for seconds; blocking the scheduler longer would then delay checks and
// their metrics and alerts, which matter more than a history row. Records
// after Close are dropped and counted too.
func (s *Store) Record(rec Record) {
	w := encode(rec)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		s.dropped.Add(1)
		return
	}
	select {
	case s.queue <- w:
		return
	default:
	}
	t := time.NewTimer(s.enqueueTimeout)
	defer t.Stop()
	select {
	case s.queue <- w:
	case <-t.C:
		// Log the first drop and then every 1000th, not every one.
		if n := s.dropped.Add(1); n%1000 == 1 {
			s.log.Error("store queue full: dropping check results from history",
				"queue", cap(s.queue), "dropped_total", n)
		}
	}
}

// Flush waits until every record queued before the call is committed, and
// returns the first write error among them.
func (s *Store) Flush(ctx context.Context) error {
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	// Checked first: a select with the writer's answer and a done context
	// both ready picks either, and a cancelled flush must say so.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("flush store: %w", err)
	}
	req := make(chan error, 1)
	select {
	case s.flushReq <- req:
	case <-s.writerDone:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("flush store: %w", ctx.Err())
	}
	select {
	case err := <-req:
		return err
	case <-ctx.Done():
		return fmt.Errorf("flush store: %w", ctx.Err())
	}
}

// writer is the only goroutine that inserts check results. A batch is
// committed when it reaches maxBatch rows, flushDelay after its first row,
// on Flush, and on Close. The timer only runs while rows wait, so an idle
// agent does not wake up for nothing.
func (s *Store) writer() {
	defer s.wg.Done()
	defer close(s.writerDone)

	var (
		batch   = make([]row, 0, maxBatch)
		timer   = time.NewTimer(flushDelay)
		armed   = false
		lastLog time.Time
	)
	// Since Go 1.23 a stopped timer never delivers a stale tick, so Stop
	// and Reset need no draining.
	timer.Stop()
	commit := func() error {
		if armed {
			timer.Stop()
			armed = false
		}
		if len(batch) == 0 {
			return nil
		}
		err := s.insert(batch)
		if err != nil {
			s.dropped.Add(uint64(len(batch)))
			if time.Since(lastLog) > 10*time.Second {
				lastLog = time.Now()
				s.log.Error("write check history", "err", err, "records", len(batch), "dropped_total", s.dropped.Load())
			}
		} else {
			s.written.Add(uint64(len(batch)))
		}
		batch = batch[:0]
		return err
	}
	// drain commits n queued rows plus the current batch. n is a snapshot
	// of the queue length, so producers that keep recording cannot keep a
	// Flush waiting forever.
	drain := func(n int) error {
		var errs []error
		for range n {
			batch = append(batch, <-s.queue)
			if len(batch) >= maxBatch {
				errs = append(errs, commit())
			}
		}
		errs = append(errs, commit())
		return errors.Join(errs...)
	}

	for {
		select {
		case w := <-s.queue:
			batch = append(batch, w)
			if len(batch) >= maxBatch {
				commit()
			} else if !armed {
				timer.Reset(flushDelay)
				armed = true
			}
		case <-timer.C:
			armed = false
			commit()
		case req := <-s.flushReq:
			req <- drain(len(s.queue))
		case <-s.stop:
			// Close holds mu, so the queue can no longer grow.
			s.writerErr = drain(len(s.queue))
			return
		}
	}
}

func (s *Store) insert(batch []row) (err error) {
	defer func() { err = s.track(opHistory, err) }()
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin write: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO check_results
		(check_name, check_type, started_at, duration_ns, success, reason, message, phases, vals, diagnostics)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("prepare insert: %w", err)
	}
	defer stmt.Close()
	for _, w := range batch {
		if _, err := stmt.ExecContext(ctx, w.check, w.typ, w.startMS, w.durationNS, w.success,
			w.reason, w.message, w.phases, w.values, w.diagnostics); err != nil {
			return fmt.Errorf("insert check result: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit check results: %w", err)
	}
	return nil
}

// Prune deletes check results that started before olderThan and reports
// how many. It deletes in chunks, each its own transaction, so a large
// backlog does not hold the write lock for long.
func (s *Store) Prune(ctx context.Context, olderThan time.Time) (total int64, err error) {
	defer func() { err = s.track(opPrune, err) }()
	for {
		res, err := s.w.ExecContext(ctx, `DELETE FROM check_results WHERE id IN
			(SELECT id FROM check_results WHERE started_at < ? LIMIT ?)`, olderThan.UnixMilli(), s.pruneChunk)
		if err != nil {
			return total, fmt.Errorf("prune history: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("prune history: %w", err)
		}
		total += n
		if n < int64(s.pruneChunk) {
			return total, nil
		}
	}
}

// pruneLoop deletes results older than retention at start-up and then
// every interval, until ctx is cancelled by Close.
func (s *Store) pruneLoop(ctx context.Context, retention, interval time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := s.Prune(ctx, time.Now().Add(-retention))
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			s.log.Warn("prune check history", "err", err)
		case n > 0:
			s.log.Debug("pruned check history", "rows", n, "retention", retention)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}
