package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migration is one numbered schema change.
type migration struct {
	version int
	name    string
	sql     string
}

// SchemaTooNewError is returned by Open for a database written by a newer
// vigil: its tables may mean something this binary does not know about, so
// it is safer to refuse than to write into them.
type SchemaTooNewError struct {
	Version   int // the database's schema version
	Supported int // the newest version this binary knows
}

func (e *SchemaTooNewError) Error() string {
	return fmt.Sprintf("database schema version %d is newer than this vigil supports (%d); upgrade vigil or use another --storage.path", e.Version, e.Supported)
}

// SchemaVersion is the newest schema version this binary knows: the number
// of the last file in migrations/.
func SchemaVersion() int {
	migs, err := loadMigrations(migrationFS)
	if err != nil || len(migs) == 0 {
		return 0
	}
	return migs[len(migs)-1].version
}

// loadMigrations reads migrations/NNNN_*.sql from fsys and checks that the
// numbers run 1, 2, 3, ... without gaps or duplicates.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var migs []migration
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must be NNNN_description.sql", e.Name())
		}
		body, err := fs.ReadFile(fsys, path.Join("migrations", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("migration %s: %w", e.Name(), err)
		}
		migs = append(migs, migration{version: v, name: e.Name(), sql: string(body)})
	}
	sort.Slice(migs, func(i, j int) bool { return migs[i].version < migs[j].version })
	for i, m := range migs {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: expected number %d (numbers must run from 1 without gaps or duplicates)", m.name, i+1)
		}
	}
	if len(migs) == 0 {
		return nil, fmt.Errorf("no migrations found")
	}
	return migs, nil
}

// migrate applies the migrations the database has not seen. Each runs in
// its own transaction that also sets user_version, and the version is read
// inside that transaction (which is IMMEDIATE, see Open), so two processes
// opening the same new file cannot both apply the same step.
func migrate(ctx context.Context, db *sql.DB, migs []migration) error {
	latest := migs[len(migs)-1].version
	for {
		done, err := migrateStep(ctx, db, migs, latest)
		if err != nil || done {
			return err
		}
	}
}

// migrateStep applies the next pending migration, if any, and reports
// whether the schema is already current.
func migrateStep(ctx context.Context, db *sql.DB, migs []migration, latest int) (done bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("begin migration: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit

	var current int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&current); err != nil {
		return false, fmt.Errorf("read schema version: %w", err)
	}
	if current > latest {
		return false, &SchemaTooNewError{Version: current, Supported: latest}
	}
	if current == latest {
		return true, nil
	}
	if current == 0 {
		// Version 0 with tables in it is somebody else's database (a typo in
		// --storage.path pointing at the application's own SQLite file);
		// adding vigil's tables to it would be rude at best.
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'`).Scan(&n); err != nil {
			return false, fmt.Errorf("inspect database: %w", err)
		}
		if n > 0 {
			return false, fmt.Errorf("database has %d tables or indexes but no vigil schema version; refusing to use a database vigil did not create", n)
		}
	}
	m := migs[current] // versions are contiguous from 1, so migs[v-1] is version v
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return false, fmt.Errorf("migration %s: %w", m.name, err)
	}
	// PRAGMA does not take bind parameters; m.version is an int.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", m.version)); err != nil {
		return false, fmt.Errorf("migration %s: set schema version: %w", m.name, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("migration %s: commit: %w", m.name, err)
	}
	return false, nil
}
