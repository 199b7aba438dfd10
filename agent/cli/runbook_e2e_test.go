package cli_test

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// demoWithRunbooks starts the demo platform and an agent with
// examples/vigil.yml, the shipped rules (faster: `for` of 2s, evaluation
// every second) and the shipped runbooks, all pointed at the test's ports.
func demoWithRunbooks(t *testing.T, edits ...func(string) string) (a *agentProc, url func(int) string) {
	a, url, _ = demoDir(t, edits...)
	return a, url
}

// demoDir is demoWithRunbooks that also returns the directory holding the
// agent's config, store, rules, runbooks and drills (examples/drills with
// the test's ports); edits change the agent's config.
func demoDir(t *testing.T, edits ...func(string) string) (a *agentProc, url func(int) string, dir string) {
	t.Helper()
	return startDemoAgent(t, demoOptions{edits: edits})
}

// demoOptions change what startDemoAgent starts: edits change the agent's
// config, runbookEdits the shipped runbooks, args are added to `vigil run`
// and env to its environment.
type demoOptions struct {
	edits, runbookEdits []func(string) string
	args, env           []string
}

func startDemoAgent(t *testing.T, o demoOptions) (a *agentProc, url func(int) string, dir string) {
	t.Helper()
	dir = t.TempDir()
	base := demoPorts(t)
	demo := exec.Command(demoBin, "--log.file", filepath.Join(dir, "invoice.log"), "demo", "--base-port", strconv.Itoa(base), "--data.dir", filepath.Join(dir, "demo"))
	demo.Stderr = io.Discard
	if err := demo.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { demo.Process.Kill(); demo.Wait() })
	url = func(off int) string { return "http://127.0.0.1:" + strconv.Itoa(base+off) }
	ports := func(s string) string {
		for off := 0; off < 4; off++ {
			s = strings.ReplaceAll(s, "127.0.0.1:848"+strconv.Itoa(off), "127.0.0.1:"+strconv.Itoa(base+off))
			s = strings.ReplaceAll(s, "127.0.0.1:849"+strconv.Itoa(off), "127.0.0.1:"+strconv.Itoa(base+10+off))
		}
		return s
	}
	copyDir := func(from, to string, edit func(string) string) {
		os.MkdirAll(to, 0o755)
		files, _ := filepath.Glob(filepath.Join(from, "*.yml"))
		for _, f := range files {
			b, _ := os.ReadFile(f)
			os.WriteFile(filepath.Join(to, filepath.Base(f)), []byte(edit(string(b))), 0o644)
		}
	}
	copyDir("../../examples/rules", filepath.Join(dir, "rules"), shortFor)
	copyDir("../../examples/runbooks", filepath.Join(dir, "runbooks"), func(s string) string {
		s = strings.ReplaceAll(ports(s), "wait: 10s", "wait: 1s")
		for _, edit := range o.runbookEdits {
			s = edit(s)
		}
		return s
	})
	copyDir("../../examples/drills", filepath.Join(dir, "drills"), ports)
	example, _ := os.ReadFile("../../examples/vigil.yml")
	cfg := ports(string(example))
	cfg = strings.Replace(cfg, "startup_splay: 10s", "startup_splay: 0s", 1)
	cfg = strings.Replace(cfg, "global:\n", "global:\n  evaluation_interval: 1s\n", 1)
	cfg = strings.ReplaceAll(cfg, "grace: 30s", "grace: 1s")
	cfg = strings.ReplaceAll(cfg, "group_wait: 30s", "group_wait: 1s")
	cfg = strings.ReplaceAll(cfg, "data/demo/invoice-service.log", filepath.Join(dir, "invoice.log"))
	cfg = strings.ReplaceAll(cfg, "data/demo/primary.db", filepath.Join(dir, "demo", "primary.db"))
	for _, edit := range o.edits {
		cfg = edit(cfg)
	}
	// The database check needs the file the demo creates.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(dir, "demo", "primary.db")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the demo did not create its database")
		}
	}
	a = startAgentEnv(t, o.env, append([]string{"--config.file", writeConfig(t, dir, "vigil.yml", cfg), "--storage.path", filepath.Join(dir, "vigil.db")}, o.args...)...)
	return a, url, dir
}

var (
	forRE   = regexp.MustCompile(`for: \d+m`)
	alertRE = regexp.MustCompile(`^\s*- (alert|record): (\S+)`)
)

// shortFor shortens the shipped rules' `for` to 2s, except on the alerts
// about the test machine's own CPU and memory: the tests running beside
// this one keep the machine busy, and what they cost it is no page any
// test waits for (nor one a test may see go to on-call).
func shortFor(rules string) string {
	lines := strings.SplitAfter(rules, "\n")
	alert := ""
	for i, l := range lines {
		if m := alertRE.FindStringSubmatch(l); m != nil {
			alert = m[2]
		}
		if alert != "HostCPUHigh" && alert != "HostMemoryHigh" {
			lines[i] = forRE.ReplaceAllString(l, "for: 2s")
		}
	}
	return strings.Join(lines, "")
}

type e2eRun struct {
	ID, Runbook, Target, Trigger, State, Error string
	Timeline                                   []struct {
		Kind, Phase, Name, Error string
		Step                     *int
	}
}

// waitRun waits for a run of the runbook to reach a final state.
func waitRun(t *testing.T, a *agentProc, runbook string, timeout time.Duration) e2eRun {
	t.Helper()
	return waitRunWhere(t, a, runbook, "a finished run", timeout, func(r e2eRun) bool {
		return r.State != "running" && r.State != "waiting_approval"
	})
}

// waitRunWhere waits for a run of the runbook (with its timeline) for
// which ok holds.
func waitRunWhere(t *testing.T, a *agentProc, runbook, what string, timeout time.Duration, ok func(e2eRun) bool) e2eRun {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var resp struct{ Runs []e2eRun }
		json.Unmarshal([]byte(a.getAny(t, "/api/v1/runbooks/runs")), &resp)
		for _, r := range resp.Runs {
			if r.Runbook != runbook {
				continue
			}
			var full e2eRun
			json.Unmarshal([]byte(a.getAny(t, "/api/v1/runbooks/runs/"+r.ID)), &full)
			if ok(full) {
				return full
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no %s run with %s within %s: %s", runbook, what, timeout, a.getAny(t, "/api/v1/runbooks/runs"))
	return e2eRun{}
}

// TestRunbooksEndToEnd: a corrupted QR on the primary fires InvoiceQRFailing,
// invoice-failover checks the standby, switches the gateway, sees invoice_qr
// pass three times and notifies; dropped syncs fire InvoicesMissingUpstream
// and invoice-resync re-sends them and verifies. The journal has every step.
func TestRunbooksEndToEnd(t *testing.T) {
	t.Parallel()
	a, url := demoWithRunbooks(t)
	a.waitMetric(t, `vigil_check_success\{check="invoice_qr",type="invoice_qr",team="invoicing"\} 1`)

	httpDo(t, "POST", url(11)+"/admin/faults", `{"qr_wrong_amount":true}`)
	httpDo(t, "POST", a.url+"/api/v1/checks/invoice_qr/run", "")
	run := waitRun(t, a, "invoice-failover", 90*time.Second)
	if run.State != "succeeded" || run.Target != "e-invoice" || run.Trigger != "alert InvoiceQRFailing" {
		t.Fatalf("failover run: %+v", run)
	}
	var steps []string
	for _, e := range run.Timeline {
		if e.Kind == "step_end" && e.Error == "" {
			steps = append(steps, e.Phase+":"+strconvI(e.Step))
		}
	}
	if strings.Join(steps, ",") != "precondition:0,step:0,step:1,step:2" {
		t.Errorf("steps done: %v\n%+v", steps, run.Timeline)
	}
	if _, body := httpDo(t, "GET", url(10)+"/admin/active", ""); !strings.Contains(body, `"standby"`) {
		t.Errorf("gateway not on the standby: %s", body)
	}
	a.waitMetric(t, `vigil_runbook_runs_total\{runbook="invoice-failover",result="succeeded"\} 1`)
	// The notify step and the alert's page reached the demo pager.
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, pages := httpDo(t, "GET", url(10)+"/admin/pages", "")
		if strings.Contains(pages, "RunbookNotification") && strings.Contains(pages, "InvoiceQRFailing") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pages: %s", pages)
		}
		time.Sleep(250 * time.Millisecond)
	}
	// The CLI shows the timeline.
	out, errOut, code := run2(t, "runbook", "show", "--agent.url", a.url, run.ID)
	if code != 0 || !strings.Contains(out, "switch gateway to standby") || !strings.Contains(out, "succeeded") {
		t.Errorf("runbook show: %d\n%s%s", code, out, errOut)
	}

	// Syncs dropped, then the network is back: the resync runbook re-sends.
	httpDo(t, "POST", url(11)+"/admin/faults", `{"sync_drop_rate":1}`)
	// Straight to the primary: the gateway points at the standby now.
	st, body := httpDo(t, "POST", url(1)+"/api/v1/invoices", `{"seller":{"name":"S","tax_id":"91350100M000100Y43"},"buyer":{"name":"B","tax_id":"91440300708461136T"},"items":[{"name":"x","quantity":"1","unit_price":"10","tax_rate":"0.13"}]}`)
	if st != 201 {
		t.Fatalf("issue: %d %s", st, body)
	}
	time.Sleep(1500 * time.Millisecond) // past the grace period
	if _, body := httpDo(t, "POST", a.url+"/api/v1/checks/invoice_sync_primary/run", ""); !strings.Contains(body, "invoices_missing_upstream") {
		t.Fatalf("dropped sync not found: %s", body)
	}
	httpDo(t, "DELETE", url(11)+"/admin/faults", "") // the network is back; the dropped invoice stays missing
	resync := waitRun(t, a, "invoice-resync", 90*time.Second)
	if resync.State != "succeeded" {
		t.Fatalf("resync run: %+v", resync)
	}
}

func strconvI(p *int) string {
	if p == nil {
		return "-"
	}
	return strconv.Itoa(*p)
}

// run2 is run with the agent's CLI.
func run2(t *testing.T, args ...string) (string, string, int) { return run(t, args...) }
