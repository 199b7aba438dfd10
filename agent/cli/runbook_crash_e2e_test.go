package cli_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// stepTarget is what a runbook's http steps call: it counts calls per path
// and fails everything else (the checked service is down).
type stepTarget struct {
	*httptest.Server
	mu    sync.Mutex
	calls map[string]int
}

func newStepTarget(t *testing.T) *stepTarget {
	st := &stepTarget{calls: map[string]int{}}
	st.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			st.mu.Lock()
			st.calls[r.URL.Path]++
			st.mu.Unlock()
			return
		}
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	t.Cleanup(st.Close)
	return st
}

func (st *stepTarget) count(path string) int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.calls[path]
}

// crashRunbook switches, waits long enough to be killed in the middle, and
// then calls /after.
func crashRunbook(t *testing.T, dir, target string, resumable bool, extraCfg string) string {
	t.Helper()
	writeConfig(t, dir, "rules.yml", pagingRules)
	os.MkdirAll(filepath.Join(dir, "runbooks"), 0o755)
	writeConfig(t, filepath.Join(dir, "runbooks"), "failover.yml", fmt.Sprintf(`name: failover
trigger: {alert: TargetDown}
resumable: %v
steps:
  - name: switch
    http: {method: POST, url: %s/switch}
  - name: settle
    wait: 6s
  - name: after
    http: {method: POST, url: %s/after}
`, resumable, target, target))
	return writeConfig(t, dir, "vigil.yml", pagingConfig(target, "")+"\nrunbooks: [runbooks/*.yml]\n"+extraCfg)
}

// waitRunEvent waits until a run of runbook has an event of the kind for
// the step, and returns the run's ID.
func waitRunEvent(t *testing.T, a *agentProc, runbook, kind, step string, timeout time.Duration) string {
	t.Helper()
	return waitRunWhere(t, a, runbook, kind+" of step "+step, timeout, func(r e2eRun) bool {
		for _, ev := range r.Timeline {
			if ev.Kind == kind && ev.Name == step {
				return true
			}
		}
		return false
	}).ID
}

func runByID(t *testing.T, a *agentProc, id string) e2eRun {
	t.Helper()
	var r e2eRun
	if err := json.Unmarshal([]byte(a.get(t, "/api/v1/runbooks/runs/"+id)), &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestRunbookKill9MidRun: the agent is killed with SIGKILL while a run waits
// between steps. After the restart the run is marked interrupted and no
// step runs again — neither by resuming nor because the restored firing
// alert triggers the runbook a second time. A runbook that declares its
// steps idempotent (resumable: true) continues at the step in flight and
// finishes; the switch done before the kill is not repeated.
func TestRunbookKill9MidRun(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		resumable bool
	}{{"not resumable", false}, {"resumable", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			target := newStepTarget(t)
			cfg := crashRunbook(t, dir, target.URL, tc.resumable, "")
			db := filepath.Join(dir, "vigil.db")
			a := startAgent(t, "--config.file", cfg, "--storage.path", db)
			id := waitRunEvent(t, a, "failover", "step_start", "settle", 30*time.Second)
			kill9(t, a)
			if n := target.count("/switch"); n != 1 {
				t.Fatalf("switch called %d times before the kill", n)
			}

			a = startAgent(t, "--config.file", cfg, "--storage.path", db)
			if !tc.resumable {
				r := runByID(t, a, id)
				if r.State != "interrupted" || !strings.Contains(r.Error, "not re-run automatically") {
					t.Fatalf("after the restart: %+v", r)
				}
				a.waitMetric(t, `vigil_runbook_runs_total\{runbook="failover",result="interrupted"\} 1`)
				// The alert keeps firing: two evaluations after the restart
				// would have triggered a second run by now, and with no run
				// in flight no step can come later.
				a.waitEvaluations(t, 2)
				a.waitMetric(t, `vigil_runbook_running 0`)
				var resp struct{ Runs []e2eRun }
				json.Unmarshal([]byte(a.get(t, "/api/v1/runbooks/runs")), &resp)
				if len(resp.Runs) != 1 || target.count("/switch") != 1 || target.count("/after") != 0 {
					t.Fatalf("something ran again: %d runs, switch %d, after %d: %+v", len(resp.Runs), target.count("/switch"), target.count("/after"), resp.Runs)
				}
				out, _, code := run(t, "runbook", "show", "--agent.url", a.url, id)
				if code != 0 || !strings.Contains(out, "interrupted") {
					t.Errorf("runbook show:\n%s", out)
				}
				return
			}
			r := waitRun(t, a, "failover", 30*time.Second)
			if r.ID != id || r.State != "succeeded" {
				t.Fatalf("resumed run: %+v", r)
			}
			var kinds []string
			for _, ev := range r.Timeline {
				kinds = append(kinds, ev.Kind+":"+ev.Name)
			}
			if !strings.Contains(strings.Join(kinds, ","), "step_start:settle,resumed:,step_start:settle,step_end:,step_start:after") {
				t.Errorf("timeline %v", kinds)
			}
			if target.count("/switch") != 1 || target.count("/after") != 1 {
				t.Errorf("switch %d after %d, want 1 and 1", target.count("/switch"), target.count("/after"))
			}
		})
	}
}

// TestRunbookEtcdSessionLost: the etcd lease behind the agent's lock
// session is revoked (as when the agent is cut off from etcd for longer
// than the TTL) while a run waits between steps: the run stops with
// lock_lost before its next step.
func TestRunbookEtcdSessionLost(t *testing.T) {
	t.Parallel()
	etcd := startEtcd(t)
	dir := t.TempDir()
	target := newStepTarget(t)
	cfg := crashRunbook(t, dir, target.URL, false, fmt.Sprintf("runbook_lock:\n  backend: etcd\n  etcd: {endpoints: [%q], ttl: 5s}\n", etcd))
	a := startAgent(t, "--config.file", cfg, "--storage.path", filepath.Join(dir, "vigil.db"))
	waitRunEvent(t, a, "failover", "step_start", "settle", 30*time.Second)

	// Revoke every lease through etcd's JSON gateway.
	post := func(path, body string) map[string]any {
		resp, err := http.Post(etcd+path, "application/json", bytes.NewBufferString(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %v", path, resp.StatusCode, out)
		}
		return out
	}
	leases, _ := post("/v3/lease/leases", "{}")["leases"].([]any)
	if len(leases) == 0 {
		t.Fatal("no etcd lease held during the run")
	}
	for _, l := range leases {
		post("/v3/lease/revoke", fmt.Sprintf(`{"ID": %q}`, l.(map[string]any)["ID"]))
	}
	r := waitRun(t, a, "failover", 30*time.Second)
	if r.State != "lock_lost" || target.count("/after") != 0 || target.count("/switch") != 1 {
		t.Fatalf("run %+v; switch %d, after %d", r, target.count("/switch"), target.count("/after"))
	}
}
