package store

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"
)

// storedColumns are read into a stored, in its field order.
const storedColumns = `started_at, duration_ns, success, reason, message, shape_id, phases, vals, diagnostics`

// History returns up to limit of a check's results, newest first; limit <= 0
// returns all of them. Only committed results are seen: call Flush first to
// include ones just recorded.
func (s *Store) History(ctx context.Context, check string, limit int) ([]Record, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	return s.records(ctx, historyQuery, check, check, limit)
}

// The history queries; TestQueryPlans checks that none scans the table.
const (
	// One range of the primary key (check_id, started_at, seq), walked
	// backwards: no sort, and the rows are next to each other on disk.
	historyQuery = `SELECT ?, ` + storedColumns + ` FROM check_results
		WHERE check_id = (SELECT id FROM checks WHERE name = ?)
		ORDER BY started_at DESC, seq DESC LIMIT ?`
	summariesQuery = `SELECT started_at, duration_ns, success, reason, message FROM check_results
		WHERE check_id = (SELECT id FROM checks WHERE name = ?)
		ORDER BY started_at DESC, seq DESC LIMIT ?`
	// For each check one descent of the primary key finds its newest row:
	// the cost grows with the number of checks, not of rows. CROSS JOIN
	// keeps checks the outer loop; with a plain JOIN SQLite may choose to
	// scan every result instead.
	latestQuery = `SELECT c.name, r.started_at, r.duration_ns, r.success, r.reason, r.message,
			r.shape_id, r.phases, r.vals, r.diagnostics
		FROM checks c CROSS JOIN check_results r
		WHERE r.check_id = c.id AND (r.started_at, r.seq) = (SELECT started_at, seq FROM check_results
			WHERE check_id = c.id ORDER BY started_at DESC, seq DESC LIMIT 1)`
)

// Summary is a past run without its phases, values and diagnostics: what
// history lists and sparklines need.
type Summary struct {
	Start    time.Time
	Duration time.Duration
	Success  bool
	Reason   string
	Message  string
}

// Summaries is History without phases, values and diagnostics: a status
// page refreshing every few seconds reads 30 runs of every check, and
// decoding their values cost ten times the rest.
func (s *Store) Summaries(ctx context.Context, check string, limit int) ([]Summary, error) {
	if limit <= 0 {
		limit = -1
	}
	rows, err := s.r.QueryContext(ctx, summariesQuery, check, limit)
	if err != nil {
		return nil, fmt.Errorf("query check history: %w", err)
	}
	return scanSummaries(rows)
}

// SummariesOf is Summaries for several checks, keyed by check name (a
// check without runs has none): one reader connection and one prepared
// statement for all of them, not a connection from the pool and a parse
// of the query per check. A page of the API reads a hundred.
func (s *Store) SummariesOf(ctx context.Context, checks []string, limit int) (map[string][]Summary, error) {
	if limit <= 0 {
		limit = -1
	}
	out := make(map[string][]Summary, len(checks))
	if len(checks) == 0 {
		return out, nil
	}
	conn, err := s.r.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("query check history: %w", err)
	}
	defer conn.Close()
	stmt, err := conn.PrepareContext(ctx, summariesQuery)
	if err != nil {
		return nil, fmt.Errorf("query check history: %w", err)
	}
	defer stmt.Close()
	for _, check := range checks {
		rows, err := stmt.QueryContext(ctx, check, limit)
		if err != nil {
			return nil, fmt.Errorf("query check history: %w", err)
		}
		if out[check], err = scanSummaries(rows); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// scanSummaries reads and closes the rows of summariesQuery.
func scanSummaries(rows *sql.Rows) ([]Summary, error) {
	defer rows.Close()
	var out []Summary
	for rows.Next() {
		var startMS, durNS int64
		var sm Summary
		if err := rows.Scan(&startMS, &durNS, &sm.Success, &sm.Reason, &sm.Message); err != nil {
			return nil, fmt.Errorf("read check history: %w", err)
		}
		sm.Start, sm.Duration = time.UnixMilli(startMS), time.Duration(durNS)
		out = append(out, sm)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read check history: %w", err)
	}
	return out, nil
}

// Latest returns the newest result of every check in the store, keyed by
// check name. The agent reads it at start-up to show the last known state
// until each check runs again.
func (s *Store) Latest(ctx context.Context) (map[string]Record, error) {
	recs, err := s.records(ctx, latestQuery)
	if err != nil {
		return nil, err
	}
	out := make(map[string]Record, len(recs))
	for _, r := range recs {
		out[r.Check] = r
	}
	return out, nil
}

// records runs q, whose columns are the check name and storedColumns, and
// decodes its rows. Rows and their shapes are read in one transaction, so
// a sweep deleting a shape cannot come between them.
func (s *Store) records(ctx context.Context, q string, args ...any) ([]Record, error) {
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("query check history: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("query check history: %w", err)
	}
	type named struct {
		check string
		w     stored
	}
	var raw []named
	for rows.Next() {
		var n named
		w := &n.w
		if err := rows.Scan(&n.check, &w.startMS, &w.durationNS, &w.success, &w.reason, &w.message,
			&w.shapeID, &w.phases, &w.values, &w.diagnostics); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read check history: %w", err)
		}
		raw = append(raw, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read check history: %w", err)
	}
	out := make([]Record, 0, len(raw))
	for _, n := range raw {
		sh, err := s.shapes.get(ctx, tx, n.w.shapeID)
		if err != nil {
			return nil, fmt.Errorf("read check history of %s: %w", n.check, err)
		}
		rec, err := decode(n.check, n.w, sh)
		if err != nil {
			return nil, fmt.Errorf("read check history of %s: %w", n.check, err)
		}
		out = append(out, rec)
	}
	return out, nil
}

// shapeCache holds the shapes readers have decoded. Shape ids are never
// reused (AUTOINCREMENT) and a shape row never changes, so an entry stays
// right for the life of the store; it is only bounded.
type shapeCache struct {
	mu sync.Mutex
	m  map[int64]*shapeDef
}

// maxCachedShapes bounds both the readers' and the writer's shape caches.
// Shapes are few (a family's phases and values, with labels drawn from
// bounded sets); past this many something emits unbounded label values,
// and the caches start over rather than grow.
const maxCachedShapes = 4096

func (c *shapeCache) get(ctx context.Context, tx *sql.Tx, id int64) (*shapeDef, error) {
	c.mu.Lock()
	sh := c.m[id]
	c.mu.Unlock()
	if sh != nil {
		return sh, nil
	}
	var typ, shape string
	if err := tx.QueryRowContext(ctx, `SELECT type, shape FROM result_shapes WHERE id = ?`, id).Scan(&typ, &shape); err != nil {
		return nil, fmt.Errorf("read shape %d: %w", id, err)
	}
	sh, err := parseShape(typ, shape)
	if err != nil {
		return nil, fmt.Errorf("shape %d: %w", id, err)
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedShapes {
		c.m = map[int64]*shapeDef{}
	}
	c.m[id] = sh
	c.mu.Unlock()
	return sh, nil
}
