package cli_test

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// writer appends numbered lines to a log at speed, the way an application
// does: O_APPEND, whole lines per write, reopening the path on request
// (after a rename or delete rotation, a little late, as real ones do).
type writer struct {
	path    string
	mu      sync.Mutex
	f       *os.File
	written int
	samples []sample // (time, written) every write, for copytruncate windows
	stop    chan struct{}
	done    chan struct{}
}

type sample struct {
	at time.Time
	n  int
}

func newWriter(t *testing.T, path string) *writer {
	w := &writer{path: path, stop: make(chan struct{}), done: make(chan struct{})}
	w.reopen(t)
	go w.loop()
	return w
}

func (w *writer) reopen(t *testing.T) {
	f, err := os.OpenFile(w.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	old := w.f
	w.f = f
	w.mu.Unlock()
	if old != nil {
		old.Close()
	}
}

func (w *writer) loop() {
	defer close(w.done)
	buf := make([]byte, 0, 64<<10)
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		w.mu.Lock()
		buf = buf[:0]
		for i := 0; i < 40; i++ {
			buf = fmt.Appendf(buf, "2026-11-23T06:00:00.000Z level=info seq=%09d msg=\"invoice synced\" upstream=tax-bureau\n", w.written+i)
		}
		if _, err := w.f.Write(buf); err == nil {
			w.written += 40
			w.samples = append(w.samples, sample{time.Now(), w.written})
		}
		w.mu.Unlock()
		time.Sleep(2 * time.Millisecond)
	}
}

func (w *writer) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.written
}

// countAt is how many lines had been written by time at.
func (w *writer) countAt(at time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, s := range w.samples {
		if s.at.After(at) {
			break
		}
		n = s.n
	}
	return n
}

func (w *writer) close() {
	close(w.stop)
	<-w.done
	w.f.Close()
}

const tortureConfig = `
global:
  startup_splay: 0s
checks:
  - name: app
    type: logscan
    interval: 1h
    logscan:
      paths: [%q]
      start_at: beginning
      poll_interval: 50ms
      checkpoint_interval: 200ms
      rotate_grace: 3s
      patterns:
        - name: seq
          regex: 'seq=\d+'
`

var linesRE = regexp.MustCompile(`vigil_log_lines_total\{check="app",type="logscan"\} (\d+)`)
var seqRE = regexp.MustCompile(`vigil_log_matches_total\{check="app",type="logscan",pattern="seq"\} (\d+)`)

func counted(t *testing.T, a *agentProc) (lines, matches int) {
	body := a.get(t, "/metrics")
	if m := linesRE.FindStringSubmatch(body); m != nil {
		lines, _ = strconv.Atoi(m[1])
	}
	if m := seqRE.FindStringSubmatch(body); m != nil {
		matches, _ = strconv.Atoi(m[1])
	}
	return lines, matches
}

// settle waits until the agent's count stops moving and returns it.
func settle(t *testing.T, a *agentProc, want int) (int, int) {
	deadline := time.Now().Add(20 * time.Second)
	last, stable := -1, 0
	for time.Now().Before(deadline) {
		l, m := counted(t, a)
		if l == want && m == want {
			return l, m
		}
		if l == last {
			stable++
		} else {
			stable = 0
		}
		if stable > 40 { // 4s without progress
			return l, m
		}
		last = l
		time.Sleep(100 * time.Millisecond)
	}
	return counted(t, a)
}

func kill9(t *testing.T, a *agentProc) {
	a.cmd.Process.Signal(syscall.SIGKILL)
	a.cmd.Wait()
}

// rotate renames path to path.1 (shifting older ones), logrotate style.
func rotateRename(path string) {
	for i := 3; i >= 1; i-- {
		os.Rename(path+"."+strconv.Itoa(i), path+"."+strconv.Itoa(i+1))
	}
	os.Rename(path, path+".1")
}

func copyTruncate(t *testing.T, path string) {
	src, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	dst, _ := os.Create(path + ".1")
	io.Copy(dst, src)
	src.Close()
	dst.Close()
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
}

// TestLogscanRotationTorture writes numbered lines at speed while rotating
// the log and SIGKILLing the agent, then compares the agent's counts with
// the lines written: exactly equal for rename and delete rotation, and
// short by no more than the lines written in copytruncate's window.
//
// Not parallel: the copytruncate window allows the agent 500ms to read,
// which holds when it does not share the CPUs with this package's other
// agents (sequential tests run before the parallel ones start).
func TestLogscanRotationTorture(t *testing.T) {
	t.Run("rename and delete, with kill -9", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "app.log")
		cfg := writeConfig(t, dir, "vigil.yml", fmt.Sprintf(tortureConfig, path))
		db := filepath.Join(dir, "data", "vigil.db")
		a := startAgent(t, "--config.file", cfg, "--storage.path", db)
		w := newWriter(t, path)
		kills := 0
		for round := 0; round < 9; round++ {
			time.Sleep(150 * time.Millisecond)
			switch tortureRound(round) {
			case 0: // rename while the agent is down
				kill9(t, a)
				kills++
				rotateRename(path)
				time.Sleep(30 * time.Millisecond)
				w.reopen(t)
				a = startAgent(t, "--config.file", cfg, "--storage.path", db)
			case 1: // rename while running, then kill -9 soon after
				rotateRename(path)
				time.Sleep(30 * time.Millisecond)
				w.reopen(t)
				time.Sleep(120 * time.Millisecond)
				kill9(t, a)
				kills++
				a = startAgent(t, "--config.file", cfg, "--storage.path", db)
			case 2: // delete and recreate while running
				os.Remove(path)
				time.Sleep(30 * time.Millisecond)
				w.reopen(t)
				// A deleted file exists only through the agent's open handle:
				// the next kill must wait until it has been read and the
				// counts checkpointed, or nothing could count those lines.
				before := w.count()
				deadline := time.Now().Add(10 * time.Second)
				for l, _ := counted(t, a); l < before && time.Now().Before(deadline); l, _ = counted(t, a) {
					time.Sleep(20 * time.Millisecond)
				}
				time.Sleep(time.Second) // several checkpoint_intervals, even on a loaded machine
			}
		}
		time.Sleep(100 * time.Millisecond)
		w.close()
		written := w.count()
		lines, matches := settle(t, a, written)
		t.Logf("written %d, counted lines %d, matches %d, %d kills", written, lines, matches, kills)
		if lines != written || matches != written {
			t.Fatalf("counted %d lines and %d matches, %d were written", lines, matches, written)
		}
	})

	t.Run("copytruncate", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "app.log")
		cfg := writeConfig(t, dir, "vigil.yml", fmt.Sprintf(tortureConfig, path))
		db := filepath.Join(dir, "data", "vigil.db")
		a := startAgent(t, "--config.file", cfg, "--storage.path", db)
		w := newWriter(t, path)
		window := 0
		for round := 0; round < 6; round++ {
			time.Sleep(200 * time.Millisecond)
			start := time.Now()
			copyTruncate(t, path)
			// Lines written after the agent's last read (one poll earlier
			// on an idle machine; allow 500ms for a loaded CI box) and
			// before the truncation may be lost.
			window += w.count() - w.countAt(start.Add(-500*time.Millisecond))
			if round == 3 {
				// A kill between rotations: the restart resumes from the
				// checkpoint without counting anything twice.
				time.Sleep(300 * time.Millisecond)
				kill9(t, a)
				a = startAgent(t, "--config.file", cfg, "--storage.path", db)
			}
		}
		time.Sleep(100 * time.Millisecond)
		w.close()
		written := w.count()
		lines, matches := settle(t, a, written)
		t.Logf("written %d, counted %d (matches %d), copytruncate window %d lines", written, lines, matches, window)
		if lines > written || matches != lines {
			t.Fatalf("counted %d lines (%d matches) of %d written: counted twice", lines, matches, written)
		}
		if written-lines > window {
			t.Fatalf("lost %d lines, more than the %d written inside copytruncate windows", written-lines, window)
		}
	})
}

func tortureRound(round int) int {
	if s := os.Getenv("TORTURE_ONLY"); s != "" {
		n, _ := strconv.Atoi(s)
		return n
	}
	return round % 3
}

// TestLogscanPermissionDenied: an unreadable log is reported with its path
// (log_unreadable) while the readable one is still counted. As root the
// agent runs as nobody, since root reads everything.
func TestLogscanPermissionDenied(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755) // the test's own temp root
	os.Chmod(dir, 0o755)
	secret := filepath.Join(dir, "secret.log")
	open := filepath.Join(dir, "open.log")
	os.WriteFile(secret, []byte("seq=1\n"), 0o600)
	os.WriteFile(open, []byte("seq=1\nseq=2\n"), 0o644)
	cfg := writeConfig(t, dir, "vigil.yml", fmt.Sprintf(`
checks:
  - name: logs
    type: logscan
    logscan:
      paths: [%q]
      start_at: beginning
      patterns: [{name: seq, regex: 'seq=\d+'}]
`, filepath.Join(dir, "*.log")))
	os.Chmod(cfg, 0o644)
	cmd := exec.Command(vigilBin, "once", "--config.file", cfg)
	if os.Geteuid() == 0 {
		os.Chmod(filepath.Dir(vigilBin), 0o755)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	} else {
		os.Chmod(secret, 0)
	}
	out, _ := cmd.CombinedOutput()
	if !regexp.MustCompile(`log_unreadable`).Match(out) || !regexp.MustCompile(`cannot read .*secret\.log: .*permission denied`).Match(out) {
		t.Fatalf("output:\n%s", out)
	}
	if cmd.ProcessState.ExitCode() != 1 {
		t.Fatalf("exit code %d", cmd.ProcessState.ExitCode())
	}
	// -v shows the evaluation, including the lines counted from open.log.
	cmd = exec.Command(vigilBin, "once", "--config.file", cfg, "-o", "json")
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if os.Geteuid() == 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 65534, Gid: 65534}
	}
	out, _ = cmd.CombinedOutput()
	if !regexp.MustCompile(`"unreadable"`).Match(out) {
		t.Fatalf("json output lacks the unreadable diagnostics:\n%s", out)
	}
}
