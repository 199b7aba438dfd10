package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/agent/drill"
	"github.com/vigil-project/vigil/agent/lastrun"
	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/agent/notify/route"
	"github.com/vigil-project/vigil/agent/store"
	"github.com/vigil-project/vigil/agent/web"
	"github.com/vigil-project/vigil/probes"
	"github.com/vigil-project/vigil/probes/network"
)

// TestStatusPages renders each page against an agent with a passing and a
// failing check.
func TestStatusPages(t *testing.T) {
	a := newTestAgent(t)
	cfg := a.state.Config().File
	writeFile(t, cfg, `checks:
  - name: host
    type: host
    host: {cpu_sample: 10ms, cpu_max: 1, memory_max: 1, disk_free_min: 0}
  - name: impossible-disk
    type: host
    host: {cpu_sample: 10ms, cpu_max: 1, memory_max: 1, disk_free_min: 1}
slos:
  - name: host-up
    description: step one
    objective: 0.99
    checks: [host, impossible-disk]
`)
	if err := a.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"host", "impossible-disk"} {
		if _, err := a.sched.RunNow(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.store.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	// What the agent's loops refresh every minute.
	if err := a.uptime.Refresh(context.Background(), a.store, time.Now(), true); err != nil {
		t.Fatal(err)
	}
	if err := a.slos.Refresh(context.Background(), time.Now()); err != nil {
		t.Fatal(err)
	}
	h := a.web.Handler()
	get := func(path, lang string) (int, string) {
		req := httptest.NewRequest("GET", path, nil)
		if lang != "" {
			req.Header.Set("Accept-Language", lang)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	tests := []struct {
		path, lang string
		status     int
		want       []string
	}{
		{"/", "", 200, []string{`id="step-host"`, `data-check="impossible-disk" data-status="fail"`, `data-check="host" data-status="ok"`,
			"disk_low", `<span class="runbar"`, `<i class="fail" tabindex="0"`, "1. Host: CPU, memory, disk",
			`data-slo="host-up"`, "step one", "99% / 30d", "50.00%", "1 / 2 runs failed", `class="budget over">-4900.00%`, `<svg class="burn"`,
			`<td class="uptime">100%</td>`, `<td class="uptime">0.00%</td>`, "No checks configured for this step.", `name="csrf"`}},
		{"/", "zh-CN,zh;q=0.9", 200, []string{"1. 服务器：CPU、内存、磁盘", "总览", `lang="zh-CN"`}},
		{"/checks/host", "", 200, []string{`id="uptime"`, `<div data-window="24h"><dt>24h</dt><dd title="1 / 1">100%</dd>`, `<span class="runbar"`, `<i class="ok"`}},
		{"/checks/impossible-disk", "", 200, []string{`id="last-failure"`, "disk_low", "Failure reasons in the history", "Run now", `data-key="violations"`}},
		{"/checks/nope", "", 404, []string{"no check named nope"}},
		{"/alerts", "", 200, []string{"No active alerts.", "New silence"}},
		{"/alerts?matchers=" + url.QueryEscape(`alertname="X"`), "", 200, []string{`alertname=&#34;X&#34;</textarea>`}},
		{"/runbooks", "", 200, []string{"No runbooks loaded.", "No runs yet."}},
		{"/runbooks/runs/nope", "", 404, []string{"no such run"}},
		{"/drills", "", 200, []string{"No drills loaded."}},
		{"/drills/runs/nope", "", 404, []string{}},
		{"/static/vigil.css", "", 200, []string{"@media (max-width: 640px)"}},
		{"/static/vigil.js", "", 200, []string{"autorefresh"}},
	}
	for _, tt := range tests {
		t.Run(tt.path+" "+tt.lang, func(t *testing.T) {
			code, body := get(tt.path, tt.lang)
			if code != tt.status {
				t.Fatalf("%d, want %d: %s", code, tt.status, firstLine(body))
			}
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("page does not contain %q", w)
				}
			}
			if strings.Contains(body, "<script>") || strings.Contains(body, "style=") || strings.Contains(body, "http://cdn") || strings.Contains(body, "https://") {
				t.Errorf("inline script/style or an external asset in %s", tt.path)
			}
		})
	}
}

// TestStatusPageRunCheck posts the run-now form as a browser would.
func TestStatusPageRunCheck(t *testing.T) {
	a := newTestAgent(t)
	h := a.web.Handler()
	req := withForm(httptest.NewRequest("POST", "/ui/checks/host/run", nil), url.Values{"csrf": {a.web.FormToken("")}})
	req.RemoteAddr = "127.0.0.1:1234"
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 303 || rec.Header().Get("Location") != "/checks/host?flash=ran" {
		t.Fatalf("%d %s", rec.Code, rec.Header().Get("Location"))
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/checks/host?flash=ran", nil))
	if !strings.Contains(rec.Body.String(), "Check ran.") || !strings.Contains(rec.Body.String(), `class="history"`) {
		t.Errorf("check page after run: %s", rec.Body.String())
	}
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkStatusPage renders the overview (store reads, 30-run
// sparklines) and a check's detail (200 runs) for 10 checks with full
// histories: what one browser tab costs the agent every 15 s.
func BenchmarkStatusPage(b *testing.B) {
	dir := b.TempDir()
	var cfg strings.Builder
	cfg.WriteString("checks:\n")
	for i := range 10 {
		fmt.Fprintf(&cfg, "  - name: host-%d\n    type: host\n    host: {cpu_sample: 1ms, cpu_max: 1, memory_max: 1, disk_free_min: 0}\n", i)
	}
	path := dir + "/vigil.yml"
	os.WriteFile(path, []byte(cfg.String()), 0o644)
	a, err := New(context.Background(), Options{ConfigFile: path, StoragePath: dir + "/vigil.db"})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.sched.Run(ctx); close(done) }()
	defer func() { cancel(); <-done; a.closeStore() }()
	if err := a.sched.Update(ctx, a.jobs); err != nil {
		b.Fatal(err)
	}
	for range 200 {
		for i := range 10 {
			if _, err := a.sched.RunNow(ctx, fmt.Sprintf("host-%d", i)); err != nil {
				b.Fatal(err)
			}
		}
	}
	a.store.Flush(ctx)
	h := a.web.Handler()
	for name, page := range map[string]string{"overview": "/", "check": "/checks/host-3"} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			var size int
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest("GET", page, nil))
				if rec.Code != 200 {
					b.Fatalf("%d", rec.Code)
				}
				size = rec.Body.Len()
			}
			b.ReportMetric(float64(size), "bytes/page")
		})
	}
}

// TestCheckPageDiagnostics: a traceroute becomes a table of hops, plain
// diagnostics one key/value table, lists of objects tables with a column
// per field, nothing is shown as quoted JSON.
func TestCheckPageDiagnostics(t *testing.T) {
	a := newTestAgent(t)
	a.state.Record("host", lastrun.From(probes.Result{Success: false, Reason: probes.ReasonTimeout, Message: "no answer", Start: time.Now(),
		Diagnostics: map[string]any{
			"traceroute":  []network.Hop{{TTL: 1, Addr: "10.0.0.1", RTTSeconds: 0.0012}, {TTL: 2}, {TTL: 3, Addr: "198.51.100.7", RTTSeconds: 0.03, Reached: true}},
			"qr_decoded":  "01,32,,24312000000136634917,0.01,20240514,,1DD6",
			"qr_expected": "01,32,,24312000000136634917,100.00,20240514,,1DD6",
			"patterns": []struct {
				Pattern string   `json:"pattern"`
				Matches int      `json:"matches"`
				Lines   []string `json:"lines"`
			}{{"sync_failed", 2, []string{`{"msg":"sync failed","token":"<redacted>"}`, "second <line>"}}},
			"violations": []string{"disk_low: / 3% free"},
		}}))
	rec := httptest.NewRecorder()
	a.web.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/checks/host", nil))
	body := rec.Body.String()
	for _, want := range []string{`<table class="hops">`, "<td>10.0.0.1</td><td>1.2 ms</td>", "<td>2</td><td>*</td>", "198.51.100.7",
		`<tr data-key="qr_decoded"><th>qr_decoded</th><td>01,32,,24312000000136634917`, `<tr data-key="qr_expected">`,
		`<div class="diag" data-key="patterns"><div class="scroll"><table class="diag cols"><thead><tr><th>pattern</th><th>matches</th><th>lines</th></tr></thead>`,
		`<td>sync_failed</td><td><span title="2">2</span></td><td><ul class="vals"><li>{&#34;msg&#34;:&#34;sync failed&#34;,&#34;token&#34;:&#34;&lt;redacted&gt;&#34;}</li><li>second &lt;line&gt;</li></ul></td>`,
		`<div class="diag" data-key="violations"><ul class="vals"><li>disk_low: / 3% free</li></ul></div>`} {
		if !strings.Contains(body, want) {
			t.Errorf("check page lacks %q", want)
		}
	}
	if strings.Contains(body, `data-key="traceroute"`) {
		t.Error("the traceroute is shown raw as well as a table")
	}
	if strings.Contains(body, "<pre") {
		t.Error("diagnostics shown as preformatted JSON")
	}
}

// TestStatusPageCheckDetail: phases in the order they ran, values with
// their units (the raw number in the title), the next run, times in the
// configured zone, Chinese durations; the API has phases and next_run.
func TestStatusPageCheckDetail(t *testing.T) {
	a := newTestAgent(t)
	writeFile(t, a.state.Config().File, `global: {timezone: Asia/Shanghai, startup_splay: 0s}
checks:
  - name: host
    type: host
    interval: 1h
    host: {cpu_sample: 10ms, cpu_max: 1, memory_max: 1, disk_free_min: 0}
`)
	if err := a.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.sched.RunNow(context.Background(), "host"); err != nil {
		t.Fatal(err)
	}
	start := time.Date(2025, 3, 1, 1, 2, 3, 0, time.UTC) // 09:02:03 in Shanghai
	a.state.Record("host", lastrun.From(probes.Result{Success: true, Start: start, Duration: 1500 * time.Millisecond,
		Phases: []probes.Phase{{Name: "resolve", Duration: 2 * time.Millisecond}, {Name: "connect", Duration: 30 * time.Millisecond},
			{Name: "tls", Duration: 40 * time.Millisecond}, {Name: "body", Duration: 5 * time.Millisecond}},
		Values: []probes.Value{{Name: "vigil_host_memory_available_bytes", Value: 3 << 30}, {Name: "vigil_host_memory_used_ratio", Value: 0.4213},
			{Name: "vigil_http_status_code", Value: 200}, {Name: "vigil_log_lines_total", Value: 123456}, {Name: "vigil_host_load1", Value: 0.52}}}))
	get := func(path, lang string) string {
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("Accept-Language", lang)
		rec := httptest.NewRecorder()
		a.web.Handler().ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Fatalf("%s: %d", path, rec.Code)
		}
		return rec.Body.String()
	}
	// The splayed first run may be in flight (no next run then): wait
	// until the scheduler has the next one.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if next, _ := a.sched.NextRun("host"); !next.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the host check has no next run after 15 s")
		}
	}
	body := get("/checks/host", "en")
	phases := regexp.MustCompile(`data-phase="(\w+)"`).FindAllStringSubmatch(body, -1)
	var order []string
	for _, m := range phases {
		order = append(order, m[1])
	}
	if strings.Join(order, ",") != "resolve,connect,tls,body" {
		t.Errorf("phases shown in the order %v", order)
	}
	for _, want := range []string{
		`<td title="3221225472">3.00 GiB</td>`, `<td title="0.4213">42.13%</td>`, `<td title="200">200</td>`,
		`<td title="123456">123456</td>`, `<td title="0.52">0.52</td>`, `<td title="0.03 s">30.0 ms</td>`,
		"2025-03-01 09:02:03", `<dd id="next-run"><time datetime=`, ">in ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("check page lacks %q", want)
		}
	}
	zh := get("/checks/host", "zh-CN")
	for _, want := range []string{"下次运行", "后</time>", "30.0 毫秒"} {
		if !strings.Contains(zh, want) {
			t.Errorf("Chinese check page lacks %q", want)
		}
	}
	over := get("/", "zh-CN")
	if !regexp.MustCompile(`>\d+天\d{2}小时前</time>`).MatchString(over) {
		t.Errorf("Chinese overview: the last run is not in days and hours ago")
	}
	var view struct {
		NextRun    time.Time `json:"next_run"`
		LastResult struct {
			Phases []struct {
				Name    string
				Seconds float64
			} `json:"phases"`
			PhasesSeconds map[string]float64 `json:"phases_seconds"`
		} `json:"last_result"`
	}
	if err := json.Unmarshal([]byte(get("/api/v1/checks/host", "")), &view); err != nil {
		t.Fatal(err)
	}
	if view.NextRun.Before(time.Now()) || view.NextRun.After(time.Now().Add(2*time.Hour)) {
		t.Errorf("API next_run %v, want within the interval or two", view.NextRun)
	}
	if len(view.LastResult.Phases) != 4 || view.LastResult.Phases[0].Name != "resolve" || view.LastResult.PhasesSeconds["tls"] != 0.04 {
		t.Errorf("API phases %+v %v", view.LastResult.Phases, view.LastResult.PhasesSeconds)
	}
}

// TestAlertsPage: pending, firing and silenced alerts from the agent's own
// rule engine, and the silence link prefilled with the alert's identity.
func TestAlertsPage(t *testing.T) {
	a := newTestAgent(t)
	dir := filepath.Dir(a.state.Config().File)
	writeFile(t, filepath.Join(dir, "ui.rules.yml"), `groups:
  - name: ui
    rules:
      - alert: HostCheckFailing
        expr: vigil_check_success{check="impossible-disk"} == 0
        annotations: {summary: "disk check fails"}
      - alert: HostCheckSlow
        expr: vigil_check_success{check="impossible-disk"} == 0
        for: 1h
      - alert: Muted
        expr: vigil_check_success{check="impossible-disk"} == 0
`)
	writeFile(t, a.state.Config().File, `rule_files: [ui.rules.yml]
checks:
  - name: impossible-disk
    type: host
    host: {cpu_sample: 10ms, cpu_max: 1, memory_max: 1, disk_free_min: 1}
`)
	ctx := context.Background()
	if err := a.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.sched.RunNow(ctx, "impossible-disk"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.pager.Silences().Add(ctx, route.Silence{Matchers: []string{`alertname="Muted"`}, StartsAt: time.Now(),
		EndsAt: time.Now().Add(time.Hour), CreatedBy: "test", Comment: "muted in the test"}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	a.rules.EvalNow(ctx, now)
	rec := httptest.NewRecorder()
	a.web.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/alerts", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`data-alert="HostCheckFailing" data-state="firing"`, "disk check fails",
		`data-alert="HostCheckSlow" data-state="pending"`,
		`data-alert="Muted" data-state="firing"`, `<span class="badge muted">silenced</span>`,
		`/alerts?matchers=alertname%3D%22HostCheckFailing%22&amp;matchers=check%3D%22impossible-disk%22#new-silence`,
		"muted in the test",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("alerts page lacks %q", want)
		}
	}
	// The overview counts them.
	rec = httptest.NewRecorder()
	a.web.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if !strings.Contains(rec.Body.String(), "<b>1</b><span>alerts firing · 1 pending") {
		t.Errorf("overview tiles: %s", rec.Body.String())
	}
}

// TestMaintenanceWindowShown: an alert whose route is in a maintenance
// window reads "in maintenance" on the alerts page (with the window's
// name), is not counted as needing attention, and the window is listed
// by the overview, the API and /metrics.
func TestMaintenanceWindowShown(t *testing.T) {
	a := newTestAgent(t)
	dir := filepath.Dir(a.state.Config().File)
	writeFile(t, filepath.Join(dir, "ui.rules.yml"), `groups:
  - name: ui
    rules:
      - alert: TaxUpstreamDown
        expr: vigil_check_success{check="impossible-disk"} == 0
      - alert: HostCheckFailing
        expr: vigil_check_success{check="impossible-disk"} == 0
`)
	writeFile(t, a.state.Config().File, `rule_files: [ui.rules.yml]
checks:
  - name: impossible-disk
    type: host
    host: {cpu_sample: 10ms, cpu_max: 1, memory_max: 1, disk_free_min: 1}
notify:
  time_intervals:
    - name: tax-maintenance
      time_intervals: [{weekdays: ['sunday:saturday'], location: Asia/Shanghai}]
    - name: far-future
      time_intervals: [{years: ['2099']}]
  route:
    receiver: oncall
    routes:
      - matchers: [alertname=TaxUpstreamDown]
        mute_time_intervals: [tax-maintenance]
  receivers:
    - name: oncall
      webhook_configs: [{url: "http://127.0.0.1:9/hook"}]
`)
	ctx := context.Background()
	if err := a.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.sched.RunNow(ctx, "impossible-disk"); err != nil {
		t.Fatal(err)
	}
	a.rules.EvalNow(ctx, time.Now())
	get := func(path string) string {
		rec := httptest.NewRecorder()
		a.web.Handler().ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != 200 {
			t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
		}
		return rec.Body.String()
	}
	for path, wants := range map[string][]string{
		"/alerts": {`data-alert="TaxUpstreamDown" data-state="firing"`, `<span class="badge muted">in maintenance</span><br><small>tax-maintenance</small>`,
			`<tr class="window" data-window="tax-maintenance" data-active="true">`, `<tr class="window" data-window="far-future" data-active="false">`,
			`<code>oncall {alertname=&#34;TaxUpstreamDown&#34;}</code> sends nothing within it`},
		"/":        {`data-window="tax-maintenance"`, "<b>1</b><span>alerts firing"},
		"/metrics": {`vigil_notify_time_interval_active{time_interval="tax-maintenance"} 1`, `vigil_notify_time_interval_active{time_interval="far-future"} 0`},
	} {
		body := get(path)
		for _, want := range wants {
			if !strings.Contains(body, want) {
				t.Errorf("%s lacks %q", path, want)
			}
		}
	}
	var api struct {
		TimeIntervals []route.Window `json:"time_intervals"`
	}
	if err := json.Unmarshal([]byte(get("/api/v1/time_intervals")), &api); err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("%+v", api.TimeIntervals)
	want := `[{Name:far-future Active:false NextChange:2099-01-01 00:00:00 +0000 UTC MutedRoutes:[] ActiveRoutes:[]} {Name:tax-maintenance Active:true NextChange:0001-01-01 00:00:00 +0000 UTC MutedRoutes:[oncall {alertname="TaxUpstreamDown"}] ActiveRoutes:[]}]`
	if got != want {
		t.Errorf("/api/v1/time_intervals = %s\nwant %s", got, want)
	}
}

// TestOverviewFoldsPassing: a step with more than 20 passing checks shows
// its failing ones as rows and folds the passing ones into one line of
// names; a name search shows every match as a row.
func TestOverviewFoldsPassing(t *testing.T) {
	a := newTestAgent(t)
	var cfg strings.Builder
	cfg.WriteString("checks:\n")
	for i := range 25 {
		fmt.Fprintf(&cfg, "  - {name: host%02d, type: host, host: {cpu_sample: 1ms, cpu_max: 1, memory_max: 1, disk_free_min: 0}}\n", i)
	}
	cfg.WriteString("  - {name: full-disk, type: host, host: {cpu_sample: 1ms, cpu_max: 1, memory_max: 1, disk_free_min: 1}}\n")
	writeFile(t, a.state.Config().File, cfg.String())
	ctx := context.Background()
	if err := a.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range a.state.Config().Checks {
		if _, err := a.sched.RunNow(ctx, c.Name); err != nil {
			t.Fatal(err)
		}
	}
	get := func(path string) string {
		rec := httptest.NewRecorder()
		a.web.Handler().ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		return rec.Body.String()
	}
	body := get("/")
	if n := strings.Count(body, `<tr class="check"`); n != 1 || !strings.Contains(body, `data-check="full-disk"`) {
		t.Errorf("overview shows %d rows, want only the failing check", n)
	}
	if !strings.Contains(body, "25 more passing (folded)") || !strings.Contains(body, `<a href="/checks/host07">host07</a>`) {
		t.Error("passing checks not folded into a line of names")
	}
	body = get("/?q=host1")
	if n := strings.Count(body, `<tr class="check"`); n != 10 || !strings.Contains(body, "10 / 26") {
		t.Errorf("search shows %d rows, want host10–host19", n)
	}
}

// TestStatusPageRunNotifyReceiver: a runbook run's notify step is labelled
// with its receiver, and step details are tables, not JSON.
func TestStatusPageRunNotifyReceiver(t *testing.T) {
	a := newTestAgent(t)
	ctx := context.Background()
	now := time.Now()
	if err := a.store.CreateRun(ctx, store.RunRow{ID: "r1", Runbook: "invoice-failover", Target: "e-invoice", Trigger: "manual", Labels: "{}",
		Mode: "enforce", State: "succeeded", CreatedAt: now}, store.RunEvent{At: now, Kind: "created", Detail: "ops"}); err != nil {
		t.Fatal(err)
	}
	for _, ev := range []store.RunEvent{
		{At: now, Kind: "step_start", Phase: "steps", Step: 2, Name: "tell on-call", Attempt: 1,
			Detail: `{"name":"tell on-call","kind":"notify","check":"oncall","message":"failed over"}`},
		{At: now, Kind: "step_end", Phase: "steps", Step: 2, Attempt: 1, Detail: `{"status":"ok"}`, Took: 12 * time.Millisecond},
	} {
		if err := a.store.AddRunEvent(ctx, "r1", ev); err != nil {
			t.Fatal(err)
		}
	}
	for lang, want := range map[string][]string{
		"en": {`<span class="badge receiver" data-receiver="oncall">receiver: oncall</span>`, "<th>receiver</th><td>oncall</td>", "<th>message</th><td>failed over</td>"},
		"zh": {`接收方: oncall</span>`, "<th>接收方</th><td>oncall</td>"},
	} {
		req := httptest.NewRequest("GET", "/runbooks/runs/r1?lang="+lang, nil)
		rec := httptest.NewRecorder()
		a.web.Handler().ServeHTTP(rec, req)
		body := rec.Body.String()
		if rec.Code != 200 {
			t.Fatalf("%d %s", rec.Code, body)
		}
		if n := strings.Count(body, `data-receiver="oncall"`); n != 2 {
			t.Errorf("%s: %d events labelled with the receiver, want the step's 2", lang, n)
		}
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Errorf("%s: run page lacks %q", lang, w)
			}
		}
		if strings.Contains(body, `"check"`) || strings.Contains(body, "<pre>{") {
			t.Errorf("%s: step detail shown as JSON", lang)
		}
	}
}

// TestStatusPageDrillReport: a drill report lists each fact once (a
// measure an objective shows is not listed again, the Markdown is a
// link, not a copy) with durations as `vigil drill run` prints them.
func TestStatusPageDrillReport(t *testing.T) {
	a := newTestAgent(t)
	t0 := time.Date(2025, 3, 1, 1, 0, 0, 0, time.UTC)
	detect, failover := 12.34, 95.0
	rep := drill.Report{ID: "d1", Drill: "invoice-qr-failover", State: drill.StatePassed, Checks: []string{"invoice_qr"},
		StartedAt: t0.Add(-5 * time.Second), FinishedAt: t0.Add(3 * time.Minute),
		Marks: []drill.Mark{{Name: drill.MarkStarted, At: t0.Add(-5 * time.Second)}, {Name: drill.MarkInjected, At: t0},
			{Name: drill.MarkFirstFailure, At: t0.Add(12340 * time.Millisecond)}, {Name: drill.MarkSwitched, At: t0.Add(95 * time.Second)}},
		Measures:   map[string]float64{"time_to_detect": detect, "time_to_failover": failover, "time_to_page": 30},
		Objectives: []drill.ObjectiveResult{{Measure: "time_to_detect", Limit: 90, Measured: &detect, Passed: true}, {Measure: "time_to_failover", Limit: 300, Measured: &failover, Passed: true}},
		Actions:    []drill.ActionResult{{Phase: "inject", Name: "corrupt QR amounts", At: t0, Took: 3456 * time.Microsecond}},
	}
	b, _ := json.Marshal(rep)
	if err := a.store.SaveDrillRun(context.Background(), store.DrillRow{ID: "d1", Drill: rep.Drill, State: rep.State,
		StartedAt: rep.StartedAt, FinishedAt: rep.FinishedAt, Report: string(b)}); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	a.web.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/drills/runs/d1", nil))
	body := rec.Body.String()
	if rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, body)
	}
	for _, want := range []string{
		`<tr data-measure="time_to_detect"><td>time_to_detect</td><td class="num">≤ 1m30s</td><td class="num">12.3s</td>`,
		`<tr data-measure="time_to_failover"><td>time_to_failover</td><td class="num">≤ 5m0s</td><td class="num">1m35s</td>`,
		`<tr data-measure="time_to_page"><th>time_to_page</th><td title="30 s">30s</td>`,
		`<tr data-mark="drill_started"><td class="num">`, `<td class="num">T-5s</td>`, `<td class="num">T&#43;12.3s</td>`, `<td class="num">T&#43;1m35s</td>`,
		`<td class="num">3ms</td>`, "(3m5s)", `href="/api/v1/drills/runs/d1?format=markdown"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("drill page lacks %q", want)
		}
	}
	if n := strings.Count(body, `data-measure="time_to_detect"`); n != 1 {
		t.Errorf("time_to_detect shown %d times, want once", n)
	}
	if strings.Contains(body, "<pre") || strings.Contains(body, "## Objectives") {
		t.Error("the Markdown report is repeated on the page")
	}
}

// TestPublicStatusPage: with --web.public-status and users configured,
// /status and /api/v1/status answer without a user and show per-step state,
// uptime, SLOs and the open incident's public_summary — and nothing that
// names a check, a host, a reason or a message — while the rest still
// needs the user.
func TestPublicStatusPage(t *testing.T) {
	a := newAuthAgent(t, true, false)
	a.opts.PublicStatus = true
	var err error
	if a.web, err = web.New(web.Options{Flags: a.opts.Web, PublicStatus: true, AllowedHosts: a.opts.AllowedHosts, Logger: a.log,
		Metrics: a.exporter, Checks: a.state, Scheduler: a.sched, Rules: a.rules, Paging: a.pager, Runbooks: a.runbooks,
		Drills: a.drills, Store: a.store, Uptime: &a.uptime, SLOs: a.slos, Incidents: a.incidents, Trimmer: &a.trim}); err != nil {
		t.Fatal(err)
	}
	writeFile(t, a.state.Config().File, `checks:
  - name: host
    type: host
    host: {cpu_sample: 10ms, cpu_max: 1, memory_max: 1, disk_free_min: 0}
  - name: tax-gw-internal
    type: tcp
    tcp: {address: "127.0.0.1:1"}
slos:
  - name: tax-reachability
    description: the tax platform answers
    objective: 0.99
    checks: [tax-gw-internal]
`)
	ctx := context.Background()
	if err := a.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"host", "tax-gw-internal"} {
		if _, err := a.sched.RunNow(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	a.store.Flush(ctx)
	a.uptime.Refresh(ctx, a.store, time.Now(), true)
	a.slos.Refresh(ctx, time.Now())
	alert := notify.Alert{Labels: map[string]string{"alertname": "TaxGatewayDown", "check": "tax-gw-internal", "instance": "10.9.8.7:5432"},
		Annotations: map[string]string{"summary": "tax-gw-internal at 10.9.8.7 refused", "public_summary": "Invoices reach the tax platform late."},
		StartsAt:    time.Now(), EndsAt: time.Now().Add(time.Hour)}
	alert.Fingerprint = notify.Fingerprint(alert.Labels)
	a.incidents.Alerts(ctx, []notify.Alert{alert})

	h := a.web.Handler()
	get := func(path string) (int, string) {
		req := httptest.NewRequest("GET", path, nil)
		req.RemoteAddr = "192.0.2.10:40000"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	for _, path := range []string{"/status", "/api/v1/status"} {
		code, body := get(path)
		if code != 200 {
			t.Fatalf("%s without a user: %d %s", path, code, firstLine(body))
		}
		for _, want := range []string{"Invoices reach the tax platform late.", "tax-reachability", "network", "down"} {
			if !strings.Contains(body, want) {
				t.Errorf("%s lacks %q", path, want)
			}
		}
		for _, leak := range []string{"tax-gw-internal", "127.0.0.1", "10.9.8.7", "connection_refused", "refused", "TaxGatewayDown", "/metrics", "/alerts"} {
			if strings.Contains(body, leak) {
				t.Errorf("%s reveals %q", path, leak)
			}
		}
	}
	if code, _ := get("/"); code != 401 {
		t.Errorf("/ without a user: %d, want 401", code)
	}
	if code, _ := get("/api/v1/checks"); code != 401 {
		t.Errorf("/api/v1/checks without a user: %d, want 401", code)
	}
}

// scaleAgent is an agent with n HTTP checks (not started) whose last
// results are success.
func scaleAgent(tb testing.TB, n int, success bool) *Agent {
	tb.Helper()
	dir := tb.TempDir()
	var cfg strings.Builder
	cfg.WriteString("global: {interval: 1m}\nchecks:\n")
	for i := range n {
		fmt.Fprintf(&cfg, "  - {name: web%05d, type: http, http: {url: 'http://127.0.0.1:9/x%d'}}\n", i, i)
	}
	path := dir + "/vigil.yml"
	if err := os.WriteFile(path, []byte(cfg.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
	a, err := New(context.Background(), Options{ConfigFile: path, StoragePath: dir + "/vigil.db", AllowedHosts: []string{"example.com"}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(a.closeStore)
	now := time.Now()
	for i := range n {
		r := probes.Result{Success: success, Start: now, Duration: time.Millisecond}
		if !success {
			r.Reason, r.Message = probes.ReasonTimeout, "no answer"
		}
		a.state.Record(fmt.Sprintf("web%05d", i), lastrun.From(r))
	}
	return a
}

// TestOverviewAtScale: at 10,000 checks the overview stays a page, whether
// they all pass (folded, 200 names listed) or all fail in an outage (500
// rows, the rest counted with a way to them).
func TestOverviewAtScale(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, path string
		success    bool
		rows       int
		want       []string
	}{
		{"all passing", "/", true, 0, []string{"10000 more passing (folded)", `<a href="/checks/web00199">web00199</a>`, "… 9800 more: find one by name"}},
		{"all failing", "/", false, 500, []string{`<span class="badge fail">10000 FAIL</span>`, `data-check="web00499"`, "9500 more not shown", `<a href="/api/v1/checks?step=network">`}},
		{"search", "/?q=web0", true, 500, []string{"10000 / 10000", "9500 more not shown", `<a href="/api/v1/checks?name=web0&amp;step=network">`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := scaleAgent(t, 10000, tt.success)
			rec := httptest.NewRecorder()
			a.web.Handler().ServeHTTP(rec, httptest.NewRequest("GET", tt.path, nil))
			body := rec.Body.String()
			if n := strings.Count(body, `<tr class="check"`); n != tt.rows {
				t.Errorf("%d rows, want %d", n, tt.rows)
			}
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("overview lacks %q", w)
				}
			}
			if tt.path == "/" && tt.success && strings.Contains(body, "web00200<") || strings.Contains(body, `data-check="web00500"`) {
				t.Error("overview shows checks beyond its limits")
			}
			if len(body) > 1<<20 {
				t.Errorf("overview is %d bytes", len(body))
			}
		})
	}
}

// BenchmarkPagesAtScale renders the overview and pages of /api/v1/checks
// for 10,000 HTTP checks that have all passed (the scheduler is not
// started; each check has one result): the allocations a page view leaves
// for the collector at bench-scale's size. "api" is the same page again
// (its checks' config sections cached), "api-paging" pages through all of
// them (every section rendered: the cache holds 20 pages).
func BenchmarkPagesAtScale(b *testing.B) {
	a := scaleAgent(b, 10000, true)
	h := a.web.Handler()
	for _, page := range []struct{ name, path string }{{"overview", "/"}, {"api", "/api/v1/checks"}, {"api-paging", "/api/v1/checks?offset=%d"}} {
		b.Run(page.name, func(b *testing.B) {
			b.ReportAllocs()
			var size, i int
			for b.Loop() {
				path := page.path
				if strings.Contains(path, "%d") {
					path = fmt.Sprintf(path, i*100%10000)
					i++
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
				if rec.Code != 200 {
					b.Fatalf("%d %s", rec.Code, rec.Body.String())
				}
				size = rec.Body.Len()
			}
			b.ReportMetric(float64(size), "bytes/page")
		})
	}
}
