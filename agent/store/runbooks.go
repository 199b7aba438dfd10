package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// RunRow is one runbook run in the journal.
type RunRow struct {
	ID, Runbook, Target, Trigger string
	Labels                       string // JSON object
	// Alert identifies the triggering alert incident ("fingerprint@startsAt
	// in ms"), so a restarted agent does not run a runbook again for an
	// alert it already acted on; empty for manual runs.
	Alert                 string
	Mode, State, Error    string
	Fencing               int64
	CreatedAt, FinishedAt time.Time
}

// RunEvent is one transition of a run.
type RunEvent struct {
	Seq     int
	At      time.Time
	Kind    string
	Phase   string
	Step    int
	Name    string
	Attempt int
	Detail  string
	Error   string
	Took    time.Duration
}

// CreateRun inserts a run with its first event in one transaction.
func (s *Store) CreateRun(ctx context.Context, r RunRow, first RunEvent) (err error) {
	defer func() { err = s.track(opRunbooks, err) }()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("create run: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO runbook_runs (id, runbook, target, trigger, labels, alert, mode, state, error, fencing, created_at, finished_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, r.ID, r.Runbook, r.Target, r.Trigger, r.Labels, r.Alert, r.Mode, r.State, r.Error, r.Fencing,
		r.CreatedAt.UnixMilli(), ms(r.FinishedAt)); err != nil {
		return fmt.Errorf("create run: %w", err)
	}
	if err := addEvent(ctx, tx, r.ID, first); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("create run: %w", err)
	}
	return nil
}

// UpdateRun sets a run's state (and error, fencing token, finish time) and
// appends an event, in one transaction.
func (s *Store) UpdateRun(ctx context.Context, id, state, errMsg string, fencing int64, finished time.Time, ev *RunEvent) (err error) {
	defer func() { err = s.track(opRunbooks, err) }()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("update run: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE runbook_runs SET state = ?, error = ?, fencing = ?, finished_at = ? WHERE id = ?`,
		state, errMsg, fencing, ms(finished), id); err != nil {
		return fmt.Errorf("update run: %w", err)
	}
	if ev != nil {
		if err := addEvent(ctx, tx, id, *ev); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("update run: %w", err)
	}
	return nil
}

// AddRunEvent appends one event to a run's timeline; it returns once the
// event is committed.
func (s *Store) AddRunEvent(ctx context.Context, id string, ev RunEvent) (err error) {
	defer func() { err = s.track(opRunbooks, err) }()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("run event: %w", err)
	}
	defer tx.Rollback()
	if err := addEvent(ctx, tx, id, ev); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("run event: %w", err)
	}
	return nil
}

func addEvent(ctx context.Context, tx *sql.Tx, id string, ev RunEvent) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO runbook_events (run_id, seq, at, kind, phase, step, name, attempt, detail, error, took_ms)
		VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM runbook_events WHERE run_id = ?), ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		id, id, ev.At.UnixMilli(), ev.Kind, ev.Phase, ev.Step, ev.Name, ev.Attempt, ev.Detail, ev.Error, ev.Took.Milliseconds()); err != nil {
		return fmt.Errorf("run event: %w", err)
	}
	return nil
}

const runCols = `id, runbook, target, trigger, labels, alert, mode, state, error, fencing, created_at, finished_at`

func scanRun(sc interface{ Scan(...any) error }) (RunRow, error) {
	var r RunRow
	var created, finished int64
	err := sc.Scan(&r.ID, &r.Runbook, &r.Target, &r.Trigger, &r.Labels, &r.Alert, &r.Mode, &r.State, &r.Error, &r.Fencing, &created, &finished)
	r.CreatedAt, r.FinishedAt = time.UnixMilli(created), fromMS(finished)
	return r, err
}

// Runs lists runs, newest first; states filters when not empty.
func (s *Store) Runs(ctx context.Context, limit int, states ...string) ([]RunRow, error) {
	q := `SELECT ` + runCols + ` FROM runbook_runs`
	var args []any
	if len(states) > 0 {
		q += ` WHERE state IN (?` + repeat(", ?", len(states)-1) + `)`
		for _, st := range states {
			args = append(args, st)
		}
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT ?`
	args = append(args, limit)
	rows, err := s.w.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	defer rows.Close()
	var out []RunRow
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, fmt.Errorf("list runs: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func repeat(s string, n int) string {
	out := ""
	for range n {
		out += s
	}
	return out
}

// ErrNoRun is returned for an unknown run ID.
var ErrNoRun = errors.New("no such run")

// Run returns a run and its timeline.
func (s *Store) Run(ctx context.Context, id string) (RunRow, []RunEvent, error) {
	r, err := scanRun(s.w.QueryRowContext(ctx, `SELECT `+runCols+` FROM runbook_runs WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return r, nil, ErrNoRun
	}
	if err != nil {
		return r, nil, fmt.Errorf("read run: %w", err)
	}
	rows, err := s.w.QueryContext(ctx, `SELECT seq, at, kind, phase, step, name, attempt, detail, error, took_ms FROM runbook_events WHERE run_id = ? ORDER BY seq`, id)
	if err != nil {
		return r, nil, fmt.Errorf("read run events: %w", err)
	}
	defer rows.Close()
	var evs []RunEvent
	for rows.Next() {
		var ev RunEvent
		var at, took int64
		if err := rows.Scan(&ev.Seq, &at, &ev.Kind, &ev.Phase, &ev.Step, &ev.Name, &ev.Attempt, &ev.Detail, &ev.Error, &took); err != nil {
			return r, nil, fmt.Errorf("read run events: %w", err)
		}
		ev.At, ev.Took = time.UnixMilli(at), time.Duration(took)*time.Millisecond
		evs = append(evs, ev)
	}
	return r, evs, rows.Err()
}

// RunbookStateGet and RunbookStatePut are the local runbook backend's
// key-value state (cooldowns, acks, pause).
func (s *Store) RunbookStateGet(ctx context.Context, key string) (string, bool, error) {
	var v string
	err := s.w.QueryRowContext(ctx, `SELECT value FROM runbook_state WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("runbook state: %w", err)
	}
	return v, true, nil
}

// RunbookStatePut sets a key; an empty value deletes it.
func (s *Store) RunbookStatePut(ctx context.Context, key, value string) (err error) {
	defer func() { err = s.track(opRunbooks, err) }()
	if value == "" {
		_, err = s.w.ExecContext(ctx, `DELETE FROM runbook_state WHERE key = ?`, key)
	} else {
		_, err = s.w.ExecContext(ctx, `INSERT INTO runbook_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	}
	if err != nil {
		return fmt.Errorf("runbook state: %w", err)
	}
	return nil
}
