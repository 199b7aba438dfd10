// Package store is the agent's durable state on SQLite (modernc.org/sqlite,
// no cgo): check-result history now; alert state, the notification outbox,
// the runbook journal and drill reports as later migrations.
//
// Schema changes are numbered files in migrations/ (0002_alerts.sql, ...),
// applied in order, each in its own transaction, and recorded in
// PRAGMA user_version. That pragma lives in the database header, so the
// version and the schema change commit atomically with no bookkeeping table.
// A database written by a newer vigil is refused rather than guessed at.
//
// The database runs in WAL mode with synchronous=NORMAL: a committed
// transaction survives a crash of the process (kill -9); only an OS crash
// can lose the last few. One connection writes; a separate pool reads, so
// API reads never wait behind a write batch.
package store

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/vigil-project/vigil/probes"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Options configures a Store.
type Options struct {
	// Retention is how long results are kept; 0 keeps them forever.
	Retention time.Duration
	// PruneInterval is how often old results are deleted (default 1h).
	PruneInterval time.Duration
	Logger        *slog.Logger
}

// Record is one check result as stored.
type Record struct {
	Check, Type string
	Result      probes.Result
}

// queueSize bounds memory when the disk is slow; see Record.
const queueSize = 1024

// Store is an open database.
type Store struct {
	w, r *sql.DB
	log  *slog.Logger

	queue   chan Record
	flushes chan chan error
	stop    chan struct{}
	done    sync.WaitGroup
	closed  atomic.Bool

	written, dropped atomic.Uint64
}

// Open opens (creating if needed) the database at path and migrates it.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.PruneInterval <= 0 {
		opts.PruneInterval = time.Hour
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("create storage directory: %w", err)
		}
	}
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_txlock=immediate"
	w, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	if err := migrate(ctx, w); err != nil {
		w.Close()
		return nil, fmt.Errorf("migrate %s: %w", path, err)
	}
	// Readers are not mode=ro: a read-only connection cannot create the WAL
	// index (-shm) if it is missing, and then fails to open at all.
	// query_only keeps them from writing just the same.
	r, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open %s for reading: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	s := &Store{
		w: w, r: r, log: opts.Logger,
		queue:   make(chan Record, queueSize),
		flushes: make(chan chan error),
		stop:    make(chan struct{}),
	}
	s.done.Add(1)
	go s.writer()
	if opts.Retention > 0 {
		s.done.Add(1)
		go s.pruneLoop(opts.Retention, opts.PruneInterval)
	}
	return s, nil
}

// migrations returns the embedded migrations sorted by version.
func migrations() ([]int, map[int]string, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, nil, err
	}
	var versions []int
	bodies := map[int]string{}
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, nil, fmt.Errorf("migration %q: name must start with a positive number and '_'", e.Name())
		}
		if _, dup := bodies[v]; dup {
			return nil, nil, fmt.Errorf("two migrations numbered %d", v)
		}
		b, err := migrationFS.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, nil, err
		}
		versions = append(versions, v)
		bodies[v] = string(b)
	}
	sort.Ints(versions)
	return versions, bodies, nil
}

// SchemaVersion is the newest schema this binary knows.
func SchemaVersion() int {
	v, _, err := migrations()
	if err != nil || len(v) == 0 {
		return 0
	}
	return v[len(v)-1]
}

func migrate(ctx context.Context, db *sql.DB) error {
	versions, bodies, err := migrations()
	if err != nil {
		return err
	}
	var current int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&current); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if latest := versions[len(versions)-1]; current > latest {
		return fmt.Errorf("database schema version %d is newer than this vigil supports (%d); upgrade vigil or use another --storage.path", current, latest)
	}
	for _, v := range versions {
		if v <= current {
			continue
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, bodies[v]); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %d: %w", v, err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v)); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %d: set version: %w", v, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migration %d: commit: %w", v, err)
		}
	}
	return nil
}

// Record queues a result for writing. It never blocks the scheduler for
// long: if the queue stays full for a second (the disk is stalled), the
// record is dropped and counted, because a late history row is worth less
// than a check that keeps running and exporting metrics.
func (s *Store) Record(rec Record) {
	if s.closed.Load() {
		s.dropped.Add(1)
		return
	}
	select {
	case s.queue <- rec:
		return
	default:
	}
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case s.queue <- rec:
	case <-t.C:
		if s.dropped.Add(1) == 1 {
			s.log.Error("store queue full: dropping check results from history", "queue", queueSize)
		}
	}
}

// Written is the number of records committed.
func (s *Store) Written() uint64 { return s.written.Load() }

// Dropped is the number of records dropped because the queue was full.
func (s *Store) Dropped() uint64 { return s.dropped.Load() }

// Flush waits until every record queued before the call is committed.
func (s *Store) Flush(ctx context.Context) error {
	if s.closed.Load() {
		return nil
	}
	ch := make(chan error, 1)
	select {
	case s.flushes <- ch:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close writes what is queued and closes the database.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	close(s.stop)
	s.done.Wait()
	return errors.Join(s.w.Close(), s.r.Close())
}

// writer batches queued records into one transaction each ~200ms or 256 rows.
func (s *Store) writer() {
	defer s.done.Done()
	const maxBatch = 256
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var batch []Record
	write := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := s.insert(batch)
		if err != nil {
			s.log.Error("write check history", "err", err, "records", len(batch))
		} else {
			s.written.Add(uint64(len(batch)))
		}
		batch = batch[:0]
		return err
	}
	drain := func() {
		for {
			select {
			case rec := <-s.queue:
				batch = append(batch, rec)
			default:
				return
			}
		}
	}
	for {
		select {
		case rec := <-s.queue:
			batch = append(batch, rec)
			if len(batch) >= maxBatch {
				write()
			}
		case <-tick.C:
			write()
		case ch := <-s.flushes:
			drain()
			ch <- write()
		case <-s.stop:
			drain()
			write()
			return
		}
	}
}

type phaseJSON struct {
	Name       string `json:"name"`
	DurationNS int64  `json:"duration_ns"`
}

func (s *Store) insert(batch []Record) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO check_results
		(check_name, check_type, started_at, duration_ns, success, reason, message, phases, vals, diagnostics)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("prepare: %w", err)
	}
	defer stmt.Close()
	for _, rec := range batch {
		r := rec.Result
		phases := make([]phaseJSON, len(r.Phases))
		for i, p := range r.Phases {
			phases[i] = phaseJSON{p.Name, int64(p.Duration)}
		}
		pj, err := json.Marshal(phases)
		if err != nil {
			return err
		}
		vals := r.Values
		if vals == nil {
			vals = []probes.Value{}
		}
		vj, err := json.Marshal(vals)
		if err != nil {
			return err
		}
		diag := r.Diagnostics
		if diag == nil {
			diag = map[string]any{}
		}
		dj, err := json.Marshal(diag)
		if err != nil {
			// Diagnostics are best effort; never lose the row for them.
			dj = []byte(`{"error":"diagnostics not serialisable"}`)
		}
		if _, err := stmt.ExecContext(ctx, rec.Check, rec.Type, r.Start.UnixMilli(), int64(r.Duration),
			r.Success, string(r.Reason), r.Message, string(pj), string(vj), string(dj)); err != nil {
			return fmt.Errorf("insert: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

const selectColumns = `check_name, check_type, started_at, duration_ns, success, reason, message, phases, vals, diagnostics`

func scanRecord(rows *sql.Rows) (Record, error) {
	var (
		rec                 Record
		startMS, durationNS int64
		success             bool
		reason, pj, vj, dj  string
	)
	if err := rows.Scan(&rec.Check, &rec.Type, &startMS, &durationNS, &success, &reason, &rec.Result.Message, &pj, &vj, &dj); err != nil {
		return rec, err
	}
	r := &rec.Result
	r.Start, r.Duration, r.Success, r.Reason = time.UnixMilli(startMS), time.Duration(durationNS), success, probes.Reason(reason)
	var phases []phaseJSON
	if err := json.Unmarshal([]byte(pj), &phases); err != nil {
		return rec, fmt.Errorf("phases: %w", err)
	}
	for _, p := range phases {
		r.Phases = append(r.Phases, probes.Phase{Name: p.Name, Duration: time.Duration(p.DurationNS)})
	}
	if err := json.Unmarshal([]byte(vj), &r.Values); err != nil {
		return rec, fmt.Errorf("values: %w", err)
	}
	if err := json.Unmarshal([]byte(dj), &r.Diagnostics); err != nil {
		return rec, fmt.Errorf("diagnostics: %w", err)
	}
	if len(r.Diagnostics) == 0 {
		r.Diagnostics = nil
	}
	if len(r.Values) == 0 {
		r.Values = nil
	}
	return rec, nil
}

func (s *Store) query(ctx context.Context, q string, args ...any) ([]Record, error) {
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("query history: %w", err)
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		rec, err := scanRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("read history: %w", err)
		}
		out = append(out, rec)
	}
	return out, rows.Err()
}

// History returns a check's most recent results, newest first.
func (s *Store) History(ctx context.Context, check string, limit int) ([]Record, error) {
	return s.query(ctx, `SELECT `+selectColumns+` FROM check_results
		WHERE check_name = ? ORDER BY started_at DESC, id DESC LIMIT ?`, check, limit)
}

// Latest returns the newest result of every check in the store.
func (s *Store) Latest(ctx context.Context) (map[string]Record, error) {
	recs, err := s.query(ctx, `SELECT `+selectColumns+` FROM check_results
		WHERE id IN (SELECT max(id) FROM check_results GROUP BY check_name)`)
	if err != nil {
		return nil, err
	}
	out := make(map[string]Record, len(recs))
	for _, r := range recs {
		out[r.Check] = r
	}
	return out, nil
}

// Prune deletes results that started before t.
func (s *Store) Prune(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM check_results WHERE started_at < ?`, before.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("prune history: %w", err)
	}
	return res.RowsAffected()
}

func (s *Store) pruneLoop(retention, every time.Duration) {
	defer s.done.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if n, err := s.Prune(ctx, time.Now().Add(-retention)); err != nil {
			s.log.Warn("prune history", "err", err)
		} else if n > 0 {
			s.log.Debug("pruned history", "rows", n)
		}
		cancel()
		select {
		case <-t.C:
		case <-s.stop:
			return
		}
	}
}
