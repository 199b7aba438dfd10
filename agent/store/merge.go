package store

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"math"
	"slices"
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
// check's newest row's, both in write order (the id). The hourly counts
// are added in the same transaction, so check_hours and the rows agree.
// Numbers and counts are worked out in Go (mergeRange), not by window
// functions and GROUP BY: SQLite's sorter and temporary tables took ~4.7
// MiB of C heap per merge, which modernc's allocator keeps mapped
// afterwards (its freed regions are kept for reuse).
const (
	// mergeKeys lists the waiting runs, in write order (a rowid scan).
	mergeKeys = `SELECT id, check_id, started_at, success FROM recent_results
		WHERE check_id > ?1 AND check_id <= ?2 AND id <= ?3`
	// mergeBase is each check's newest merged n and start.
	mergeBase = `SELECT c.id,
		ifnull((SELECT n FROM check_results WHERE check_id = c.id ORDER BY started_at DESC, seq DESC LIMIT 1), 0),
		ifnull((SELECT max(started_at) FROM check_results WHERE check_id = c.id), -9223372036854775808)
		FROM checks c WHERE c.id > ?1 AND c.id <= ?2 ORDER BY c.id`
	// mergeSeq is the next seq of a check and start already merged: only
	// asked for a run that does not start after its check's newest.
	mergeSeq = `SELECT ifnull(max(seq) + 1, 0) FROM check_results WHERE check_id = ?1 AND started_at = ?2`
	// mergeInsert copies one waiting run, numbered.
	mergeInsert = `INSERT INTO check_results
		(check_id, started_at, seq, n, duration_ns, success, reason, message, shape_id, phases, vals, diagnostics)
		SELECT check_id, started_at, ?2, ?3, duration_ns, success, reason, message, shape_id, phases, vals, diagnostics
		FROM recent_results WHERE id = ?1`
	// mergeHour adds a check's runs of an hour to check_hours.
	mergeHour = `INSERT INTO check_hours (check_id, hour, runs, ok) VALUES (?1, ?2, ?3, ?4)
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
	var buf []mergeRow
	for lo := int64(math.MinInt64); ; {
		var hi sql.NullInt64
		if err := s.w.QueryRowContext(ctx, mergeBound, lo, s.mergeChunk).Scan(&hi); err != nil {
			return st, fmt.Errorf("merge recent results: %w", err)
		}
		if !hi.Valid {
			return st, nil
		}
		began := time.Now()
		var n int64
		n, buf, err = s.mergeRange(ctx, lo, hi.Int64, upto, buf)
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

// mergeRow is a waiting run's key and the numbers it is merged with.
type mergeRow struct {
	id, check, start int64
	ok               bool
	seq, n           int64
}

// mergeRange moves the rows of checks (lo, hi] up to id upto in one
// transaction and returns how many it moved. buf is scratch space for the
// rows' keys, returned for the next call.
func (s *Store) mergeRange(ctx context.Context, lo, hi, upto int64, buf []mergeRow) (int64, []mergeRow, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, buf, err
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	// As the writer's: statements run without a deadline of their own
	// (the transaction still ends with ctx), or the driver starts a
	// watcher goroutine for each.
	rowCtx := context.WithoutCancel(ctx)
	rows, err := numberRows(rowCtx, tx, lo, hi, upto, buf[:0])
	if err != nil {
		return 0, rows, fmt.Errorf("number: %w", err)
	}
	// In check_results' key order: each check's rows go to the end of
	// its range, one leaf page after the other.
	ins := tx.StmtContext(rowCtx, s.stmts.mergeInsert)
	defer ins.Close()
	for _, r := range rows {
		if _, err := ins.ExecContext(rowCtx, r.id, r.seq, r.n); err != nil {
			return 0, rows, fmt.Errorf("copy: %w", err)
		}
	}
	if err := addHours(rowCtx, tx, rows); err != nil {
		return 0, rows, fmt.Errorf("count hours: %w", err)
	}
	res, err := tx.ExecContext(rowCtx, mergeDelete, lo, hi, upto)
	if err != nil {
		return 0, rows, fmt.Errorf("delete merged: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, rows, err
	}
	if n != int64(len(rows)) {
		return 0, rows, fmt.Errorf("deleted %d waiting runs, copied %d", n, len(rows))
	}
	return n, rows, tx.Commit()
}

// addHours adds rows, sorted by check and start, to check_hours.
func addHours(ctx context.Context, tx *sql.Tx, rows []mergeRow) error {
	stmt, err := tx.PrepareContext(ctx, mergeHour)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for i := 0; i < len(rows); {
		check, hour := rows[i].check, hourOf(rows[i].start)
		var runs, ok int64
		for ; i < len(rows) && rows[i].check == check && hourOf(rows[i].start) == hour; i++ {
			runs++
			if rows[i].ok {
				ok++
			}
		}
		if _, err := stmt.ExecContext(ctx, check, hour, runs, ok); err != nil {
			return err
		}
	}
	return nil
}

// numberRows reads the keys of the runs of checks (lo, hi] up to id upto
// and gives each the seq and n a direct insert would have: n counts on from
// its check's newest merged run in write order; seq counts runs of one
// check and start in write order, after those already merged. They come
// back sorted by check, start and seq.
func numberRows(ctx context.Context, tx *sql.Tx, lo, hi, upto int64, rows []mergeRow) ([]mergeRow, error) {
	q, err := tx.QueryContext(ctx, mergeKeys, lo, hi, upto)
	if err != nil {
		return rows, err
	}
	for q.Next() {
		var r mergeRow
		if err := q.Scan(&r.id, &r.check, &r.start, &r.ok); err != nil {
			q.Close()
			return rows, err
		}
		rows = append(rows, r)
	}
	if err := q.Close(); err != nil {
		return rows, err
	}
	if len(rows) == 0 {
		return rows, nil
	}
	// Write order within each check: the scan is in id order, and a
	// stable sort keeps it.
	slices.SortStableFunc(rows, func(a, b mergeRow) int { return cmp.Compare(a.check, b.check) })
	base, err := tx.QueryContext(ctx, mergeBase, lo, hi)
	if err != nil {
		return rows, err
	}
	defer base.Close()
	seq, err := tx.PrepareContext(ctx, mergeSeq)
	if err != nil {
		return rows, err
	}
	defer seq.Close()
	for i := 0; i < len(rows); {
		check := rows[i].check
		j := i + 1
		for j < len(rows) && rows[j].check == check {
			j++
		}
		// The base rows come in check id order, as the runs now do; a
		// check with runs is in checks (the writer resolved it).
		var id, n, last int64
		for id < check {
			if !base.Next() {
				if err := base.Err(); err != nil {
					return rows, err
				}
				return rows, fmt.Errorf("check %d has waiting runs and no row in checks", check)
			}
			if err := base.Scan(&id, &n, &last); err != nil {
				return rows, err
			}
		}
		if id != check {
			return rows, fmt.Errorf("check %d has waiting runs and no row in checks", check)
		}
		own := rows[i:j]
		for k := range own {
			own[k].n = n + int64(k) + 1
		}
		slices.SortStableFunc(own, func(a, b mergeRow) int { return cmp.Compare(a.start, b.start) })
		for k := 0; k < len(own); {
			l := k + 1
			for l < len(own) && own[l].start == own[k].start {
				l++
			}
			var next int64
			if own[k].start <= last {
				if err := seq.QueryRowContext(ctx, check, own[k].start).Scan(&next); err != nil {
					return rows, err
				}
			}
			for m := k; m < l; m++ {
				own[m].seq = next + int64(m-k)
			}
			k = l
		}
		i = j
	}
	return rows, base.Err()
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
