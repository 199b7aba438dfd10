package logscan

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-project/vigil/probes"
)

var quiet = slog.New(slog.DiscardHandler)

// newCheck builds a logscan check with fast timings over dir.
func newCheck(t *testing.T, dir string, edit func(*Config)) *Logscan {
	t.Helper()
	cfg := defaultConfig()
	cfg.Paths = []string{filepath.Join(dir, "app.log")}
	cfg.StartAt = "beginning"
	cfg.PollInterval.Set("20ms")
	cfg.RotateGrace.Set("300ms")
	cfg.CheckpointInterval.Set("50ms")
	cfg.StateFile = filepath.Join(dir, "state", "logscan.json")
	cfg.Patterns = []Pattern{
		{Name: "seq", Regex: `seq=\d+`},
		{Name: "err", Regex: `level=(?P<level>error|fatal) code=(?P<code>\w+)`, LabelsFromGroups: []string{"code"}, MaxLabelValues: 3},
	}
	if edit != nil {
		edit(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := newLogscan(cfg, probes.Options{CheckName: "app", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return p.(*Logscan)
}

// start runs the check until the returned stop is called.
func start(l *Logscan) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { l.Run(ctx, quiet) })
	return func() { cancel(); wg.Wait() }
}

func value(l *Logscan, name string, labels ...string) float64 {
	for _, v := range l.Collect() {
		if v.Name != name {
			continue
		}
		var got []string
		for _, lb := range v.Labels {
			got = append(got, lb.Name+"="+lb.Value)
		}
		if strings.Join(got, ",") == strings.Join(labels, ",") {
			return v.Value
		}
	}
	return -1
}

// waitReady waits for the check's first pass over its files.
func waitReady(t *testing.T, l *Logscan) {
	t.Helper()
	select {
	case <-l.ready:
	case <-time.After(10 * time.Second):
		t.Fatal("no first pass over the files within 10s")
	}
}

// waitSummary polls until the check's last pass describes its files as want.
func waitSummary(t *testing.T, l *Logscan, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l.mu.Lock()
		got := l.summary
		l.mu.Unlock()
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("files: %q, want %q", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitFor polls until the series reaches want.
func waitFor(t *testing.T, l *Logscan, want float64, name string, labels ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if value(l, name, labels...) == want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s%v = %v, want %v", name, labels, value(l, name, labels...), want)
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.WriteString(f, s); err != nil {
		t.Fatal(err)
	}
}

func lines(from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "ts=2026-11-23 seq=%d msg=hello\n", i)
	}
	return b.String()
}

func TestCountsLabelsAndCap(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "app.log")
	appendFile(t, log, lines(0, 10))
	l := newCheck(t, dir, nil)
	stop := start(l)
	defer stop()
	waitFor(t, l, 10, "vigil_log_matches_total", "pattern=seq")
	for _, code := range []string{"E1", "E2", "E1", "E3", "E4", "E5"} {
		appendFile(t, log, "level=error code="+code+"\n")
	}
	appendFile(t, log, "level=warn code=W1\npartial level=error code=E9") // no newline yet
	waitFor(t, l, 2, "vigil_log_matches_total", "pattern=err", "code=E1")
	waitFor(t, l, 2, "vigil_log_matches_total", "pattern=err", "code=other") // E4, E5 over the cap of 3
	waitFor(t, l, 17, "vigil_log_lines_total")
	appendFile(t, log, "\n")
	waitFor(t, l, 18, "vigil_log_lines_total")
	waitFor(t, l, 3, "vigil_log_matches_total", "pattern=err", "code=other")
	if v := value(l, "vigil_log_matches_total", "pattern=err", "code=E9"); v != -1 {
		t.Fatalf("a value over the cap got its own series")
	}
	if v := value(l, "vigil_log_last_match_timestamp_seconds", "pattern=err"); v < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Fatalf("last match timestamp %v", v)
	}
}

func TestStartAtEnd(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "app.log")
	appendFile(t, log, lines(0, 5)+"half a line seq=99")
	l := newCheck(t, dir, func(c *Config) { c.StartAt = "end" })
	stop := start(l)
	defer stop()
	waitReady(t, l) // the file's end is taken at the first pass
	appendFile(t, log, " rest\n"+lines(5, 8))
	waitFor(t, l, 3, "vigil_log_lines_total")
	waitFor(t, l, 3, "vigil_log_matches_total", "pattern=seq")
	// A file appearing later is read from its beginning.
	l2 := newCheck(t, dir, func(c *Config) {
		c.StartAt = "end"
		c.Paths = []string{filepath.Join(dir, "*.log")}
		c.GlobInterval.Set("30ms")
		c.StateFile = filepath.Join(dir, "state2.json")
	})
	stop2 := start(l2)
	defer stop2()
	waitReady(t, l2)
	appendFile(t, filepath.Join(dir, "late.log"), lines(0, 4))
	waitFor(t, l2, 4, "vigil_log_matches_total", "pattern=seq")
}

func TestRotation(t *testing.T) {
	for _, kind := range []string{"rename", "copytruncate", "delete", "rename, glob matching rotated names"} {
		t.Run(kind, func(t *testing.T) {
			dir := t.TempDir()
			log := filepath.Join(dir, "app.log")
			l := newCheck(t, dir, func(c *Config) {
				if strings.Contains(kind, "glob") {
					c.Paths = []string{filepath.Join(dir, "app.log*")}
					c.GlobInterval.Set("20ms")
				}
			})
			stop := start(l)
			defer stop()
			f, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(f, lines(0, 100))
			waitFor(t, l, 100, "vigil_log_lines_total")
			switch kind {
			case "rename", "rename, glob matching rotated names":
				os.Rename(log, log+".1")
				io.WriteString(f, lines(100, 150)) // the writer has not reopened yet
				f.Close()
				f, _ = os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			case "copytruncate":
				b, _ := os.ReadFile(log)
				os.WriteFile(log+".1", b, 0o644)
				os.Truncate(log, 0)
				io.WriteString(f, lines(100, 150))
			case "delete":
				os.Remove(log)
				io.WriteString(f, lines(100, 150))
				f.Close()
				f, _ = os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			}
			io.WriteString(f, lines(150, 200))
			f.Close()
			waitFor(t, l, 200, "vigil_log_matches_total", "pattern=seq")
			waitFor(t, l, 200, "vigil_log_lines_total")
			want := map[string][2]float64{"rename": {1, 0}, "copytruncate": {0, 1}, "delete": {1, 0}, "rename, glob matching rotated names": {1, 0}}[kind]
			if strings.Contains(kind, "glob") {
				// The renamed file is still watched under its new name:
				// the same file read on, not a new one read again. Once the
				// glob has found it, nothing is left draining.
				waitSummary(t, l, "2 files (0 rotated away, still draining)")
				if v := value(l, "vigil_log_lines_total"); v != 200 {
					t.Fatalf("lines %v after the rotated file was picked up by the glob", v)
				}
				want = [2]float64{value(l, "vigil_log_rotations_total"), 0}
			}
			if r, tr := value(l, "vigil_log_rotations_total"), value(l, "vigil_log_truncations_total"); r != want[0] || tr != want[1] {
				t.Fatalf("rotations %v truncations %v, want %v", r, tr, want)
			}
		})
	}
}

// A restart resumes from the checkpoint: offsets and counters together. A
// crash (the last checkpoint older than what was read) re-reads the lines
// after the checkpoint and counts them once.
func TestCheckpointResume(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "app.log")
	appendFile(t, log, lines(0, 50))
	l := newCheck(t, dir, nil)
	stop := start(l)
	waitFor(t, l, 50, "vigil_log_lines_total")
	stop() // graceful: saves
	crashState, err := os.ReadFile(l.stateFile)
	if err != nil {
		t.Fatal(err)
	}
	// Graceful restart.
	appendFile(t, log, lines(50, 80))
	l2 := newCheck(t, dir, nil)
	stop2 := start(l2)
	waitFor(t, l2, 80, "vigil_log_matches_total", "pattern=seq")
	appendFile(t, log, lines(80, 90))
	waitFor(t, l2, 90, "vigil_log_matches_total", "pattern=seq")
	stop2()
	// Crash: state as of 50 lines, the file rotated meanwhile.
	os.WriteFile(l.stateFile, crashState, 0o644)
	os.Rename(log, log+".1")
	appendFile(t, log, lines(90, 100))
	l3 := newCheck(t, dir, nil)
	stop3 := start(l3)
	defer stop3()
	waitFor(t, l3, 100, "vigil_log_matches_total", "pattern=seq")
	waitFor(t, l3, 100, "vigil_log_lines_total")
	if r := value(l3, "vigil_log_rotations_total"); r != 1 {
		t.Fatalf("rotations %v", r)
	}
}

func TestLongLinesAndBinary(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "app.log")
	long := strings.Repeat("x", 5000)
	data := "seq=1 " + long + "\n" + // long, matched on its head
		long + " seq=2\n" + // long, the match is past the cut
		"\x00\xff\xfe seq=3 \xc3\x28 level=error code=\xff\xfe\n" +
		"seq=4\n" +
		strings.Repeat("y", 9000) // over max_line_bytes without a newline yet
	appendFile(t, log, data)
	l := newCheck(t, dir, func(c *Config) {
		c.MaxLineBytes = 1024
		c.Patterns[1].Regex = `level=(?P<level>error|fatal) code=(?P<code>\S+)`
	})
	stop := start(l)
	defer stop()
	waitFor(t, l, 5, "vigil_log_lines_total")
	waitFor(t, l, 3, "vigil_log_long_lines_total")
	waitFor(t, l, 3, "vigil_log_matches_total", "pattern=seq")
	waitFor(t, l, 1, "vigil_log_matches_total", "pattern=err", "code=\ufffd")
	appendFile(t, log, "yyy seq=5 rest of the long line\nseq=6\n")
	waitFor(t, l, 6, "vigil_log_lines_total")
	waitFor(t, l, 4, "vigil_log_matches_total", "pattern=seq")
}

func TestProbeEvaluation(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "app.log")
	l := newCheck(t, dir, func(c *Config) { c.Patterns[1].Threshold = 2 })
	// Not running (vigil once): no file yet.
	if r := l.Probe(context.Background(), quiet); r.Reason != probes.ReasonLogMissing {
		t.Fatalf("%s %s", r.Reason, r.Message)
	}
	appendFile(t, log, "level=error code=A\nlevel=error code=B\n")
	if r := l.Probe(context.Background(), quiet); r.Reason != probes.ReasonPatternThreshold || !strings.Contains(r.Message, "err matched 2 lines") {
		t.Fatalf("%s %s", r.Reason, r.Message)
	}
	// Running: the check reads from its (absent) checkpoint, so from the
	// beginning, and evaluates per interval.
	stop := start(l)
	defer stop()
	appendFile(t, log, "level=error code=C\n")
	waitFor(t, l, 1, "vigil_log_matches_total", "pattern=err", "code=C")
	if r := l.Probe(context.Background(), quiet); r.Reason != probes.ReasonPatternThreshold || !strings.Contains(r.Message, "err matched 3 lines") {
		t.Fatalf("%s %s", r.Reason, r.Message)
	}
	appendFile(t, log, "level=error code=A\n")
	waitFor(t, l, 2, "vigil_log_matches_total", "pattern=err", "code=A")
	if r := l.Probe(context.Background(), quiet); !r.Success || !strings.Contains(r.Message, "err=1") {
		t.Fatalf("one match in the interval: %s %s", r.Reason, r.Message)
	}
}

// TestCheckpointNamesAFileTwice: a checkpoint holding one file under two
// entries (its old name, draining, and its new one) reads it once.
func TestCheckpointNamesAFileTwice(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "app.log")
	appendFile(t, log, lines(0, 50))
	l := newCheck(t, dir, nil)
	stop := start(l)
	waitFor(t, l, 50, "vigil_log_lines_total")
	stop()
	b, err := os.ReadFile(l.stateFile)
	if err != nil {
		t.Fatal(err)
	}
	var cp checkpoint
	if err := json.Unmarshal(b, &cp); err != nil || len(cp.Files) != 1 {
		t.Fatalf("checkpoint %s: %v", b, err)
	}
	dup := cp.Files[0]
	dup.Path, dup.Draining = log+".1", true
	cp.Files = append(cp.Files, dup)
	if b, err = json.Marshal(cp); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(l.stateFile, b, 0o644)
	appendFile(t, log, lines(50, 60))
	l2 := newCheck(t, dir, nil)
	stop2 := start(l2)
	defer stop2()
	waitFor(t, l2, 60, "vigil_log_matches_total", "pattern=seq")
	waitFor(t, l2, 60, "vigil_log_lines_total")
}
