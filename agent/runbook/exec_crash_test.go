//go:build linux

package runbook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-project/vigil/agent/store"
)

// crashHelperEnv names the directory the helper agent works in.
const crashHelperEnv = "VIGIL_TEST_RUNBOOK_CRASH_HELPER"

// TestCrashHelper is not a test: run by TestExecStepAfterAgentKill as a
// separate process (this test binary again), it plays the agent — a
// manager over the store in its directory — triggers the runbook rb.yml
// there, creates the file "recorded" once the journal holds the step's
// process group, and waits to be killed with SIGKILL.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv(crashHelperEnv)
	if dir == "" {
		t.Skip("the helper process of TestExecStepAfterAgentKill")
	}
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(dir, "v.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rb, err := Load(filepath.Join(dir, "rb.yml"))
	if err != nil {
		t.Fatal(err)
	}
	locks := newMemLocks()
	m := NewManager(Options{Journal: st, Locker: locks, State: locks})
	m.SetRunbooks([]*Runbook{rb})
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	id, err := m.Trigger(ctx, rb.Name, nil, nil, "crash test", "")
	if err != nil {
		t.Fatal(err)
	}
	// An agent killed between starting a program and committing its
	// record leaves a group only the marker can find: the test kills
	// after the record, which is the case it is about.
	for {
		_, evs, err := st.Run(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(evs, func(ev store.RunEvent) bool { return ev.Kind == "process" }) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := os.WriteFile(filepath.Join(dir, "recorded"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Hour)
}

// TestExecStepAfterAgentKill: an agent (a real process) is killed with
// SIGKILL while an exec step runs.
//
//   - The step's program itself dies with the agent (Pdeathsig), without
//     waiting for a restart.
//   - A background process the program started (which Pdeathsig does not
//     reach) is killed by the restarted agent before it resumes the run: in
//     the step's group and with its environment cleared (found through the
//     group the journal recorded), or detached with setsid (found through
//     its VIGIL_RUN_ID). The resumed step checks that the earlier copy is
//     gone when it starts.
//   - If it cannot be made to go, the run is marked interrupted with the
//     pid, and no second copy starts.
func TestExecStepAfterAgentKill(t *testing.T) {
	// Each copy of the step appends the pid of its background sleep to
	// $PIDS, after noting in $PIDS.dup whether the previous copy's sleep
	// was still alive.
	const copyScript = `if [ -s "$PIDS" ]; then old=$(tail -n1 "$PIDS"); if [ -r /proc/$old/stat ] && ! grep -q ") Z " /proc/$old/stat; then echo "$old" >> "$PIDS.dup"; fi; fi; `
	for _, tt := range []struct {
		name      string
		script    string
		restart   bool // start a manager again over the store
		noKill    bool // ... whose SIGKILL does nothing (a process it may not signal)
		wantState string
	}{
		{name: "the program dies with the agent", script: `echo $$ >> "$PIDS"; exec sleep 60`},
		{name: "grandchild in the group without the marker", script: copyScript + `env -i "$(command -v sleep)" 60 & echo $! >> "$PIDS"; wait`,
			restart: true, wantState: StateRunning},
		{name: "grandchild detached with setsid", script: copyScript + `setsid sleep 60 & echo $! >> "$PIDS"; wait`,
			restart: true, wantState: StateRunning},
		{name: "grandchild that cannot be killed", script: copyScript + `env -i "$(command -v sleep)" 60 & echo $! >> "$PIDS"; wait`,
			restart: true, noKill: true, wantState: StateInterrupted},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			pids := filepath.Join(dir, "pids")
			t.Cleanup(func() { killPids(pids) })
			rbYAML := fmt.Sprintf(`name: sleeper
trigger: {manual: true}
resumable: true
steps:
  - name: sleep
    timeout: 2m
    exec:
      argv: [sh, -c, %q]
      env: {PIDS: %s}
`, tt.script, pids)
			if err := os.WriteFile(filepath.Join(dir, "rb.yml"), []byte(rbYAML), 0o600); err != nil {
				t.Fatal(err)
			}
			helper := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1")
			helper.Env = append(os.Environ(), crashHelperEnv+"="+dir)
			helperOut := &syncBuffer{}
			helper.Stdout, helper.Stderr = helperOut, helperOut
			if err := helper.Start(); err != nil {
				t.Fatal(err)
			}
			first := waitPids(t, pids, 1, helperOut)[0]
			waitFile(t, filepath.Join(dir, "recorded"), helperOut)
			helper.Process.Kill() // SIGKILL
			helper.Wait()

			if !tt.restart {
				waitGone(t, first)
				return
			}
			if !alive(first) {
				t.Fatalf("the step's background sleep %d died with the agent: nothing left to test", first)
			}
			st, err := store.Open(context.Background(), filepath.Join(dir, "v.db"), store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			rb, err := Load(filepath.Join(dir, "rb.yml"))
			if err != nil {
				t.Fatal(err)
			}
			locks := newMemLocks()
			m := NewManager(Options{Journal: st, Locker: locks, State: locks})
			if tt.noKill {
				m.reap = reaper{kill: func(int) error { return syscall.EPERM }, wait: 300 * time.Millisecond}
			}
			m.SetRunbooks([]*Runbook{rb})
			ctx, cancel := context.WithCancel(context.Background())
			defer func() { cancel(); m.Wait() }()
			if err := m.Start(ctx); err != nil {
				t.Fatal(err)
			}
			runs, err := st.Runs(ctx, 10)
			if err != nil || len(runs) != 1 {
				t.Fatalf("runs %+v %v", runs, err)
			}
			r, evs, _ := st.Run(ctx, runs[0].ID)
			if r.State != tt.wantState {
				t.Fatalf("after the restart the run is %s, want %s: %s\n%s", r.State, tt.wantState, r.Error, kinds(evs))
			}
			if tt.noKill {
				if !strings.Contains(r.Error, strconv.Itoa(first)+" (sleep)") || !strings.Contains(r.Error, "still alive") {
					t.Errorf("the run's error does not name the live process %d: %s", first, r.Error)
				}
				if b, _ := os.ReadFile(pids); strings.Count(string(b), "\n") != 1 {
					t.Errorf("the step ran again: %q", b)
				}
				return
			}
			// Start returns once the leftovers are gone.
			if alive(first) {
				t.Errorf("the earlier copy's sleep %d outlived the restart", first)
			}
			again := waitPids(t, pids, 2, nil)[1]
			if b, err := os.ReadFile(pids + ".dup"); err == nil {
				t.Errorf("the resumed step started while the earlier copy (%s) was alive", bytes.TrimSpace(b))
			}
			cancel() // shutdown kills the resumed step's group
			m.Wait()
			if _, err := os.Stat(pids + ".dup"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("dup marker: %v", err)
			}
			waitGone(t, again)
		})
	}
}

// TestLeftoversTrustsOnlyTheRecordedGroup: a recorded group is searched
// only while its leader is the process recorded (same start time, same
// boot): a leader pid now used by a process started at another time, or a
// record from another boot, names someone else's group.
func TestLeftoversTrustsOnlyTheRecordedGroup(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() })
	p := procInfo(cmd.Process.Pid)
	if p.Start == 0 || p.Boot == "" {
		t.Fatalf("procInfo = %+v", p)
	}
	for _, tt := range []struct {
		name string
		edit func(*Process)
		want bool
	}{
		{"as recorded", func(*Process) {}, true},
		{"leader pid reused", func(p *Process) { p.Start-- }, false},
		{"another boot", func(p *Process) { p.Boot = "00000000-0000-0000-0000-000000000000" }, false},
		{"start unknown", func(p *Process) { p.Start = 0 }, false},
	} {
		g := p
		tt.edit(&g)
		found := false
		for _, l := range leftovers("", []Process{g}) {
			found = found || l.pid == p.PID
		}
		if found != tt.want {
			t.Errorf("%s: found %t, want %t", tt.name, found, tt.want)
		}
	}
	// The reaper kills it and says so; it is not alive afterwards.
	n, err := defaultReaper().stop("", []Process{p})
	if n != 1 || err != nil {
		t.Errorf("stop = %d, %v", n, err)
	}
	cmd.Wait()
}

// TestParseStat reads /proc/PID/stat lines whose command names hold
// spaces and parentheses.
func TestParseStat(t *testing.T) {
	b, err := os.ReadFile("testdata/proc-stat.txt")
	if err != nil {
		t.Fatal(err)
	}
	want := []procStat{{'S', 4242, 123456789}, {'Z', 17, 42}}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d fixture lines", len(lines))
	}
	for i, l := range lines {
		got, err := parseStat([]byte(l))
		if err != nil || got != want[i] {
			t.Errorf("line %d: %+v %v, want %+v", i+1, got, err, want[i])
		}
	}
	if _, err := parseStat([]byte("12 (x) S 1 2")); err == nil {
		t.Error("a short line parsed")
	}
}

// waitPids polls path until it lists n pids.
func waitPids(t *testing.T, path string, n int, logs fmt.Stringer) []int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		var out []int
		for _, f := range strings.Fields(string(b)) {
			if p, err := strconv.Atoi(f); err == nil {
				out = append(out, p)
			}
		}
		if len(out) >= n {
			return out
		}
		if time.Now().After(deadline) {
			if logs != nil {
				t.Logf("helper output:\n%s", logs)
			}
			t.Fatalf("%d step copies started, want %d", len(out), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitFile polls until path exists.
func waitFile(t *testing.T, path string, logs fmt.Stringer) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s; helper output:\n%s", path, logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// alive: the process runs (a zombie does not).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	st, err := parseStat(b)
	return err == nil && st.state != 'Z' && st.state != 'X'
}

func killPids(path string) {
	b, _ := os.ReadFile(path)
	for _, f := range strings.Fields(string(b)) {
		if p, err := strconv.Atoi(f); err == nil && p > 1 {
			syscall.Kill(p, syscall.SIGKILL)
		}
	}
}
