package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Incident is a firing episode of an alert.
type Incident struct {
	ID                      int64
	Fingerprint, Alertname  string
	Labels, Annotations     map[string]string
	Check, RootCause        string
	StartedAt, FiringAt     time.Time
	FirstFailureAt, PagedAt time.Time // zero when unknown
	ResolvedAt              time.Time // zero while open
}

const opIncidents = "incidents"

// ErrNoIncident is returned for an unknown incident id.
var ErrNoIncident = errors.New("no such incident")

// OpenIncident records an incident unless one is open for its fingerprint
// already; it returns the open one's id.
func (s *Store) OpenIncident(ctx context.Context, in Incident) (id int64, err error) {
	defer func() { err = s.track(opIncidents, err) }()
	labels, _ := json.Marshal(in.Labels)
	ann, _ := json.Marshal(in.Annotations)
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("open incident: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	err = tx.QueryRowContext(ctx, `SELECT id FROM incidents WHERE resolved_at = 0 AND fingerprint = ?`, in.Fingerprint).Scan(&id)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("open incident: %w", err)
	}
	if err := tx.QueryRowContext(ctx, `INSERT INTO incidents (fingerprint, alertname, labels, annotations, check_name, root_cause,
		started_at, firing_at, first_failure_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		in.Fingerprint, in.Alertname, string(labels), string(ann), in.Check, in.RootCause,
		in.StartedAt.UnixMilli(), in.FiringAt.UnixMilli(), msOrZero(in.FirstFailureAt)).Scan(&id); err != nil {
		return 0, fmt.Errorf("open incident: %w", err)
	}
	return id, tx.Commit()
}

// ResolveIncident closes the open incident of fingerprint (if any) at at,
// with the time of its first page (zero if none was delivered).
func (s *Store) ResolveIncident(ctx context.Context, fingerprint string, at, pagedAt time.Time) (err error) {
	defer func() { err = s.track(opIncidents, err) }()
	if _, err := s.w.ExecContext(ctx, `UPDATE incidents SET resolved_at = ?, paged_at = ? WHERE resolved_at = 0 AND fingerprint = ?`,
		max(at.UnixMilli(), 1), msOrZero(pagedAt), fingerprint); err != nil {
		return fmt.Errorf("resolve incident: %w", err)
	}
	return nil
}

func msOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func timeOrZero(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

const incidentCols = `id, fingerprint, alertname, labels, annotations, check_name, root_cause, started_at, firing_at, first_failure_at, paged_at, resolved_at`

// IncidentFilter selects incidents (FindIncidents); zero fields select
// everything.
type IncidentFilter struct {
	// State is "open", "resolved" or "" for both.
	State string
	// Check and Alertname match exactly.
	Check, Alertname string
	// From and To select incidents firing at some time in [From, To]:
	// fired by To and open or resolved at or after From.
	From, To time.Time
	// Limit (0: no limit) and Offset page the answer.
	Limit, Offset int
}

// FindIncidents lists the incidents f selects, newest first, a page at a
// time, with how many it selects in all.
func (s *Store) FindIncidents(ctx context.Context, f IncidentFilter) ([]Incident, int, error) {
	var (
		conds []string
		args  []any
	)
	switch f.State {
	case "open":
		conds = append(conds, "resolved_at = 0")
	case "resolved":
		conds = append(conds, "resolved_at != 0")
	case "":
	default:
		return nil, 0, fmt.Errorf("incident state %q: want open or resolved", f.State)
	}
	if f.Check != "" {
		conds, args = append(conds, "check_name = ?"), append(args, f.Check)
	}
	if f.Alertname != "" {
		conds, args = append(conds, "alertname = ?"), append(args, f.Alertname)
	}
	if !f.To.IsZero() {
		conds, args = append(conds, "firing_at <= ?"), append(args, f.To.UnixMilli())
	}
	if !f.From.IsZero() {
		conds, args = append(conds, "(resolved_at = 0 OR resolved_at >= ?)"), append(args, f.From.UnixMilli())
	}
	where := ""
	if len(conds) > 0 {
		where = "WHERE " + strings.Join(conds, " AND ")
	}
	var total int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM incidents `+where, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count incidents: %w", err)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	list, err := s.incidents(ctx, where+` ORDER BY firing_at DESC, id DESC LIMIT ? OFFSET ?`, append(args, limit, max(f.Offset, 0))...)
	return list, total, err
}

// OpenIncidents are the incidents not resolved yet, newest first.
func (s *Store) OpenIncidents(ctx context.Context) ([]Incident, error) {
	return s.incidents(ctx, `WHERE resolved_at = 0 ORDER BY firing_at DESC, id DESC`)
}

func (s *Store) incidents(ctx context.Context, where string, args ...any) ([]Incident, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+incidentCols+` FROM incidents `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("list incidents: %w", err)
	}
	defer rows.Close()
	var out []Incident
	for rows.Next() {
		in, err := scanIncident(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	return out, rows.Err()
}

// IncidentByID returns one incident.
func (s *Store) IncidentByID(ctx context.Context, id int64) (Incident, error) {
	in, err := scanIncident(s.r.QueryRowContext(ctx, `SELECT `+incidentCols+` FROM incidents WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return in, ErrNoIncident
	}
	return in, err
}

func scanIncident(r interface{ Scan(...any) error }) (Incident, error) {
	var (
		in                                        Incident
		labels, ann                               string
		started, firing, failure, paged, resolved int64
	)
	if err := r.Scan(&in.ID, &in.Fingerprint, &in.Alertname, &labels, &ann, &in.Check, &in.RootCause,
		&started, &firing, &failure, &paged, &resolved); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return in, err
		}
		return in, fmt.Errorf("read incident: %w", err)
	}
	_ = json.Unmarshal([]byte(labels), &in.Labels)
	_ = json.Unmarshal([]byte(ann), &in.Annotations)
	in.StartedAt, in.FiringAt = time.UnixMilli(started), time.UnixMilli(firing)
	in.FirstFailureAt, in.PagedAt, in.ResolvedAt = timeOrZero(failure), timeOrZero(paged), timeOrZero(resolved)
	return in, nil
}

// FirstFailure is when the check's current run of failures began, as of
// at: its first failed run after its last passing run at or before at.
// ok is false when the check's last run by then passed or it has none.
func (s *Store) FirstFailure(ctx context.Context, check string, at time.Time) (time.Time, bool, error) {
	var ms sql.NullInt64
	err := s.r.QueryRowContext(ctx, `WITH r AS `+checkResults+`
		SELECT min(started_at) FROM r WHERE success = 0 AND started_at <= ?2
		AND started_at > ifnull((SELECT max(started_at) FROM r WHERE success = 1 AND started_at <= ?2), -9223372036854775808)`, check, at.UnixMilli()).Scan(&ms)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("first failure of %s: %w", check, err)
	}
	if !ms.Valid {
		return time.Time{}, false, nil
	}
	return time.UnixMilli(ms.Int64), true, nil
}

// HistoryBetween returns up to limit of a check's results that started in
// [from, to], oldest first.
func (s *Store) HistoryBetween(ctx context.Context, check string, from, to time.Time, limit int) ([]Record, error) {
	return s.records(ctx, bothTables(`?1, `+storedColumns, `AND started_at BETWEEN ?2 AND ?3`, `started_at, ord`, `?4`), check, from.UnixMilli(), to.UnixMilli(), limit)
}

// An incident's timeline shows the notifications queued from
// IncidentPagesBefore its start to IncidentPagesAfter its resolution (a
// resolve goes out after a group wait, or after an outage of the
// receiver); the outbox sweep keeps them.
const (
	IncidentPagesBefore = time.Minute
	IncidentPagesAfter  = 10 * time.Minute
)

// OutboxBetween returns the notifications queued in [from, to], oldest
// first, at most limit.
func (s *Store) OutboxBetween(ctx context.Context, from, to time.Time, limit int) ([]*OutboxItem, error) {
	return s.outbox(ctx, `WHERE created_at BETWEEN ? AND ? ORDER BY id LIMIT ?`, from.UnixMilli(), to.UnixMilli(), limit)
}
