//go:build linux

package runbook

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-project/vigil/internal/redact"
)

// TestExecMinimalEnvAndRedaction: a step running `env` sees PATH, LANG,
// TZ, HOME, its alert's labels, env: and secret_env:, never the agent's
// other variables; every known secret value it prints is masked, in its
// output and in its error.
func TestExecMinimalEnvAndRedaction(t *testing.T) {
	t.Setenv("VIGIL_TEST_AGENT_TOKEN", "agent-env-token-1234") // the agent's own, unreferenced
	t.Setenv("VIGIL_TEST_STEP_PW", "step-pw-5678")
	t.Setenv("TZ", "Asia/Shanghai")
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("file-pw-9012\n"), 0o600)
	rb, err := Parse("x.yml", []byte(fmt.Sprintf(`name: x
trigger: {manual: true}
steps:
  - exec:
      argv: [env]
      env: {PGHOST: db1}
      secret_env:
        PGPASSWORD: ${VIGIL_TEST_STEP_PW}
        API_TOKEN: {file: %s}
  - exec:
      argv: [sh, -c, 'echo "len=${#PGPASSWORD}"; echo "dsn postgres://u:config-pw-3456@db/x" >&2; exit 4']
      secret_env:
        PGPASSWORD: ${VIGIL_TEST_STEP_PW}
`, pwFile)))
	if err != nil {
		t.Fatal(err)
	}
	env := Env{RunID: "run-exec-env-test", Redactor: redact.New([]string{"postgres://u:config-pw-3456@db/x", "agent-env-token-1234"})}
	d := Data{Labels: map[string]string{"check": "invoice_qr"}}
	r, _ := rb.Steps[0].Render(d)
	if strings.Contains(fmt.Sprint(r), "step-pw") || strings.Contains(fmt.Sprint(r), "file-pw") {
		t.Fatalf("the rendered step (journaled) holds a secret: %+v", r)
	}
	out, err := execute(context.Background(), &rb.Steps[0], r, env)
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for _, l := range strings.Split(out.Output, "\n") {
		k, v, _ := strings.Cut(l, "=")
		vars[k] = v
	}
	want := map[string]string{"PATH": os.Getenv("PATH"), "TZ": "Asia/Shanghai", "HOME": os.Getenv("HOME"), "PGHOST": "db1",
		"VIGIL_ALERT_CHECK": "invoice_qr", "VIGIL_RUN_ID": "run-exec-env-test", "PGPASSWORD": redact.Mask, "API_TOKEN": redact.Mask}
	if os.Getenv("HOME") == "" {
		want["HOME"] = "/"
	}
	if v, ok := os.LookupEnv("LANG"); ok {
		want["LANG"] = v
	}
	for k, v := range want {
		if vars[k] != v {
			t.Errorf("%s=%q in the step, want %q", k, vars[k], v)
		}
	}
	if len(vars) != len(want) {
		t.Errorf("the step sees %d variables, want %d:\n%s", len(vars), len(want), out.Output)
	}
	for _, s := range []string{"agent-env-token-1234", "step-pw-5678", "file-pw-9012"} {
		if strings.Contains(out.Output, s) {
			t.Errorf("output shows %s:\n%s", s, out.Output)
		}
	}

	r, _ = rb.Steps[1].Render(d)
	out, err = execute(context.Background(), &rb.Steps[1], r, env)
	if err == nil || !strings.Contains(out.Output, "len=12") || strings.Contains(out.Output, "config-pw-3456") ||
		!strings.Contains(out.Output, "dsn "+redact.Mask) {
		t.Errorf("step 2: %v %q", err, out.Output)
	}
}

func TestSecretEnvValidation(t *testing.T) {
	t.Setenv("VIGIL_TEST_X", "x-value-1")
	for name, tt := range map[string]struct{ yaml, want string }{
		"inline secret":    {"secret_env: {A: hunter2}", "x.yml:6: secret_env: secrets cannot be written inline"},
		"bad name":         {"env: {'A-B': x}", "exec.env.A-B: must be a variable name"},
		"reserved name":    {"env: {VIGIL_RUN_ID: x}", "exec.env.VIGIL_RUN_ID: must be a variable name"},
		"both":             {"env: {A: x}\n      secret_env: {A: '${VIGIL_TEST_X}'}", "exec.secret_env.A: is also set under env"},
		"missing file":     {"secret_env: {A: {file: /nonexistent/pw}}", "x.yml:6: secret_env: read secret file: open /nonexistent/pw: no such file"},
		"unknown ref form": {"secret_env: {A: {path: /x}}", "x.yml:6: secret_env: expected ${NAME} or {file: PATH}"},
		"extra key":        {"secret_env: {A: {file: /x, mode: 1}}", "x.yml:6: secret_env: expected ${NAME} or {file: PATH}"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse("x.yml", []byte("name: x\ntrigger: {manual: true}\nsteps:\n  - exec:\n      argv: [true]\n      "+tt.yaml+"\n"))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse: %v, want %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error echoes the inline secret: %v", err)
			}
		})
	}
}

// TestExecGroupKilled: a step's background processes do not outlive it,
// whether it finishes, times out or is aborted, nor does one it detached
// from its group (found by the run's marker).
func TestExecGroupKilled(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		script  string
		timeout time.Duration
	}{
		{"finished, child left behind", `sleep 60 & echo $! > "$1"; exit 0`, 10 * time.Second},
		{"timed out", `sleep 60 & echo $! > "$1"; wait`, 300 * time.Millisecond},
		{"finished, detached child left behind", `setsid sleep 60 & echo $! > "$1"; exit 0`, 10 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pidFile := filepath.Join(t.TempDir(), "pid")
			s := &Step{Name: "s", Config: &ExecStep{Argv: []string{"sh", "-c", tt.script, "sh", pidFile}, MaxOutput: 1000}}
			r := RenderedStep{Name: "s", Argv: s.Config.(*ExecStep).Argv}
			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()
			start := time.Now()
			execute(ctx, s, r, Env{RunID: "group-killed-" + strings.ReplaceAll(tt.name, " ", "-")})
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("the step took %s", took)
			}
			b, err := os.ReadFile(pidFile)
			if err != nil {
				t.Fatal(err)
			}
			var pid int
			fmt.Sscan(string(b), &pid)
			waitGone(t, pid)
		})
	}
}

// waitGone polls until pid no longer runs (a zombie counts as gone).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || strings.Contains(string(stat), ") Z ") {
			return
		}
		if syscall.Kill(pid, 0) != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d still runs: %s", pid, stat)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
