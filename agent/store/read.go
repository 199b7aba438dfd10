package store

import (
	"context"
	"fmt"
	"time"
)

const selectColumns = `check_name, check_type, started_at, duration_ns, success, reason, message, phases, vals, diagnostics`

// History returns up to limit of a check's results, newest first; limit <= 0
// returns all of them. Only committed results are seen: call Flush first to
// include ones just recorded.
func (s *Store) History(ctx context.Context, check string, limit int) ([]Record, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	// Served by the (check_name, started_at) index, whose entries end in the
	// rowid, so "started_at DESC, id DESC" needs no sort.
	return s.query(ctx, `SELECT `+selectColumns+` FROM check_results
		WHERE check_name = ? ORDER BY started_at DESC, id DESC LIMIT ?`, check, limit)
}

// Summary is a past run without its phases, values and diagnostics: what
// history lists and sparklines need.
type Summary struct {
	Start    time.Time
	Duration time.Duration
	Success  bool
	Reason   string
	Message  string
}

// Summaries is History without the JSON columns: a status page refreshing
// every few seconds reads 30 runs of every check, and decoding their values
// cost ten times the rest.
func (s *Store) Summaries(ctx context.Context, check string, limit int) ([]Summary, error) {
	if limit <= 0 {
		limit = -1
	}
	rows, err := s.r.QueryContext(ctx, `SELECT started_at, duration_ns, success, reason, message FROM check_results
		WHERE check_name = ? ORDER BY started_at DESC, id DESC LIMIT ?`, check, limit)
	if err != nil {
		return nil, fmt.Errorf("query check history: %w", err)
	}
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
	// A loose index scan: the recursive CTE hops from one check name to the
	// next through the index, and each name's newest row is one index
	// lookup, so the cost grows with the number of checks, not of rows.
	recs, err := s.query(ctx, `WITH RECURSIVE names(name) AS (
			SELECT min(check_name) FROM check_results
			UNION ALL
			SELECT (SELECT min(check_name) FROM check_results WHERE check_name > names.name)
			FROM names WHERE names.name IS NOT NULL
		)
		SELECT `+selectColumns+` FROM names JOIN check_results ON check_results.id =
			(SELECT id FROM check_results WHERE check_name = names.name ORDER BY started_at DESC, id DESC LIMIT 1)`)
	if err != nil {
		return nil, err
	}
	out := make(map[string]Record, len(recs))
	for _, r := range recs {
		out[r.Check] = r
	}
	return out, nil
}

func (s *Store) query(ctx context.Context, q string, args ...any) ([]Record, error) {
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("query check history: %w", err)
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		var w row
		if err := rows.Scan(&w.check, &w.typ, &w.startMS, &w.durationNS, &w.success,
			&w.reason, &w.message, &w.phases, &w.values, &w.diagnostics); err != nil {
			return nil, fmt.Errorf("read check history: %w", err)
		}
		rec, err := decode(w)
		if err != nil {
			return nil, fmt.Errorf("read check history of %s: %w", w.check, err)
		}
		out = append(out, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read check history: %w", err)
	}
	return out, nil
}
