package agent

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/agent/client"
)

// TestSLOPage: /slos/{name} and /api/v1/slos/{name} show the same
// attainment and budget, the SLI (checks or queries), the burn rates read
// from the evaluated recording rules and the burn-rate alert's state.
func TestSLOPage(t *testing.T) {
	a := newTestAgent(t)
	writeFile(t, a.state.Config().File, `global:
  timezone: Asia/Shanghai
checks:
  - name: host
    type: host
    host: {cpu_sample: 10ms, cpu_max: 1, memory_max: 1, disk_free_min: 0}
  - name: impossible-disk
    type: host
    host: {cpu_sample: 10ms, cpu_max: 1, memory_max: 1, disk_free_min: 1}
  - name: invoice-log
    type: logscan
    logscan: {paths: [/nonexistent/vigil-test.log], patterns: [{name: server_error, regex: " 5\\d\\d "}, {name: request, regex: "HTTP"}]}
slos:
  - name: host-up
    description: step one
    objective: 0.99
    window: 7d
    checks: [host, impossible-disk]
    labels: {team: ops}
  - name: api
    objective: 0.995
    sli:
      error_query: sum(rate(vigil_log_matches_total{check="invoice-log",pattern="server_error"}[{{.window}}]))
      total_query: sum(rate(vigil_log_matches_total{check="invoice-log",pattern="request"}[{{.window}}]))
`)
	ctx := context.Background()
	if err := a.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"host", "impossible-disk"} {
		if _, err := a.sched.RunNow(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	// Two scrapes for the recording rules' increase(): the first run as
	// if 30 s ago, then a second run of each.
	a.store.Flush(ctx)
	a.rules.EvalNow(ctx, time.Now().Add(-30*time.Second))
	for _, c := range []string{"host", "impossible-disk"} {
		if _, err := a.sched.RunNow(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	a.store.Flush(ctx)
	a.rules.EvalNow(ctx, time.Now())
	if err := a.slos.Refresh(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	h := a.web.Handler()
	get := func(path, lang string) (int, string) {
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("Accept-Language", lang)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}

	code, body := get("/api/v1/slos/host-up", "")
	if code != 200 {
		t.Fatalf("/api/v1/slos/host-up: %d %s", code, body)
	}
	var d client.SLODetail
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatal(err)
	}
	if d.Attainment == nil || *d.Attainment != 0.5 || d.BudgetRemaining == nil || d.Runs != 4 || d.Failed != 2 {
		t.Errorf("host-up: %s", body)
	}
	if len(d.BurnRates) != 2 || d.BurnRates[0].LongWindow != "1h" || d.BurnRates[0].ShortWindow != "5m" ||
		d.BurnRates[1].LongWindow != "6h" || d.BurnRates[1].ShortWindow != "30m" {
		t.Fatalf("burn rates: %+v", d.BurnRates)
	}
	// Half the runs failed: an error ratio of 0.5 against a budget of
	// 0.01 is a burn rate of 50; the thresholds for 7 days are 3.36 and 1.4.
	br := d.BurnRates[0]
	if br.Long == nil || br.Short == nil || *br.Long < 45 || *br.Long > 55 || !br.Exceeded || br.Threshold < 3.35 || br.Threshold > 3.37 {
		t.Errorf("1h/5m burn rate: %s", body)
	}
	if d.Alert.Alertname != "SLOErrorBudgetBurn" || (d.Alert.State != "inactive" && d.Alert.State != "firing") || d.Alert.Health != "ok" {
		t.Errorf("alert: %+v", d.Alert)
	}

	shanghai, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	code, page := get("/slos/host-up", "en")
	if code != 200 {
		t.Fatalf("/slos/host-up: %d %s", code, firstLine(page))
	}
	for _, want := range []string{`data-attainment="` + strconv.FormatFloat(*d.Attainment, 'g', -1, 64) + `"`,
		`data-budget="` + strconv.FormatFloat(*d.BudgetRemaining, 'g', -1, 64) + `"`,
		`<a href="/checks/impossible-disk">impossible-disk</a>`, "step one", "99%", "1w", `<svg class="burn large"`,
		`data-long="1h" data-short="5m"`, `data-long="6h" data-short="30m"`, "&gt; 3.36×", `data-state="` + d.Alert.State + `"`, "SLOErrorBudgetBurn: " + d.Alert.State,
		d.ComputedAt.In(shanghai).Format("2006-01-02 15:04:05"), "team"} {
		if !strings.Contains(page, want) {
			t.Errorf("/slos/host-up lacks %q", want)
		}
	}
	if _, zh := get("/slos/host-up", "zh-CN"); !strings.Contains(zh, "消耗速率") || !strings.Contains(zh, "长 / 短窗口") {
		t.Errorf("/slos/host-up in Chinese lacks its headings")
	}
	// The overview links each SLO to its page.
	if _, ov := get("/", ""); !strings.Contains(ov, `<a href="/slos/host-up">`) {
		t.Error("overview does not link the SLO to its page")
	}

	// A PromQL SLI shows its queries (an operator page: they may show).
	code, page = get("/slos/api", "en")
	if code != 200 || !strings.Contains(page, `pattern=&#34;server_error&#34;`) || !strings.Contains(page, "{{.window}}") {
		t.Errorf("/slos/api: %d, queries missing", code)
	}
	if code, body := get("/api/v1/slos/api", ""); code != 200 || !strings.Contains(body, `"error_query":`) {
		t.Errorf("/api/v1/slos/api: %d %s", code, body)
	}

	for _, p := range []string{"/slos/nope", "/api/v1/slos/nope"} {
		if code, _ := get(p, ""); code != 404 {
			t.Errorf("%s: %d, want 404", p, code)
		}
	}
	// Both routes check the Host like every other.
	for _, p := range []string{"/slos/host-up", "/api/v1/slos/host-up"} {
		req := httptest.NewRequest("GET", p, nil)
		req.Host = "evil.example"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 403 && rec.Code != 421 && rec.Code != 400 {
			t.Errorf("%s with Host evil.example: %d", p, rec.Code)
		}
	}
}
