package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPromQLSLIInAgent: an SLO whose SLI is request and error lines counted
// by a logscan check gets its events from the rule engine's samples of
// vigil_log_matches_total, in the agent as configured.
func TestPromQLSLIInAgent(t *testing.T) {
	a := newTestAgent(t)
	dir := filepath.Dir(a.state.Config().File)
	logPath := filepath.Join(dir, "api.log")
	writeFile(t, logPath, "")
	writeFile(t, a.state.Config().File, fmt.Sprintf(`checks:
  - name: api-log
    type: logscan
    logscan:
      paths: [%q]
      patterns:
        - {name: request, regex: '"msg":"request"'}
        - {name: server_error, regex: '"level":"ERROR","msg":"request"'}
slos:
  - name: api
    objective: 0.9
    sli:
      error_query: sum(rate(vigil_log_matches_total{check="api-log",pattern="server_error"}[{{.window}}]))
      total_query: sum(rate(vigil_log_matches_total{check="api-log",pattern="request"}[{{.window}}]))
`, logPath))
	ctx := context.Background()
	if err := a.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	// The engine scrapes the counters before and after 100 requests, 20 of
	// them server errors, within the current hour.
	now := time.Now()
	hour := now.Truncate(time.Hour)
	if now.Sub(hour) < 2*time.Minute {
		now = hour.Add(2 * time.Minute) // an SLI is read over a minute at least
	}
	if _, err := a.sched.RunNow(ctx, "api-log"); err != nil {
		t.Fatal(err)
	}
	a.rules.EvalNow(ctx, now.Add(-50*time.Second))
	var lines strings.Builder
	for i := range 100 {
		level := "INFO"
		if i%5 == 0 {
			level = "ERROR"
		}
		fmt.Fprintf(&lines, `{"level":%q,"msg":"request","path":"/api/invoices"}`+"\n", level)
	}
	f, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(lines.String())
	f.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := a.sched.RunNow(ctx, "api-log"); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(metricsText(t, a), `vigil_log_matches_total{check="api-log",type="logscan",pattern="request"} 100`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("logscan did not count the 100 requests:\n%s", metricsText(t, a))
		}
		time.Sleep(100 * time.Millisecond)
	}
	a.rules.EvalNow(ctx, now.Add(-20*time.Second))
	if err := a.slos.Refresh(ctx, now); err != nil {
		t.Fatal(err)
	}
	st := a.slos.Statuses()[0]
	if st.Runs == 0 || st.Failed == 0 {
		t.Fatalf("SLI events: %d total, %d bad; want some of each", st.Runs, st.Failed)
	}
	// rate() spreads the counted increase over its whole range, so the
	// events are extrapolated; the share of bad ones is what the lines say.
	if a, _ := st.Attainment(); a < 0.79 || a > 0.81 {
		t.Errorf("attainment %v from %d events, %d bad; want 0.8", a, st.Runs, st.Failed)
	}
}

// metricsText is the agent's /metrics.
func metricsText(t *testing.T, a *Agent) string {
	t.Helper()
	var b strings.Builder
	a.exporter.WritePrometheus(&b)
	return b.String()
}
