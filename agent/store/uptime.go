package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Counts are runs and how many of them succeeded.
type Counts struct{ Runs, OK int64 }

// Ratio is OK/Runs; ok is false when there were no runs.
func (c Counts) Ratio() (ratio float64, ok bool) {
	if c.Runs == 0 {
		return 0, false
	}
	return float64(c.OK) / float64(c.Runs), true
}

// Add sums two counts.
func (c Counts) Add(d Counts) Counts { return Counts{c.Runs + d.Runs, c.OK + d.OK} }

// windowStart is the first hour a window ending at now covers: windows
// are counted in whole hours, so the oldest hour may be partly before the
// window (uptime "over 24h" covers 24 to 25 hours).
func windowStart(now time.Time, w time.Duration) int64 {
	return hourOf(now.Add(-w).UnixMilli())
}

// allHours is check_hours with the runs still waiting in recent_results
// counted in (the merge adds them to check_hours when it moves them).
const allHours = `(SELECT check_id, hour, runs, ok FROM check_hours
	UNION ALL SELECT check_id, ` + hourExpr + ` AS hour, 1 AS runs, success AS ok FROM recent_results)`

// windowSums selects, per check id, the runs and successes of each window
// (?1..?n are the windows' first hours; the scan starts at the longest).
func windowSums(n int) string {
	var b strings.Builder
	b.WriteString("SELECT check_id")
	for i := range n {
		fmt.Fprintf(&b, ", ifnull(sum(CASE WHEN hour >= ?%d THEN runs END), 0), ifnull(sum(CASE WHEN hour >= ?%d THEN ok END), 0)", i+1, i+1)
	}
	return b.String()
}

// Uptime returns every check's counts over each of windows, ending at now,
// keyed by check name. It reads each check's hours of the longest window:
// at 10,000 checks and 30 days that is 7.2 million rows, so callers cache
// the answer (the agent refreshes it hourly and adds runs as they come).
//
// check_hours is summed in its key order, without a sort; the runs still
// waiting in recent_results (minutes of them) are added here rather than
// by a GROUP BY over both tables, which sorted every hour row of the window
// and left the sorter's memory mapped in modernc's allocator. Both are
// read in one transaction, so a merge between them counts no run twice.
func (s *Store) Uptime(ctx context.Context, now time.Time, windows []time.Duration) (map[string][]Counts, error) {
	if len(windows) == 0 {
		return map[string][]Counts{}, nil
	}
	starts := make([]int64, len(windows))
	args := make([]any, len(windows))
	first := int64(1<<62 - 1)
	for i, w := range windows {
		starts[i] = windowStart(now, w)
		args[i] = starts[i]
		first = min(first, starts[i])
	}
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("read uptime: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	rows, err := tx.QueryContext(ctx, mergedUptimeQuery(len(windows), first), args...)
	if err != nil {
		return nil, fmt.Errorf("read uptime: %w", err)
	}
	defer rows.Close()
	out := map[string][]Counts{}
	// The checks' counts by id, for the waiting runs.
	var ids []int64
	var counts [][]Counts
	dst := make([]any, 2+2*len(windows))
	var (
		name string
		id   int64
	)
	dst[0], dst[1] = &name, &id
	for rows.Next() {
		c := make([]Counts, len(windows))
		for i := range c {
			dst[2+2*i], dst[3+2*i] = &c[i].Runs, &c[i].OK
		}
		if err := rows.Scan(dst...); err != nil {
			return nil, fmt.Errorf("read uptime: %w", err)
		}
		out[name] = c
		ids, counts = append(ids, id), append(counts, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read uptime: %w", err)
	}
	if err := addWaiting(ctx, tx, out, starts, ids, counts); err != nil {
		return nil, fmt.Errorf("read uptime: %w", err)
	}
	return out, nil
}

// mergedUptimeQuery sums check_hours from hour first on for n windows
// (?1..?n their first hours), by check, in check id order.
func mergedUptimeQuery(n int, first int64) string {
	q := windowSums(n) + fmt.Sprintf(` FROM check_hours WHERE hour >= %d GROUP BY check_id`, first)
	return `SELECT c.name, u.* FROM (` + q + `) u JOIN checks c ON c.id = u.check_id`
}

// addWaiting adds the runs waiting in recent_results to out (by name) and
// to counts (by ids, the same slices).
func addWaiting(ctx context.Context, tx *sql.Tx, out map[string][]Counts, starts, ids []int64, counts [][]Counts) error {
	if !slices.IsSorted(ids) {
		// The join keeps check_hours' order; should a plan not, sort.
		idx := make([]int, len(ids))
		for i := range idx {
			idx[i] = i
		}
		slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(ids[a], ids[b]) })
		sid, sc := make([]int64, len(ids)), make([][]Counts, len(ids))
		for i, j := range idx {
			sid[i], sc[i] = ids[j], counts[j]
		}
		ids, counts = sid, sc
	}
	first := slices.Min(starts)
	rows, err := tx.QueryContext(ctx, `SELECT check_id, started_at, success FROM recent_results`)
	if err != nil {
		return err
	}
	defer rows.Close()
	// Checks with waiting runs only (new since the last merge).
	only := map[int64][]Counts{}
	for rows.Next() {
		var (
			id, start int64
			ok        bool
		)
		if err := rows.Scan(&id, &start, &ok); err != nil {
			return err
		}
		h := hourOf(start)
		if h < first {
			continue
		}
		var c []Counts
		if i, found := slices.BinarySearch(ids, id); found {
			c = counts[i]
		} else if c = only[id]; c == nil {
			c = make([]Counts, len(starts))
			only[id] = c
		}
		for i, from := range starts {
			if h >= from {
				c[i].Runs++
				if ok {
					c[i].OK++
				}
			}
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for id, c := range only {
		var name string
		if err := tx.QueryRowContext(ctx, `SELECT name FROM checks WHERE id = ?`, id).Scan(&name); err != nil {
			return err
		}
		out[name] = c
	}
	return nil
}

// CheckUptime returns one check's counts over each of windows ending at
// now: one range of check_hours, at most one row per hour of the longest
// window.
func (s *Store) CheckUptime(ctx context.Context, check string, now time.Time, windows []time.Duration) ([]Counts, error) {
	out := make([]Counts, len(windows))
	if len(windows) == 0 {
		return out, nil
	}
	args := make([]any, 0, len(windows)+1)
	first := int64(1<<62 - 1)
	for _, w := range windows {
		h := windowStart(now, w)
		args = append(args, h)
		first = min(first, h)
	}
	args = append(args, check)
	q := windowSums(len(windows)) + fmt.Sprintf(` FROM %s
		WHERE check_id = (SELECT id FROM checks WHERE name = ?%d) AND hour >= %d`, allHours, len(windows)+1, first)
	dst := []any{new(any)}
	for i := range out {
		dst = append(dst, &out[i].Runs, &out[i].OK)
	}
	if err := s.r.QueryRowContext(ctx, q, args...).Scan(dst...); err != nil {
		return nil, fmt.Errorf("read uptime of %q: %w", check, err)
	}
	return out, nil
}

// Hour is the runs of some checks in one hour.
type Hour struct {
	Start time.Time
	Counts
}

// Hours returns the summed counts of checks per hour from the hour of from
// on, oldest first; hours without runs are left out.
func (s *Store) Hours(ctx context.Context, checks []string, from time.Time) ([]Hour, error) {
	names, err := json.Marshal(checks)
	if err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, `SELECT hour, sum(runs), sum(ok) FROM `+allHours+`
		WHERE check_id IN (SELECT id FROM checks WHERE name IN (SELECT value FROM json_each(?)))
		AND hour >= ? GROUP BY hour ORDER BY hour`, string(names), hourOf(from.UnixMilli()))
	if err != nil {
		return nil, fmt.Errorf("read hourly runs: %w", err)
	}
	defer rows.Close()
	var out []Hour
	for rows.Next() {
		var (
			h    int64
			hour Hour
		)
		if err := rows.Scan(&h, &hour.Runs, &hour.OK); err != nil {
			return nil, fmt.Errorf("read hourly runs: %w", err)
		}
		hour.Start = time.Unix(h*3600, 0)
		out = append(out, hour)
	}
	return out, rows.Err()
}

// SetSLOHour records an SLO's events in the hour starting at hour (the
// SLI's totals so far replace what was recorded for that hour).
func (s *Store) SetSLOHour(ctx context.Context, slo string, hour time.Time, total, errors int64) (err error) {
	defer func() { err = s.track(opHistory, err) }()
	if _, err := s.w.ExecContext(ctx, `INSERT INTO slo_hours (slo, hour, total, errors) VALUES (?, ?, ?, ?)
		ON CONFLICT (slo, hour) DO UPDATE SET total = excluded.total, errors = excluded.errors`,
		slo, hourOf(hour.UnixMilli()), total, errors); err != nil {
		return fmt.Errorf("record SLO events: %w", err)
	}
	return nil
}

// SLOHours returns an SLO's events per hour from the hour of from on,
// oldest first, as Counts (Runs: events, OK: good events).
func (s *Store) SLOHours(ctx context.Context, slo string, from time.Time) ([]Hour, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT hour, total, errors FROM slo_hours WHERE slo = ? AND hour >= ? ORDER BY hour`,
		slo, hourOf(from.UnixMilli()))
	if err != nil {
		return nil, fmt.Errorf("read SLO events: %w", err)
	}
	defer rows.Close()
	var out []Hour
	for rows.Next() {
		var h, total, errs int64
		if err := rows.Scan(&h, &total, &errs); err != nil {
			return nil, fmt.Errorf("read SLO events: %w", err)
		}
		out = append(out, Hour{Start: time.Unix(h*3600, 0), Counts: Counts{Runs: total, OK: max(0, total-errs)}})
	}
	return out, rows.Err()
}
