// Package store is the agent's durable state on SQLite (modernc.org/sqlite,
// pure Go, no cgo): check-result history today; alert state, the
// notification outbox, the runbook journal and drill reports as later
// migrations.
//
// # Adding to the schema
//
// Every schema change is a new file in migrations/ named
// NNNN_what_it_adds.sql, numbered one past the newest file (0002_alerts.sql,
// 0003_outbox.sql, ...). Open applies the files the database has not seen,
// in order, each in its own transaction together with the new version
// number, so a crash mid-migration leaves the database at the previous
// version, never half-migrated. Nothing else needs registering: the files
// are embedded, and the highest number is the schema version this binary
// supports. Never edit a file that has shipped; add a new one. Numbers must
// be contiguous from 1, which Open checks, so a gap or a duplicate fails
// loudly rather than being skipped. A database written by a newer vigil is
// refused instead of being guessed at.
//
// The version lives in PRAGMA user_version rather than a schema_migrations
// table: it is stored in the database header, changes atomically with the
// migration's own statements, and needs no bookkeeping table that itself
// would need a migration. Applied-at timestamps would be the only gain of a
// table, and the history rows carry enough times to date an upgrade.
//
// # Durability and concurrency
//
// The database runs in WAL mode with synchronous=NORMAL: a committed
// transaction survives a crash of the process (kill -9); only a power loss
// or OS crash can lose the last few commits. One connection writes; a
// separate read-only pool serves the API and UI, so a read never waits
// behind a write batch and a bug in a read path cannot write.
//
// Check results are written asynchronously: Record encodes the result and
// queues it, and one writer goroutine commits batches. The scheduler must
// never stall on a slow disk, so when the queue stays full the record is
// dropped and counted (see Record). Checkpoints run in the background, not
// inside a writer's commit (see checkpoint.go).
//
// # Check history
//
// Every run of every check is kept for the retention (--storage.retention,
// 7 days by default), compactly (migration 0006): a check's name is stored
// once and rows carry its id; the names that repeat run after run (type,
// phases, values, labels) are stored once per distinct set in
// result_shapes and rows carry only the numbers, as varints. An HTTPS
// check's run takes about 75 bytes on disk, so 10,000 checks every minute
// for 7 days take about 7.5 GB (TestPeerStoreScale measures it); the 0001
// layout took ten times that.
//
// Rows are clustered by (check, start time), with no other index: a
// check's history is one contiguous key range, read with one range scan.
// The retention sweep (Prune, hourly) walks the checks and deletes each
// one's oldest range in transactions of at most pruneChunk rows or
// pruneHold, pausing as long as it held the lock after each, so writers
// (history, alert state, the outbox) wait for one short transaction at
// most, however much is due.
//
// History is also bounded per check: the sweep trims each check to
// Options.MaxResultsPerCheck results (by default one per 10 s of
// retention: 60,480 for 7 days), so a check run every second keeps its
// newest 60,480 runs (16.8 hours) rather than 600,000 a week. Rows carry
// their check's write number (n), so a check's count is its newest n minus
// its oldest: two lookups instead of counting rows or updating a counter
// on every write.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Defaults for Options.
const (
	DefaultPruneInterval  = time.Hour
	DefaultQueueSize      = 1024
	DefaultEnqueueTimeout = 250 * time.Millisecond
	// DefaultResultSpacing sets the default per-check cap: one result
	// every 10 s over the whole retention (60,480 for 7 days).
	DefaultResultSpacing = 10 * time.Second
)

const (
	busyTimeoutMS = 5000
	// maxBatch rows are committed in one transaction; more waiting rows go
	// in the next one, so a backlog never becomes one huge transaction.
	maxBatch = 256
	// flushDelay is how long the first row of a batch may wait for company.
	flushDelay = 200 * time.Millisecond
	readConns  = 4
	// writerCacheKiB and readerCacheKiB bound each connection's page
	// cache. SQLite's default is 2,000 KiB a connection; a cached 4 KiB
	// page takes an 8 KiB slot in modernc's allocator, so that is ~3.7 MB
	// of memory a connection, and with the writer, an idle reader kept for
	// the checkpointer and the readers of a page view it was over a
	// quarter of the agent's memory at 10,000 checks. New runs go to the
	// end of recent_results (a page or two per commit); the merge touches
	// each check's newest leaf page and the interior pages above it once
	// per merge, a set that outgrows any cache that size at thousands of
	// checks, and what the cache does not hold comes back from the OS's
	// page cache. Measured before the merge (with each run inserted into
	// check_results directly), side by side at 10,000
	// checks on a 6-hour store (BENCHMARKS.md), 2,000 KiB against 1,000
	// cost 2.1 MiB for 3.5% less CPU per run, and 1,000 against 512 cost
	// 1.2 MiB for none. A reader's query reads a few pages of one check's
	// range and scans recent_results, or scans the hourly counts once; a
	// small cache serves both.
	writerCacheKiB = 512
	readerCacheKiB = 256
	// journalSizeLimit: the WAL file is truncated to this when SQLite
	// starts reusing it after a checkpoint, so its size says how much it
	// holds (see checkpoint.go), and one large transaction (a migration
	// copying the history) does not leave a WAL of its size on disk.
	journalSizeLimit = 0
)

// SetHourRetention changes how long hourly run counts are kept (a reload
// that adds a longer SLO window); never shorter than the history.
func (s *Store) SetHourRetention(d time.Duration) {
	if d > 0 && s.retention > 0 {
		d = max(d, s.retention)
	}
	s.hourRetention.Store(int64(d))
}

// DefaultHourRetention keeps the hourly run counts for a 30-day uptime
// and SLO window plus a margin: 10,000 checks take about 7.2 million rows.
const DefaultHourRetention = 35 * 24 * time.Hour

// ErrClosed is returned by Flush after Close.
var ErrClosed = errors.New("store is closed")

// Options configures a Store. The zero value is usable: history is kept
// forever and nothing is logged.
type Options struct {
	// Retention is how long check results are kept; 0 keeps them forever.
	// The agent passes its --storage.retention (7 days by default).
	Retention time.Duration
	// PruneInterval is how often results older than Retention are deleted
	// (default 1h). A prune also runs once when the store opens.
	PruneInterval time.Duration
	// MaxResultsPerCheck bounds each check's history: the sweep deletes a
	// check's oldest results beyond it, so a check run every second keeps
	// its newest MaxResultsPerCheck runs rather than 600,000 a week. 0
	// means Retention / DefaultResultSpacing (60,480 for 7 days: a check
	// run every 10 s or less often keeps the whole retention); negative
	// means no cap. Enforced by the sweep, so only with Retention > 0 or
	// on Prune.
	MaxResultsPerCheck int
	// HourRetention is how long the hourly run counts behind uptime and
	// SLOs are kept (check_hours, one row per check and hour). 0 means
	// DefaultHourRetention, or forever when Retention is 0; it is never
	// shorter than Retention.
	HourRetention time.Duration
	// OutboxRetention is how long delivered and dead-lettered
	// notifications are kept after they finished (0: forever); the sweep
	// deletes older ones, except those an incident's timeline shows, which
	// are kept with the incident. Pending ones are never deleted.
	OutboxRetention time.Duration
	// QueueSize is how many records may wait for the writer (default 1024).
	QueueSize int
	// EnqueueTimeout is how long Record waits for room in a full queue
	// before dropping the record (default 250ms).
	EnqueueTimeout time.Duration
	// Logger receives write failures, drops and prune results (default: discard).
	Logger *slog.Logger
}

// Store is an open database. Its methods are safe for concurrent use.
type Store struct {
	w, r           *sql.DB
	log            *slog.Logger
	enqueueTimeout time.Duration
	pruneChunk     int           // rows per sweep transaction; a field for tests
	maxResults     int           // per check; 0 for no cap
	hourRetention  atomic.Int64  // time.Duration; 0: keep check_hours forever
	retention      time.Duration // of the history; 0: forever
	pruneMu        sync.Mutex

	recent     recentState   // rows waiting in recent_results
	mergeMu    sync.Mutex    // one merge at a time
	mergeReq   chan struct{} // the writer wakes the merge loop
	mergeRows  int64         // merge at this many waiting rows; a field for tests
	mergeChunk int           // checks per merge transaction; a field for tests

	ids    ids         // the writer's check and shape ids
	stmts  writerStmts // the writer's statements, on w
	shapes shapeCache  // the readers' decoded shapes

	// mu orders Record against Close: Record sends while holding it for
	// reading, so once Close holds it for writing no record can slip into
	// the queue after the writer's final drain.
	mu     sync.RWMutex
	closed bool

	queue          chan row
	flushReq       chan chan error
	stop           chan struct{}
	writerDone     chan struct{}
	writerErr      error              // the final drain's error; read after writerDone
	stopBackground context.CancelFunc // the sweep and the checkpointer
	checkpointReq  chan struct{}
	walPath        string
	wg             sync.WaitGroup

	written, dropped atomic.Uint64
	health           writeHealth
}

// Open opens the database at path, creating it and its parent directories
// if needed, and brings its schema up to date.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("open store: empty path")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.PruneInterval <= 0 {
		opts.PruneInterval = DefaultPruneInterval
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.EnqueueTimeout <= 0 {
		opts.EnqueueTimeout = DefaultEnqueueTimeout
	}
	migs, err := loadMigrations(migrationFS)
	if err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o750); err != nil {
		return nil, fmt.Errorf("create storage directory: %w", err)
	}

	w, err := sql.Open("sqlite", dsn(abs,
		fmt.Sprintf("_pragma=busy_timeout(%d)", busyTimeoutMS),
		"_pragma=journal_mode(WAL)",
		"_pragma=synchronous(NORMAL)",
		"_pragma=foreign_keys(1)",
		fmt.Sprintf("_pragma=journal_size_limit(%d)", journalSizeLimit),
		fmt.Sprintf("_pragma=wal_autocheckpoint(%d)", writerAutoCheckpoint),
		fmt.Sprintf("_pragma=cache_size(-%d)", writerCacheKiB),
		// IMMEDIATE takes the write lock at BEGIN, so two processes on one
		// file wait for each other under busy_timeout instead of failing
		// with SQLITE_BUSY when a deferred read lock cannot be upgraded.
		"_txlock=immediate",
	))
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	// One writer connection, kept for the life of the store: SQLite allows
	// one writer anyway, and a long-lived connection keeps the WAL open
	// instead of checkpointing and deleting it whenever the pool idles.
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	// A damaged page would let the agent start "ready" and then fail
	// every write that touches it; quick_check finds it now, in time
	// proportional to the file (about a second per few hundred MB).
	problems, err := quickCheck(ctx, w, false)
	if err == nil && len(problems) > 0 {
		err = &DamagedError{Path: path, Detail: strings.Join(problems, "; ")}
	}
	if err == nil {
		err = checkJournalMode(ctx, w, opts.Logger)
	}
	if err == nil {
		err = migrate(ctx, w, migs)
	}
	if err == nil {
		err = tidy(ctx, w, opts.Logger, vacuumMinFree)
	}
	if err != nil {
		w.Close()
		var de *DamagedError
		if isCorrupt(err) {
			de = &DamagedError{Path: path, Detail: err.Error()}
		}
		if de != nil || errors.As(err, &de) {
			return nil, de
		}
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}

	// query_only makes SQLite refuse writes on the read pool. Not mode=ro: a
	// read-only connection cannot create the WAL index (-shm) when it is
	// missing and then fails to open at all ("unable to open database file",
	// seen at start-up on a fresh database).
	r, err := sql.Open("sqlite", dsn(abs, "_pragma=query_only(1)", fmt.Sprintf("_pragma=busy_timeout(%d)", busyTimeoutMS),
		fmt.Sprintf("_pragma=cache_size(-%d)", readerCacheKiB)))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open store %s for reading: %w", path, err)
	}
	r.SetMaxOpenConns(readConns)
	r.SetMaxIdleConns(1)
	// Idle readers give their page cache back; the agent idles most of the time.
	r.SetConnMaxIdleTime(time.Minute)
	if err := r.PingContext(ctx); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("open store %s for reading: %w", path, err)
	}

	var waiting int
	if err := w.QueryRowContext(ctx, `SELECT count(*) FROM recent_results`).Scan(&waiting); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("open store %s: count recent results: %w", path, err)
	}
	stmts, err := prepareWriter(ctx, w)
	if err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}

	hourRetention := opts.HourRetention
	if hourRetention == 0 && opts.Retention > 0 {
		hourRetention = DefaultHourRetention
	}
	if hourRetention > 0 && opts.Retention > 0 {
		hourRetention = max(hourRetention, opts.Retention)
	}
	maxResults := opts.MaxResultsPerCheck
	if maxResults == 0 && opts.Retention > 0 {
		maxResults = max(1, int(opts.Retention/DefaultResultSpacing))
	}
	s := &Store{
		w: w, r: r,
		stmts:          stmts,
		log:            opts.Logger,
		enqueueTimeout: opts.EnqueueTimeout,
		pruneChunk:     pruneChunk,
		maxResults:     max(0, maxResults),
		retention:      opts.Retention,
		queue:          make(chan row, opts.QueueSize),
		flushReq:       make(chan chan error),
		stop:           make(chan struct{}),
		writerDone:     make(chan struct{}),
		checkpointReq:  make(chan struct{}, 1),
		walPath:        abs + "-wal",
		mergeReq:       make(chan struct{}, 1),
		mergeRows:      mergeRows,
		mergeChunk:     mergeChunk,
	}
	s.recent.added(waiting)
	s.recent.lastMerge.Store(time.Now().UnixNano())
	s.hourRetention.Store(int64(hourRetention))
	// The background loops' context is the store's lifetime, not Open's
	// ctx, which only bounds opening.
	bctx, cancel := context.WithCancel(context.Background())
	s.stopBackground = cancel
	s.wg.Add(3)
	go s.writer()
	go s.checkpointLoop(bctx)
	go s.mergeLoop(bctx)
	if opts.Retention > 0 || opts.OutboxRetention > 0 {
		s.wg.Add(1)
		go s.pruneLoop(bctx, opts.Retention, opts.OutboxRetention, opts.PruneInterval)
	}
	return s, nil
}

// dsn builds a file: URI for abs. Building it with net/url percent-encodes
// '?', '#' and '%' in the path, which SQLite would otherwise read as URI
// syntax.
func dsn(abs string, params ...string) string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: strings.Join(params, "&")}
	return u.String()
}

// tidy runs before the writer starts, so nothing caches what it deletes.
// It forgets checks that no longer have results (the sweep leaves their
// names, which the writer may have cached), and gives back the space of a
// file that is mostly free pages.
//
// Free pages are otherwise kept: the sweep frees about as many pages as
// the next interval fills, so the file stays at the size of the retention
// plus one interval, and an incremental auto_vacuum would only move pages
// around (and needs a full VACUUM to switch on in an existing file). A file
// over half free is different: the migration that compacted the history
// freed the old table, or the retention was shortened. VACUUM rewrites it,
// once, at start-up, in roughly the time quick_check took.
func tidy(ctx context.Context, db *sql.DB, log *slog.Logger, minFree int64) error {
	// NOT IN, not NOT EXISTS, for recent_results: it has no index on
	// check_id, and the list is built once rather than scanned per check.
	if _, err := db.ExecContext(ctx, `DELETE FROM checks
		WHERE NOT EXISTS (SELECT 1 FROM check_results WHERE check_id = checks.id)
		AND NOT EXISTS (SELECT 1 FROM check_hours WHERE check_id = checks.id)
		AND id NOT IN (SELECT check_id FROM recent_results)`); err != nil {
		return fmt.Errorf("forget checks without results: %w", err)
	}
	var pages, free, size int64
	for q, dst := range map[string]*int64{"PRAGMA page_count": &pages, "PRAGMA freelist_count": &free, "PRAGMA page_size": &size} {
		if err := db.QueryRowContext(ctx, q).Scan(dst); err != nil {
			return fmt.Errorf("read %s: %w", q, err)
		}
	}
	if free*2 < pages || free*size < minFree {
		return nil
	}
	start := time.Now()
	if _, err := db.ExecContext(ctx, "VACUUM"); err != nil {
		// Not fatal: the free pages are reused as history grows again.
		log.Warn("could not vacuum the store; its free pages are reused instead", "free_bytes", free*size, "err", err)
		return nil
	}
	log.Info("vacuumed the store", "freed_bytes", free*size, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// vacuumMinFree is the least free space that makes tidy vacuum.
const vacuumMinFree = 64 << 20

// checkJournalMode warns when WAL could not be enabled (some network file
// systems lack the shared memory it needs). SQLite then falls back to a
// rollback journal, which is still crash-safe but lets writes block reads.
func checkJournalMode(ctx context.Context, db *sql.DB, log *slog.Logger) error {
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("read journal mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		log.Warn("store is not in WAL mode; reads may wait for writes", "journal_mode", mode)
	}
	return nil
}

// Close writes every queued record, stops the background work and closes
// the database. It returns the error of the final write, if any. Calling it
// again does nothing.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()

	s.stopBackground()
	close(s.stop)
	s.wg.Wait()
	serr := s.stmts.close()
	// Readers first, so the writer is the last connection: the last one to
	// close checkpoints the WAL into the main file, which a read-only
	// connection cannot do.
	rerr := s.r.Close()
	werr := s.w.Close()
	if err := errors.Join(s.writerErr, serr, rerr, werr); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// Written is the number of records committed since Open.
func (s *Store) Written() uint64 { return s.written.Load() }

// Dropped is the number of records that will never be committed: those
// dropped because the queue stayed full, recorded after Close, or lost in
// a failed write.
func (s *Store) Dropped() uint64 { return s.dropped.Load() }
