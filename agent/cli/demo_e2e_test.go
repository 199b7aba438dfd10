package cli_test

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// demoPortsTaken holds the base ports of the demos this process runs, so
// that tests running in parallel never pick overlapping ranges.
var demoPortsTaken = struct {
	sync.Mutex
	m map[int]bool
}{m: map[int]bool{}}

// demoPorts finds a base port with the 14 ports the demo uses free and
// keeps it for the test. The ranges lie below 32768, where Linux's
// ephemeral ports start: listeners on port 0 (freePort, httptest) and
// outgoing connections of the tests running beside this one do not land
// in them between this check and the demo's bind.
func demoPorts(t *testing.T) int {
	t.Helper()
	demoPortsTaken.Lock()
	defer demoPortsTaken.Unlock()
	for try := 0; try < 50; try++ {
		base := 20000 + 16*rand.IntN((32768-20000)/16)
		if demoPortsTaken.m[base] {
			continue
		}
		ok := true
		for off := 0; off < 14 && ok; off++ {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base+off))
			if err != nil {
				ok = false
				continue
			}
			l.Close()
		}
		if ok {
			demoPortsTaken.m[base] = true
			// Registered before the demo's own cleanup, so it runs after
			// the demo has stopped.
			t.Cleanup(func() {
				demoPortsTaken.Lock()
				delete(demoPortsTaken.m, base)
				demoPortsTaken.Unlock()
			})
			return base
		}
	}
	t.Fatal("no free port range for the demo")
	return 0
}

// demoConfig is examples/vigil.yml pointed at a demo started on base with
// its log in dir/invoice.log: ports moved, start-up splay and sync grace
// shortened, and the shipped rules, runbooks and drills by absolute path,
// as `make run` loads them (a glob that matches nothing is a config error).
func demoConfig(t *testing.T, dir string, base int) string {
	t.Helper()
	example, err := os.ReadFile("../../examples/vigil.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(example)
	for off := 0; off < 4; off++ {
		cfg = strings.ReplaceAll(cfg, "127.0.0.1:848"+strconv.Itoa(off), "127.0.0.1:"+strconv.Itoa(base+off))
		cfg = strings.ReplaceAll(cfg, "127.0.0.1:849"+strconv.Itoa(off), "127.0.0.1:"+strconv.Itoa(base+10+off))
	}
	cfg = strings.Replace(cfg, "startup_splay: 10s", "startup_splay: 0s", 1)
	cfg = strings.ReplaceAll(cfg, "grace: 30s", "grace: 1s")
	cfg = strings.ReplaceAll(cfg, "data/demo/invoice-service.log", filepath.Join(dir, "invoice.log"))
	examples, _ := filepath.Abs("../../examples")
	cfg = strings.ReplaceAll(cfg, "rules/*.rules.yml", filepath.Join(examples, "rules", "*.rules.yml"))
	cfg = strings.ReplaceAll(cfg, "  - runbooks/*.yml", "  - "+filepath.Join(examples, "runbooks", "*.yml"))
	cfg = strings.ReplaceAll(cfg, "  - drills/*.yml", "  - "+filepath.Join(examples, "drills", "*.yml"))
	return cfg
}

func httpDo(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestDemoEndToEnd is `make run` under test: the demo platform binary and
// the agent with examples/vigil.yml (ports moved, start-up splay and sync
// grace shortened); both invoice checks pass, injected faults make them
// fail with the right reason, clearing them (and a resync) recovers.
func TestDemoEndToEnd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	base := demoPorts(t)
	demo := exec.Command(demoBin, "--log.file", filepath.Join(dir, "invoice.log"), "demo", "--base-port", strconv.Itoa(base), "--data.dir", filepath.Join(dir, "demo"))
	demo.Stderr = io.Discard
	if err := demo.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { demo.Process.Kill(); demo.Wait() })
	url := func(off int) string { return "http://127.0.0.1:" + strconv.Itoa(base+off) }

	cfg := demoConfig(t, dir, base)
	a := startAgent(t, "--config.file", writeConfig(t, dir, "vigil.yml", cfg), "--storage.path", filepath.Join(dir, "vigil.db"))

	for _, c := range []string{`invoice_qr",type="invoice_qr`, `invoice_sync_primary",type="invoice_sync`, `invoice_sync_standby",type="invoice_sync`} {
		a.waitMetric(t, `vigil_check_success\{check="`+c+`",team="invoicing"\} 1`)
	}
	runCheck := func(name string) (reason, message string) {
		st, body := httpDo(t, "POST", a.url+"/api/v1/checks/"+name+"/run", "")
		if st != 200 {
			t.Fatalf("run %s: %d %s", name, st, body)
		}
		var r struct {
			Success         bool
			Reason, Message string
		}
		json.Unmarshal([]byte(body), &r)
		return r.Reason, r.Message
	}

	// A corrupted QR amount on the primary: the check fails and says which field.
	httpDo(t, "POST", url(11)+"/admin/faults", `{"qr_wrong_amount":true}`)
	if reason, msg := runCheck("invoice_qr"); reason != "qr_mismatch" || !strings.Contains(msg, "field amount") {
		t.Fatalf("wrong amount: %s %s", reason, msg)
	}
	a.waitMetric(t, `vigil_check_failure_info\{check="invoice_qr",type="invoice_qr",team="invoicing",reason="qr_mismatch"\} 1`)
	// The shipped rules see it at their next evaluation (every 30s):
	// InvoiceQRFailing is pending (for: 1m).
	deadline := time.Now().Add(45 * time.Second)
	for !strings.Contains(a.getAny(t, "/api/v1/alerts"), `"alertname":"InvoiceQRFailing"`) && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if body := a.getAny(t, "/api/v1/alerts"); !strings.Contains(body, `"alertname":"InvoiceQRFailing"`) {
		t.Fatalf("no InvoiceQRFailing alert: %s", body)
	}
	// Failing over to the standby brings the check back.
	httpDo(t, "POST", url(10)+"/admin/switch", `{"active":"standby"}`)
	if reason, msg := runCheck("invoice_qr"); reason != "" {
		t.Fatalf("after failover: %s %s", reason, msg)
	}
	httpDo(t, "POST", url(10)+"/admin/switch", `{"active":"primary"}`)
	httpDo(t, "DELETE", url(11)+"/admin/faults", "")

	// Syncs silently dropped: the reconciliation finds what the issuer does not know.
	httpDo(t, "POST", url(11)+"/admin/faults", `{"sync_drop_rate":1}`)
	st, body := httpDo(t, "POST", url(0)+"/api/v1/invoices", `{"seller":{"name":"S","tax_id":"91350100M000100Y43"},"buyer":{"name":"B","tax_id":"91440300708461136T"},"items":[{"name":"x","quantity":"1","unit_price":"10","tax_rate":"0.13"}]}`)
	if st != 201 {
		t.Fatalf("issue: %d %s", st, body)
	}
	var inv struct{ Number string }
	json.Unmarshal([]byte(body), &inv)
	time.Sleep(1500 * time.Millisecond) // past the grace period
	if reason, msg := runCheck("invoice_sync_primary"); reason != "invoices_missing_upstream" || !strings.Contains(msg, inv.Number) {
		t.Fatalf("dropped sync: %s %s", reason, msg)
	}
	a.waitMetric(t, `vigil_invoice_sync_missing\{check="invoice_sync_primary",type="invoice_sync",team="invoicing"\} [1-9]`)
	httpDo(t, "DELETE", url(11)+"/admin/faults", "")
	if st, body := httpDo(t, "POST", url(11)+"/admin/resync", ""); st != 200 {
		t.Fatalf("resync: %d %s", st, body)
	}
	if reason, msg := runCheck("invoice_sync_primary"); reason != "" {
		t.Fatalf("after resync: %s %s", reason, msg)
	}

	// The platform's log is scanned: an upstream outage shows as sync failures by code.
	httpDo(t, "POST", url(13)+"/admin/faults", `{"error_rate":1}`)
	httpDo(t, "POST", url(0)+"/api/v1/invoices", `{"seller":{"name":"S","tax_id":"91350100M000100Y43"},"buyer":{"name":"B","tax_id":"91440300708461136T"},"items":[{"name":"x","quantity":"1","unit_price":"10","tax_rate":"0.13"}]}`)
	a.waitMetric(t, `vigil_log_matches_total\{check="invoice-log",type="logscan",team="invoicing",pattern="sync_failed",code="UPSTREAM_5XX"\} [1-9]`)
	a.waitMetric(t, `vigil_log_matches_total\{check="invoice-log",type="logscan",team="invoicing",pattern="upstream_error"\} [1-9]`)
	httpDo(t, "DELETE", url(13)+"/admin/faults", "")
	if body := a.get(t, "/metrics"); !strings.Contains(body, "# TYPE vigil_log_matches_total counter") {
		t.Error("vigil_log_matches_total is not typed as a counter")
	}

	// The whole demo's /metrics passes promtool check metrics's linter,
	// every vigil_ family with HELP text.
	body = a.get(t, "/metrics")
	lintMetrics(t, body)

	// Every invoice and log series is documented.
	readme, _ := os.ReadFile("../../README.md")
	for _, name := range metricNames(body) {
		if (strings.HasPrefix(name, "vigil_invoice_") || strings.HasPrefix(name, "vigil_log_")) && !strings.Contains(string(readme), name) {
			t.Errorf("README.md does not document %s", name)
		}
	}
	// The platform's request log records the sync problems for logscan.
	logs, _ := os.ReadFile(filepath.Join(dir, "invoice.log"))
	if !strings.Contains(string(logs), `"msg":"faults injected"`) {
		t.Errorf("invoice-service log lacks the fault injection:\n%s", fmt.Sprint(len(logs)))
	}
}
