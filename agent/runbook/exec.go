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

// doExec runs the program in a process group of its own that dies with
// the agent (see startInGroup); on timeout, abort or shutdown, and when
// the program exits, the whole group is killed, so nothing a step started
// outlives it and acts outside the run's lock.
func doExec(ctx context.Context, e *ExecStep, r RenderedStep, env Env) (Outcome, error) {
	// An argv list, never a shell: label values are single arguments.
	cmd := exec.CommandContext(ctx, r.Argv[0], r.Argv[1:]...)
	cmd.Dir = e.Dir
	cmd.Env = execEnv(e, r, env.RunID)
	out := &boundedBuffer{max: e.MaxOutput}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = execWaitDelay
	err := runInGroup(cmd)
	o := Outcome{Output: strings.TrimSpace(out.String())}
	if cmd.ProcessState != nil {
		o.Status = cmd.ProcessState.ExitCode()
	}
	if errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil && cmd.ProcessState.Success() {
		// The program succeeded; what it left in the background was
		// killed with its group.
		o.Output = strings.TrimSpace(o.Output + "\n(background processes the step left were killed)")
		err = nil
	}
	// The step's own secrets are masked here whatever the agent-wide
	// Redactor knows (a drill posted through the API brings its own).
	if len(e.SecretEnv) > 0 {
		vals := make([]string, 0, len(e.SecretEnv))
		for _, v := range e.SecretEnv {
			vals = append(vals, v.Reveal())
		}
		o.Output = redact.New(vals).Redact(o.Output)
	}
	if err != nil {
		return o, fmt.Errorf("%s: %w", r.Argv[0], err)
	}
	return o, nil
}
