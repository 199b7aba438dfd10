package cli_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"golang.org/x/crypto/bcrypt"

	"github.com/vigil-project/vigil/internal/testenv"
	"github.com/vigil-project/vigil/probes"
)

var update = flag.Bool("update", false, "rewrite golden files")

// vigilBin and demoBin are the binaries built once for the end-to-end tests.
var vigilBin, demoBin string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "vigil-e2e")
	if err != nil {
		panic(err)
	}
	vigilBin = filepath.Join(dir, "vigil")
	demoBin = filepath.Join(dir, "invoice-service")
	// Both at once: linking is most of it when the build cache is warm.
	var wg sync.WaitGroup
	var failed atomic.Bool
	for bin, pkg := range map[string]string{vigilBin: "github.com/vigil-project/vigil", demoBin: "github.com/vigil-project/vigil/examples/invoice-service"} {
		wg.Go(func() {
			out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
			if err != nil {
				fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, out)
				failed.Store(true)
			}
		})
	}
	wg.Wait()
	if failed.Load() {
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func writeConfig(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// goodConfig has one passing host check and one that always fails
// (no filesystem can have more than 100% free).
const goodConfig = `
global:
  startup_splay: 0s
checks:
  - name: host
    type: host
    host: {cpu_sample: 100ms, cpu_max: 1, memory_max: 1, disk_free_min: 0, inodes_free_min: 0}
  - name: impossible-disk
    type: host
    recheck_interval: 1h
    labels: {team: ops}
    host: {cpu_sample: 100ms, cpu_max: 1, memory_max: 1, disk_free_min: 1, inodes_free_min: 0}
`

func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(vigilBin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

func TestOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "vigil.yml", goodConfig)

	out, errOut, code := run(t, "once", "--config.file", cfg)
	if code != 1 {
		t.Fatalf("exit code %d, want 1 (one check fails)\n%s%s", code, out, errOut)
	}
	for _, re := range []string{
		`(?m)^CHECK\s+TYPE\s+RESULT\s+REASON\s+DURATION\s+VALUES$`,
		`(?m)^host\s+host\s+ok\s+-\s+\S+\s+cpu_utilization=\d+\.\d%`,
		`(?m)^impossible-disk\s+host\s+FAIL\s+disk_low\s`,
		`(?m)^impossible-disk: disk_low: .*free`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("output does not match %s:\n%s", re, out)
		}
	}

	out, _, code = run(t, "once", "--config.file", cfg, "--check", "host", "-o", "json")
	if code != 0 {
		t.Fatalf("exit code %d for the passing check, want 0\n%s", code, out)
	}
	var res struct {
		Success bool
		Checks  []struct {
			Name   string
			Result struct {
				Success bool
				Values  []struct{ Name string }
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("bad JSON: %v\n%s", err, out)
	}
	if !res.Success || len(res.Checks) != 1 || res.Checks[0].Name != "host" || len(res.Checks[0].Result.Values) == 0 {
		t.Errorf("unexpected JSON result: %+v", res)
	}

	if _, errOut, code := run(t, "once", "--config.file", cfg, "--check", "nope"); code != 2 || !strings.Contains(errOut, "no such check: nope") {
		t.Errorf("unknown --check: code %d, stderr %q", code, errOut)
	}
	bad := writeConfig(t, dir, "bad.yml", "checks:\n  - name: x\n    type: nope\n")
	if _, errOut, code := run(t, "once", "--config.file", bad); code != 2 || !strings.Contains(errOut, "bad.yml:3:11: checks[0].type: unknown check type \"nope\"") {
		t.Errorf("bad config: code %d, stderr %q", code, errOut)
	}
}

func TestCheckConfigCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := writeConfig(t, dir, "good.yml", goodConfig)
	out, errOut, code := run(t, "check-config", good, "../../examples/vigil.yml")
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	if !strings.Contains(out, "good.yml: OK: 2 check(s)") || !strings.Contains(out, "examples/vigil.yml: OK") {
		t.Errorf("summary missing:\n%s", out)
	}
	bad := writeConfig(t, dir, "bad.yml", "global:\n  interval: 5x\nchecks:\n  - name: a\n    type: host\n    intervall: 1m\n")
	_, errOut, code = run(t, "check-config", bad)
	want := bad + ":2:13: global.interval: unknown unit \"x\" in duration \"5x\"\n" +
		bad + ":6:5: checks[0].intervall: unknown field (did you mean \"interval\"?)\n" +
		bad + ": FAILED: 2 problem(s)\n"
	if code != 1 || errOut != want {
		t.Errorf("code %d, stderr:\n%s\nwant:\n%s", code, errOut, want)
	}
}

func TestHelpAndVersion(t *testing.T) {
	t.Parallel()
	// Help is output asked for: stdout, exit 0, nothing on stderr.
	for _, args := range [][]string{{"--help"}, {"run", "--help"}, {"once", "--help"}, {"check-config", "--help"}, {"version", "--help"}, {"help", "run"}, {"completion", "--help"}} {
		out, errOut, code := run(t, args...)
		if code != 0 || !strings.Contains(out, "Examples:") || errOut != "" {
			t.Errorf("%v: code %d, stderr %q, no examples on stdout:\n%s", args, code, errOut, out)
		}
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, _, code := run(t, args...)
		if code != 0 || !strings.HasPrefix(out, "vigil, version") {
			t.Errorf("%v: code %d, stdout %q", args, code, out)
		}
	}
	// A mistake goes to stderr with exit 2.
	if out, errOut, code := run(t, "nonsense"); code != 2 || out != "" || !strings.Contains(errOut, "nonsense") {
		t.Errorf("unknown command: exit code %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestManPage renders --help-man through groff with every warning on: a
// page groff warns about (an unescaped dash or dot, a raw UTF-8 byte, a
// broken .TH) fails.
func TestManPage(t *testing.T) {
	t.Parallel()
	page, errOut, code := run(t, "--help-man")
	if code != 0 || !strings.HasPrefix(page, ".TH VIGIL 1 ") {
		t.Fatalf("--help-man: code %d, stderr %q, page starts %.60q", code, errOut, page)
	}
	for _, want := range []string{`.SS "run"`, `.SS "notify test <receiver>"`, `\-\-config.file`, `.SH FILES`} {
		if !strings.Contains(page, want) {
			t.Errorf("man page lacks %q", want)
		}
	}
	groff := testenv.NeedBinary(t, "groff", "groff-base")
	cmd := exec.Command(groff, "-man", "-ww", "-z")
	cmd.Stdin = strings.NewReader(page)
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("groff -man -ww: %v\n%s", err, out)
	}
}

// TestCompletion checks each shell's script parses in that shell (where
// installed) and that the candidates it asks vigil for are right.
func TestCompletion(t *testing.T) {
	t.Parallel()
	for _, sh := range []string{"bash", "zsh", "fish"} {
		script, errOut, code := run(t, "completion", sh)
		if code != 0 || !strings.Contains(script, "--completion-bash") {
			t.Errorf("completion %s: code %d, stderr %q:\n%s", sh, code, errOut, script)
			continue
		}
		path, err := exec.LookPath(sh)
		if err != nil {
			t.Logf("%s not installed: its script's syntax is not checked", sh)
			continue
		}
		f := filepath.Join(t.TempDir(), "vigil."+sh)
		os.WriteFile(f, []byte(script), 0o644)
		if out, err := exec.Command(path, "-n", f).CombinedOutput(); err != nil {
			t.Errorf("%s -n: %v\n%s", sh, err, out)
		}
	}
	out, _, _ := run(t, "--completion-bash", "runbook")
	if !strings.Contains(out, "approve\n") || !strings.Contains(out, "trigger\n") {
		t.Errorf("completions of `vigil runbook`: %q", out)
	}
}

// agentProc is a running `vigil run`.
type agentProc struct {
	cmd  *exec.Cmd
	url  string
	logs *syncBuffer
}

type syncBuffer struct {
	mu chan struct{}
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.b.String()
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startAgent(t *testing.T, args ...string) *agentProc {
	t.Helper()
	return startAgentEnv(t, nil, args...)
}

// startAgentEnv is startAgent with env added to the agent's environment
// (parallel tests cannot use t.Setenv). The port freePort found can be
// taken by another test's connection before the agent binds it; the agent
// then says so and exits, and is started again on another port.
func startAgentEnv(t *testing.T, env []string, args ...string) *agentProc {
	t.Helper()
	for attempt := 1; ; attempt++ {
		addr := freePort(t)
		logs := &syncBuffer{mu: make(chan struct{}, 1)}
		cmd := exec.Command(vigilBin, append([]string{"run", "--web.listen-address", addr}, args...)...)
		if env != nil {
			cmd.Env = append(os.Environ(), env...)
		}
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		a := &agentProc{cmd: cmd, url: "http://" + addr, logs: logs}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
			if t.Failed() {
				t.Logf("agent log:\n%s", logs.String())
			}
		})
		busy := false
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline) && !busy; time.Sleep(50 * time.Millisecond) {
			if resp, err := http.Get(a.url + "/-/ready"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return a
				}
			}
			busy = strings.Contains(logs.String(), "address already in use")
		}
		if !busy || attempt == 3 {
			t.Fatalf("agent not ready (attempt %d):\n%s", attempt, logs.String())
		}
		cmd.Process.Kill()
		cmd.Wait()
	}
}

func (a *agentProc) get(t *testing.T, path string) string {
	t.Helper()
	resp, err := http.Get(a.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return string(b)
}

// getAny returns a body whatever the status (API errors are JSON too).
func (a *agentProc) getAny(t *testing.T, path string) string {
	t.Helper()
	resp, err := http.Get(a.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// waitMetric polls /metrics until a line matches re.
func (a *agentProc) waitMetric(t *testing.T, re string) string {
	t.Helper()
	r := regexp.MustCompile(re)
	deadline := time.Now().Add(15 * time.Second)
	var body string
	for time.Now().Before(deadline) {
		body = a.get(t, "/metrics")
		if m := r.FindString(body); m != "" {
			return m
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no metric matching %s in:\n%s", re, body)
	return ""
}

// waitEvaluations waits until every rule group has been evaluated n more
// times. An evaluation hands its alerts on (to the pager and the runbook
// triggers, or the log) before it counts as done, so what the earlier of
// those evaluations would send has been sent: a test asserts that nothing
// was paged or triggered after this, not after a sleep.
func (a *agentProc) waitEvaluations(t *testing.T, n int) {
	t.Helper()
	type groups struct {
		Data struct {
			Groups []struct {
				Name, File     string
				LastEvaluation time.Time
			}
		}
	}
	read := func() map[string]time.Time {
		var g groups
		if err := json.Unmarshal([]byte(a.get(t, "/api/v1/rules")), &g); err != nil {
			t.Fatalf("/api/v1/rules: %v", err)
		}
		m := map[string]time.Time{}
		for _, gr := range g.Data.Groups {
			m[gr.File+" "+gr.Name] = gr.LastEvaluation
		}
		return m
	}
	last := read()
	if len(last) == 0 {
		t.Fatal("waitEvaluations: the agent has no rule groups")
	}
	seen := map[string]int{}
	deadline := time.Now().Add(time.Duration(n)*5*time.Second + 10*time.Second)
	for {
		done := true
		for name, at := range read() {
			if at.After(last[name]) {
				seen[name]++
				last[name] = at
			}
			done = done && seen[name] >= n
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("rule groups not evaluated %d more times: %v", n, seen)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var (
	runsRE    = regexp.MustCompile(`(?m)^vigil_check_runs_total\{[^}]*\} (\d+)`)
	writtenRE = regexp.MustCompile(`(?m)^vigil_store_results_written_total (\d+)`)
)

// waitCommitted waits until the store has committed as many check results
// as the checks have run so far.
func (a *agentProc) waitCommitted(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		body := a.get(t, "/metrics")
		runs := 0
		for _, m := range runsRE.FindAllStringSubmatch(body, -1) {
			n, _ := strconv.Atoi(m[1])
			runs += n
		}
		written := -1
		if m := writtenRE.FindStringSubmatch(body); m != nil {
			written, _ = strconv.Atoi(m[1])
		}
		if runs > 0 && written >= runs {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d check results committed of %d runs after 15s", written, runs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var queuedRE = regexp.MustCompile(`(?m)^vigil_notify_queue_length\{[^}]*\} [1-9]`)

// waitQueuesEmpty waits until no notification waits in the outbox: every
// page queued so far has reached its receiver (or was dead-lettered).
func (a *agentProc) waitQueuesEmpty(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		body := a.get(t, "/metrics")
		if !queuedRE.MatchString(body) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("notifications still queued after 30s: %s", queuedRE.FindAllString(body, -1))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// lintMetrics fails on every problem `promtool check metrics` would report
// (it runs the same linter, client_golang's promlint) and on a vigil_
// family without HELP text, which promlint reports too.
func lintMetrics(t *testing.T, body string) {
	t.Helper()
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	for _, p := range problems {
		t.Errorf("promtool check metrics: %s: %s", p.Metric, p.Text)
	}
}

func metricNames(body string) []string {
	seen := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "vigil_") {
			name, _, _ := strings.Cut(line, "{")
			name, _, _ = strings.Cut(name, " ")
			seen[name] = true
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func TestRunEndToEnd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "vigil.yml", goodConfig)
	db := filepath.Join(dir, "data", "vigil.db")
	a := startAgent(t, "--config.file", cfg, "--storage.path", db)

	a.waitMetric(t, `vigil_check_success\{check="impossible-disk",type="host",team="ops"\} 0`)
	a.waitMetric(t, `vigil_check_success\{check="host",type="host"\} 1`)
	// A check's first run brings its uptime within seconds, not a minute.
	a.waitMetric(t, `vigil_check_uptime_ratio\{check="host",type="host",window="24h"\} 1`)
	body := a.get(t, "/metrics")
	for _, want := range []string{
		`vigil_check_failure_info{check="impossible-disk",type="host",team="ops",reason="disk_low"} 1`,
		`vigil_config_last_reload_successful 1`,
		`vigil_check_runs_total{check="host",type="host",result="success"} 1`,
		"go_goroutines ", "process_resident_memory_bytes ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	lintMetrics(t, body)

	// Series names against the golden list.
	names := strings.Join(metricNames(body), "\n") + "\n"
	golden := filepath.Join("testdata", "metrics.golden")
	if *update {
		os.WriteFile(golden, []byte(names), 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if names != string(want) {
		t.Errorf("series names differ from %s (run with -update after checking):\ngot:\n%s\nwant:\n%s", golden, names, want)
	}

	// The API shows both checks with config and last result.
	var api struct {
		Checks []struct {
			Name       string
			Config     map[string]any
			LastResult *struct {
				Success bool
				Reason  string
			} `json:"last_result"`
		}
	}
	if err := json.Unmarshal([]byte(a.get(t, "/api/v1/checks")), &api); err != nil {
		t.Fatal(err)
	}
	if len(api.Checks) != 2 || api.Checks[1].Name != "impossible-disk" || api.Checks[1].LastResult == nil ||
		api.Checks[1].LastResult.Reason != "disk_low" || api.Checks[1].Config["disk_free_min"] != 1.0 {
		t.Errorf("unexpected /api/v1/checks: %+v", api)
	}

	// Run now: a fresh result and one more run counted.
	resp, err := http.Post(a.url+"/api/v1/checks/host/run", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"success": true`) {
		t.Errorf("run now: %d %s", resp.StatusCode, b)
	}
	a.waitMetric(t, `vigil_check_runs_total\{check="host",type="host",result="success"\} 2`)
	if resp, _ := http.Post(a.url+"/api/v1/checks/nope/run", "", nil); resp == nil || resp.StatusCode != 404 {
		t.Errorf("run of unknown check: %v", resp)
	}

	// SIGHUP with a broken file keeps the running config.
	os.WriteFile(cfg, []byte("checks:\n  - name: host\n    type: host\n    bogus: 1\n"), 0o644)
	a.cmd.Process.Signal(syscall.SIGHUP)
	a.waitMetric(t, `vigil_config_last_reload_successful 0`)
	if !strings.Contains(a.get(t, "/metrics"), `check="impossible-disk"`) {
		t.Error("old config's checks disappeared after a failed reload")
	}
	if !strings.Contains(a.logs.String(), "bogus: unknown field") {
		t.Errorf("reload error not logged with its position")
	}

	// A good reload through the API drops the removed check's series.
	os.WriteFile(cfg, []byte("global: {startup_splay: 0s}\nchecks:\n  - name: host2\n    type: host\n    host: {cpu_sample: 100ms, cpu_max: 1, memory_max: 1, disk_free_min: 0}\n"), 0o644)
	resp, err = http.Post(a.url+"/-/reload", "", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("reload: %v %v", resp, err)
	}
	a.waitMetric(t, `vigil_config_last_reload_successful 1`)
	a.waitMetric(t, `vigil_check_success\{check="host2",type="host"\} 1`)
	if strings.Contains(a.get(t, "/metrics"), `check="impossible-disk"`) {
		t.Error("removed check still has series after reload")
	}

	// SIGTERM shuts down cleanly and history survives a restart.
	a.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- a.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("agent did not stop within 15s of SIGTERM")
	}
	b2 := startAgent(t, "--config.file", cfg, "--storage.path", db)
	var check struct {
		LastResult *struct{ Success bool } `json:"last_result"`
		History    []struct{ Success bool }
	}
	if err := json.Unmarshal([]byte(b2.get(t, "/api/v1/checks/host2")), &check); err != nil {
		t.Fatal(err)
	}
	if check.LastResult == nil || len(check.History) == 0 {
		t.Errorf("history did not survive a restart: %+v", check)
	}
}

func TestKill9KeepsHistory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "vigil.yml", goodConfig)
	db := filepath.Join(dir, "vigil.db")
	a := startAgent(t, "--config.file", cfg, "--storage.path", db)
	a.waitMetric(t, `vigil_check_runs_total\{check="host",type="host",result="success"\} 1`)
	// Run-now a few times so there is more than the first result, then
	// wait until the store's batch writer has committed every result.
	for range 3 {
		resp, err := http.Post(a.url+"/api/v1/checks/host/run", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	a.waitCommitted(t)
	a.cmd.Process.Kill()
	a.cmd.Wait()

	b := startAgent(t, "--config.file", cfg, "--storage.path", db)
	var check struct{ History []struct{ Success bool } }
	if err := json.Unmarshal([]byte(b.get(t, "/api/v1/checks/host")), &check); err != nil {
		t.Fatal(err)
	}
	if len(check.History) < 4 {
		t.Errorf("after kill -9: %d history entries, want >= 4", len(check.History))
	}
}

func TestDefaultConfigAndLandingPage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := startAgent(t, "--storage.path", filepath.Join(dir, "vigil.db"))
	if body := a.get(t, "/"); !strings.Contains(body, "/metrics") {
		t.Errorf("landing page lacks a /metrics link:\n%s", body)
	}
	if !strings.Contains(a.logs.String(), "embedded default config") {
		t.Errorf("no log line about the embedded default")
	}
	var api struct{ Checks []struct{ Name string } }
	json.Unmarshal([]byte(a.get(t, "/api/v1/checks")), &api)
	if len(api.Checks) != 1 || api.Checks[0].Name != "host" {
		t.Errorf("embedded default checks: %+v", api.Checks)
	}
}

func TestRunStartupErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := writeConfig(t, dir, "bad.yml", "checks:\n  - name: x\n    type: host\n    host: {cpu_max: 2}\n")
	_, errOut, code := run(t, "run", "--config.file", bad, "--storage.path", filepath.Join(dir, "a.db"))
	if code != 2 || !strings.Contains(errOut, "bad.yml:4:12: checks[0].host.cpu_max: must be between 0 and 1, got 2") {
		t.Errorf("bad config: code %d, stderr %q", code, errOut)
	}
	_, errOut, code = run(t, "run", "--config.file", filepath.Join(dir, "missing.yml"), "--storage.path", filepath.Join(dir, "a.db"))
	if code != 1 || !strings.Contains(errOut, "missing.yml: no such file or directory") {
		t.Errorf("missing config: code %d, stderr %q", code, errOut)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	good := writeConfig(t, dir, "good.yml", goodConfig)
	_, errOut, code = run(t, "run", "--config.file", good, "--storage.path", filepath.Join(dir, "a.db"), "--web.listen-address", l.Addr().String())
	if code != 1 || !strings.Contains(errOut, "address already in use") {
		t.Errorf("busy port: code %d, stderr %q", code, errOut)
	}
}

// TestREADMEInStep keeps the README's metric list and reason vocabulary in
// step with what the agent exports.
func TestREADMEInStep(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	golden, err := os.ReadFile(filepath.Join("testdata", "metrics.golden"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range strings.Fields(string(golden)) {
		if !strings.Contains(string(readme), "`"+name) {
			t.Errorf("README.md does not document metric %s", name)
		}
	}
	for _, r := range probes.Reasons() {
		if !strings.Contains(string(readme), "`"+string(r)+"`") {
			t.Errorf("README.md does not list failure reason %q", r)
		}
	}
}

// TestWebConfigBasicAuth runs the agent behind exporter-toolkit basic auth.
func TestWebConfigBasicAuth(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("vigil-pass"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webCfg := writeConfig(t, dir, "web.yml", "basic_auth_users:\n  ops: "+string(hash)+"\n")
	addr := freePort(t)
	logs := &syncBuffer{mu: make(chan struct{}, 1)}
	cmd := exec.Command(vigilBin, "run", "--web.listen-address", addr, "--web.config.file", webCfg,
		"--storage.path", filepath.Join(dir, "vigil.db"))
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()

	get := func(user, pass string) int {
		req, _ := http.NewRequest("GET", "http://"+addr+"/metrics", nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	deadline := time.Now().Add(20 * time.Second)
	for get("ops", "vigil-pass") != 200 {
		if time.Now().After(deadline) {
			t.Fatalf("agent not serving with basic auth:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code := get("", ""); code != 401 {
		t.Errorf("no credentials: %d, want 401", code)
	}
	if code := get("ops", "wrong"); code != 401 {
		t.Errorf("wrong password: %d, want 401", code)
	}
}

// TestNetworkChecksEndToEnd runs http (TLS) and icmp checks in the agent,
// and a failing one whose traceroute must reach the API.
func TestNetworkChecksEndToEnd(t *testing.T) {
	t.Parallel()
	testenv.NeedRoot(t, "icmp and traceroute need root or CAP_NET_RAW")
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"status":"UP"}`)
	}))
	defer srv.Close()
	closed := freePort(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "net.yml", fmt.Sprintf(`
global: {startup_splay: 0s, timeout: 5s}
checks:
  - name: api
    type: http
    http:
      url: %s/health
      json: [{path: $.status, equals: UP}]
      tls_config: {insecure_skip_verify: true}
  - name: down
    type: http
    recheck_interval: 1h
    http: {url: "http://%s/"}
  - name: ping
    type: icmp
    icmp: {host: 127.0.0.1, interval: 10ms}
`, srv.URL, closed))
	a := startAgent(t, "--config.file", cfg, "--storage.path", filepath.Join(dir, "vigil.db"))
	a.waitMetric(t, `vigil_check_success\{check="api",type="http"\} 1`)
	a.waitMetric(t, `vigil_check_success\{check="ping",type="icmp"\} 1`)
	a.waitMetric(t, `vigil_check_failure_info\{check="down",type="http",reason="connection_refused"\} 1`)
	body := a.get(t, "/metrics")
	readme, _ := os.ReadFile("../../README.md")
	for _, name := range metricNames(body) {
		if !strings.Contains(string(readme), "`"+name) {
			t.Errorf("README.md does not document %s", name)
		}
	}
	for _, want := range []string{"vigil_http_status_code", "vigil_tls_cert_expiry_timestamp_seconds", "vigil_icmp_rtt_avg_seconds", `phase="first_byte"`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	var check struct {
		LastResult struct {
			Reason      string
			Diagnostics struct {
				Traceroute []struct {
					Addr    string
					Reached bool
				}
			}
		} `json:"last_result"`
	}
	if err := json.Unmarshal([]byte(a.get(t, "/api/v1/checks/down")), &check); err != nil {
		t.Fatal(err)
	}
	hops := check.LastResult.Diagnostics.Traceroute
	if len(hops) != 1 || hops[0].Addr != "127.0.0.1" || !hops[0].Reached {
		t.Errorf("traceroute in the API: %+v", check.LastResult)
	}
}

// TestSecretsNeverShown puts a recognisable password into database DSNs —
// accepted (trust auth), refused, and unreachable — and greps every output
// channel for it: logs at debug level, /metrics, the API, vigil once (table
// and JSON) and check-config.
func TestSecretsNeverShown(t *testing.T) {
	t.Parallel()
	testenv.NeedService(t, "PostgreSQL", "127.0.0.1:5432")
	testenv.NeedService(t, "MariaDB", "127.0.0.1:3306")
	testenv.NeedService(t, "Redis", "127.0.0.1:6379")
	const pw = "Zq7-vigil-SECRET-pw"
	dir := t.TempDir()
	closed := freePort(t)
	os.WriteFile(filepath.Join(dir, "redis.dsn"), []byte("redis://vigil_nobody:"+pw+"@127.0.0.1:6379/0\n"), 0o600)
	cfg := writeConfig(t, dir, "db.yml", `
global: {startup_splay: 0s, timeout: 5s}
checks:
  - name: pg-ok
    type: postgres
    postgres: {dsn: "${VIGIL_E2E_PG_OK}"}
  - name: pg-down
    type: postgres
    postgres: {dsn: "${VIGIL_E2E_PG_DOWN}"}
  - name: mysql-denied
    type: mysql
    mysql: {dsn: "${VIGIL_E2E_MYSQL}"}
  - name: redis-denied
    type: redis
    redis: {dsn_file: `+filepath.Join(dir, "redis.dsn")+`}
`)
	env := []string{
		"VIGIL_E2E_PG_OK=postgres://postgres:" + pw + "@127.0.0.1:5432/test?sslmode=disable",
		"VIGIL_E2E_PG_DOWN=postgres://postgres:" + pw + "@" + closed + "/test?sslmode=disable",
		"VIGIL_E2E_MYSQL=vigil_nobody:" + pw + "@tcp(127.0.0.1:3306)/test",
	}
	runEnv := func(args ...string) string {
		cmd := exec.Command(vigilBin, args...)
		cmd.Env = append(os.Environ(), env...)
		out, _ := cmd.CombinedOutput()
		return string(out)
	}
	outputs := map[string]string{
		"once":         runEnv("once", "--config.file", cfg, "-v"),
		"once json":    runEnv("once", "--config.file", cfg, "-o", "json"),
		"check-config": runEnv("check-config", cfg),
	}
	if !strings.Contains(outputs["once"], "pg-down") || !strings.Contains(outputs["once"], "auth_failed") {
		t.Fatalf("vigil once did not run the checks:\n%s", outputs["once"])
	}

	a := startAgentEnv(t, env, "--config.file", cfg, "--storage.path", filepath.Join(dir, "vigil.db"), "--log.level", "debug")
	a.waitMetric(t, `vigil_check_success\{check="pg-ok",type="postgres"\} 1`)
	a.waitMetric(t, `vigil_check_failure_info\{check="redis-denied",type="redis",reason="auth_failed"\} 1`)
	a.waitMetric(t, `vigil_check_failure_info\{check="mysql-denied",type="mysql",reason="auth_failed"\} 1`)
	a.waitMetric(t, `vigil_check_failure_info\{check="pg-down",type="postgres",reason="connection_refused"\} 1`)
	outputs["metrics"] = a.get(t, "/metrics")
	outputs["api"] = a.get(t, "/api/v1/checks")
	outputs["api check"] = a.get(t, "/api/v1/checks/pg-down")
	a.cmd.Process.Signal(syscall.SIGHUP) // a reload logs the config again
	// Its last line says it is done: everything it logged is in by then.
	for deadline := time.Now().Add(15 * time.Second); !strings.Contains(a.logs.String(), `msg="config reloaded"`); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no reload after SIGHUP:\n%s", a.logs.String())
		}
	}
	outputs["logs"] = a.logs.String()
	if !strings.Contains(outputs["api"], `"dsn": "\u003csecret\u003e"`) && !strings.Contains(outputs["api"], `"dsn": "<secret>"`) {
		t.Errorf("the API does not show the DSN redacted:\n%s", outputs["api"])
	}
	for name, out := range outputs {
		if strings.Contains(out, pw) {
			i := strings.Index(out, pw)
			t.Errorf("%s shows the password: …%s…", name, out[max(0, i-80):min(len(out), i+40)])
		}
	}
}
