package cli_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestExecStepSecretsNowhere: a runbook step running `env` in an agent
// whose config holds a DSN password, a webhook token and a step secret:
// none of the values appears in the run's API view, its status page, the
// logs, /metrics or (byte for byte, like `strings`) the store files; the
// agent's unrelated environment never reaches the step.
func TestExecStepSecretsNowhere(t *testing.T) {
	t.Parallel()
	const (
		dbPW      = "Dsn-PW-e2e-4411"
		hookToken = "HookTok-e2e-5522"
		stepPW    = "StepPW-e2e-6633"
		agentOnly = "AgentOnly-e2e-7744"
	)
	env := []string{
		"VIGIL_E2E_DSN=postgres://vigil:" + dbPW + "@" + freePort(t) + "/x?sslmode=disable",
		"VIGIL_E2E_HOOK=http://127.0.0.1:1/hook?token=" + hookToken,
		"VIGIL_E2E_STEP_PW=" + stepPW,
		"VIGIL_E2E_UNRELATED=" + agentOnly,
	}
	dir := t.TempDir()
	// What a careless script prints: the config's secrets, found on disk.
	leak := writeConfig(t, dir, "leak.txt", "dsn password "+dbPW+", hook token "+hookToken+"\n")
	writeConfig(t, dir, "rb.yml", `name: show-env
trigger: {manual: true}
steps:
  - name: env
    exec:
      argv: [env]
      env: {PGHOST: db1}
      secret_env: {PGPASSWORD: '${VIGIL_E2E_STEP_PW}'}
  - name: echo the config's secrets
    exec:
      argv: [cat, `+leak+`]
      secret_env: {PGPASSWORD: '${VIGIL_E2E_STEP_PW}'}
`)
	cfg := writeConfig(t, dir, "vigil.yml", `
global: {startup_splay: 0s}
runbooks: [rb.yml]
checks:
  - name: db
    type: postgres
    timeout: 2s
    postgres:
      dsn: ${VIGIL_E2E_DSN}
notify:
  route: {receiver: oncall}
  receivers:
    - name: oncall
      webhook_configs:
        - url_secret: ${VIGIL_E2E_HOOK}
`)
	db := filepath.Join(dir, "vigil.db")
	a := startAgentEnv(t, env, "--config.file", cfg, "--storage.path", db, "--log.level", "debug")
	out, errOut, code := run(t, "runbook", "trigger", "--agent.url", a.url, "--by", "test", "show-env")
	if code != 0 {
		t.Fatalf("trigger: %d %s %s", code, out, errOut)
	}
	r := waitRun(t, a, "show-env", 30*time.Second)
	views := map[string]string{
		"api run":  a.get(t, "/api/v1/runbooks/runs/"+r.ID),
		"api runs": a.get(t, "/api/v1/runbooks/runs"),
		"page":     a.get(t, "/runbooks/runs/"+r.ID),
		"metrics":  a.get(t, "/metrics"),
	}
	api := views["api run"]
	for _, want := range []string{"PGHOST=db1", "PGPASSWORD=\\u003csecret\\u003e", "dsn password \\u003csecret\\u003e, hook token \\u003csecret\\u003e", "VIGIL_RUN_ID=" + r.ID} {
		if !strings.Contains(api, want) {
			t.Errorf("the run's output lacks %q:\n%s", want, api)
		}
	}
	if strings.Contains(api, "VIGIL_E2E_") {
		t.Errorf("the agent's environment reached the step:\n%s", api)
	}
	a.cmd.Process.Signal(syscall.SIGTERM) // a clean stop checkpoints the WAL
	a.cmd.Wait()
	views["logs"] = a.logs.String()
	files, _ := filepath.Glob(db + "*")
	for _, f := range files {
		b, _ := os.ReadFile(f)
		views["store "+filepath.Base(f)] = string(b)
	}
	for name, v := range views {
		for _, s := range []string{dbPW, hookToken, stepPW, agentOnly} {
			if strings.Contains(v, s) {
				i := strings.Index(v, s)
				t.Errorf("%s shows %s: …%q…", name, s, v[max(0, i-60):min(len(v), i+30)])
			}
		}
	}
}

// TestExecStepDiesWithAgent: the agent is killed with SIGKILL while a step
// runs `sleep` in the background of its shell. After the restart no
// process of that step is left (Pdeathsig takes the shell; the restarted
// agent kills the orphaned sleep by its run marker), and a resumable run
// starts the step again only once the earlier copy is gone.
func TestExecStepDiesWithAgent(t *testing.T) {
	t.Parallel()
	for _, resumable := range []bool{false, true} {
		t.Run("resumable="+strconv.FormatBool(resumable), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			pids := filepath.Join(dir, "pids")
			// Each copy records its sleep's pid and whether the previous
			// copy's sleep was still alive when it started.
			writeConfig(t, dir, "rb.yml", fmt.Sprintf(`name: sleeper
trigger: {manual: true}
resumable: %t
steps:
  - name: sleep
    timeout: 2m
    exec:
      argv: [sh, -c, 'if [ -s "$PIDS" ]; then old=$(tail -n1 "$PIDS"); if [ -r /proc/$old/stat ] && ! grep -q ") Z " /proc/$old/stat; then echo DUPLICATE >> "$PIDS.dup"; fi; fi; sleep 60 & echo $! >> "$PIDS"; wait']
      env: {PIDS: %s}
`, resumable, pids))
			cfg := writeConfig(t, dir, "vigil.yml", "global: {startup_splay: 0s}\nrunbooks: [rb.yml]\n"+
				"checks:\n  - name: host\n    type: host\n    host: {cpu_sample: 10ms, cpu_max: 1, memory_max: 1, disk_free_min: 0}\n")
			db := filepath.Join(dir, "vigil.db")
			a := startAgent(t, "--config.file", cfg, "--storage.path", db)
			t.Cleanup(func() { killPids(pids) })
			if _, e, code := run(t, "runbook", "trigger", "--agent.url", a.url, "sleeper"); code != 0 {
				t.Fatal(e)
			}
			first := waitPids(t, pids, 1)[0]
			kill9(t, a)

			a = startAgent(t, "--config.file", cfg, "--storage.path", db)
			// startAgent returns once ready: the orphans are dealt with by then.
			if alive(first) {
				t.Errorf("the step's sleep (pid %d) outlived the agent's restart", first)
			}
			if resumable {
				again := waitPids(t, pids, 2)
				if !alive(again[1]) {
					t.Errorf("the resumed step's sleep is not running")
				}
				if _, err := os.Stat(pids + ".dup"); err == nil {
					t.Errorf("the resumed step started while the earlier copy was alive")
				}
				r := waitRunWhere(t, a, "sleeper", "a running run", 10*time.Second, func(r e2eRun) bool { return r.State == "running" })
				run(t, "runbook", "abort", "--agent.url", a.url, r.ID)
				if r = waitRun(t, a, "sleeper", 10*time.Second); r.State != "aborted" {
					t.Errorf("after abort: %s", r.State)
				}
				if alive(again[1]) {
					t.Errorf("the aborted step's sleep (pid %d) still runs", again[1])
				}
			} else {
				r := waitRun(t, a, "sleeper", 10*time.Second)
				if r.State != "interrupted" {
					t.Errorf("run state %s, want interrupted", r.State)
				}
				if b, _ := os.ReadFile(pids); strings.Count(string(b), "\n") != 1 {
					t.Errorf("the step ran again: %q", b)
				}
			}
		})
	}
}

func waitPids(t *testing.T, path string, n int) []int {
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
			t.Fatalf("%d step copies started, want %d", len(out), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive: the process runs (a zombie does not).
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && !strings.Contains(string(stat), ") Z ")
}

func killPids(path string) {
	b, _ := os.ReadFile(path)
	for _, f := range strings.Fields(string(b)) {
		if p, err := strconv.Atoi(f); err == nil {
			syscall.Kill(p, syscall.SIGKILL)
		}
	}
}
