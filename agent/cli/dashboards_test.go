package cli_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/redis/go-redis/v9"
	"gopkg.in/yaml.v3"

	"github.com/vigil-project/vigil/internal/testenv"
)

// The files whose PromQL must parse and name only series vigil exports.
const (
	dashboardGlob   = "../../dashboards/*.json"
	centralRuleGlob = "../../dashboards/*.rules.yml"
	shippedRuleGlob = "../../examples/rules/*.rules.yml"
)

// createdByPrometheus is the allow-list of series no exporter serves:
// Prometheus makes them itself. Nothing else may be missing from vigil's
// /metrics.
func createdByPrometheus(name string) bool {
	switch name {
	case "up": // every scrape, 0 when the agent does not answer (VigilAgentDown)
		return true
	case "ALERTS", "ALERTS_FOR_STATE": // rule evaluation (central Prometheus, or the agent's own store)
		return true
	}
	return strings.HasPrefix(name, "scrape_") // scrape_duration_seconds, scrape_samples_scraped, …
}

// promQuery is one PromQL expression and where it was found; vars are
// the values its dashboard's own variables take (see expandGrafanaVars).
type promQuery struct {
	file, where, expr string
	vars              map[string]string
}

func (q promQuery) String() string { return q.file + ": " + q.where }

// dashboardQueries returns every PromQL expression of a Grafana dashboard:
// each "expr" wherever it is (panel targets, panels nested in collapsed
// rows, annotations) and the queries of "query" template variables.
func dashboardQueries(file string) ([]promQuery, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	base := filepath.Base(file)
	var out []promQuery
	var walk func(v any, where string)
	walk = func(v any, where string) {
		switch v := v.(type) {
		case map[string]any:
			if title, ok := v["title"].(string); ok && (v["targets"] != nil || v["type"] != nil) {
				where = fmt.Sprintf("panel %q", title)
				if id, ok := v["id"].(float64); ok {
					where = fmt.Sprintf("panel %d %q", int(id), title)
				}
			}
			if name, ok := v["name"].(string); ok && v["expr"] != nil {
				where = fmt.Sprintf("annotation %q", name)
			}
			if expr, ok := v["expr"].(string); ok && strings.TrimSpace(expr) != "" {
				w := where
				if ref, ok := v["refId"].(string); ok {
					w += " target " + ref
				}
				out = append(out, promQuery{file: base, where: w, expr: expr})
			}
			for k, c := range v {
				if k != "templating" {
					walk(c, where)
				}
			}
		case []any:
			for _, c := range v {
				walk(c, where)
			}
		}
	}
	walk(doc, "dashboard")

	var tmpl struct {
		Templating struct {
			List []struct {
				Name, Type string
				Query      any
				Definition string
			}
		}
	}
	if err := json.Unmarshal(b, &tmpl); err != nil {
		return nil, fmt.Errorf("%s: templating: %w", file, err)
	}
	vars := map[string]string{}
	for _, v := range tmpl.Templating.List {
		q := v.Definition
		switch x := v.Query.(type) {
		case string:
			q = x
		case map[string]any:
			if s, ok := x["query"].(string); ok {
				q = s
			}
		}
		switch v.Type {
		case "interval", "custom", "constant", "textbox":
			// Substituted as they are: an interval variable must
			// stand for a duration, a custom one for its first value.
			first, _, _ := strings.Cut(q, ",")
			vars[v.Name] = strings.TrimSpace(first)
			continue
		case "query":
		default:
			continue // datasource, adhoc: no PromQL
		}
		expr, err := variableExpr(q)
		if err != nil {
			return nil, fmt.Errorf("%s: variable %q: %w", base, v.Name, err)
		}
		if expr != "" {
			out = append(out, promQuery{file: base, where: fmt.Sprintf("variable %q", v.Name), expr: expr})
		}
	}
	for i := range out {
		out[i].vars = vars
	}
	return out, nil
}

var (
	labelValuesRE = regexp.MustCompile(`^label_values\(\s*(.+),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)$`)
	labelOnlyRE   = regexp.MustCompile(`^(label_values\(\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)|label_names\(\s*\))$`)
	queryResultRE = regexp.MustCompile(`^query_result\((.+)\)$`)
	metricsRE     = regexp.MustCompile(`^metrics\((.+)\)$`)
)

// variableExpr turns the query of a Grafana Prometheus variable into PromQL:
// label_values(selector, label) and query_result(expr) hold one; metrics(re)
// becomes a __name__ regex; label_values(label) and label_names() name no
// metric ("").
func variableExpr(q string) (string, error) {
	q = strings.TrimSpace(q)
	switch {
	case labelOnlyRE.MatchString(q):
		return "", nil
	case labelValuesRE.MatchString(q):
		return labelValuesRE.FindStringSubmatch(q)[1], nil
	case queryResultRE.MatchString(q):
		return queryResultRE.FindStringSubmatch(q)[1], nil
	case metricsRE.MatchString(q):
		return fmt.Sprintf(`{__name__=~%q}`, strings.TrimSpace(metricsRE.FindStringSubmatch(q)[1])), nil
	}
	return "", fmt.Errorf("unrecognised variable query %q (want label_values, label_names, metrics or query_result)", q)
}

// ruleQueries returns the alert and record expressions of a Prometheus rule
// file, and the names its recording rules create.
func ruleQueries(file string) (qs []promQuery, recorded []string, err error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, err
	}
	var rf struct {
		Groups []struct {
			Name  string
			Rules []struct{ Record, Alert, Expr string }
		}
	}
	if err := yaml.Unmarshal(b, &rf); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", file, err)
	}
	base := filepath.Base(file)
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			where := fmt.Sprintf("group %q alert %q", g.Name, r.Alert)
			if r.Record != "" {
				where = fmt.Sprintf("group %q record %q", g.Name, r.Record)
				recorded = append(recorded, r.Record)
			}
			qs = append(qs, promQuery{file: base, where: where, expr: r.Expr})
		}
	}
	return qs, recorded, nil
}

// grafanaVarRE matches $var, ${var}, ${var:format} and [[var]].
var grafanaVarRE = regexp.MustCompile(`\$\{([a-zA-Z0-9_]+)(?:[:.][^}]*)?\}|\[\[([a-zA-Z0-9_]+)(?::[^\]]*)?\]\]|\$([a-zA-Z0-9_]+)`)

// expandGrafanaVars replaces Grafana variables the way Grafana would before
// the query reaches Prometheus: global range and interval variables by a
// duration or number, the dashboard's interval and custom variables by
// their first value, query variables (whose values land inside label
// matcher strings) by a plain word.
func expandGrafanaVars(expr string, vars map[string]string) string {
	return grafanaVarRE.ReplaceAllStringFunc(expr, func(m string) string {
		sub := grafanaVarRE.FindStringSubmatch(m)
		name := sub[1] + sub[2] + sub[3]
		switch {
		case name == "__rate_interval" || name == "__interval" || name == "__range" || strings.HasPrefix(name, "__auto"):
			return "5m"
		case strings.HasSuffix(name, "_ms"): // $__range_ms, $__interval_ms
			return "300000"
		case strings.HasSuffix(name, "_s"): // $__range_s
			return "300"
		case name == "__from" || name == "__to":
			return "1700000000000"
		case vars[name] != "":
			return vars[name]
		}
		return "x"
	})
}

// metricUses is what the queries ask for: metric names with where each is
// used, and __name__ matchers that are not plain equality.
type metricUses struct {
	names    map[string][]string
	patterns []namePattern
}

type namePattern struct {
	m     *labels.Matcher
	where string
}

var promqlParser = parser.NewParser(parser.Options{})

// metricsUsed parses every query (after expanding Grafana variables) and
// collects the metric names its selectors read; a query that does not
// parse is an error naming its file and panel or rule.
func metricsUsed(qs []promQuery) (metricUses, []error) {
	u := metricUses{names: map[string][]string{}}
	var errs []error
	for _, q := range qs {
		expr, err := promqlParser.ParseExpr(expandGrafanaVars(q.expr, q.vars))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %v\n\t%s", q, err, q.expr))
			continue
		}
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			// A MatrixSelector (x[5m]) holds its VectorSelector as a
			// child, so selectors are all seen here.
			vs, ok := n.(*parser.VectorSelector)
			if !ok {
				return nil
			}
			named := false
			for _, m := range vs.LabelMatchers {
				if m.Name != model.MetricNameLabel {
					continue
				}
				named = true
				if m.Type == labels.MatchEqual {
					if !slices.Contains(u.names[m.Value], q.String()) {
						u.names[m.Value] = append(u.names[m.Value], q.String())
					}
				} else {
					u.patterns = append(u.patterns, namePattern{m, q.String()})
				}
			}
			if !named {
				errs = append(errs, fmt.Errorf("%s: selector %s names no metric", q, vs))
			}
			return nil
		})
	}
	return u, errs
}

// shippedQueries collects the queries of every dashboard and rule file, and
// the names the rule files record.
func shippedQueries(t *testing.T) (qs []promQuery, recorded map[string]bool) {
	t.Helper()
	dashboards, _ := filepath.Glob(dashboardGlob)
	if len(dashboards) < 2 {
		t.Fatalf("dashboards: %v, want the overview and the invoice pipeline", dashboards)
	}
	for _, f := range dashboards {
		q, err := dashboardQueries(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(q) == 0 {
			t.Errorf("%s: no queries found", f)
		}
		qs = append(qs, q...)
	}
	central, _ := filepath.Glob(centralRuleGlob)
	shipped, _ := filepath.Glob(shippedRuleGlob)
	if len(central) == 0 || len(shipped) == 0 {
		t.Fatalf("rule files: %v %v", central, shipped)
	}
	recorded = map[string]bool{}
	for _, f := range append(central, shipped...) {
		q, rec, err := ruleQueries(f)
		if err != nil {
			t.Fatal(err)
		}
		qs = append(qs, q...)
		for _, r := range rec {
			recorded[r] = true
		}
	}
	return qs, recorded
}

// TestDashboardQueriesParse: every PromQL expression in the dashboards and
// rule files parses with the Prometheus parser vigil uses.
func TestDashboardQueriesParse(t *testing.T) {
	t.Parallel()
	qs, _ := shippedQueries(t)
	u, errs := metricsUsed(qs)
	for _, err := range errs {
		t.Error(err)
	}
	if len(u.names) == 0 {
		t.Fatal("no metric names found")
	}
	t.Logf("%d queries, %d metric names", len(qs), len(u.names))
}

// TestDashboardQueryExtraction checks the extraction itself on a fixture
// with every place Grafana keeps PromQL, and that a bad query is reported
// with its file and panel.
func TestDashboardQueryExtraction(t *testing.T) {
	t.Parallel()
	qs, err := dashboardQueries("testdata/dashboards/extract.json")
	if err != nil {
		t.Fatal(err)
	}
	rqs, recorded, err := ruleQueries("testdata/dashboards/extract.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	u, errs := metricsUsed(append(qs, rqs...))
	for _, err := range errs {
		t.Error(err)
	}
	var names []string
	for n := range u.names {
		names = append(names, n)
	}
	slices.Sort(names)
	want := []string{
		"fixture_annotation_total", "fixture_by_name", "fixture_interval_ms", "fixture_latency_seconds_bucket",
		"fixture_nested", "fixture_range_s", "fixture_rate_total", "fixture_recorded:sum", "fixture_rule_alert",
		"fixture_rule_input", "fixture_var_object", "fixture_var_result", "fixture_var_string", "fixture_window", "up",
	}
	if !slices.Equal(names, want) {
		t.Errorf("names:\n got %v\nwant %v", names, want)
	}
	if len(u.patterns) != 1 || u.patterns[0].m.String() != `__name__=~"fixture_regex_.*"` {
		t.Errorf("name patterns: %v", u.patterns)
	}
	if !slices.Equal(recorded, []string{"fixture_recorded:sum"}) {
		t.Errorf("recorded: %v", recorded)
	}
	if w := u.names["fixture_nested"]; len(w) != 1 || w[0] != `extract.json: panel 5 "nested" target A` {
		t.Errorf("where: %v", w)
	}

	_, errs = metricsUsed([]promQuery{{file: "x.json", where: `panel 7 "broken"`, expr: `sum(rate(vigil_check_runs_total[$__rate_interval])`}})
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), `x.json: panel 7 "broken"`) {
		t.Errorf("parse error report: %v", errs)
	}
	if _, err := variableExpr("vigil_build_info"); err == nil {
		t.Error("an unrecognised variable query passed")
	}
}

// TestDashboardJSON: each dashboard is valid JSON in the shape Grafana
// imports, with its own uid and unique panel ids (rows' nested panels too).
func TestDashboardJSON(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob(dashboardGlob)
	if len(files) == 0 {
		t.Fatal("no dashboards")
	}
	uids := map[string]string{}
	type panel struct {
		ID      *int
		Title   string
		Type    string
		Targets []struct{ RefID, Expr string }
		Panels  []json.RawMessage
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Title, UID    string
			SchemaVersion int
			Templating    struct{ List []struct{ Name string } }
			Panels        []json.RawMessage
		}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if d.UID == "" || d.Title == "" {
			t.Errorf("%s: uid %q, title %q", f, d.UID, d.Title)
		}
		if other, dup := uids[d.UID]; dup {
			t.Errorf("%s: uid %q already used by %s", f, d.UID, other)
		}
		uids[d.UID] = f
		if d.SchemaVersion != 39 {
			t.Errorf("%s: schemaVersion %d, want 39", f, d.SchemaVersion)
		}
		var vars []string
		for _, v := range d.Templating.List {
			vars = append(vars, v.Name)
		}
		if !slices.Contains(vars, "datasource") || !slices.Contains(vars, "instance") {
			t.Errorf("%s: template variables %v lack datasource or instance", f, vars)
		}
		ids := map[int]string{}
		var check func(raw []json.RawMessage)
		check = func(raw []json.RawMessage) {
			for _, r := range raw {
				var p panel
				if err := json.Unmarshal(r, &p); err != nil {
					t.Errorf("%s: panel: %v", f, err)
					continue
				}
				switch {
				case p.ID == nil:
					t.Errorf("%s: panel %q has no id", f, p.Title)
				case ids[*p.ID] != "":
					t.Errorf("%s: panel id %d used by %q and %q", f, *p.ID, ids[*p.ID], p.Title)
				default:
					ids[*p.ID] = p.Title
				}
				if p.Type != "row" && p.Type != "text" && len(p.Targets) == 0 {
					t.Errorf("%s: panel %q has no queries", f, p.Title)
				}
				refs := map[string]bool{}
				for _, tg := range p.Targets {
					if refs[tg.RefID] {
						t.Errorf("%s: panel %q: refId %q twice", f, p.Title, tg.RefID)
					}
					refs[tg.RefID] = true
				}
				check(p.Panels)
			}
		}
		check(d.Panels)
	}
}

// exportedNames reads metric names from a Prometheus text exposition: the
// names of the samples (what Prometheus stores as __name__), and the
// families declared as histograms or summaries.
func exportedNames(body string) (samples, histograms map[string]bool) {
	samples, histograms = map[string]bool{}, map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" && (f[3] == "histogram" || f[3] == "summary") {
			histograms[f[2]] = true
		}
		if line == "" || line[0] == '#' {
			continue
		}
		name, _, _ := strings.Cut(line, "{")
		name, _, _ = strings.Cut(name, " ")
		samples[name] = true
	}
	return samples, histograms
}

// startRedisReplica starts a private Redis primary and a replica of it and
// waits until the replica's link is up; it returns the replica's address.
func startRedisReplica(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		testenv.Missing(t, "redis-server", "not installed (apt-get install redis-server); the replication series need a replica")
	}
	dir := t.TempDir()
	start := func(name string, extra ...string) string {
		addr := freePort(t)
		_, port, _ := net.SplitHostPort(addr)
		args := append([]string{"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir,
			"--dbfilename", name + ".rdb", "--daemonize", "no"}, extra...)
		cmd := exec.Command(bin, args...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return addr
	}
	primary := start("primary")
	_, pport, _ := net.SplitHostPort(primary)
	replica := start("replica", "--replicaof", "127.0.0.1", pport)
	c := redis.NewClient(&redis.Options{Addr: replica})
	defer c.Close()
	var info string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		info, _ = c.Info(context.Background(), "replication").Result()
		if strings.Contains(info, "master_link_status:up") {
			return replica
		}
	}
	t.Fatalf("redis replica link not up after 15s:\n%s", info)
	return ""
}

// startDNS serves tax.example.test A 192.0.2.10 on a local UDP port.
func startDNS(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if len(r.Question) == 1 && r.Question[0].Name == "tax.example.test." && r.Question[0].Qtype == dns.TypeA {
			rr, _ := dns.NewRR("tax.example.test. 60 IN A 192.0.2.10")
			m.Answer = append(m.Answer, rr)
		} else {
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

// TestDashboardMetricsExported runs the real agent with a check of every
// family the dashboards and rule files read — the demo platform's invoice
// checks, databases (a Redis replica included), network checks, log scans,
// a failing check that pages, a runbook run and a blocked trigger, a drill —
// scrapes /metrics once and requires every metric name the dashboards and
// rules use to be there, except names their recording rules create and the
// series Prometheus makes itself (createdByPrometheus).
func TestDashboardMetricsExported(t *testing.T) {
	t.Parallel()
	qs, recorded := shippedQueries(t)
	uses, errs := metricsUsed(qs)
	for _, err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}

	testenv.NeedService(t, "PostgreSQL", "127.0.0.1:5432")
	testenv.NeedService(t, "MariaDB", "127.0.0.1:3306")
	testenv.NeedService(t, "Redis", "127.0.0.1:6379")
	testenv.NeedRoot(t, "the icmp check needs root or CAP_NET_RAW")
	replica := startRedisReplica(t)
	env := []string{
		"VIGIL_DASH_PG_DSN=postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
		"VIGIL_DASH_MYSQL_DSN=root@tcp(127.0.0.1:3306)/test",
		"VIGIL_DASH_REDIS_DSN=redis://127.0.0.1:6379/0",
		"VIGIL_DASH_REDIS_REPLICA_DSN=redis://" + replica + "/0",
	}

	api := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"status":"UP"}`)
	}))
	t.Cleanup(api.Close)
	logFile := filepath.Join(t.TempDir(), "app.log")
	b, err := os.ReadFile("testdata/dashboards/app.log")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(logFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	tmpl := template.Must(template.ParseFiles("testdata/dashboards/checks.yml"))
	var extra strings.Builder
	if err := tmpl.Execute(&extra, map[string]string{
		"HTTPSURL": api.URL, "DNSAddr": startDNS(t), "ClosedAddr": freePort(t), "LogFile": logFile,
	}); err != nil {
		t.Fatal(err)
	}

	// examples/vigil.yml with the shipped rules, runbooks and drills, fast
	// checks (invoice-db every 5s for the drill), plus the checks above.
	a, url, dir := startDemoAgent(t, demoOptions{env: env, edits: []func(string) string{fastChecks, func(cfg string) string {
		cfg = strings.ReplaceAll(cfg, "interval: 5m", "interval: 5s")
		if !strings.Contains(cfg, "\nchecks:\n") {
			t.Fatal("examples/vigil.yml has no top-level checks:")
		}
		return strings.Replace(cfg, "\nchecks:\n", "\nchecks:\n"+extra.String(), 1)
	}}})

	// An invoice for invoice_sync to verify (verify latency series).
	if st, body := httpDo(t, "POST", url(0)+"/api/v1/invoices", `{"seller":{"name":"S","tax_id":"91350100M000100Y43"},"buyer":{"name":"B","tax_id":"91440300708461136T"},"items":[{"name":"x","quantity":"1","unit_price":"10","tax_rate":"0.13"}]}`); st != 201 {
		t.Fatalf("issue: %d %s", st, body)
	}

	// A runbook run (runs and step durations) and a trigger its cooldown
	// blocks (blocked triggers). Its last step runs invoice_sync_primary.
	time.Sleep(1100 * time.Millisecond) // the invoice past the 1s grace
	trigger := `{"by":"dashboard-test","labels":{"check":"invoice_sync_primary"}}`
	if st, body := httpDo(t, "POST", a.url+"/api/v1/runbooks/invoice-resync/trigger", trigger); st/100 != 2 {
		t.Fatalf("trigger: %d %s", st, body)
	}
	if r := waitRun(t, a, "invoice-resync", time.Minute); r.State != "succeeded" {
		t.Fatalf("invoice-resync: %+v", r)
	}
	httpDo(t, "POST", a.url+"/api/v1/runbooks/invoice-resync/trigger", trigger)
	a.waitMetric(t, `vigil_runbook_blocked_total\{runbook="invoice-resync"\} 1`)

	// A drill (measures); it pages the drill receiver.
	out, errOut, code := run(t, "drill", "run", "--agent.url", a.url, filepath.Join(dir, "drills", "database-unreachable.yml"))
	if code != 0 {
		t.Errorf("drill run: exit %d\n%s%s", code, out, errOut)
	}
	// The failing check's UpstreamUnreachable page reached on-call.
	a.waitMetric(t, `vigil_notify_sent_total\{receiver="oncall",[^}]*\} [1-9]`)

	// Every check has run.
	var checks struct {
		Checks []struct {
			Name       string
			LastResult json.RawMessage `json:"last_result"`
		}
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if err := json.Unmarshal([]byte(a.get(t, "/api/v1/checks")), &checks); err != nil {
			t.Fatal(err)
		}
		var waiting []string
		for _, c := range checks.Checks {
			if len(c.LastResult) == 0 || string(c.LastResult) == "null" {
				waiting = append(waiting, c.Name)
			}
		}
		if len(waiting) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("checks that never ran: %v", waiting)
		}
	}

	samples, histograms := exportedNames(a.get(t, "/metrics"))
	exported := func(name string) bool {
		if samples[name] {
			return true
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && histograms[base] {
				return true // declared histogram or summary without observations yet
			}
		}
		return false
	}
	var names []string
	for n := range uses.names {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		switch {
		case exported(n), recorded[n], createdByPrometheus(n):
			continue
		}
		hint := ""
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if samples[n+suffix] {
				hint = fmt.Sprintf(" (a histogram or summary: query %s_sum, _count or _bucket)", n)
			}
		}
		t.Errorf("%s is not on the agent's /metrics%s; used by:\n\t%s", n, hint, strings.Join(uses.names[n], "\n\t"))
	}
	for _, p := range uses.patterns {
		found := false
		for n := range samples {
			found = found || p.m.Matches(n)
		}
		if !found {
			t.Errorf("no metric on the agent's /metrics matches %s (%s)", p.m, p.where)
		}
	}
	if !t.Failed() {
		t.Logf("%d metric names used by %d queries, all on /metrics or allowed", len(names), len(qs))
	}
}
