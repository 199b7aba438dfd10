package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// OutboxItem is one queued notification for one delivery target.
type OutboxItem struct {
	ID        int64
	Target    string
	OrderKey  string
	Payload   []byte
	State     string
	Attempts  int
	CreatedAt time.Time
	NextAt    time.Time
	DoneAt    time.Time
	LastError string
	// Unsaved items live only in memory: writing them to the store failed
	// (full disk, damaged file), so they are delivered from memory and
	// lost if the agent stops before sending them.
	Unsaved bool
}

// Outbox states.
const (
	OutboxPending = "pending"
	OutboxSent    = "sent"
	OutboxDead    = "dead"
)

// Enqueue writes items in one transaction and sets their IDs; it returns
// only once they are committed, so a notification exists on disk before any
// attempt to send it.
func (s *Store) Enqueue(ctx context.Context, items []*OutboxItem) (err error) {
	defer func() { err = s.track(opOutbox, err) }()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO outbox (target, order_key, payload, state, created_at, next_at) VALUES (?, ?, ?, 'pending', ?, ?)`)
	if err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	defer stmt.Close()
	for _, it := range items {
		res, err := stmt.ExecContext(ctx, it.Target, it.OrderKey, it.Payload, it.CreatedAt.UnixMilli(), it.NextAt.UnixMilli())
		if err != nil {
			return fmt.Errorf("enqueue: %w", err)
		}
		if it.ID, err = res.LastInsertId(); err != nil {
			return fmt.Errorf("enqueue: %w", err)
		}
		it.State = OutboxPending
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	return nil
}

// UpdateOutbox records attempts' outcomes in one transaction, in order.
func (s *Store) UpdateOutbox(ctx context.Context, items []OutboxItem) (err error) {
	defer func() { err = s.track(opOutbox, err) }()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("update outbox: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `UPDATE outbox SET state = ?, attempts = ?, next_at = ?, done_at = ?, last_error = ? WHERE id = ?`)
	if err != nil {
		return fmt.Errorf("update outbox: %w", err)
	}
	defer stmt.Close()
	for _, it := range items {
		if _, err := stmt.ExecContext(ctx, it.State, it.Attempts, it.NextAt.UnixMilli(), ms(it.DoneAt), it.LastError, it.ID); err != nil {
			return fmt.Errorf("update outbox %d: %w", it.ID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("update outbox: %w", err)
	}
	return nil
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v)
}

// PendingOutbox returns every pending item in id order (the delivery
// worker's queue after a restart).
func (s *Store) PendingOutbox(ctx context.Context) ([]*OutboxItem, error) {
	return s.outbox(ctx, `WHERE state = 'pending' ORDER BY id`)
}

// OutboxByIDs returns the items with these ids, in id order; ids not in
// the store (pruned, or delivered from memory) are left out.
func (s *Store) OutboxByIDs(ctx context.Context, ids []int64) ([]*OutboxItem, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return s.outbox(ctx, `WHERE id IN (?`+strings.Repeat(",?", len(ids)-1)+`) ORDER BY id`, args...)
}

// OutboxItems returns the newest items in any state, newest first (API).
func (s *Store) OutboxItems(ctx context.Context, state string, limit int) ([]*OutboxItem, error) {
	if state == "" {
		return s.outbox(ctx, `ORDER BY id DESC LIMIT ?`, limit)
	}
	return s.outbox(ctx, `WHERE state = ? ORDER BY id DESC LIMIT ?`, state, limit)
}

func (s *Store) outbox(ctx context.Context, where string, args ...any) ([]*OutboxItem, error) {
	rows, err := s.w.QueryContext(ctx, `SELECT id, target, order_key, payload, state, attempts, created_at, next_at, done_at, last_error FROM outbox `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	defer rows.Close()
	var out []*OutboxItem
	for rows.Next() {
		var it OutboxItem
		var created, next, done int64
		if err := rows.Scan(&it.ID, &it.Target, &it.OrderKey, &it.Payload, &it.State, &it.Attempts, &created, &next, &done, &it.LastError); err != nil {
			return nil, fmt.Errorf("read outbox: %w", err)
		}
		it.CreatedAt, it.NextAt, it.DoneAt = fromMS(created), fromMS(next), fromMS(done)
		out = append(out, &it)
	}
	return out, rows.Err()
}

// pruneOutboxQuery deletes up to ?2 delivered or dead-lettered items
// finished before ?1, except those an incident's timeline shows: items
// queued within its page window (IncidentPagesBefore its start to
// IncidentPagesAfter its resolution; open incidents: any time after its
// start) that carry its alert (its fingerprint is in the payload).
// Incidents are kept, so their pages are too.
const pruneOutboxQuery = `DELETE FROM outbox WHERE id IN (SELECT id FROM outbox o
	WHERE o.state != 'pending' AND o.done_at < ?1
	AND NOT EXISTS (SELECT 1 FROM incidents i
		WHERE o.created_at >= i.started_at - ?3
		AND (i.resolved_at = 0 OR o.created_at <= i.resolved_at + ?4)
		AND instr(o.payload, i.fingerprint) > 0)
	ORDER BY id LIMIT ?2)`

// PruneOutbox deletes delivered and dead-lettered notifications finished
// before before, keeping those an incident's timeline shows, in
// transactions of at most pruneChunk rows; it returns how many it deleted.
// The retention sweep calls it (Options.OutboxRetention).
func (s *Store) PruneOutbox(ctx context.Context, before time.Time) (n int64, err error) {
	defer func() { err = s.track(opOutbox, err) }()
	for {
		res, err := s.w.ExecContext(ctx, pruneOutboxQuery, before.UnixMilli(), s.pruneChunk,
			IncidentPagesBefore.Milliseconds(), IncidentPagesAfter.Milliseconds())
		if err != nil {
			return n, fmt.Errorf("prune outbox: %w", err)
		}
		k, _ := res.RowsAffected()
		n += k
		if k < int64(s.pruneChunk) {
			return n, nil
		}
	}
}

// NotifyLogEntry is the last notification of one alert group.
type NotifyLogEntry struct {
	FiringHash, ResolvedHash string
	SentAt                   time.Time
}

// NotifyLog reads the entry of a group; ok is false when there is none.
func (s *Store) NotifyLog(ctx context.Context, receiver, groupKey string) (e NotifyLogEntry, ok bool, err error) {
	var at int64
	err = s.w.QueryRowContext(ctx, `SELECT firing_hash, resolved_hash, sent_at FROM notify_log WHERE receiver = ? AND group_key = ?`,
		receiver, groupKey).Scan(&e.FiringHash, &e.ResolvedHash, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return e, false, nil
	}
	if err != nil {
		return e, false, fmt.Errorf("read notify log: %w", err)
	}
	e.SentAt = time.UnixMilli(at)
	return e, true, nil
}

// LoggedItems is one group notification: its outbox rows and the
// notification-log entry recorded with them.
type LoggedItems struct {
	Items              []*OutboxItem
	Receiver, GroupKey string
	Entry              NotifyLogEntry
}

// EnqueueWithLog queues every notification's items and records their log
// entries in one transaction: all happen or none.
func (s *Store) EnqueueWithLog(ctx context.Context, batch []LoggedItems) (err error) {
	defer func() { err = s.track(opOutbox, err) }()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	defer tx.Rollback()
	ins, err := tx.PrepareContext(ctx, `INSERT INTO outbox (target, order_key, payload, state, created_at, next_at) VALUES (?, ?, ?, 'pending', ?, ?)`)
	if err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	defer ins.Close()
	logStmt, err := tx.PrepareContext(ctx, `INSERT INTO notify_log (receiver, group_key, firing_hash, resolved_hash, sent_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (receiver, group_key) DO UPDATE SET firing_hash = excluded.firing_hash, resolved_hash = excluded.resolved_hash, sent_at = excluded.sent_at`)
	if err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	defer logStmt.Close()
	for _, b := range batch {
		for _, it := range b.Items {
			res, err := ins.ExecContext(ctx, it.Target, it.OrderKey, it.Payload, it.CreatedAt.UnixMilli(), it.NextAt.UnixMilli())
			if err != nil {
				return fmt.Errorf("enqueue: %w", err)
			}
			if it.ID, err = res.LastInsertId(); err != nil {
				return fmt.Errorf("enqueue: %w", err)
			}
			it.State = OutboxPending
		}
		if _, err := logStmt.ExecContext(ctx, b.Receiver, b.GroupKey, b.Entry.FiringHash, b.Entry.ResolvedHash, b.Entry.SentAt.UnixMilli()); err != nil {
			return fmt.Errorf("enqueue: notify log: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	return nil
}

// NotifyLogs reads the whole notification log, keyed by receiver and group
// key joined with a NUL byte.
func (s *Store) NotifyLogs(ctx context.Context) (map[string]NotifyLogEntry, error) {
	rows, err := s.w.QueryContext(ctx, `SELECT receiver, group_key, firing_hash, resolved_hash, sent_at FROM notify_log`)
	if err != nil {
		return nil, fmt.Errorf("read notify log: %w", err)
	}
	defer rows.Close()
	out := map[string]NotifyLogEntry{}
	for rows.Next() {
		var r, k string
		var e NotifyLogEntry
		var at int64
		if err := rows.Scan(&r, &k, &e.FiringHash, &e.ResolvedHash, &at); err != nil {
			return nil, fmt.Errorf("read notify log: %w", err)
		}
		e.SentAt = time.UnixMilli(at)
		out[r+"\x00"+k] = e
	}
	return out, rows.Err()
}

// Silence is a stored silence.
type Silence struct {
	ID                 string
	Matchers           string // JSON list
	StartsAt, EndsAt   time.Time
	CreatedBy, Comment string
	CreatedAt          time.Time
	UpdatedAt          time.Time
}

// SaveSilence inserts or replaces a silence.
func (s *Store) SaveSilence(ctx context.Context, sl Silence) (err error) {
	defer func() { err = s.track(opSilences, err) }()
	_, err = s.w.ExecContext(ctx, `INSERT INTO silences (id, matchers, starts_at, ends_at, created_by, comment, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET matchers = excluded.matchers, starts_at = excluded.starts_at,
		ends_at = excluded.ends_at, created_by = excluded.created_by, comment = excluded.comment, updated_at = excluded.updated_at`,
		sl.ID, sl.Matchers, sl.StartsAt.UnixMilli(), sl.EndsAt.UnixMilli(), sl.CreatedBy, sl.Comment, sl.CreatedAt.UnixMilli(), sl.UpdatedAt.UnixMilli())
	if err != nil {
		return fmt.Errorf("save silence: %w", err)
	}
	return nil
}

// Silences returns every silence that ended after since.
func (s *Store) Silences(ctx context.Context, since time.Time) ([]Silence, error) {
	rows, err := s.w.QueryContext(ctx, `SELECT id, matchers, starts_at, ends_at, created_by, comment, created_at, updated_at
		FROM silences WHERE ends_at > ? ORDER BY starts_at`, since.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("read silences: %w", err)
	}
	defer rows.Close()
	var out []Silence
	for rows.Next() {
		var sl Silence
		var st, en, cr, up int64
		if err := rows.Scan(&sl.ID, &sl.Matchers, &st, &en, &sl.CreatedBy, &sl.Comment, &cr, &up); err != nil {
			return nil, fmt.Errorf("read silences: %w", err)
		}
		sl.StartsAt, sl.EndsAt, sl.CreatedAt, sl.UpdatedAt = time.UnixMilli(st), time.UnixMilli(en), time.UnixMilli(cr), time.UnixMilli(up)
		out = append(out, sl)
	}
	return out, rows.Err()
}
