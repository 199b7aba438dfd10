package store

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	helperEnv     = "VIGIL_STORE_CRASH_HELPER"
	helperRecords = 500
)

// TestHelperProcess is the child of TestKill9, not a test of its own: it
// commits helperRecords results, says "ready", and then keeps recording
// until it is killed, so the kill lands while writes are in flight.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv(helperEnv)
	if path == "" {
		t.Skip("helper process for TestKill9")
	}
	// If the parent dies without killing us, its end of stdin closes.
	go func() {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(3)
	}()
	fail := func(err error) {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		fail(err)
	}
	t0 := time.Now()
	for i := range helperRecords {
		rec := sample("committed", t0.Add(time.Duration(i)*time.Millisecond), i%3 != 0)
		rec.Result.Message = fmt.Sprint(i)
		s.Record(rec)
	}
	if err := s.Flush(context.Background()); err != nil {
		fail(err)
	}
	fmt.Println("ready")
	for {
		s.Record(sample("in-flight", time.Now(), true))
		time.Sleep(100 * time.Microsecond)
	}
}

// TestKill9 proves that committed results survive SIGKILL: a child process
// (this test binary again) commits results and is killed mid-write; the
// database must reopen cleanly with every committed row intact.
func TestKill9(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vigil.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+path)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	ready := make(chan string, 1)
	go func() {
		// Skip anything the test framework prints before our line.
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if line := sc.Text(); line == "ready" || strings.HasPrefix(line, "error:") {
				ready <- line
				break
			}
		}
		close(ready)
		io.Copy(io.Discard, out)
	}()
	select {
	case line := <-ready:
		if line != "ready" {
			t.Fatalf("helper did not get ready: %q", line)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("helper did not get ready within 60s")
	}
	// Let several in-flight batches commit or half-commit, then pull the plug.
	time.Sleep(500 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("helper was not killed by SIGKILL: %v", err)
	}
	if _, err := os.Stat(path + "-wal"); err != nil {
		t.Logf("no WAL file after the kill (%v); recovery is not exercised", err)
	}

	ctx := context.Background()
	s := openStore(t, path, Options{})
	var integrity string
	if err := s.r.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&integrity); err != nil || integrity != "ok" {
		t.Errorf("integrity_check = %q, %v", integrity, err)
	}
	h, err := s.History(ctx, "committed", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != helperRecords {
		t.Fatalf("%d committed rows survived kill -9, want %d", len(h), helperRecords)
	}
	for i, rec := range h {
		if want := fmt.Sprint(helperRecords - 1 - i); rec.Result.Message != want || len(rec.Result.Values) != 2 {
			t.Fatalf("row %d = %q with %d values, want %q with 2", i, rec.Result.Message, len(rec.Result.Values), want)
		}
	}
	inflight, err := s.History(ctx, "in-flight", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d committed rows intact, %d in-flight rows made it before the kill", len(h), len(inflight))
	// The store is writable again after recovery.
	s.Record(sample("after", time.Now(), true))
	flush(t, s)
	if s.Written() != 1 {
		t.Errorf("Written after recovery = %d, want 1", s.Written())
	}
}
