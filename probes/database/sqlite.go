package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"time"

	"github.com/prometheus/common/model"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/vigil-project/vigil/internal/confkit"
	"github.com/vigil-project/vigil/probes"
	"github.com/vigil-project/vigil/probes/internal/neterr"
)

func init() {
	probes.Register(probes.Family{
		Type: "sqlite", Step: probes.StepDatabase,
		NewConfig: func() probes.Config {
			return &SQLiteConfig{Common: defaultCommon(), CanaryTable: "vigil_canary", BusyTimeout: model.Duration(5 * time.Second)}
		},
		New:     newSQLite,
		Metrics: Metrics,
	})
}

// SQLiteConfig is the `sqlite:` section of a check: the database file of
// an embedded invoice store.
type SQLiteConfig struct {
	// Path of an existing database file; the check never creates one.
	Path   string `yaml:"path"`
	Common `yaml:",inline"`
	// CanaryTable is created in the file if missing.
	CanaryTable string `yaml:"canary_table"`
	// BusyTimeout is how long a write waits for another writer's lock.
	BusyTimeout model.Duration `yaml:"busy_timeout"`
}

// Validate reports every problem as a FieldError.
func (c *SQLiteConfig) Validate() error {
	errs := c.Common.validate()
	if c.Path == "" {
		errs = append(errs, confkit.FieldErrorf("path", "required"))
	}
	if err := validateTable(c.CanaryTable); err != nil {
		errs = append(errs, err)
	}
	if c.BusyTimeout <= 0 {
		errs = append(errs, confkit.FieldErrorf("busy_timeout", "must be greater than 0"))
	}
	return errors.Join(errs...)
}

func newSQLite(c probes.Config, _ probes.Options) (probes.Prober, error) {
	cfg, ok := c.(*SQLiteConfig)
	if !ok {
		return nil, fmt.Errorf("sqlite: config of type %T", c)
	}
	abs, err := filepath.Abs(cfg.Path)
	if err != nil {
		return nil, err
	}
	// mode=rw: a missing file is an error, not a new empty database.
	q := url.Values{}
	q.Set("mode", "rw")
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", time.Duration(cfg.BusyTimeout).Milliseconds()))
	dsn := (&url.URL{Scheme: "file", Path: abs, RawQuery: q.Encode()}).String()
	return &sqlCheck{
		common: &cfg.Common,
		table:  cfg.CanaryTable,
		target: "sqlite://" + abs,
		d:      sqliteDialect{dsn: dsn},
	}, nil
}

type sqliteDialect struct{ dsn string }

func (s sqliteDialect) open() (*sql.DB, error) { return sql.Open("sqlite", s.dsn) }

func (sqliteDialect) createTable(t string) string {
	return `CREATE TABLE IF NOT EXISTS ` + quoteTable(t, `"`) + ` (
		token TEXT PRIMARY KEY,
		payload TEXT NOT NULL,
		created_at INTEGER NOT NULL DEFAULT (unixepoch()))`
}

func (sqliteDialect) insert(t string) string {
	return `INSERT INTO ` + quoteTable(t, `"`) + ` (token, payload) VALUES (?, ?)`
}

func (sqliteDialect) selectPayload(t string) string {
	return `SELECT payload FROM ` + quoteTable(t, `"`) + ` WHERE token = ?`
}

func (sqliteDialect) remove(t string) string {
	return `DELETE FROM ` + quoteTable(t, `"`) + ` WHERE token = ? OR created_at < unixepoch() - 3600`
}

// health: an embedded database has no replication or connection limit.
func (sqliteDialect) health(context.Context, *sql.Conn) (health, error) { return health{}, nil }

func (sqliteDialect) classify(err error) probes.Reason {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff { // primary result code
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return probes.ReasonTimeout
		case sqlite3.SQLITE_CANTOPEN:
			return probes.ReasonConnectionRefused
		case sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_AUTH:
			return probes.ReasonReadonlyViolation
		}
	}
	return neterr.Classify(err)
}

// queryOnly makes the connection refuse writes for the custom queries; the
// connection is closed after the run.
func (sqliteDialect) queryOnly(ctx context.Context, conn *sql.Conn) (*sql.Tx, error) {
	if _, err := conn.ExecContext(ctx, "PRAGMA query_only = ON"); err != nil {
		return nil, err
	}
	return conn.BeginTx(ctx, nil)
}
