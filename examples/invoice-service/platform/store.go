package platform

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // PostgreSQL when a DSN is given
	_ "modernc.org/sqlite"             // SQLite by default
)

// chinaTime is UTC+8 (China has no daylight saving); invoice dates are
// calendar dates there.
var chinaTime = time.FixedZone("CST", 8*3600)

// timeLayout stores times as fixed-width text in UTC+8 so they sort and
// compare as strings in every database.
const timeLayout = "2006-01-02T15:04:05.000-07:00"

// DB wraps the issuer's or upstream's database: SQLite by default,
// PostgreSQL when opened with a postgres:// DSN.
type DB struct {
	*sql.DB
	postgres bool
}

// OpenDB opens dsn: a postgres:// or postgresql:// URL, or a SQLite file path.
func OpenDB(ctx context.Context, dsn string) (*DB, error) {
	d := &DB{postgres: strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")}
	var err error
	if d.postgres {
		d.DB, err = sql.Open("pgx", dsn)
	} else {
		d.DB, err = sql.Open("sqlite", "file:"+dsn+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
		if err == nil {
			d.DB.SetMaxOpenConns(1) // one writer; the demo's load is tiny
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	if err := d.PingContext(ctx); err != nil {
		d.Close()
		return nil, fmt.Errorf("open database: %w", err)
	}
	return d, nil
}

// rebind turns ? placeholders into $n for PostgreSQL.
func (d *DB) rebind(q string) string {
	if !d.postgres {
		return q
	}
	var b strings.Builder
	n := 0
	for _, c := range q {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

func (d *DB) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return d.ExecContext(ctx, d.rebind(q), args...)
}

func (d *DB) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return d.QueryContext(ctx, d.rebind(q), args...)
}

func (d *DB) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return d.QueryRowContext(ctx, d.rebind(q), args...)
}

// migrate runs schema statements; they are idempotent.
func (d *DB) migrate(ctx context.Context, stmts ...string) error {
	for _, s := range stmts {
		if _, err := d.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	return nil
}

var errNotFound = errors.New("not found")

func formatTime(t time.Time) string { return t.In(chinaTime).Format(timeLayout) }

func parseTime(s string) time.Time {
	t, _ := time.Parse(timeLayout, s)
	return t
}
