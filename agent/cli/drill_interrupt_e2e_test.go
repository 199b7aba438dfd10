package cli_test

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDrillKill9KeepsReport: the agent is killed with SIGKILL in the middle
// of the shipped failover drill, after the page and the runbook run; at the
// next start the drill is rolled back and its report, state interrupted,
// still has the timeline, the measures, the runbook run and the page.
func TestDrillKill9KeepsReport(t *testing.T) {
	t.Parallel()
	a, url, dir := demoDir(t, fastChecks)
	drillRun := exec.Command(vigilBin, "drill", "run", "--agent.url", a.url, "--by", "li.wei", filepath.Join(dir, "drills", "invoice-qr-failover.yml"))
	if err := drillRun.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { drillRun.Process.Kill(); drillRun.Wait() })

	var id string
	deadline := time.Now().Add(60 * time.Second)
	for {
		var resp struct{ Runs []e2eReport }
		if json.Unmarshal([]byte(a.getAny(t, "/api/v1/drills/runs?limit=1")), &resp) == nil && len(resp.Runs) == 1 {
			r := resp.Runs[0]
			if r.State != "running" {
				t.Fatalf("the drill ended before the kill: %+v", r)
			}
			if !r.at("page_delivered").IsZero() && !r.at("runbook_started").IsZero() {
				id = r.ID
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no page and runbook run within 60s:\n%s", a.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	kill9(t, a)

	a = startAgent(t, "--config.file", filepath.Join(dir, "vigil.yml"), "--storage.path", filepath.Join(dir, "vigil.db"))
	var rep struct {
		e2eReport
		Pages []struct {
			Target, Status string
			Alerts         []string
		}
		Actions []struct{ Phase, Error string }
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		if json.Unmarshal([]byte(a.getAny(t, "/api/v1/drills/runs/"+id)), &rep) == nil && rep.State == "interrupted" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("drill %s not marked interrupted: %+v", id, rep)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, m := range []string{"drill_started", "fault_injected", "first_failed_check", "alert_firing", "page_delivered", "runbook_started", "fault_removed"} {
		if rep.at(m).IsZero() {
			t.Errorf("interrupted report lacks %s: %+v", m, rep.Marks)
		}
	}
	if rep.Measures["time_to_detect"] <= 0 || rep.Measures["time_to_page"] <= 0 {
		t.Errorf("measures %v", rep.Measures)
	}
	if len(rep.Runbooks) == 0 || rep.Runbooks[0].Runbook != "invoice-failover" {
		t.Errorf("runbook runs %+v", rep.Runbooks)
	}
	if len(rep.Pages) == 0 {
		t.Errorf("no pages in the interrupted report")
	}
	rolledBack := false
	for _, ac := range rep.Actions {
		rolledBack = rolledBack || ac.Phase == "rollback" && ac.Error == ""
	}
	if !rolledBack {
		t.Errorf("no rollback action: %+v", rep.Actions)
	}
	// The rollback put the gateway back on the primary.
	if _, body := httpDo(t, "GET", url(10)+"/admin/active", ""); !strings.Contains(body, "primary") {
		t.Errorf("gateway after the rollback: %s", body)
	}
}
