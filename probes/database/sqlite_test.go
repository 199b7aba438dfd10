package database

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/vigil-project/vigil/probes"
)

func sqliteFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "invoices.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range []string{
		"CREATE TABLE invoices (no TEXT, synced INTEGER)",
		"INSERT INTO invoices VALUES ('1', 0), ('2', 1), ('3', 0)",
	} {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

func sqliteConfig(path string, mutate func(*SQLiteConfig)) *SQLiteConfig {
	f, _ := probes.Lookup("sqlite")
	cfg := f.NewConfig().(*SQLiteConfig)
	cfg.Path = path
	if mutate != nil {
		mutate(cfg)
	}
	return cfg
}

func TestSQLite(t *testing.T) {
	path := sqliteFile(t)
	tests := []struct {
		name    string
		path    string
		mutate  func(*SQLiteConfig)
		reason  probes.Reason
		message string
	}{
		{"canary round trip", path, nil, probes.ReasonNone, ""},
		{"custom query", path, func(c *SQLiteConfig) {
			c.Queries = []Query{{Name: "unsynced", SQL: "SELECT count(*) FROM invoices WHERE synced = 0", Max: ptr(2)}}
		}, probes.ReasonNone, ""},
		{"custom query over max", path, func(c *SQLiteConfig) {
			c.Queries = []Query{{Name: "unsynced", SQL: "SELECT count(*) FROM invoices WHERE synced = 0", Max: ptr(1)}}
		}, probes.ReasonQueryThreshold, "query unsynced = 2, above max 1"},
		{"custom queries cannot write", path, func(c *SQLiteConfig) {
			c.Queries = []Query{{Name: "sneaky", SQL: "DELETE FROM invoices RETURNING 1"}}
		}, probes.ReasonReadonlyViolation, "query sneaky"},
		{"missing file is not created", filepath.Join(t.TempDir(), "nope.db"), nil, probes.ReasonConnectionRefused, "unable to open database file"},
		{"missing directory", "/nonexistent/dir/invoices.db", nil, probes.ReasonConnectionRefused, "unable to open database file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, "sqlite", sqliteConfig(tt.path, tt.mutate), 5*time.Second)
			if r.Success != (tt.reason == probes.ReasonNone) || r.Reason != tt.reason || !strings.Contains(r.Message, tt.message) {
				t.Fatalf("got success=%v reason=%q message=%q; want reason=%q containing %q", r.Success, r.Reason, r.Message, tt.reason, tt.message)
			}
		})
	}
}

// TestSQLiteLocked holds the write lock in another connection: the canary
// waits busy_timeout and fails with timeout, naming the lock.
func TestSQLiteLocked(t *testing.T) {
	path := sqliteFile(t)
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	r := run(t, "sqlite", sqliteConfig(path, func(c *SQLiteConfig) { c.BusyTimeout = model.Duration(300 * time.Millisecond) }), 5*time.Second)
	if r.Reason != probes.ReasonTimeout || !strings.Contains(r.Message, "locked") {
		t.Errorf("locked database: %q %s", r.Reason, r.Message)
	}
	if took := time.Since(begin); took > 3*time.Second {
		t.Errorf("took %s with a 300ms busy timeout", took)
	}
	conn.ExecContext(ctx, "ROLLBACK")
	if r := run(t, "sqlite", sqliteConfig(path, nil), 5*time.Second); !r.Success {
		t.Errorf("after the lock is released: %q %s", r.Reason, r.Message)
	}
}
