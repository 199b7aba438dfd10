package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
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
	return s.records(ctx, historyQuery, check, limit)
}

// recentOrd is added to a recent_results row's id to order it after the
// merged rows with the same start, whose seq is far smaller (the number
// of runs of one check that started in the same millisecond).
const recentOrd = `1099511627776` // 1 << 40

// resultsOf is the results of the check id expression id in both tables,
// in key order: (started_at, ord) ascending is oldest first, where rows
// still in recent_results (ord recentOrd plus their id) come after the
// merged rows with the same start (ord their seq), in the order the merge
// will number them.
func resultsOf(id string) string {
	return `(SELECT started_at, seq AS ord, duration_ns, success, reason, message, shape_id, phases, vals, diagnostics
		FROM check_results WHERE check_id = ` + id + `
		UNION ALL
		SELECT started_at, ` + recentOrd + ` + id, duration_ns, success, reason, message, shape_id, phases, vals, diagnostics
		FROM recent_results WHERE check_id = ` + id + `)`
}

// checkID is the id of the check named ?1.
const checkID = `(SELECT id FROM checks WHERE name = ?1)`

// newestFirst orders bothTables newest first.
const newestFirst = `started_at DESC, ord DESC`

// summaryColumns are read into a Summary.
const summaryColumns = `started_at, duration_ns, success, reason, message`

// checkResults is resultsOf(checkID).
var checkResults = resultsOf(checkID)

// bothTables selects cols of the check named ?1's results in both tables
// that match cond ("" or "AND ..."), in the order order of (started_at,
// ord) as in resultsOf, limited to limit rows. It is a compound SELECT
// with the ORDER BY on the compound, not on a subquery: SQLite then merges
// the two, walking check_results' key range in order and stopping at the
// limit, where a sorted subquery would sort the check's whole history. Its
// rows end in ord.
func bothTables(cols, cond, order, limit string) string {
	return `SELECT ` + cols + `, seq AS ord FROM check_results WHERE check_id = ` + checkID + ` ` + cond + `
		UNION ALL
		SELECT ` + cols + `, ` + recentOrd + ` + id FROM recent_results WHERE check_id = ` + checkID + ` ` + cond + `
		ORDER BY ` + order + ` LIMIT ` + limit
}

// The history queries; TestQueryPlans checks that none scans check_results
// or sorts it. recent_results is scanned (it is bounded by mergeRows and
// has no index to keep its writes cheap); its rows are sorted.
var (
	// The merged rows are one range of the primary key (check_id,
	// started_at, seq), walked backwards without a sort, merged with the
	// check's sorted recent rows.
	historyQuery   = bothTables(`?1, `+storedColumns, "", newestFirst, "?2")
	summariesQuery = bothTables(summaryColumns, "", newestFirst, "?2")
	// mergedSummariesQuery is summariesQuery without recent_results, for
	// SummariesOf, which reads those once for all its checks.
	mergedSummariesQuery = `SELECT started_at, duration_ns, success, reason, message FROM check_results
		WHERE check_id = ` + checkID + ` ORDER BY started_at DESC, seq DESC LIMIT ?2`
	// recentSummariesQuery is the recent rows of the checks named in the
	// JSON array ?1, newest first per check: one scan for all of them.
	// CROSS JOIN keeps recent_results the outer loop.
	recentSummariesQuery = `SELECT c.name, r.started_at, r.duration_ns, r.success, r.reason, r.message
		FROM recent_results r CROSS JOIN checks c
		WHERE c.id = r.check_id AND r.check_id IN (SELECT id FROM checks WHERE name IN (SELECT value FROM json_each(?1)))
		ORDER BY r.check_id, r.started_at DESC, r.id DESC`
	// For each check one descent of the primary key finds its newest row:
	// the cost grows with the number of checks, not of rows. CROSS JOIN
	// keeps checks the outer loop; with a plain JOIN SQLite may choose to
	// scan every result instead.
	mergedLatestQuery = `SELECT c.name, r.started_at, r.duration_ns, r.success, r.reason, r.message,
			r.shape_id, r.phases, r.vals, r.diagnostics
		FROM checks c CROSS JOIN check_results r
		WHERE r.check_id = c.id AND (r.started_at, r.seq) = (SELECT started_at, seq FROM check_results
			WHERE check_id = c.id ORDER BY started_at DESC, seq DESC LIMIT 1)`
	// The same for recent_results, after the merged rows: the rows ?1
	// (a JSON array of ids) picked by newestWaiting, in the same
	// transaction, so both are read in one snapshot.
	latestQuery = mergedLatestQuery + ` UNION ALL SELECT c.name, ` + storedColumns + ` FROM
		json_each(?1) CROSS JOIN recent_results r CROSS JOIN checks c
		WHERE r.id = json_each.value AND c.id = r.check_id`
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
// of the query per check, and one scan of recent_results, not one per
// check. A page of the API reads a hundred.
func (s *Store) SummariesOf(ctx context.Context, checks []string, limit int) (map[string][]Summary, error) {
	if limit <= 0 {
		limit = -1
	}
	out := make(map[string][]Summary, len(checks))
	if len(checks) == 0 {
		return out, nil
	}
	names, err := json.Marshal(checks)
	if err != nil {
		return nil, err
	}
	conn, err := s.r.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("query check history: %w", err)
	}
	defer conn.Close()
	// One snapshot for both tables: a merge between the two reads would
	// move rows from the one not yet read to the one already read.
	tx, err := conn.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("query check history: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	recent, err := recentSummaries(ctx, tx, string(names))
	if err != nil {
		return nil, err
	}
	stmt, err := tx.PrepareContext(ctx, mergedSummariesQuery)
	if err != nil {
		return nil, fmt.Errorf("query check history: %w", err)
	}
	defer stmt.Close()
	for _, check := range checks {
		rows, err := stmt.QueryContext(ctx, check, limit)
		if err != nil {
			return nil, fmt.Errorf("query check history: %w", err)
		}
		merged, err := scanSummaries(rows)
		if err != nil {
			return nil, err
		}
		if sm := newestOf(recent[check], merged, limit); sm != nil {
			out[check] = sm
		}
	}
	return out, nil
}

// recentSummaries reads the recent rows of the checks named in the JSON
// array names, newest first per check.
func recentSummaries(ctx context.Context, tx *sql.Tx, names string) (map[string][]Summary, error) {
	rows, err := tx.QueryContext(ctx, recentSummariesQuery, names)
	if err != nil {
		return nil, fmt.Errorf("query check history: %w", err)
	}
	defer rows.Close()
	out := map[string][]Summary{}
	for rows.Next() {
		var (
			name           string
			startMS, durNS int64
			sm             Summary
		)
		if err := rows.Scan(&name, &startMS, &durNS, &sm.Success, &sm.Reason, &sm.Message); err != nil {
			return nil, fmt.Errorf("read check history: %w", err)
		}
		sm.Start, sm.Duration = time.UnixMilli(startMS), time.Duration(durNS)
		out[name] = append(out[name], sm)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read check history: %w", err)
	}
	return out, nil
}

// newestOf merges a check's recent and merged runs, each newest first,
// into its newest limit runs (limit < 0: all). A recent run is newer than
// a merged one with the same start: it was written later.
func newestOf(recent, merged []Summary, limit int) []Summary {
	if len(recent) == 0 {
		return merged
	}
	n := len(recent) + len(merged)
	if limit >= 0 {
		n = min(n, limit)
	}
	out := make([]Summary, 0, n)
	for len(out) < n {
		if len(merged) == 0 || len(recent) > 0 && !recent[0].Start.Before(merged[0].Start) {
			out, recent = append(out, recent[0]), recent[1:]
		} else {
			out, merged = append(out, merged[0]), merged[1:]
		}
	}
	return out
}

// skipped returns scan destinations for the columns after the first read
// of cols (bothTables' ord, which only orders the rows), reused row after
// row.
func skipped(cols []string, read int) []any {
	out := make([]any, max(0, len(cols)-read))
	for i := range out {
		out[i] = new(sql.RawBytes)
	}
	return out
}

// scanSummaries reads and closes the rows of summariesQuery.
func scanSummaries(rows *sql.Rows) ([]Summary, error) {
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, fmt.Errorf("read check history: %w", err)
	}
	const read = 5 // the Summary's columns
	ord := skipped(cols, read)
	var out []Summary
	for rows.Next() {
		var startMS, durNS int64
		var sm Summary
		if err := rows.Scan(append([]any{&startMS, &durNS, &sm.Success, &sm.Reason, &sm.Message}, ord...)...); err != nil {
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
	recs, err := s.recordsOf(ctx, func(tx *sql.Tx) (string, []any, error) {
		ids, err := newestWaiting(ctx, tx)
		return latestQuery, []any{ids}, err
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]Record, len(recs))
	// A check's recent row comes after its merged one and is newer unless
	// it started earlier (a run recorded late).
	for _, r := range recs {
		if old, ok := out[r.Check]; !ok || !r.Result.Start.Before(old.Result.Start) {
			out[r.Check] = r
		}
	}
	return out, nil
}

// newestWaiting returns, as a JSON array, the id of each check's newest row
// in recent_results (latest start, then latest write). The keys are read
// and compared here: a window function over the table sorted every
// waiting row, and modernc's allocator kept the sorter's memory mapped.
func newestWaiting(ctx context.Context, tx *sql.Tx) (string, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, check_id, started_at FROM recent_results`)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	type key struct{ id, start int64 }
	newest := map[int64]key{}
	for rows.Next() {
		var id, check, start int64
		if err := rows.Scan(&id, &check, &start); err != nil {
			return "", err
		}
		// Rows come in id order, so a later row of the same start wins.
		if k, ok := newest[check]; !ok || start >= k.start {
			newest[check] = key{id, start}
		}
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	b := make([]byte, 0, 2+8*len(newest))
	b = append(b, '[')
	for _, k := range newest {
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, k.id, 10)
	}
	return string(append(b, ']')), nil
}

// records runs q, whose columns are the check name and storedColumns, and
// decodes its rows. Rows and their shapes are read in one transaction, so
// a sweep deleting a shape cannot come between them.
func (s *Store) records(ctx context.Context, q string, args ...any) ([]Record, error) {
	return s.recordsOf(ctx, func(*sql.Tx) (string, []any, error) { return q, args, nil })
}

// recordsOf is records with the query and its arguments worked out in the
// transaction that reads them.
func (s *Store) recordsOf(ctx context.Context, query func(*sql.Tx) (string, []any, error)) ([]Record, error) {
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("query check history: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	q, args, err := query(tx)
	if err != nil {
		return nil, fmt.Errorf("query check history: %w", err)
	}
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("query check history: %w", err)
	}
	type named struct {
		check string
		w     stored
	}
	cols, err := rows.Columns()
	if err != nil {
		rows.Close()
		return nil, fmt.Errorf("read check history: %w", err)
	}
	const read = 10 // the check name and storedColumns
	ord := skipped(cols, read)
	var raw []named
	for rows.Next() {
		var n named
		w := &n.w
		if err := rows.Scan(append([]any{&n.check, &w.startMS, &w.durationNS, &w.success, &w.reason, &w.message,
			&w.shapeID, &w.phases, &w.values, &w.diagnostics}, ord...)...); err != nil {
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
