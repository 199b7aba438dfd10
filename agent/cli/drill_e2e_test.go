package cli_test

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-project/vigil/agent/drill"
	"github.com/vigil-project/vigil/internal/testenv"
)

// fastChecks runs the demo's minutely checks every 5s (timeout 5s) and
// rechecks failures every 2s, so a drill's milestones come in seconds; the
// page goes out as the alert fires (group_wait 0s), not racing the
// failover that resolves it.
func fastChecks(cfg string) string {
	cfg = strings.ReplaceAll(cfg, "group_wait: 1s", "group_wait: 0s")
	cfg = strings.ReplaceAll(cfg, "interval: 1m", "interval: 5s")
	cfg = strings.Replace(cfg, "timeout: 30s ", "timeout: 5s ", 1)
	return strings.Replace(cfg, "recheck_interval: 30s", "recheck_interval: 2s", 1)
}

type e2eReport struct {
	ID, Drill, State, Aborted string
	Marks                     []struct {
		Name   string
		At     time.Time
		Detail string
	}
	Measures   map[string]float64 `json:"measures_seconds"`
	Objectives []struct {
		Measure string
		Passed  bool
	}
	Runbooks []struct{ ID, Runbook, State string } `json:"runbook_runs"`
	Problems []string
}

func (r e2eReport) at(name string) time.Time {
	for _, m := range r.Marks {
		if m.Name == name {
			return m.At
		}
	}
	return time.Time{}
}

func latestDrill(t *testing.T, a *agentProc) e2eReport {
	t.Helper()
	var resp struct{ Runs []e2eReport }
	if err := json.Unmarshal([]byte(a.get(t, "/api/v1/drills/runs?limit=1")), &resp); err != nil || len(resp.Runs) == 0 {
		t.Fatalf("no drill run: %v", err)
	}
	return resp.Runs[0]
}

// TestDrillInvoiceQRFailover runs the shipped invoice-qr-failover drill
// with `vigil drill run` against the demo platform: every milestone is
// taken from a real event and comes in order, the objectives are computed,
// the report is written and kept, the runbook run and the pages carry the
// drill's marks, and nothing reaches the on-call receiver.
func TestDrillInvoiceQRFailover(t *testing.T) {
	t.Parallel()
	a, url, dir := demoDir(t, fastChecks)
	file := filepath.Join(dir, "drills", "invoice-qr-failover.yml")
	out, errOut, code := run(t, "drill", "run", "--agent.url", a.url, "--by", "li.wei", file)
	if code != 0 {
		t.Fatalf("drill run: exit %d\n%s%s\nagent:\n%s", code, out, errOut, a.logs.String())
	}
	for _, want := range []string{"drill invoice-qr-failover started", "fault_injected", "traffic_switched", "result: PASSED", "time_to_failover"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	rep := latestDrill(t, a)
	// Milestones that must come in this order (the page and the failover
	// race each other after the alert fires).
	for _, pair := range [][2]string{
		{"drill_started", "steady_state_verified"}, {"steady_state_verified", "fault_injected"}, {"fault_injected", "first_failed_check"},
		{"first_failed_check", "alert_pending"}, {"alert_pending", "alert_firing"}, {"alert_firing", "page_delivered"},
		{"alert_firing", "runbook_started"}, {"runbook_started", "traffic_switched"}, {"traffic_switched", "check_passing_again"},
		{"check_passing_again", "fault_removed"}, {"page_delivered", "fault_removed"}, {"fault_removed", "steady_state_restored"},
	} {
		// The runbook journal keeps milliseconds: compare at that precision.
		prev, cur := rep.at(pair[0]), rep.at(pair[1])
		if prev.IsZero() || cur.IsZero() || cur.Before(prev.Truncate(time.Millisecond)) {
			t.Errorf("%s (%s) missing or before %s (%s)", pair[1], cur, pair[0], prev)
		}
	}
	if len(rep.Objectives) != 4 || len(rep.Measures) != 4 {
		t.Errorf("objectives %+v measures %v", rep.Objectives, rep.Measures)
	}
	t.Logf("measures: %v", rep.Measures)
	if len(rep.Runbooks) != 1 || rep.Runbooks[0].Runbook != "invoice-failover" {
		t.Fatalf("runbook runs %+v", rep.Runbooks)
	}
	var runLabels struct{ Labels map[string]string }
	json.Unmarshal([]byte(a.get(t, "/api/v1/runbooks/runs/"+rep.Runbooks[0].ID)), &runLabels)
	if runLabels.Labels["drill"] != "true" || runLabels.Labels["drill_id"] != rep.ID {
		t.Errorf("runbook run without the drill's marks: %v", runLabels.Labels)
	}
	// Reports: Markdown and JSON beside the store, and in the store.
	for _, ext := range []string{".md", ".json"} {
		b, err := os.ReadFile(filepath.Join(dir, "drill-reports", "invoice-qr-failover-"+rep.ID+ext))
		if err != nil || !strings.Contains(string(b), "traffic_switched") {
			t.Errorf("report %s: %v", ext, err)
		}
	}
	md, _, _ := run(t, "drill", "show", "--agent.url", a.url, rep.ID)
	if !strings.Contains(md, "## Objectives") || !strings.Contains(md, "invoice-failover") {
		t.Errorf("drill show:\n%s", md)
	}
	hist, _, _ := run(t, "drill", "history", "--agent.url", a.url, "invoice-qr-failover")
	if !strings.Contains(hist, "1 finished run(s)") || !strings.Contains(hist, "time_to_detect") {
		t.Errorf("drill history:\n%s", hist)
	}
	// The gateway is back on the primary; no page reached on-call.
	if _, body := httpDo(t, "GET", url(10)+"/admin/active", ""); !strings.Contains(body, "primary") {
		t.Errorf("gateway after the rollback: %s", body)
	}
	// Rules evaluated again after the rollback and nothing left to deliver:
	// a page to on-call would be in the inbox by now.
	a.waitEvaluations(t, 3)
	a.waitQueuesEmpty(t)
	drillSpec, err := drill.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	_, pagesBody := httpDo(t, "GET", url(10)+"/admin/pages", "")
	var inbox struct {
		Pages []struct {
			Payload struct {
				Receiver string
				Alerts   []struct{ Labels map[string]string }
			}
		}
	}
	json.Unmarshal([]byte(pagesBody), &inbox)
	drillPages := 0
	for _, p := range inbox.Pages {
		for _, al := range p.Payload.Alerts {
			if al.Labels["drill_id"] == rep.ID {
				drillPages++
				if p.Payload.Receiver != "drills" {
					t.Errorf("a drill page went to %q: %v", p.Payload.Receiver, al.Labels)
				}
			}
			// Pages about the drill's own check must go the drill route;
			// others (a busy CI machine's HostCPUHigh) are not the
			// drill's to judge.
			if p.Payload.Receiver == "oncall" && slices.Contains(drillSpec.Checks, al.Labels["check"]) {
				t.Errorf("on-call was paged during the drill: %v", al.Labels)
			}
		}
	}
	if drillPages == 0 {
		t.Errorf("no drill page in the demo's inbox: %s", pagesBody)
	}
}

// TestDrillStopConditionAndCtrlC: a stop condition aborts a drill early and
// its rollback runs; Ctrl-C on `vigil drill run` aborts the drill through
// the agent, which rolls back (the simulated failure ends, the check
// passes again).
func TestDrillStopConditionAndCtrlC(t *testing.T) {
	t.Parallel()
	a, _, dir := demoDir(t, fastChecks)
	stop := filepath.Join(dir, "stop.yml")
	os.WriteFile(stop, []byte(`name: stop-early
hypothesis: a drill stops when its stop condition is met
checks: [tax-upstream]
inject:
  - simulate: {checks: [tax-upstream], reason: timeout}
duration: 5m
stop_conditions:
  - description: any drill is active
    expr: vigil_drill_active == 1
rollback:
  - name: note
    exec: {argv: [touch, `+filepath.Join(dir, "rolled-back")+`]}
`), 0o644)
	out, errOut, code := run(t, "drill", "run", "--agent.url", a.url, stop)
	if code == 0 || !strings.Contains(out, "result: ABORTED (stop condition: any drill is active") {
		t.Fatalf("stop condition: %d\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "rolled-back")); err != nil {
		t.Errorf("rollback did not run after the stop condition: %v", err)
	}

	// Ctrl-C: the CLI runs as its own process and gets SIGINT once the
	// fault is in.
	cmd := exec.Command(vigilBin, "drill", "run", "--agent.url", a.url, filepath.Join(dir, "drills", "database-unreachable.yml"))
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var lines []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if strings.Contains(sc.Text(), "fault_injected") {
			cmd.Process.Signal(syscall.SIGINT)
		}
	}
	cmd.Wait()
	text := strings.Join(lines, "\n")
	if !strings.Contains(text, "aborting: the agent runs the rollback") || !strings.Contains(text, "result: ABORTED") || !strings.Contains(text, "fault_removed") {
		t.Fatalf("Ctrl-C:\n%s", text)
	}
	rep := latestDrill(t, a)
	if rep.State != "aborted" || !strings.Contains(rep.Aborted, "aborted by") || rep.at("fault_removed").IsZero() {
		t.Errorf("report after Ctrl-C: %+v", rep)
	}
	// The simulation ended: the check runs for real and passes.
	if _, body := httpDo(t, "POST", a.url+"/api/v1/checks/invoice-db/run", ""); !strings.Contains(body, `"success": true`) {
		t.Errorf("invoice-db after the drill: %s", body)
	}
}

// TestDrillUpstreamNetworkLoss runs the shipped upstream-network-loss
// drill: nftables drops the packets to the demo's tax platform, the TCP
// check times out, UpstreamUnreachable pages the drill receiver, the
// rollback deletes the drill's nft table and the checks pass again.
func TestDrillUpstreamNetworkLoss(t *testing.T) {
	t.Parallel()
	if err := exec.Command("nft", "list", "tables").Run(); err != nil {
		testenv.Missingf(t, "nftables", "`nft list tables` fails here (apt-get install nftables; needs CAP_NET_ADMIN): %v", err)
	}
	t.Cleanup(func() { exec.Command("nft", "delete", "table", "inet", "vigil_drill").Run() })
	a, url, dir := demoDir(t, fastChecks)
	// The drill names the demo's upstream port; point it at this test's.
	file := filepath.Join(dir, "drills", "upstream-network-loss.yml")
	b, _ := os.ReadFile(file)
	os.WriteFile(file, []byte(strings.ReplaceAll(string(b), "'8483'", "'"+strings.TrimPrefix(url(3), "http://127.0.0.1:")+"'")), 0o644)
	out, errOut, code := run(t, "drill", "run", "--agent.url", a.url, file)
	if code != 0 {
		t.Fatalf("drill run: exit %d\n%s%s\nagent:\n%s", code, out, errOut, a.logs.String())
	}
	rep := latestDrill(t, a)
	detected := ""
	for _, m := range rep.Marks {
		if m.Name == "first_failed_check" {
			detected = m.Detail
		}
	}
	if rep.State != "passed" || !strings.Contains(detected, "timeout") || rep.at("page_delivered").IsZero() ||
		rep.at("check_passing_again").Before(rep.at("fault_removed")) {
		t.Errorf("report %+v\n%s", rep, out)
	}
	if err := exec.Command("nft", "list", "table", "inet", "vigil_drill").Run(); err == nil {
		t.Error("the rollback left the drill's nft table behind")
	}
}

// TestShippedDrillsPass runs the other shipped drills against the demo
// with fast checks: invoice-sync-dropped (the resync runbook repairs what
// the sync dropped) and database-unreachable (simulated inside the agent).
func TestShippedDrillsPass(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		drill, failover string
		paged           bool
	}{
		{"invoice-sync-dropped", "invoice-resync", false}, // paged or not: the resync races group_wait
		{"database-unreachable", "", true},
	} {
		t.Run(tc.drill, func(t *testing.T) {
			t.Parallel()
			a, _, dir := demoDir(t, fastChecks, func(cfg string) string {
				return strings.ReplaceAll(cfg, "interval: 5m", "interval: 5s")
			})
			out, errOut, code := run(t, "drill", "run", "--agent.url", a.url, filepath.Join(dir, "drills", tc.drill+".yml"))
			if code != 0 {
				t.Fatalf("drill run: exit %d\n%s%s\nagent:\n%s", code, out, errOut, a.logs.String())
			}
			rep := latestDrill(t, a)
			if rep.State != "passed" || tc.paged && rep.at("page_delivered").IsZero() || rep.at("steady_state_restored").IsZero() {
				t.Errorf("report %+v", rep)
			}
			if tc.failover != "" && (len(rep.Runbooks) != 1 || rep.Runbooks[0].Runbook != tc.failover || rep.Runbooks[0].State != "succeeded") {
				t.Errorf("runbook runs %+v", rep.Runbooks)
			}
			t.Logf("measures: %v", rep.Measures)
		})
	}
}
