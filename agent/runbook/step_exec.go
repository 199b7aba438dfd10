package runbook

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/vigil-project/vigil/internal/confkit"
	"github.com/vigil-project/vigil/internal/redact"
)

// ExecStep runs a program with an argument list — never a shell string.
// The program gets a minimal environment (see execEnv), never the agent's.
type ExecStep struct {
	Argv []string `yaml:"argv" json:"argv"`
	Dir  string   `yaml:"dir" json:"dir,omitempty"`
	// MaxOutput bounds the captured stdout+stderr (default 64 KiB).
	MaxOutput int `yaml:"max_output" json:"max_output,omitempty"`
	// Env adds variables with literal values.
	Env map[string]string `yaml:"env" json:"env,omitempty"`
	// SecretEnv passes secrets, each from an environment reference of the
	// agent ("${PG_PASSWORD}") or a file ({file: /etc/vigil/pg.pass});
	// never journaled, and their values are redacted from the output.
	SecretEnv map[string]SecretRef `yaml:"secret_env" json:"secret_env,omitempty"`
}

// SecretRef is a secret_env value: "${NAME}" from the agent's environment,
// or {file: PATH} (one trailing newline dropped). It marshals redacted.
type SecretRef struct {
	confkit.Secret
}

func (s *SecretRef) UnmarshalYAML(n *yaml.Node) error {
	// yaml.v3 returns an unmarshaler's error as it is, without the
	// position it gives its own: Parse reads the line from lineError.
	if n.Kind != yaml.MappingNode {
		if err := s.Secret.UnmarshalYAML(n); err != nil {
			return lineError{line: n.Line, err: fmt.Errorf("secret_env: %w", err)}
		}
		return nil
	}
	var f struct {
		File string `yaml:"file"`
	}
	if len(n.Content) != 2 || n.Content[0].Value != "file" {
		return lineError{line: n.Line, err: errors.New("secret_env: expected ${NAME} or {file: PATH}")}
	}
	if err := n.Decode(&f); err != nil {
		return lineError{line: n.Line, err: fmt.Errorf("secret_env: %w", err)}
	}
	v, err := confkit.ReadSecretFile(f.File)
	if err != nil {
		return lineError{line: n.Line, err: fmt.Errorf("secret_env: %w", err)}
	}
	s.Secret = v
	return nil
}

// DefaultMaxOutput bounds what an exec step keeps of its output unless it
// says otherwise.
const DefaultMaxOutput = 64 << 10

// envNameRE is a portable environment variable name.
var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func init() {
	RegisterStep(StepKind[ExecStep]{
		Key:      "exec",
		Defaults: (*ExecStep).setDefaults,
		Validate: func(e *ExecStep) error {
			var errs []error
			if len(e.Argv) == 0 || e.Argv[0] == "" {
				errs = append(errs, confkit.FieldErrorf("argv", "needs the program and its arguments as a list"))
			}
			for i, a := range e.Argv {
				errs = append(errs, checkTemplate(fmt.Sprintf("argv.%d", i), a))
			}
			// Sorted: the errors come out in the same order every time.
			for _, k := range slices.Sorted(maps.Keys(e.Env)) {
				if !envNameRE.MatchString(k) || strings.HasPrefix(k, "VIGIL_") {
					errs = append(errs, confkit.FieldErrorf("env."+k, "must be a variable name (letters, digits, _) not starting with VIGIL_"))
				}
			}
			for _, k := range slices.Sorted(maps.Keys(e.SecretEnv)) {
				if !envNameRE.MatchString(k) || strings.HasPrefix(k, "VIGIL_") {
					errs = append(errs, confkit.FieldErrorf("secret_env."+k, "must be a variable name (letters, digits, _) not starting with VIGIL_"))
				}
				if _, dup := e.Env[k]; dup {
					errs = append(errs, confkit.FieldErrorf("secret_env."+k, "is also set under env"))
				}
			}
			return errors.Join(errs...)
		},
		Render:  renderExec,
		Execute: doExec,
	})
}

// setDefaults fills the fields left unset.
func (e *ExecStep) setDefaults() {
	if e.MaxOutput == 0 {
		e.MaxOutput = DefaultMaxOutput
	}
}

// renderExec renders each argument as one argument (no shell ever sees
// it) and passes the alert's labels as VIGIL_ALERT_* variables.
func renderExec(e *ExecStep, d Data, r *RenderedStep) error {
	f := fieldRenderer{d: d}
	for _, a := range e.Argv {
		r.Argv = append(r.Argv, f.render(ctxArg, a))
	}
	r.Env = alertEnv(d.Labels)
	return f.err
}

// Exec steps run with a minimal environment. The agent's own environment
// holds the secrets its config references (${PG_DSN}, robot tokens); a
// step running `env` used to publish them in the journal, the API and the
// status page. A step gets only these (from the agent where set), its
// alert's labels (VIGIL_ALERT_*), its run's marker, what it lists under
// env: and, explicitly, secret_env:.
var passedEnv = []string{"PATH", "LANG", "TZ", "HOME"}

// defaultPath is PATH for a step when the agent has none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

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
				e, ok := s.Config.(*ExecStep)
				if !ok {
					continue
				}
				for _, v := range e.SecretEnv {
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
