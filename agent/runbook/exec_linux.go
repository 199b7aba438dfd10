package runbook

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

// runInGroup starts cmd as the leader of a new process group that gets
// SIGKILL when the agent dies (PR_SET_PDEATHSIG), kills the group when
// ctx ends, and kills what is left of the group once the program exits.
//
// Pdeathsig fires when the *thread* that forked the child exits, not the
// process; Go may end an idle thread that a goroutine had locked. So the
// goroutine that starts the program keeps its thread locked until the
// program has exited: the thread lives exactly as long as the child must.
func runInGroup(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			done <- err
			return
		}
		err := cmd.Wait()
		killGroup(cmd.Process.Pid)
		done <- err
	}()
	return <-done
}

// killGroup sends SIGKILL to the process group led by pid.
func killGroup(pid int) error {
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// orphanWait bounds how long killOrphans waits for killed processes to go.
const orphanWait = 5 * time.Second

// killOrphans finds the processes of a step that a dead agent left running
// (marked VIGIL_RUN_ID=id in their environment; a grandchild the step
// started outlives the agent, since Pdeathsig reaches direct children
// only), kills them with their process groups and waits until they are
// gone. It returns an error naming the processes that could not be made to
// go: the caller must then not run the step again.
func killOrphans(runID string) (killed int, err error) {
	pids := findMarked(runID)
	if len(pids) == 0 {
		return 0, nil
	}
	for _, pid := range pids {
		if pgid, err := syscall.Getpgid(pid); err == nil && pgid > 1 {
			syscall.Kill(-pgid, syscall.SIGKILL)
		}
		syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(orphanWait)
	for {
		left := findMarked(runID)
		if len(left) == 0 {
			return len(pids), nil
		}
		if time.Now().After(deadline) {
			return len(pids), fmt.Errorf("processes %v of the earlier attempt are still alive after SIGKILL", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// findMarked lists the live processes whose environment holds the run's
// marker. Zombies (already dead, waiting for their parent) do not count.
func findMarked(runID string) []int {
	marker := []byte(runIDVar + "=" + runID + "\x00")
	entries, _ := filepath.Glob("/proc/[0-9]*/environ")
	var out []int
	for _, path := range entries {
		b, err := os.ReadFile(path)
		if err != nil || !bytes.Contains(append([]byte{0}, b...), append([]byte{0}, marker...)) {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(path)))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if stat, err := os.ReadFile(filepath.Join(filepath.Dir(path), "stat")); err == nil {
			if i := bytes.LastIndexByte(stat, ')'); i > 0 && len(stat) > i+2 && stat[i+2] == 'Z' {
				continue
			}
		}
		out = append(out, pid)
	}
	return out
}
