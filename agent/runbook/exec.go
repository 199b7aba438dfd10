package runbook

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"

	"github.com/vigil-project/vigil/internal/redact"
)

// Exec steps run with a minimal environment. The agent's own environment
// holds the secrets its config references (${PG_DSN}, robot tokens); a
// step running `env` used to publish them in the journal, the API and the
// status page. A step gets only these (from the agent where set), its
// alert's labels (VIGIL_ALERT_*), its run's marker, what it lists under
// env: and, explicitly, secret_env:.
var passedEnv = []string{"PATH", "LANG", "TZ", "HOME"}

// defaultPath is PATH for a step when the agent has none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

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

// execEnv builds a step's environment: the agent's PATH, LANG, TZ and HOME
// (defaults for PATH and HOME), the rendered alert variables, env:, the
// run's marker and secret_env:, sorted. Secrets never enter the rendered
// step, so the journal never holds them.
func execEnv(e *ExecStep, r RenderedStep, runID string) []string {
	vars := map[string]string{"PATH": defaultPath, "HOME": "/"}
	for _, k := range passedEnv {
		if v, ok := os.LookupEnv(k); ok {
			vars[k] = v
		}
	}
	for _, kv := range r.Env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[k] = v
		}
	}
	for k, v := range e.Env {
		vars[k] = v
	}
	if runID != "" {
		vars[runIDVar] = runID
	}
	for k, v := range e.SecretEnv {
		vars[k] = v.Reveal()
	}
	out := make([]string, 0, len(vars))
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
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

// stepSecrets masks an exec step's own secret_env values whatever the
// agent-wide Redactor knows (a drill posted through the API brings its
// own); nil when it has none.
func stepSecrets(e *ExecStep) Redactor {
	if len(e.SecretEnv) == 0 {
		return nil
	}
	vals := make([]string, 0, len(e.SecretEnv))
	for _, v := range e.SecretEnv {
		vals = append(vals, v.Reveal())
	}
	return redact.New(vals)
}

// SecretValues lists the secret_env values of every exec step of rbs, so
// that a step of one runbook printing another's secret (read from the
// same file, say) is masked too.
func SecretValues(rbs []*Runbook) []string {
	var out []string
	for _, rb := range rbs {
		for _, list := range [][]Step{rb.Preconditions, rb.Steps, rb.Rollback} {
			for _, s := range list {
				if s.Exec == nil {
					continue
				}
				for _, v := range s.Exec.SecretEnv {
					out = append(out, v.Reveal())
				}
			}
		}
	}
	return out
}

// doExec runs the program in a process group of its own that dies with
// the agent (see runInGroup); on timeout, abort or shutdown, and when the
// program exits, the whole group is killed, so nothing a step started
// outlives it and acts outside the run's lock. Its output is redacted as
// a whole, before it is cut to max_output.
func doExec(ctx context.Context, e *ExecStep, r RenderedStep, env Env) (Outcome, error) {
	// An argv list, never a shell: label values are single arguments.
	cmd := exec.CommandContext(ctx, r.Argv[0], r.Argv[1:]...)
	cmd.Dir = e.Dir
	cmd.Env = execEnv(e, r, env.RunID)
	out := &boundedBuffer{max: e.MaxOutput}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = execWaitDelay
	err := runInGroup(cmd, env.started)
	o := Outcome{Output: out.text(redactors{env.Redactor, stepSecrets(e)})}
	if cmd.ProcessState != nil {
		o.Status = cmd.ProcessState.ExitCode()
	}
	if errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil && cmd.ProcessState.Success() {
		// The program succeeded; what it left in the background was
		// killed with its group.
		o.Output = strings.TrimSpace(o.Output + "\n(background processes the step left were killed)")
		err = nil
	}
	if env.RunID != "" {
		// A process the program detached from its group (setsid) is not
		// killed with it, but still carries the run's marker; a run's
		// steps run one at a time, so whatever carries it now is left
		// over from this one.
		n, kerr := defaultReaper().stop(env.RunID, nil)
		if n > 0 {
			o.Output = strings.TrimSpace(o.Output + fmt.Sprintf("\n(%d process(es) the step detached from its group were killed)", n))
		}
		if kerr != nil && err == nil {
			err = kerr
		}
	}
	if err != nil {
		return o, fmt.Errorf("%s: %w", r.Argv[0], err)
	}
	return o, nil
}
