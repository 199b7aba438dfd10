package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// DrillRow is one drill run and its report.
type DrillRow struct {
	ID, Drill, State      string
	StartedAt, FinishedAt time.Time
	Spec                  string // the drill file as run
	Report                string // JSON
}

// SaveDrillRun inserts or updates a drill run.
func (s *Store) SaveDrillRun(ctx context.Context, r DrillRow) (err error) {
	defer func() { err = s.track(opDrills, err) }()
	if _, err := s.w.ExecContext(ctx, `INSERT INTO drill_runs (id, drill, state, started_at, finished_at, spec, report) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET state = excluded.state, finished_at = excluded.finished_at, report = excluded.report`,
		r.ID, r.Drill, r.State, r.StartedAt.UnixMilli(), ms(r.FinishedAt), r.Spec, r.Report); err != nil {
		return fmt.Errorf("save drill run: %w", err)
	}
	return nil
}

const drillCols = `id, drill, state, started_at, finished_at, spec, report`

func scanDrill(sc interface{ Scan(...any) error }) (DrillRow, error) {
	var r DrillRow
	var started, finished int64
	err := sc.Scan(&r.ID, &r.Drill, &r.State, &started, &finished, &r.Spec, &r.Report)
	r.StartedAt, r.FinishedAt = time.UnixMilli(started), fromMS(finished)
	return r, err
}

// DrillRuns lists drill runs, newest first; drill and states filter when
// not empty.
func (s *Store) DrillRuns(ctx context.Context, drill string, limit int, states ...string) ([]DrillRow, error) {
	q := `SELECT ` + drillCols + ` FROM drill_runs WHERE (? = '' OR drill = ?)`
	args := []any{drill, drill}
	if len(states) > 0 {
		q += ` AND state IN (?` + repeat(", ?", len(states)-1) + `)`
		for _, st := range states {
			args = append(args, st)
		}
	}
	q += ` ORDER BY started_at DESC, id DESC LIMIT ?`
	rows, err := s.w.QueryContext(ctx, q, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("list drill runs: %w", err)
	}
	defer rows.Close()
	var out []DrillRow
	for rows.Next() {
		r, err := scanDrill(rows)
		if err != nil {
			return nil, fmt.Errorf("list drill runs: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// ErrNotFound is returned for an unknown ID.
var ErrNotFound = errors.New("not found")

// DrillRun returns one drill run.
func (s *Store) DrillRun(ctx context.Context, id string) (DrillRow, error) {
	r, err := scanDrill(s.w.QueryRowContext(ctx, `SELECT `+drillCols+` FROM drill_runs WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("drill run %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("drill run %q: %w", id, err)
	}
	return r, nil
}

// Delivery is a notification the outbox delivered.
type Delivery struct {
	Target  string
	DoneAt  time.Time
	Payload []byte // JSON notify.Message
}

// Delivered lists notifications delivered since the time, oldest first.
// A drill reads its pages from them by their decoded labels.
func (s *Store) Delivered(ctx context.Context, since time.Time) ([]Delivery, error) {
	rows, err := s.w.QueryContext(ctx, `SELECT target, done_at, payload FROM outbox WHERE state = 'sent' AND created_at >= ? ORDER BY done_at`,
		since.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("delivered notifications: %w", err)
	}
	defer rows.Close()
	var out []Delivery
	for rows.Next() {
		var d Delivery
		var done int64
		if err := rows.Scan(&d.Target, &done, &d.Payload); err != nil {
			return nil, fmt.Errorf("delivered notifications: %w", err)
		}
		d.DoneAt = time.UnixMilli(done)
		out = append(out, d)
	}
	return out, rows.Err()
}
