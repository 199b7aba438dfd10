package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// DamagedError means the database file is damaged: SQLite's quick_check
// found broken pages, or the file is not a database at all. The agent
// refuses to start on it rather than run with a store whose every write
// may fail; Recover moves it aside and keeps what can be read.
type DamagedError struct {
	Path   string
	Detail string
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("store %s is damaged (%s); stop the agent and run `vigil store recover --storage.path=%s`: "+
		"it moves the damaged file aside, copies every row that can still be read into a new store and starts it clean",
		e.Path, e.Detail, e.Path)
}

// isCorrupt tells SQLite's "database disk image is malformed" and "file is
// not a database" apart from other failures (a locked file, a missing
// directory), which are not damage.
func isCorrupt(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
		return true
	}
	return false
}

// maxProblems bounds the problems quick_check reports; the first few say
// enough, and a badly damaged file can list thousands.
const maxProblems = 20

// quickCheck runs PRAGMA quick_check (integrity_check when full: it also
// compares indexes with their tables, which takes longer) and returns the
// problems found, none when the file is sound.
func quickCheck(ctx context.Context, db *sql.DB, full bool) ([]string, error) {
	pragma := "PRAGMA quick_check(" + fmt.Sprint(maxProblems) + ")"
	if full {
		pragma = "PRAGMA integrity_check(" + fmt.Sprint(maxProblems) + ")"
	}
	rows, err := db.QueryContext(ctx, pragma)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return nil, err
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	return problems, rows.Err()
}

// Check examines the database at path without changing it: it returns the
// problems SQLite's quick_check (integrity_check when full) finds, none for
// a sound file, and a *DamagedError when the file cannot even be read as a
// database.
func Check(ctx context.Context, path string, full bool) ([]string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("check store: %w", err)
	}
	db, err := sql.Open("sqlite", dsn(abs, "mode=ro", fmt.Sprintf("_pragma=busy_timeout(%d)", busyTimeoutMS)))
	if err != nil {
		return nil, fmt.Errorf("check store %s: %w", path, err)
	}
	defer db.Close()
	problems, err := quickCheck(ctx, db, full)
	if err != nil {
		if isCorrupt(err) {
			return []string{err.Error()}, nil
		}
		return nil, fmt.Errorf("check store %s: %w", path, err)
	}
	return problems, nil
}

// TableRecovery is what Recover kept of one table.
type TableRecovery struct {
	Table  string
	Copied int64
	// Unreadable counts the rowids that could not be read. Some may never
	// have held a row (rowids have gaps), so it bounds the rows lost from
	// above.
	Unreadable int64
	Err        string // the last read error, if any
}

// RecoverReport says where the damaged file went and what was kept.
type RecoverReport struct {
	DamagedPath string
	Tables      []TableRecovery
}

// recoverChunk is how many rowids are copied per statement; a chunk that
// fails is split until the unreadable rows are isolated.
const recoverChunk = 4096

// Recover moves the damaged database at path (with its -wal and -shm) to
// path.damaged-TIMESTAMP, creates a new store at path with the current
// schema, and copies into it every row of every table that can still be
// read, column by column where the schemas differ. The agent must not be
// running. The damaged file is kept for later inspection.
func Recover(ctx context.Context, path string) (RecoverReport, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return RecoverReport{}, err
	}
	if _, err := os.Stat(abs); err != nil {
		return RecoverReport{}, fmt.Errorf("recover store: %w", err)
	}
	rep := RecoverReport{DamagedPath: abs + ".damaged-" + time.Now().UTC().Format("20060102T150405Z")}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Rename(abs+suffix, rep.DamagedPath+suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return rep, fmt.Errorf("move the damaged store aside: %w", err)
		}
	}
	fresh, err := Open(ctx, abs, Options{})
	if err != nil {
		return rep, fmt.Errorf("create a new store: %w", err)
	}
	defer fresh.Close()
	// The copy goes through the new store's writer connection with the
	// damaged file attached read-only.
	conn, err := fresh.w.Conn(ctx)
	if err != nil {
		return rep, err
	}
	defer conn.Close()
	tables, err := tableNames(ctx, conn, "main")
	if err != nil {
		return rep, err
	}
	var old []string
	_, err = conn.ExecContext(ctx, "ATTACH DATABASE ? AS damaged", dsn(rep.DamagedPath, "mode=ro"))
	if err == nil {
		defer conn.ExecContext(context.WithoutCancel(ctx), "DETACH DATABASE damaged")
		old, err = tableNames(ctx, conn, "damaged")
	}
	if err != nil && !isCorrupt(err) {
		return rep, fmt.Errorf("read the damaged store: %w", err)
	}
	if err != nil {
		// The damaged file's schema is unreadable: nothing can be copied,
		// but the new store is usable.
		for _, t := range tables {
			rep.Tables = append(rep.Tables, TableRecovery{Table: t, Err: "schema unreadable: " + err.Error()})
		}
		return rep, nil
	}
	for _, t := range tables {
		if !slices.Contains(old, t) {
			continue
		}
		rep.Tables = append(rep.Tables, copyTable(ctx, conn, t))
	}
	return rep, nil
}

func tableNames(ctx context.Context, conn *sql.Conn, schema string) ([]string, error) {
	return strings1(ctx, conn, `SELECT name FROM `+schema+`.sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)
}

func columns(ctx context.Context, conn *sql.Conn, schema, table string) ([]string, error) {
	return strings1(ctx, conn, `SELECT name FROM pragma_table_info(?, ?)`, table, schema)
}

// strings1 returns the first column of every row of a query.
func strings1(ctx context.Context, conn *sql.Conn, q string, args ...any) ([]string, error) {
	rows, err := conn.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// copyTable copies the rows of one table that can be read, by rowid
// range: a range that fails is halved until single unreadable rows are
// skipped, so one damaged page costs the rows on it, not the table.
func copyTable(ctx context.Context, conn *sql.Conn, table string) TableRecovery {
	tr := TableRecovery{Table: table}
	newCols, err := columns(ctx, conn, "main", table)
	if err != nil {
		tr.Err = err.Error()
		return tr
	}
	oldCols, err := columns(ctx, conn, "damaged", table)
	if err != nil {
		tr.Err = err.Error()
		return tr
	}
	var common []string
	for _, c := range newCols {
		if slices.Contains(oldCols, c) {
			common = append(common, `"`+c+`"`)
		}
	}
	cols := strings.Join(common, ", ")
	var lo, hi sql.NullInt64
	if err := conn.QueryRowContext(ctx, `SELECT min(rowid), max(rowid) FROM damaged."`+table+`"`).Scan(&lo, &hi); err != nil {
		tr.Err = "rowid range unreadable: " + err.Error()
		return tr
	}
	if !lo.Valid {
		return tr
	}
	insert := `INSERT OR IGNORE INTO main."` + table + `" (` + cols + `) SELECT ` + cols + ` FROM damaged."` + table + `" WHERE rowid BETWEEN ? AND ?`
	var copyRange func(a, b int64)
	copyRange = func(a, b int64) {
		res, err := conn.ExecContext(ctx, insert, a, b)
		if err == nil {
			n, _ := res.RowsAffected()
			tr.Copied += n
			return
		}
		if a == b {
			tr.Unreadable++
			tr.Err = err.Error()
			return
		}
		mid := a + (b-a)/2
		copyRange(a, mid)
		copyRange(mid+1, b)
	}
	for a := lo.Int64; a <= hi.Int64 && ctx.Err() == nil; a += recoverChunk {
		copyRange(a, min(a+recoverChunk-1, hi.Int64))
	}
	return tr
}
