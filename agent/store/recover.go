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
	// Unreadable counts the keys that could not be read: rowids, or for
	// check results a check and start time (one row, rarely a few), plus
	// results dropped because their check or shape was lost. Some rowids
	// may never have held a row (rowids have gaps), so it bounds the rows
	// lost from above.
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
	return rep, dropUnnamedResults(ctx, conn, &rep)
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

// copyTable copies the rows of one table that can be read, by ranges of
// its key: the rowid, or for a WITHOUT ROWID table (check_results) the
// first primary-key column and, within one value of it, the second. A
// range that fails is halved until single unreadable keys are skipped, so
// one damaged page costs the rows on it, not the table.
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
	keys, err := rangeKeys(ctx, conn, table)
	if err != nil {
		tr.Err = "table definition unreadable: " + err.Error()
		return tr
	}
	cols := strings.Join(common, ", ")
	insert := `INSERT OR IGNORE INTO main."` + table + `" (` + cols + `) SELECT ` + cols + ` FROM damaged."` + table + `" WHERE `
	// where selects the rows whose first level keys equal prefix and whose
	// next key lies in a range.
	where := func(level int) string {
		var conds []string
		for _, k := range keys[:level] {
			conds = append(conds, k+` = ?`)
		}
		return strings.Join(append(conds, keys[level]+` BETWEEN ? AND ?`), ` AND `)
	}
	// Two queries, not min() and max() in one: SQLite answers a lone min
	// or max with one descent of the key, but both together with a scan
	// of the whole range, which meets the damaged page.
	bounds := func(level int, prefix []any) (lo, hi sql.NullInt64, err error) {
		from := ` FROM damaged."` + table + `"`
		if level > 0 {
			from += ` WHERE ` + strings.Join(keys[:level], ` = ? AND `) + ` = ?`
		}
		if err = conn.QueryRowContext(ctx, `SELECT min(`+keys[level]+`)`+from, prefix...).Scan(&lo); err == nil {
			err = conn.QueryRowContext(ctx, `SELECT max(`+keys[level]+`)`+from, prefix...).Scan(&hi)
		}
		return lo, hi, err
	}
	// ins copies the rows with the given prefix whose next key is in [a, b].
	ins := func(level int, prefix []any, a, b int64) error {
		res, err := conn.ExecContext(ctx, insert+where(level), append(slices.Clone(prefix), a, b)...)
		if err == nil {
			n, _ := res.RowsAffected()
			tr.Copied += n
		}
		return err
	}
	var copyRange func(level int, prefix []any, a, b int64)
	copyRange = func(level int, prefix []any, a, b int64) {
		err := ins(level, prefix, a, b)
		if err == nil {
			return
		}
		if a == b {
			if level+1 < len(keys) {
				inner := append(slices.Clone(prefix), a)
				lo, hi, berr := bounds(level+1, inner)
				if berr == nil && lo.Valid {
					stepOver(ctx, conn, table, keys, inner, lo.Int64, hi.Int64, ins, &tr)
					return
				}
			}
			tr.Unreadable++
			tr.Err = err.Error()
			return
		}
		mid := a + (b-a)/2
		copyRange(level, prefix, a, mid)
		copyRange(level, prefix, mid+1, b)
	}
	lo, hi, err := bounds(0, nil)
	if err != nil {
		tr.Err = "key range unreadable: " + err.Error()
		return tr
	}
	if !lo.Valid {
		return tr
	}
	for a := lo.Int64; a <= hi.Int64 && ctx.Err() == nil; a += recoverChunk {
		copyRange(0, nil, a, min(a+recoverChunk-1, hi.Int64))
	}
	return tr
}

// stepOver copies the rows with prefix whose last key (a start time in
// milliseconds: sparse, so halving down to single values would take a
// statement per millisecond of a damaged page's span) lies in [a, b]. It
// copies up to where reading fails, finds where that is by binary search,
// and then finds the first key after the damaged page by galloping: a
// handful of statements per damaged page. Each damaged stretch counts as
// one unreadable key.
func stepOver(ctx context.Context, conn *sql.Conn, table string, keys []string, prefix []any,
	a, b int64, ins func(int, []any, int64, int64) error, tr *TableRecovery) {
	level := len(prefix)
	from := ` FROM damaged."` + table + `" WHERE ` + strings.Join(keys[:level], ` = ? AND `) + ` = ? AND ` + keys[level]
	readable := func(lo, hi int64) bool {
		var n int64
		return conn.QueryRowContext(ctx, `SELECT count(*)`+from+` BETWEEN ? AND ?`, append(slices.Clone(prefix), lo, hi)...).Scan(&n) == nil
	}
	// after is the first key above v, when the page holding it is readable.
	after := func(v int64) (k sql.NullInt64, err error) {
		err = conn.QueryRowContext(ctx, `SELECT min(`+keys[level]+`)`+from+` > ?`, append(slices.Clone(prefix), v)...).Scan(&k)
		return k, err
	}
	for a <= b && ctx.Err() == nil {
		err := ins(level, prefix, a, b)
		if err == nil {
			return
		}
		tr.Unreadable++
		tr.Err = err.Error()
		// The first unreadable key: [a, bad-1] reads, [a, bad] does not.
		lo, hi := a, b
		for lo < hi {
			if mid := lo + (hi-lo)/2; readable(a, mid) {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		bad := lo
		if bad > a {
			if err := ins(level, prefix, a, bad-1); err != nil {
				return
			}
		}
		// Gallop from bad until the key after v is readable, then narrow
		// down to the smallest such v, so no readable row is skipped.
		fail, step := bad, int64(1)
		var next sql.NullInt64
		for {
			v := min(b, fail+step)
			k, err := after(v)
			if err == nil {
				for lo, hi := fail, v; hi-lo > 1; {
					mid := lo + (hi-lo)/2
					if k2, err := after(mid); err == nil {
						hi, k = mid, k2
					} else {
						lo = mid
					}
				}
				next = k
				break
			}
			if v == b {
				return
			}
			fail, step = v, step*2
		}
		if !next.Valid {
			return
		}
		a = next.Int64
	}
}

// rangeKeys returns the columns copyTable walks a table by: its rowid, or
// for a WITHOUT ROWID table its first two primary-key columns, which must
// be integers (check_results: check_id, started_at).
func rangeKeys(ctx context.Context, conn *sql.Conn, table string) ([]string, error) {
	var wr bool
	if err := conn.QueryRowContext(ctx, `SELECT wr FROM pragma_table_list WHERE schema = 'damaged' AND name = ?`, table).Scan(&wr); err != nil {
		return nil, err
	}
	if !wr {
		return []string{"rowid"}, nil
	}
	pk, err := strings1(ctx, conn, `SELECT name FROM pragma_table_info(?, 'damaged') WHERE pk > 0 ORDER BY pk`, table)
	if err != nil {
		return nil, err
	}
	if len(pk) == 0 {
		return nil, fmt.Errorf("table %s has neither a rowid nor a primary key", table)
	}
	for i := range pk {
		pk[i] = `"` + pk[i] + `"`
	}
	return pk[:min(2, len(pk))], nil
}

// dropUnnamedResults deletes copied results whose check or shape row was
// lost (they can be neither named nor decoded), and moves them from Copied
// to Unreadable.
func dropUnnamedResults(ctx context.Context, conn *sql.Conn, rep *RecoverReport) error {
	for _, table := range []string{"check_results", "recent_results"} {
		res, err := conn.ExecContext(ctx, `DELETE FROM `+table+`
			WHERE check_id NOT IN (SELECT id FROM checks) OR shape_id NOT IN (SELECT id FROM result_shapes)`)
		if err != nil {
			return fmt.Errorf("drop results without a check or shape: %w", err)
		}
		n, _ := res.RowsAffected()
		for i := range rep.Tables {
			if tr := &rep.Tables[i]; tr.Table == table {
				tr.Copied -= n
				tr.Unreadable += n
			}
		}
	}
	return nil
}
