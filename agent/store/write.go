package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
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
		s.requestMerge(time.Now())
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

// insertResult writes one row at the end of recent_results; the merge
// (merge.go) gives it its seq and n when it moves it into check_results.
const insertResult = `INSERT INTO recent_results
	(check_id, started_at, duration_ns, success, reason, message, shape_id, phases, vals, diagnostics)
	VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)`

// insert commits a batch of rows in one transaction.
func (s *Store) insert(batch []row) (err error) {
	defer func() { err = s.track(opHistory, err) }()
	s.ids.mu.Lock()
	defer s.ids.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin write: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	// The statements run with ctx's values but not its deadline: the
	// transaction already rolls back when ctx ends, and a deadline on
	// each statement costs the driver a watcher goroutine per row. A
	// batch's statements are short; the wait for another process's lock
	// is bounded by busy_timeout.
	rowCtx := context.WithoutCancel(ctx)
	res := s.ids.resolver(rowCtx, tx, time.Now())
	stmt := tx.StmtContext(rowCtx, s.stmts.insert)
	defer stmt.Close()
	for _, w := range batch {
		checkID, err := res.check(w.check)
		if err != nil {
			return err
		}
		shapeID, err := res.shape(w.typ, w.shape)
		if err != nil {
			return err
		}
		var diag any
		if w.diagnostics != "" {
			diag = w.diagnostics
		}
		if _, err := stmt.ExecContext(rowCtx, checkID, w.startMS, w.durationNS, w.success,
			w.reason, w.message, shapeID, w.phases, w.values, diag); err != nil {
			return fmt.Errorf("insert check result: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit check results: %w", err)
	}
	res.keep()
	s.recent.added(len(batch))
	return nil
}

// hourOf is the check_hours hour of a start time in unix milliseconds.
func hourOf(ms int64) int64 {
	h := ms / 3_600_000
	if ms < 0 && ms%3_600_000 != 0 {
		h-- // floor, for starts before 1970 in hand-made tests
	}
	return h
}

// writerStmts are the history writer's statements, prepared once on the
// write connection rather than for every batch (with rows run without a
// per-row deadline, 0.203 against 0.219 ms per run at 10,000 checks;
// BENCHMARKS.md, "Seventh round").
type writerStmts struct {
	insert      *sql.Stmt
	mergeInsert *sql.Stmt
}

func prepareWriter(ctx context.Context, w *sql.DB) (writerStmts, error) {
	var st writerStmts
	var err error
	if st.insert, err = w.PrepareContext(ctx, insertResult); err != nil {
		return st, fmt.Errorf("prepare insert: %w", err)
	}
	if st.mergeInsert, err = w.PrepareContext(ctx, mergeInsert); err != nil {
		st.insert.Close()
		return st, fmt.Errorf("prepare merge: %w", err)
	}
	return st, nil
}

func (st writerStmts) close() error {
	return errors.Join(st.insert.Close(), st.mergeInsert.Close())
}

// shapeRefresh is how stale a shape's last_used may get while the writer
// uses it. The sweep deletes shapes unused for 2*shapeRefresh longer than
// the retention, so a shape the writer has cached is never deleted.
const shapeRefresh = time.Hour

// ids maps check names and result shapes to their ids for insert.
type ids struct {
	mu     sync.Mutex // one insert at a time
	checks map[string]int64
	shapes map[shapeKey]shapeRef
}

type shapeKey struct{ typ, shape string }

type shapeRef struct{ id, lastUsed int64 }

// resolver looks ids up for one transaction. Ids it creates or refreshes
// are cached only once the transaction commits (keep): a rolled-back
// check or shape row must not be remembered.
type resolver struct {
	ctx    context.Context
	tx     *sql.Tx
	ids    *ids
	now    int64
	checks map[string]int64
	shapes map[shapeKey]shapeRef
}

func (c *ids) resolver(ctx context.Context, tx *sql.Tx, now time.Time) *resolver {
	return &resolver{ctx: ctx, tx: tx, ids: c, now: now.UnixMilli()}
}

func (r *resolver) check(name string) (int64, error) {
	if id, ok := r.ids.checks[name]; ok {
		return id, nil
	}
	if id, ok := r.checks[name]; ok {
		return id, nil
	}
	if _, err := r.tx.ExecContext(r.ctx, `INSERT INTO checks (name) VALUES (?) ON CONFLICT (name) DO NOTHING`, name); err != nil {
		return 0, fmt.Errorf("add check %q: %w", name, err)
	}
	var id int64
	if err := r.tx.QueryRowContext(r.ctx, `SELECT id FROM checks WHERE name = ?`, name).Scan(&id); err != nil {
		return 0, fmt.Errorf("look up check %q: %w", name, err)
	}
	if r.checks == nil {
		r.checks = map[string]int64{}
	}
	r.checks[name] = id
	return id, nil
}

func (r *resolver) shape(typ, shape string) (int64, error) {
	k := shapeKey{typ, shape}
	ref, ok := r.shapes[k]
	if !ok {
		ref, ok = r.ids.shapes[k]
	}
	if ok && r.now-ref.lastUsed < shapeRefresh.Milliseconds() {
		return ref.id, nil
	}
	if ok {
		res, err := r.tx.ExecContext(r.ctx, `UPDATE result_shapes SET last_used = ? WHERE id = ?`, r.now, ref.id)
		if err != nil {
			return 0, fmt.Errorf("refresh result shape: %w", err)
		}
		// Zero rows: the sweep deleted it after a long pause in this
		// check's results; add it again below.
		if n, err := res.RowsAffected(); err == nil && n == 1 {
			r.remember(k, shapeRef{ref.id, r.now})
			return ref.id, nil
		}
	}
	var id int64
	if err := r.tx.QueryRowContext(r.ctx, `INSERT INTO result_shapes (type, shape, last_used) VALUES (?, ?, ?)
		ON CONFLICT (type, shape) DO UPDATE SET last_used = excluded.last_used RETURNING id`, typ, shape, r.now).Scan(&id); err != nil {
		return 0, fmt.Errorf("add result shape: %w", err)
	}
	r.remember(k, shapeRef{id, r.now})
	return id, nil
}

func (r *resolver) remember(k shapeKey, ref shapeRef) {
	if r.shapes == nil {
		r.shapes = map[shapeKey]shapeRef{}
	}
	r.shapes[k] = ref
}

// keep caches what the committed transaction created or refreshed.
func (r *resolver) keep() {
	c := r.ids
	if c.checks == nil || len(c.checks)+len(r.checks) > maxCachedChecks {
		c.checks = make(map[string]int64, len(r.checks))
	}
	maps.Copy(c.checks, r.checks)
	if c.shapes == nil || len(c.shapes)+len(r.shapes) > maxCachedShapes {
		c.shapes = make(map[shapeKey]shapeRef, len(r.shapes))
	}
	maps.Copy(c.shapes, r.shapes)
}

// maxCachedChecks bounds the writer's name -> id cache (about 80 bytes a
// check); an agent with more checks looks the rest up in SQLite.
const maxCachedChecks = 100_000

// Sweep limits. A transaction of the sweep holds the one write connection,
// so results, alert state and the outbox wait for it: it ends after
// pruneChunk rows or pruneHold, whichever comes first, and the sweep then
// pauses as long as it held the lock before taking it again.
const (
	pruneChunk = 1000
	pruneHold  = 10 * time.Millisecond
)

// deleteOldest deletes up to ?3 of check ?1's oldest rows that started
// before ?2. The subquery walks the check's key range from its oldest
// row and stops after ?3, so one statement is bounded however much is due.
const deleteOldest = `DELETE FROM check_results WHERE check_id = ?1 AND (started_at, seq) IN
	(SELECT started_at, seq FROM check_results WHERE check_id = ?1 AND started_at < ?2
	 ORDER BY started_at, seq LIMIT ?3)`

// Prune deletes check results that started before olderThan and, per
// check, the oldest beyond Options.MaxResultsPerCheck, and reports how many
// it deleted. It works check by check in short transactions (see
// pruneChunk), so writers wait for at most one of them.
func (s *Store) Prune(ctx context.Context, olderThan time.Time) (int64, error) {
	st, err := s.prune(ctx, olderThan)
	return st.rows, err
}

// pruneStats is what one sweep did.
type pruneStats struct {
	rows    int64           // results deleted
	overCap int64           // of them, those beyond the per-check cap
	shapes  int64           // unused result shapes deleted
	holds   []time.Duration // how long each transaction held the write lock
}

func (s *Store) prune(ctx context.Context, olderThan time.Time) (st pruneStats, err error) {
	defer func() { err = s.track(opPrune, err) }()
	// One sweep at a time: two would both trim a check by the count they
	// listed, to below the cap.
	s.pruneMu.Lock()
	defer s.pruneMu.Unlock()
	// The sweep reads and trims check_results only: move every waiting
	// row there first, so old rows still in recent_results are swept too.
	if _, err := s.merge(ctx, true); err != nil {
		return st, err
	}
	sw := &sweep{s: s, ctx: ctx, st: &st, hourCutoff: math.MinInt64}
	if hr := time.Duration(s.hourRetention.Load()); hr > 0 {
		// The sweep's now is olderThan plus the retention; hours outlive
		// the history they count: never cut later than it.
		now := time.Now()
		if s.retention > 0 {
			now = olderThan.Add(s.retention)
		}
		sw.hourCutoff = hourOf(min(now.Add(-hr).UnixMilli(), olderThan.UnixMilli()))
	}
	defer sw.rollback()
	cutoff := olderThan.UnixMilli()
	for after := int64(math.MinInt64); ; {
		batch, err := s.checkCounts(ctx, after)
		if err != nil {
			return st, err
		}
		if len(batch) == 0 {
			break
		}
		for _, c := range batch {
			if err := sw.check(c.id, c.n, cutoff); err != nil {
				return st, fmt.Errorf("prune history: %w", err)
			}
		}
		after = batch[len(batch)-1].id
	}
	if err := sw.commit(); err != nil {
		return st, fmt.Errorf("prune history: %w", err)
	}
	if sw.hourCutoff > math.MinInt64 {
		// One row per SLO and hour: a few thousand rows a month at most.
		if _, err := s.w.ExecContext(ctx, `DELETE FROM slo_hours WHERE hour < ?`, sw.hourCutoff); err != nil {
			return st, fmt.Errorf("prune SLO events: %w", err)
		}
	}
	// Never past now: a shape the writer cached was used within the last
	// shapeRefresh, whatever olderThan a caller passes.
	unused := min(cutoff, time.Now().UnixMilli()) - 2*shapeRefresh.Milliseconds()
	res, err := s.w.ExecContext(ctx, `DELETE FROM result_shapes WHERE last_used < ?`, unused)
	if err != nil {
		return st, fmt.Errorf("prune result shapes: %w", err)
	}
	st.shapes, _ = res.RowsAffected()
	return st, nil
}

type checkCount struct{ id, n int64 }

const checkCountsQuery = `SELECT id, ifnull(
		(SELECT n FROM check_results WHERE check_id = checks.id ORDER BY started_at DESC, seq DESC LIMIT 1) -
		(SELECT n FROM check_results WHERE check_id = checks.id ORDER BY started_at, seq LIMIT 1) + 1, 0)
	FROM checks WHERE id > ? ORDER BY id LIMIT 1000`

// checkCounts lists checks after id with their row counts, a page at a
// time, from the read pool: the sweep does not hold the write lock to find
// its way. A count is the check's newest n minus its oldest plus one: two
// descents of the key instead of counting rows. It is exact when results
// arrive in the order they started, and low otherwise (a run recorded
// after a later-started one); by the time the check is swept it may be low
// by what the writer added since. Low counts only make the cap trim less.
func (s *Store) checkCounts(ctx context.Context, after int64) ([]checkCount, error) {
	rows, err := s.r.QueryContext(ctx, checkCountsQuery, after)
	if err != nil {
		return nil, fmt.Errorf("list checks: %w", err)
	}
	defer rows.Close()
	var out []checkCount
	for rows.Next() {
		var c checkCount
		if err := rows.Scan(&c.id, &c.n); err != nil {
			return nil, fmt.Errorf("list checks: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// sweep is one prune's open transaction and what it has done so far.
type sweep struct {
	s   *Store
	ctx context.Context
	st  *pruneStats
	// hourCutoff is the first hour of check_hours kept (math.MinInt64:
	// all of them).
	hourCutoff int64
	tx         *sql.Tx
	began      time.Time
	rows       int // deleted in tx
}

// check deletes check id's rows before cutoff, then its oldest rows beyond
// the cap; n is its row count as listed.
func (sw *sweep) check(id, n, cutoff int64) error {
	old, err := sw.deleteOldest(id, cutoff, math.MaxInt64)
	if err != nil {
		return err
	}
	if sw.hourCutoff > math.MinInt64 {
		// At most one row per hour: one statement, in the open transaction.
		if err := sw.begin(); err != nil {
			return err
		}
		if _, err := sw.tx.ExecContext(sw.ctx, `DELETE FROM check_hours WHERE check_id = ? AND hour < ?`, id, sw.hourCutoff); err != nil {
			return err
		}
	}
	if limit := int64(sw.s.maxResults); limit > 0 && n-old > limit {
		deleted, err := sw.deleteOldest(id, math.MaxInt64, n-old-limit)
		if err != nil {
			return err
		}
		sw.st.overCap += deleted
	}
	return nil
}

// deleteOldest deletes up to max of check id's oldest rows that started
// before cutoff, over as many transactions as it takes, and returns how
// many it deleted.
func (sw *sweep) deleteOldest(id, cutoff, max int64) (int64, error) {
	var total int64
	for total < max {
		if err := sw.begin(); err != nil {
			return total, err
		}
		limit := min(max-total, int64(sw.s.pruneChunk-sw.rows))
		res, err := sw.tx.ExecContext(sw.ctx, deleteOldest, id, cutoff, limit)
		if err != nil {
			return total, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, err
		}
		total += n
		sw.rows += int(n)
		sw.st.rows += n
		if sw.rows >= sw.s.pruneChunk || time.Since(sw.began) >= pruneHold {
			if err := sw.commit(); err != nil {
				return total, err
			}
		}
		if n < limit {
			break
		}
	}
	return total, nil
}

func (sw *sweep) begin() error {
	if sw.tx != nil {
		return nil
	}
	tx, err := sw.s.w.BeginTx(sw.ctx, nil)
	if err != nil {
		return err
	}
	sw.tx, sw.began, sw.rows = tx, time.Now(), 0
	return nil
}

// commit ends the open transaction, if any, and then yields: it waits as
// long as the transaction held the lock, so the sweep takes at most half of
// the write connection's time and leaves CPU and disk to the checks. The
// pause is also when the WAL can be checkpointed completely (see
// Store.checkpoint).
func (sw *sweep) commit() error {
	if sw.tx == nil {
		return nil
	}
	err := sw.tx.Commit()
	held := time.Since(sw.began)
	sw.tx = nil
	sw.st.holds = append(sw.st.holds, held)
	if err != nil {
		return err
	}
	paused := time.Now()
	sw.s.checkpoint(sw.ctx)
	t := time.NewTimer(max(0, held-time.Since(paused)))
	defer t.Stop()
	select {
	case <-t.C:
	case <-sw.ctx.Done():
	}
	return nil
}

func (sw *sweep) rollback() {
	if sw.tx != nil {
		sw.tx.Rollback() //nolint:errcheck // the error that got us here matters more
	}
}

// pruneLoop deletes results older than retention at start-up and then
// every interval, until ctx is cancelled by Close.
func (s *Store) pruneLoop(ctx context.Context, retention, outboxRetention, interval time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		start := time.Now()
		if retention > 0 {
			st, err := s.prune(ctx, start.Add(-retention))
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				s.log.Warn("prune check history", "err", err)
			case st.rows > 0 || st.shapes > 0:
				s.log.Debug("pruned check history", "rows", st.rows, "over_cap", st.overCap, "shapes", st.shapes,
					"retention", retention, "transactions", len(st.holds), "longest_hold", longest(st.holds),
					"took", time.Since(start))
			}
		}
		if outboxRetention > 0 {
			n, err := s.PruneOutbox(ctx, time.Now().Add(-outboxRetention))
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				s.log.Warn("prune outbox", "err", err)
			case n > 0:
				s.log.Debug("pruned outbox", "notifications", n, "retention", outboxRetention)
			}
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

func longest(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return slices.Max(d)
}
