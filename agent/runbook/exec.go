package runbook

import (
	"time"
)

// runIDVar marks every process of a step with its run, so that a
// restarted agent can find the processes a dead one left running
// (killOrphans).
const runIDVar = "VIGIL_RUN_ID"

// execWaitDelay is how long a step's output pipes stay open after its
// program exited (or its context ended) while background processes it
// started still hold them; they are killed with the group after it.
const execWaitDelay = time.Second

// orphanWait bounds how long a restarted agent waits for the processes a
// dead one's steps left to go after SIGKILL.
const orphanWait = 5 * time.Second

// reaper finds and kills what a dead agent's steps left running (stop, on
// Linux). Its fields are replaced by tests.
type reaper struct {
	// kill sends SIGKILL to a process, or to a process group for pid < 0.
	kill func(pid int) error
	// wait bounds how long stop waits for them to go.
	wait time.Duration
}

func defaultReaper() reaper { return reaper{kill: sigkill, wait: orphanWait} }

// KillLeftovers kills the processes marked with run (or drill) id that a
// dead agent's steps left running and waits until they are gone; the
// error names those that did not go. Drills call it before their
// rollback; the Manager does the same, with the groups its journal
// recorded, before it resumes or marks a run.
func KillLeftovers(id string) (killed int, err error) {
	return defaultReaper().stop(id, nil)
}

// Process identifies the process group an exec step started, as the
// journal records it: the group leader's pid (its pgid too), the leader's
// start time and the boot it ran in, so that a restarted agent neither
// misses a group that outlived the agent nor kills an unrelated one that
// reuses the number.
type Process struct {
	PID  int `json:"pid"`
	PGID int `json:"pgid"`
	// Start is the leader's start time in clock ticks since boot
	// (/proc/PID/stat field 22).
	Start uint64 `json:"start"`
	// Boot is the kernel's boot id: after a reboot nothing is left.
	Boot string `json:"boot,omitempty"`
}
