package store

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"sync/atomic"
	"time"
)

// Merge limits (migrations/0010_recent_results.sql). New results wait in
// recent_results until mergeRows of them are there or the oldest merge is
// mergeAge ago, then move into check_results and check_hours, mergeChunk
// checks per transaction.
//
// mergeRows bounds what a reader scans of recent_results (about 5 ms at
// 50,000 rows) and sets how many runs of each check one merge covers: at
// 10,000 checks every minute, five, so each check's newest page of the
// history is changed once per five runs instead of every run.
const (
	mergeRows  = 50_000
	mergeAge   = 10 * time.Minute
	mergeChunk = 1000
	// mergeRetry is the pause after a failed merge.
	mergeRetry = time.Minute
)

// recentState is what the writer knows of recent_results without asking.
type recentState struct {
	rows      atomic.Int64 // rows written and not yet merged
	lastMerge atomic.Int64 // unix nanoseconds of the last merge (or Open)
}

func (r *recentState) added(n int) { r.rows.Add(int64(n)) }

// due reports whether a merge should run now.
func (r *recentState) due(now time.Time, rows int64, age time.Duration) bool {
	n := r.rows.Load()
	return n >= rows || n > 0 && now.Sub(time.Unix(0, r.lastMerge.Load())) >= age
}

// The merge's statements, for the checks in (?1, ?2] and the rows up to id
// ?3. A row gets the seq and n it would have got written directly: seq
// after the rows of its check and start already there, n one more than the
// check's newest row's, both in write order (the id). Each check's newest
// merged row (b) is looked up once, not per row, and seq is only looked up
// for a row that does not start after it. The hourly counts are added in
// the same transaction, so check_hours and the rows agree.
const (
	mergeResults = `WITH b AS MATERIALIZED (SELECT c.id,
			ifnull((SELECT n FROM check_results WHERE check_id = c.id ORDER BY started_at DESC, seq DESC LIMIT 1), 0) AS n,
			ifnull((SELECT max(started_at) FROM check_results WHERE check_id = c.id), -9223372036854775808) AS last
			FROM checks c WHERE c.id > ?1 AND c.id <= ?2)
		INSERT INTO check_results
		(check_id, started_at, seq, n, duration_ns, success, reason, message, shape_id, phases, vals, diagnostics)
		SELECT r.check_id, r.started_at,
			row_number() OVER (PARTITION BY r.check_id, r.started_at ORDER BY r.id) - 1 +
				CASE WHEN r.started_at > b.last THEN 0 ELSE
				ifnull((SELECT max(seq) + 1 FROM check_results WHERE check_id = r.check_id AND started_at = r.started_at), 0) END,
			row_number() OVER (PARTITION BY r.check_id ORDER BY r.id) + b.n,
			r.duration_ns, r.success, r.reason, r.message, r.shape_id, r.phases, r.vals, r.diagnostics
		FROM recent_results r CROSS JOIN b ON b.id = r.check_id
		WHERE r.check_id > ?1 AND r.check_id <= ?2 AND r.id <= ?3`
	mergeHours = `INSERT INTO check_hours (check_id, hour, runs, ok)
		SELECT check_id, ` + hourExpr + `, count(*), sum(success) FROM recent_results
		WHERE check_id > ?1 AND check_id <= ?2 AND id <= ?3 GROUP BY 1, 2
		ON CONFLICT (check_id, hour) DO UPDATE SET runs = runs + excluded.runs, ok = ok + excluded.ok`
	mergeDelete = `DELETE FROM recent_results WHERE check_id > ?1 AND check_id <= ?2 AND id <= ?3`
	// mergeBound is the last check id of the next chunk after ?1.
	mergeBound = `SELECT max(id) FROM (SELECT id FROM checks WHERE id > ?1 ORDER BY id LIMIT ?2)`
)

// hourExpr is hourOf(started_at) in SQL: the hour, rounded down also
// before 1970.
const hourExpr = `(CASE WHEN started_at < 0 THEN (started_at - 3599999) / 3600000 ELSE started_at / 3600000 END)`

// mergeStats is what one merge did.
type mergeStats struct {
	rows  int64           // results moved
	holds []time.Duration // how long each transaction held the write lock
}

// mergeLoop merges when the writer asks, until ctx is cancelled by Close.
func (s *Store) mergeLoop(ctx context.Context) {
	defer s.wg.Done()
	for {
		select {
		case <-s.mergeReq:
		case <-ctx.Done():
			return
		}
		start := time.Now()
		st, err := s.merge(ctx, true)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			// Rows stay readable where they are. Retry after a pause,
			// not on every commit: a full disk fails each attempt.
			s.log.Warn("merge recent check history; retrying in a minute", "err", err, "waiting_rows", s.recent.rows.Load())
			t := time.NewTimer(mergeRetry)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
		default:
			s.log.Debug("merged recent check history", "rows", st.rows, "transactions", len(st.holds),
				"longest_hold", longest(st.holds), "took", time.Since(start))
		}
	}
}

// merge moves every row of recent_results written before it started into
// check_results, mergeChunk checks per transaction. With yield it pauses
// after each transaction as long as it held the lock, like the sweep, so
// the writer and the alert state never wait for more than one chunk in a
// row, unless twice mergeRows rows wait.
func (s *Store) merge(ctx context.Context, yield bool) (st mergeStats, err error) {
	defer func() { err = s.track(opHistory, err) }()
	s.mergeMu.Lock()
	defer s.mergeMu.Unlock()
	var upto int64
	if err := s.w.QueryRowContext(ctx, `SELECT ifnull(max(id), 0) FROM recent_results`).Scan(&upto); err != nil {
		return st, fmt.Errorf("merge recent results: %w", err)
	}
	// Rows written from here on are counted for the next merge.
	s.recent.lastMerge.Store(time.Now().UnixNano())
	if upto == 0 {
		return st, nil
	}
	for lo := int64(math.MinInt64); ; {
		var hi sql.NullInt64
		if err := s.w.QueryRowContext(ctx, mergeBound, lo, s.mergeChunk).Scan(&hi); err != nil {
			return st, fmt.Errorf("merge recent results: %w", err)
		}
		if !hi.Valid {
			return st, nil
		}
		began := time.Now()
		n, err := s.mergeRange(ctx, lo, hi.Int64, upto)
		held := time.Since(began)
		if err != nil {
			return st, fmt.Errorf("merge recent results: %w", err)
		}
		st.rows += n
		st.holds = append(st.holds, held)
		s.recent.rows.Add(-n)
		// Behind by more than a merge's worth (a backlog after a stall,
		// or a burst of writes): catch up first, or readers scan more
		// and more.
		if yield && s.recent.rows.Load() < 2*s.mergeRows {
			t := time.NewTimer(held)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return st, ctx.Err()
			}
		}
		lo = hi.Int64
	}
}

// mergeRange moves the rows of checks (lo, hi] up to id upto in one
// transaction and returns how many it moved.
func (s *Store) mergeRange(ctx context.Context, lo, hi, upto int64) (int64, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	if _, err := tx.ExecContext(ctx, mergeResults, lo, hi, upto); err != nil {
		return 0, fmt.Errorf("copy: %w", err)
	}
	if _, err := tx.ExecContext(ctx, mergeHours, lo, hi, upto); err != nil {
		return 0, fmt.Errorf("count hours: %w", err)
	}
	res, err := tx.ExecContext(ctx, mergeDelete, lo, hi, upto)
	if err != nil {
		return 0, fmt.Errorf("delete merged: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	return n, tx.Commit()
}

// requestMerge wakes the merge loop if a merge is due.
func (s *Store) requestMerge(now time.Time) {
	if !s.recent.due(now, s.mergeRows, mergeAge) {
		return
	}
	select {
	case s.mergeReq <- struct{}{}:
	default:
	}
}
