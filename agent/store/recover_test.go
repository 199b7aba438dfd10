package store

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// damage overwrites one page in the middle of a closed database file with
// garbage, as a bad sector or a torn write would.
func damage(t *testing.T, path string) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	const page = 4096
	pages := st.Size() / page
	if pages < 20 {
		t.Fatalf("database too small to damage a middle page: %d pages", pages)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	junk := []byte(strings.Repeat("\x2a\xff\x13\x07", page/4))
	if _, err := f.WriteAt(junk, (pages/2)*page); err != nil {
		t.Fatal(err)
	}
}

// TestDamagedStoreRefusedAndRecovered: a store with a damaged page is
// refused at Open with the recovery command in the error (not opened
// "ready" to fail every write later); Recover moves it aside, keeps every
// row it can read, and the new store opens and passes quick_check.
func TestDamagedStoreRefusedAndRecovered(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "vigil.db")
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Add(-time.Hour)
	const results = 3000
	for i := range results {
		s.Record(sample("host", t0.Add(time.Duration(i)*time.Second), i%7 != 0))
	}
	flush(t, s)
	// Into check_results, whose copy walks its key range (a WITHOUT
	// ROWID table has no rowid to walk).
	mergeAll(t, s)
	if err := s.SaveSilence(ctx, Silence{ID: "s1", Matchers: `["team=\"ops\""]`, StartsAt: t0, EndsAt: t0.Add(48 * time.Hour),
		CreatedBy: "ops", Comment: "maintenance", CreatedAt: t0, UpdatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Drop the pages the merge freed, so the middle page damage hits is
	// one of the history's.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("VACUUM"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if p, err := Check(ctx, path, true); err != nil || len(p) != 0 {
		t.Fatalf("sound store: problems %v, err %v", p, err)
	}
	damage(t, path)

	problems, err := Check(ctx, path, false)
	if err != nil || len(problems) == 0 {
		t.Fatalf("Check of the damaged store: problems %v, err %v", problems, err)
	}
	_, err = Open(ctx, path, Options{})
	var de *DamagedError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "vigil store recover --storage.path="+path) {
		t.Fatalf("Open of a damaged store: %v, want a DamagedError naming the recovery", err)
	}

	rep, err := Recover(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(rep.DamagedPath); err != nil {
		t.Errorf("the damaged file was not kept: %v", err)
	}
	got := map[string]TableRecovery{}
	for _, tr := range rep.Tables {
		got[tr.Table] = tr
	}
	cr := got["check_results"]
	if cr.Copied == 0 || cr.Copied > results || cr.Copied+cr.Unreadable < results-200 {
		t.Errorf("check_results: %+v of %d rows", cr, results)
	}
	if got["silences"].Copied != 1 {
		t.Errorf("silences: %+v", got["silences"])
	}
	t.Logf("recovered: %+v", rep.Tables)

	s2 := openStore(t, path, Options{})
	if n := countRows(t, s2); int64(n) != cr.Copied {
		t.Errorf("new store holds %d results, recover copied %d", n, cr.Copied)
	}
	if p, err := quickCheck(ctx, s2.w, true); err != nil || len(p) != 0 {
		t.Errorf("recovered store: problems %v, err %v", p, err)
	}
	sil, err := s2.Silences(ctx, t0)
	if err != nil || len(sil) != 1 || sil[0].Comment != "maintenance" {
		t.Errorf("silences after recovery: %+v %v", sil, err)
	}
}

func TestNotADatabaseRefused(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "vigil.db")
	if err := os.WriteFile(path, []byte(strings.Repeat("this is not sqlite\n", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), path, Options{})
	var de *DamagedError
	if !errors.As(err, &de) {
		t.Fatalf("Open: %v, want a DamagedError", err)
	}
	rep, err := Recover(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	s := openStore(t, path, Options{})
	if n := countRows(t, s); n != 0 {
		t.Errorf("%d rows in the new store", n)
	}
	t.Logf("%+v", rep)
}
