package runbook

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// runInGroup starts cmd as the leader of a new process group that gets
// SIGKILL when the agent dies (PR_SET_PDEATHSIG), kills the group when
// ctx ends, and kills what is left of the group once the program exits.
// started (when not nil) records the group before the program is waited
// for; if it fails the group is killed: a step whose process a restarted
// agent could not find must not run. (An agent killed in the milliseconds
// between the start and the record leaves a group only the run's marker
// finds; the program itself dies with it.)
//
// Pdeathsig fires when the *thread* that forked the child exits, not the
// process; Go may end an idle thread that a goroutine had locked. So the
// goroutine that starts the program keeps its thread locked until the
// program has exited: the thread lives exactly as long as the child must.
func runInGroup(cmd *exec.Cmd, started func(Process) error) error {
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
		pid := cmd.Process.Pid
		if started != nil {
			// Not waited for yet, so the leader is at worst a zombie and
			// its stat is still readable.
			if err := started(procInfo(pid)); err != nil {
				killGroup(pid)
				cmd.Wait()
				done <- fmt.Errorf("%w: record the step's process: %v", ErrJournal, err)
				return
			}
		}
		err := cmd.Wait()
		killGroup(pid)
		done <- err
	}()
	return <-done
}

// killGroup sends SIGKILL to the process group led by pid.
func killGroup(pid int) error {
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill process group %d: %w", pid, err)
	}
	return nil
}

// sigkill sends SIGKILL to a process, or to a process group for pid < 0.
func sigkill(pid int) error {
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// procInfo describes the group a step's program leads. A start time that
// cannot be read stays 0, and such a record is not trusted later (see
// leftovers).
func procInfo(pid int) Process {
	p := Process{PID: pid, PGID: pid, Boot: bootID()}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		if st, err := parseStat(b); err == nil {
			p.Start = st.start
		}
	}
	return p
}

// bootID is the kernel's id of this boot ("" when unreadable).
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// procStat is what leftovers needs from /proc/PID/stat.
type procStat struct {
	state byte   // R, S, D, Z, ...
	pgrp  int    // process group
	start uint64 // clock ticks after boot
}

// parseStat reads /proc/PID/stat. The command name (field 2) may hold
// spaces and parentheses, so fields are counted from its last ')'.
func parseStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errors.New("stat: no command name")
	}
	// After ")": state(3) ppid(4) pgrp(5) ... starttime(22).
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("stat: %d fields after the command name", len(f))
	}
	pgrp, err := strconv.Atoi(f[2])
	if err != nil {
		return procStat{}, fmt.Errorf("stat: pgrp: %w", err)
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("stat: starttime: %w", err)
	}
	return procStat{state: f[0][0], pgrp: pgrp, start: start}, nil
}

// leftover is a live process that may be an earlier attempt's.
type leftover struct {
	pid, pgrp int
}

// stop finds the processes a dead agent's steps of run runID left running
// — members of the process groups the journal recorded (groups), and
// processes marked VIGIL_RUN_ID=runID in their environment (one that left
// the group with setsid) — kills them with their groups and waits until
// they are gone. Pdeathsig takes a step's program with the agent, but not
// what the program started. It returns an error naming what could not be
// made to go: the caller must then not run the step again.
func (rp reaper) stop(runID string, groups []Process) (killed int, err error) {
	left := leftovers(runID, groups)
	if len(left) == 0 {
		return 0, nil
	}
	seen := map[int]bool{}
	deadline := time.Now().Add(rp.wait)
	self := syscall.Getpgrp()
	for {
		for _, l := range left {
			seen[l.pid] = true
			// The whole group first: one signal reaches members forked
			// since the scan.
			if l.pgrp > 1 && l.pgrp != self {
				rp.kill(-l.pgrp)
			}
			rp.kill(l.pid)
		}
		time.Sleep(20 * time.Millisecond)
		if left = leftovers(runID, groups); len(left) == 0 {
			return len(seen), nil
		}
		if time.Now().After(deadline) {
			names := make([]string, len(left))
			for i, l := range left {
				comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", l.pid))
				names[i] = fmt.Sprintf("%d (%s)", l.pid, strings.TrimSpace(string(comm)))
			}
			return len(seen), fmt.Errorf("processes %s of the earlier attempt are still alive %s after SIGKILL", strings.Join(names, ", "), rp.wait)
		}
	}
}

// leftovers scans /proc for live processes (not zombies) of an earlier
// attempt of run runID: in a recorded group, or carrying the run's marker.
//
// A group number is only trusted for this boot, and not when its leader's
// pid now belongs to a process started at another time: the kernel does
// not hand out a pid still in use as a process group id, so a reused
// leader pid means the recorded group had emptied. Members must not be
// older than the leader they descend from.
func leftovers(runID string, groups []Process) []leftover {
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	stats := map[int]procStat{}
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid <= 1 || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if err != nil {
			continue // gone since ReadDir
		}
		if st, err := parseStat(b); err == nil {
			stats[pid] = st
		}
	}
	boot := bootID()
	var trusted []Process
	for _, g := range groups {
		if g.PGID <= 1 || g.Start == 0 || g.Boot != boot {
			continue
		}
		if st, ok := stats[g.PID]; ok && st.start != g.Start {
			continue
		}
		trusted = append(trusted, g)
	}
	marker := []byte("\x00" + runIDVar + "=" + runID + "\x00")
	var out []leftover
	for pid, st := range stats {
		if st.state == 'Z' || st.state == 'X' {
			continue
		}
		mine := false
		for _, g := range trusted {
			if st.pgrp == g.PGID && st.start >= g.Start {
				mine = true
				break
			}
		}
		if !mine && runID != "" {
			env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
			mine = err == nil && bytes.Contains(append([]byte{0}, env...), marker)
		}
		if mine {
			out = append(out, leftover{pid: pid, pgrp: st.pgrp})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].pid < out[j].pid })
	return out
}
