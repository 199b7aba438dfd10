package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func TestLoadMigrations(t *testing.T) {
	file := func(body string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(body)} }
	tests := []struct {
		name     string
		files    fstest.MapFS
		versions []int
		wantErr  string
	}{
		{name: "in order", files: fstest.MapFS{
			"migrations/0002_b.sql": file("B"), "migrations/0001_a.sql": file("A"), "migrations/README": file("x"),
		}, versions: []int{1, 2}},
		{name: "gap", files: fstest.MapFS{
			"migrations/0001_a.sql": file("A"), "migrations/0003_c.sql": file("C"),
		}, wantErr: "expected number 2"},
		{name: "duplicate", files: fstest.MapFS{
			"migrations/0001_a.sql": file("A"), "migrations/0001_b.sql": file("B"),
		}, wantErr: "expected number 2"},
		{name: "not starting at 1", files: fstest.MapFS{"migrations/0002_b.sql": file("B")}, wantErr: "expected number 1"},
		{name: "bad name", files: fstest.MapFS{"migrations/alerts.sql": file("A")}, wantErr: "NNNN_description.sql"},
		{name: "none", files: fstest.MapFS{"migrations/README": file("x")}, wantErr: "no migrations"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			migs, err := loadMigrations(tc.files)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			for _, m := range migs {
				got = append(got, m.version)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.versions) {
				t.Errorf("versions = %v, want %v", got, tc.versions)
			}
		})
	}
}

func TestEmbeddedMigrations(t *testing.T) {
	migs, err := loadMigrations(migrationFS)
	if err != nil {
		t.Fatal(err)
	}
	if SchemaVersion() != len(migs) || SchemaVersion() < 1 {
		t.Errorf("SchemaVersion = %d with %d migrations", SchemaVersion(), len(migs))
	}
}

func TestMigrateOpenAndReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "vigil.db")
	s := openStore(t, path, Options{})
	check := func(s *Store) {
		t.Helper()
		var v int
		if err := s.r.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
			t.Fatal(err)
		}
		if v != SchemaVersion() {
			t.Errorf("user_version = %d, want %d", v, SchemaVersion())
		}
		for _, name := range []string{"check_results", "checks", "result_shapes"} {
			var n int
			if err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema WHERE name = ?", name).Scan(&n); err != nil || n != 1 {
				t.Errorf("%s: count %d, %v", name, n, err)
			}
		}
	}
	check(s)
	s.Record(sample("host", time.Now(), true))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopening applies nothing twice (a second CREATE TABLE would fail)
	// and keeps the data.
	for range 2 {
		s = openStore(t, path, Options{})
		check(s)
		if c := countRows(t, s); c != 1 {
			t.Errorf("%d rows after reopen, want 1", c)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMigrateSteps drives migrate with stand-in migration sets, the way
// later issues will add files.
func TestMigrateSteps(t *testing.T) {
	ctx := context.Background()
	v1 := migration{1, "0001_a.sql", "CREATE TABLE a (x INTEGER);"}
	v2 := migration{2, "0002_b.sql", "CREATE TABLE b (y INTEGER REFERENCES a(x)); CREATE INDEX b_y ON b (y);"}
	bad := migration{3, "0003_bad.sql", "CREATE TABLE c (z); INSERT INTO nowhere VALUES (1);"}

	tests := []struct {
		name        string
		steps       [][]migration // applied one after the other on the same file
		wantVersion int
		wantErr     string
		wantTables  []string
		noTables    []string
	}{
		{name: "fresh database gets every step", steps: [][]migration{{v1, v2}}, wantVersion: 2, wantTables: []string{"a", "b", "b_y"}},
		{name: "upgrade applies only the new step", steps: [][]migration{{v1}, {v1, v2}}, wantVersion: 2, wantTables: []string{"a", "b"}},
		{name: "rerun is a no-op", steps: [][]migration{{v1, v2}, {v1, v2}}, wantVersion: 2},
		{name: "failed step rolls back alone", steps: [][]migration{{v1, v2, bad}}, wantVersion: 2,
			wantErr: "migration 0003_bad.sql", wantTables: []string{"a", "b"}, noTables: []string{"c"}},
		{name: "older binary refuses", steps: [][]migration{{v1, v2}, {v1}}, wantVersion: 2,
			wantErr: "database schema version 2 is newer than this vigil supports (1); upgrade vigil or use another --storage.path"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := rawDB(t, filepath.Join(t.TempDir(), "m.db"), "_txlock=immediate", "_pragma=foreign_keys(1)")
			db.SetMaxOpenConns(1)
			var err error
			for _, migs := range tc.steps {
				if err = migrate(ctx, db, migs); err != nil {
					break
				}
			}
			if tc.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
			var v int
			if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
				t.Fatal(err)
			}
			if v != tc.wantVersion {
				t.Errorf("user_version = %d, want %d", v, tc.wantVersion)
			}
			for _, names := range []struct {
				list []string
				want int
			}{{tc.wantTables, 1}, {tc.noTables, 0}} {
				for _, name := range names.list {
					var n int
					if err := db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema WHERE name = ?", name).Scan(&n); err != nil {
						t.Fatal(err)
					}
					if n != names.want {
						t.Errorf("%s: %d in schema, want %d", name, n, names.want)
					}
				}
			}
		})
	}
}

func TestOpenRefuses(t *testing.T) {
	tests := []struct {
		name    string
		prepare string // run on the file before Open
		wantErr string
		tooNew  bool
	}{
		{
			name:    "newer schema",
			prepare: fmt.Sprintf("PRAGMA user_version = %d", SchemaVersion()+1),
			wantErr: fmt.Sprintf("database schema version %d is newer than this vigil supports (%d); upgrade vigil or use another --storage.path",
				SchemaVersion()+1, SchemaVersion()),
			tooNew: true,
		},
		{
			name:    "someone else's database",
			prepare: "CREATE TABLE invoices (number TEXT)",
			wantErr: "no vigil schema version",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "vigil.db")
			db := rawDB(t, path)
			if _, err := db.Exec(tc.prepare); err != nil {
				t.Fatal(err)
			}
			db.Close()
			s, err := Open(context.Background(), path, Options{})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("err = %v, want one containing %q", err, tc.wantErr)
			}
			var tooNew *SchemaTooNewError
			if errors.As(err, &tooNew) != tc.tooNew {
				t.Errorf("errors.As(SchemaTooNewError) = %v, want %v", !tc.tooNew, tc.tooNew)
			}
			// Refusing must not have changed the file.
			db = rawDB(t, path)
			var n int
			if err := db.QueryRow("SELECT count(*) FROM sqlite_schema WHERE name = 'check_results'").Scan(&n); err != nil || n != 0 {
				t.Errorf("check_results created in a refused database (%d, %v)", n, err)
			}
		})
	}
}
