package store

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-project/vigil/probes"
)

func open(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func sampleRecord(check string, start time.Time, ok bool) Record {
	r := probes.Result{
		Success:  ok,
		Start:    start,
		Duration: 1234567 * time.Nanosecond,
		Phases:   []probes.Phase{{Name: "cpu", Duration: time.Second}, {Name: "memory", Duration: 3 * time.Millisecond}},
		Values: []probes.Value{
			{Name: "vigil_host_load1", Value: 0.5, Key: true},
			{Name: "vigil_host_filesystem_avail_bytes", Value: 1e9, Labels: []probes.Label{{Name: "mountpoint", Value: "/"}}},
		},
	}
	if !ok {
		r.Reason = probes.ReasonDiskLow
		r.Message = "disk_low: / 4.1% free < 10.0%"
		r.Diagnostics = map[string]any{"problems": []any{"disk_low: / 4.1% free < 10.0%"}}
	}
	return Record{Check: check, Type: "host", Result: r}
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "sub", "dir", "vigil.db"))
	t0 := time.UnixMilli(time.Now().UnixMilli())
	want := []Record{sampleRecord("host", t0, false), sampleRecord("host", t0.Add(time.Second), true), sampleRecord("db", t0, true)}
	for _, r := range want {
		s.Record(r)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := s.History(ctx, "host", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d records, want 2", len(got))
	}
	// Newest first.
	for i, w := range []Record{want[1], want[0]} {
		if !got[i].Result.Start.Equal(w.Result.Start) {
			t.Errorf("record %d start %v, want %v", i, got[i].Result.Start, w.Result.Start)
		}
		got[i].Result.Start = w.Result.Start
		if !reflect.DeepEqual(got[i], w) {
			t.Errorf("record %d:\n got %+v\nwant %+v", i, got[i], w)
		}
	}
	latest, err := s.Latest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(latest) != 2 || !latest["host"].Result.Success || latest["db"].Check != "db" {
		t.Errorf("Latest = %+v", latest)
	}
	if s.Written() != 3 || s.Dropped() != 0 {
		t.Errorf("written %d dropped %d", s.Written(), s.Dropped())
	}
}

func TestMigrations(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "vigil.db")
	s := open(t, path)
	s.Record(sampleRecord("host", time.Now(), true))
	s.Flush(ctx)
	s.Close()

	// Reopening applies nothing twice and keeps the data.
	s = open(t, path)
	if h, _ := s.History(ctx, "host", 10); len(h) != 1 {
		t.Fatalf("history after reopen: %d rows", len(h))
	}
	var v int
	s.r.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v)
	if v != SchemaVersion() || v < 1 {
		t.Errorf("user_version %d, want %d", v, SchemaVersion())
	}
	s.Close()

	// A database from a newer vigil is refused.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(fmt.Sprintf("PRAGMA user_version = %d", SchemaVersion()+1)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = Open(ctx, path, Options{})
	if err == nil || !strings.Contains(err.Error(), "is newer than this vigil supports") {
		t.Errorf("newer schema: err = %v", err)
	}
}

func TestPrune(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "vigil.db"))
	now := time.Now()
	for _, age := range []time.Duration{10 * 24 * time.Hour, 8 * 24 * time.Hour, time.Hour, 0} {
		s.Record(sampleRecord("host", now.Add(-age), true))
	}
	s.Flush(ctx)
	n, err := s.Prune(ctx, now.Add(-7*24*time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("Prune = %d, %v; want 2", n, err)
	}
	if h, _ := s.History(ctx, "host", 10); len(h) != 2 {
		t.Errorf("%d rows left, want 2", len(h))
	}
}

func TestRetentionLoop(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "vigil.db")
	s := open(t, path)
	s.Record(sampleRecord("host", time.Now().Add(-48*time.Hour), true))
	s.Record(sampleRecord("host", time.Now(), true))
	s.Flush(ctx)
	s.Close()
	s, err := Open(ctx, path, Options{Retention: 24 * time.Hour, PruneInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		h, _ := s.History(ctx, "host", 10)
		if len(h) == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("start-up prune did not run: %d rows", len(h))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestConcurrentRecordAndRead(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "vigil.db"))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				s.Record(sampleRecord(fmt.Sprintf("c%d", g), time.Now(), i%2 == 0))
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			for range 50 {
				if _, err := s.History(ctx, "c1", 20); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Written() != 1600 {
		t.Errorf("written %d, want 1600", s.Written())
	}
}

// TestHelperProcess is the child of TestKill9: it records results, says
// "ready" once they are committed and waits to be killed.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv("VIGIL_STORE_HELPER")
	if path == "" {
		t.Skip("helper process for TestKill9")
	}
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	for i := range 100 {
		s.Record(sampleRecord("host", time.Now().Add(time.Duration(i)*time.Millisecond), true))
	}
	if err := s.Flush(context.Background()); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	// Keep writing while waiting to be killed, so the kill lands mid-write.
	fmt.Println("ready")
	for {
		s.Record(sampleRecord("busy", time.Now(), true))
		time.Sleep(time.Millisecond)
	}
}

func TestKill9(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vigil.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "VIGIL_STORE_HELPER="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		cmd.Process.Kill()
		t.Fatalf("helper said %q", line)
	}
	time.Sleep(300 * time.Millisecond) // let a few "busy" batches commit
	cmd.Process.Kill()
	cmd.Wait()

	s := open(t, path)
	h, err := s.History(context.Background(), "host", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 100 {
		t.Errorf("%d committed rows survived kill -9, want 100", len(h))
	}
	var integrity string
	if err := s.r.QueryRow("PRAGMA integrity_check").Scan(&integrity); err != nil || integrity != "ok" {
		t.Errorf("integrity_check = %q, %v", integrity, err)
	}
}

func BenchmarkRecord(b *testing.B) {
	s, err := Open(context.Background(), filepath.Join(b.TempDir(), "vigil.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	rec := sampleRecord("host", time.Now(), false)
	b.ResetTimer()
	// Commit time counts: the flush is inside the timed region.
	for range b.N {
		s.Record(rec)
	}
	if err := s.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
}
