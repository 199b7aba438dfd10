package cli_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-project/vigil/internal/testenv"
)

// startEtcd runs Debian's etcd (package etcd-server) on free local ports.
func startEtcd(t *testing.T) string {
	t.Helper()
	url, _ := startEtcdProc(t)
	return url
}

// startEtcdProc is startEtcd that also returns the process (to freeze it).
func startEtcdProc(t *testing.T) (string, *exec.Cmd) {
	t.Helper()
	bin := testenv.NeedBinary(t, "etcd", "etcd-server")
	client, peer := "http://"+freePort(t), "http://"+freePort(t)
	cmd := exec.Command(bin, "--data-dir", t.TempDir(), "--name", "default", "--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", "default="+peer)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(client + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return client, cmd
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("etcd not healthy")
	return "", nil
}

// TestFrozenEtcdDoesNotBlockPaging: with etcd frozen (SIGSTOP) while an
// alert fires, the runbook it triggers waits on its lock, but the page
// still goes out and the rules keep being evaluated on time: the alert
// path does not wait for its slowest consumer.
func TestFrozenEtcdDoesNotBlockPaging(t *testing.T) {
	t.Parallel()
	etcd, proc := startEtcdProc(t)
	target, healthy := flipper(t)
	healthy.Store(true)
	rcv := newReceiver(t)
	dir := t.TempDir()
	writeConfig(t, dir, "rules.yml", pagingRules)
	os.Mkdir(filepath.Join(dir, "runbooks"), 0o755)
	writeConfig(t, filepath.Join(dir, "runbooks"), "failover.yml", fmt.Sprintf(`name: failover
trigger: {alert: TargetDown}
steps:
  - name: switch
    http: {method: POST, url: %s/switch}
`, target.URL))
	cfg := writeConfig(t, dir, "vigil.yml", pagingConfig(target.URL, oncallRoute(rcv.srv.URL))+fmt.Sprintf(`
runbooks: [runbooks/*.yml]
runbook_lock:
  backend: etcd
  etcd: {endpoints: [%q], ttl: 5s, dial_timeout: 1s}
`, etcd))
	a := startAgent(t, "--config.file", cfg, "--storage.path", filepath.Join(dir, "vigil.db"))
	a.waitEvaluations(t, 1)

	if err := proc.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proc.Process.Signal(syscall.SIGCONT) })
	frozen := time.Now()
	healthy.Store(false)
	// The page: the check fails within a second, the rule fires at its
	// next evaluation (1s), the route has no group_wait.
	ps := rcv.waitFor(t, "firing", 20*time.Second)
	if a := ps[0].Alerts[0]; a.Labels["alertname"] != "TargetDown" {
		t.Errorf("page %+v", ps[0])
	}
	t.Logf("paged %s after etcd froze", time.Since(frozen).Round(100*time.Millisecond))
	// Rules keep being evaluated, group interval 1s, while the runbook
	// waits on etcd.
	start := time.Now()
	a.waitEvaluations(t, 3)
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("3 evaluations of a 1s group took %s with etcd frozen", took)
	}
}

// TestRunbookFleetRaceOnEtcd: three agents with the same config and a
// shared etcd see the same alert; exactly one of them runs the runbook,
// the others record the trigger as blocked (lock held or cooldown).
func TestRunbookFleetRaceOnEtcd(t *testing.T) {
	t.Parallel()
	etcd := startEtcd(t)
	var switches atomic.Int32
	var token atomic.Value
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/switch" {
			switches.Add(1)
			token.Store(r.Header.Get("X-Vigil-Fencing-Token"))
			time.Sleep(500 * time.Millisecond) // hold the lock while the others try
			return
		}
		http.Error(w, "down", http.StatusInternalServerError) // the checked service is down
	}))
	defer target.Close()
	dir := t.TempDir()
	writeConfig(t, dir, "rules.yml", pagingRules)
	os.Mkdir(filepath.Join(dir, "runbooks"), 0o755)
	writeConfig(t, filepath.Join(dir, "runbooks"), "failover.yml", fmt.Sprintf(`name: failover
trigger: {alert: TargetDown}
cooldown: 10m
steps:
  - name: switch
    http: {method: POST, url: %s/switch}
`, target.URL))
	cfg := writeConfig(t, dir, "vigil.yml", pagingConfig(target.URL, "")+fmt.Sprintf(`
runbooks: [runbooks/*.yml]
runbook_lock:
  backend: etcd
  etcd: {endpoints: [%q], ttl: 5s}
`, etcd))
	var agents []*agentProc
	for i := range 3 {
		agents = append(agents, startAgent(t, "--config.file", cfg, "--storage.path", filepath.Join(dir, fmt.Sprintf("vigil%d.db", i))))
	}
	type runs struct {
		Runs []struct{ State, Error string }
	}
	deadline := time.Now().Add(40 * time.Second)
	for {
		done, blocked, other := 0, 0, 0
		for _, a := range agents {
			var r runs
			json.Unmarshal([]byte(a.getAny(t, "/api/v1/runbooks/runs")), &r)
			for _, run := range r.Runs {
				switch run.State {
				case "succeeded":
					done++
				case "blocked":
					blocked++
				default:
					other++
				}
			}
		}
		if done+blocked == 3 && other == 0 {
			if done != 1 || switches.Load() != 1 {
				t.Fatalf("%d runs succeeded, %d blocked, %d switches; want exactly one", done, blocked, switches.Load())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 40s: %d succeeded, %d blocked, %d other, %d switches", done, blocked, other, switches.Load())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if tok, _ := token.Load().(string); tok == "" || tok == "0" {
		t.Errorf("no fencing token: %q", tok)
	}
	for _, a := range agents {
		if body := a.getAny(t, "/api/v1/runbooks/runs"); strings.Contains(body, `"blocked"`) &&
			!strings.Contains(body, "another run of this runbook") && !strings.Contains(body, "cooldown until") {
			t.Errorf("blocked without a reason: %s", body)
		}
	}
}
