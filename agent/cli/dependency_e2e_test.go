package cli_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDependencyOutage: invoice_sync depends on the tax network path.
// While the path is down, invoice_sync's failures read dependency_failed
// and its alert is held back, but the resolve of what it paged before
// still goes out; once the path is back, a still-failing invoice_sync
// pages on its own.
func TestDependencyOutage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rcv := newReceiver(t)
	netSrv, netOK := flipper(t)
	syncSrv, syncOK := flipper(t)
	netOK.Store(true)
	syncOK.Store(true)
	writeConfig(t, dir, "rules.yml", `
groups:
  - name: checks
    interval: 1s
    rules:
      - alert: CheckDown
        expr: vigil_check_success == 0
        labels: {severity: critical}
`)
	cfg := writeConfig(t, dir, "vigil.yml", fmt.Sprintf(`
global:
  startup_splay: 0s
  evaluation_interval: 1s
rule_files: [rules.yml]
checks:
  - {name: tax-network, type: http, interval: 1s, recheck_interval: 1s, timeout: 900ms, http: {url: %q}}
  - {name: invoice_sync, type: http, interval: 1s, recheck_interval: 1s, timeout: 900ms, http: {url: %q}, depends_on: [tax-network]}
notify:
  min_backoff: 200ms
  max_backoff: 1s
  route:
    receiver: oncall
    group_by: [alertname, check]
    group_wait: 0s
    group_interval: 1s
    repeat_interval: 1h
  receivers:
    - name: oncall
      webhook_configs:
        - url: %s
`, netSrv.URL, syncSrv.URL, rcv.srv.URL))
	a := startAgent(t, "--config.file", cfg, "--storage.path", filepath.Join(dir, "vigil.db"))
	a.waitMetric(t, `vigil_check_success\{check="invoice_sync",type="http"\} 1`)
	a.waitMetric(t, `vigil_check_success\{check="tax-network",type="http"\} 1`)

	// pages lists "status check" of every alert delivered so far.
	pages := func() []string {
		var out []string
		for _, p := range rcv.payloads() {
			for _, al := range p.Alerts {
				out = append(out, al.Status+" "+al.Labels["check"])
			}
		}
		return out
	}
	waitPage := func(want string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			for _, p := range pages() {
				if p == want {
					return
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("no page %q within 20s; pages: %q", want, pages())
	}
	count := func(want string) int {
		n := 0
		for _, p := range pages() {
			if p == want {
				n++
			}
		}
		return n
	}

	// 1. invoice_sync fails on its own: it pages.
	syncOK.Store(false)
	waitPage("firing invoice_sync")
	// 2. The network path goes down: it pages; invoice_sync's failures are
	// now the network's.
	netOK.Store(false)
	waitPage("firing tax-network")
	a.waitMetric(t, `vigil_check_failure_info\{check="invoice_sync",type="http",reason="dependency_failed"\} 1`)
	// 3. invoice_sync recovers while the network is down: the resolve of
	// its page goes out, held back or not.
	syncOK.Store(true)
	waitPage("resolved invoice_sync")
	// 4. It fails again while the network is down: no page of its own.
	syncOK.Store(false)
	a.waitMetric(t, `vigil_check_failure_info\{check="invoice_sync",type="http",reason="dependency_failed"\} 1`)
	a.waitEvaluations(t, 3)
	a.waitQueuesEmpty(t)
	if n := count("firing invoice_sync"); n != 1 {
		t.Fatalf("invoice_sync paged %d times while its dependency was down, want only its first page: %q", n, pages())
	}
	body := a.get(t, "/api/v1/checks/invoice_sync?limit=1")
	for _, want := range []string{`"reason": "dependency_failed"`, `tax-network is failing (depends_on); own result: status_mismatch`} {
		if !strings.Contains(body, want) {
			t.Errorf("/api/v1/checks/invoice_sync lacks %q: %s", want, body)
		}
	}
	// 5. The network is back, invoice_sync still fails: now it pages.
	netOK.Store(true)
	deadline := time.Now().Add(20 * time.Second)
	for count("firing invoice_sync") < 2 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if n := count("firing invoice_sync"); n != 2 {
		t.Fatalf("invoice_sync did not page once its dependency was back: %q", pages())
	}
	waitPage("resolved tax-network")
}
