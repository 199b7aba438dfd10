package cli_test

import (
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/internal/testenv"
)

const rulesConfig = `
global:
  startup_splay: 0s
  evaluation_interval: 1s
rule_files: [rules/*.yml]
checks:
  - name: impossible-disk
    type: host
    recheck_interval: 1h
    host: {cpu_sample: 100ms, cpu_max: 1, memory_max: 1, disk_free_min: 1, inodes_free_min: 0}
`

const rulesFile = `
groups:
  - name: vigil
    interval: 1s
    rules:
      - record: vigil:checks_failing:count
        expr: count(vigil_check_success == 0)
      - alert: VigilCheckFailing
        expr: vigil_check_success == 0
        for: 2s
        labels: {severity: page}
        annotations:
          summary: "{{ $labels.check }} fails with {{ $value }}"
`

// TestRulesAndQueryAPI runs the agent with a rule file and reads it through
// the Prometheus HTTP API shapes Grafana and alert tools use.
func TestRulesAndQueryAPI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "vigil.yml", rulesConfig)
	if err := os.Mkdir(filepath.Join(dir, "rules"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeConfig(t, filepath.Join(dir, "rules"), "vigil.yml", rulesFile)
	a := startAgent(t, "--config.file", cfg, "--storage.path", filepath.Join(dir, "vigil.db"))

	type resp struct {
		Status, ErrorType, Error string
		Data                     json.RawMessage
	}
	get := func(path string) resp {
		var r resp
		if err := json.Unmarshal([]byte(a.getAny(t, path)), &r); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return r
	}
	deadline := time.Now().Add(15 * time.Second)
	var alerts struct {
		Alerts []struct {
			Labels      map[string]string
			Annotations map[string]string
			State       string
			Value       string
		}
	}
	for time.Now().Before(deadline) {
		json.Unmarshal(get("/api/v1/alerts").Data, &alerts)
		if len(alerts.Alerts) == 1 && alerts.Alerts[0].State == "firing" {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(alerts.Alerts) != 1 || alerts.Alerts[0].State != "firing" {
		t.Fatalf("alerts: %+v", alerts)
	}
	al := alerts.Alerts[0]
	if al.Labels["alertname"] != "VigilCheckFailing" || al.Labels["check"] != "impossible-disk" || al.Labels["severity"] != "page" ||
		al.Annotations["summary"] != "impossible-disk fails with 0" {
		t.Fatalf("alert %+v", al)
	}

	var vec struct {
		ResultType string
		Result     []struct {
			Metric map[string]string
			Value  [2]any
		}
	}
	r := get("/api/v1/query?query=" + url.QueryEscape(`vigil:checks_failing:count`))
	json.Unmarshal(r.Data, &vec)
	if r.Status != "success" || vec.ResultType != "vector" || len(vec.Result) != 1 || vec.Result[0].Value[1] != "1" {
		t.Fatalf("recording rule query: %+v %s", r, r.Data)
	}
	now := time.Now().Unix()
	r = get("/api/v1/query_range?query=vigil_check_success&start=" + strconv.FormatInt(now-5, 10) + "&end=" + strconv.FormatInt(now, 10) + "&step=1")
	var mat struct {
		ResultType string
		Result     []struct {
			Metric map[string]string
			Values [][2]any
		}
	}
	json.Unmarshal(r.Data, &mat)
	if mat.ResultType != "matrix" || len(mat.Result) != 1 || len(mat.Result[0].Values) < 2 {
		t.Fatalf("range query: %s", r.Data)
	}
	r = get("/api/v1/query?query=" + url.QueryEscape("rate(foo["))
	if r.Status != "error" || r.ErrorType != "bad_data" {
		t.Fatalf("bad query: %+v", r)
	}
	// /api/v1/alerts shows the state the evaluation just set; its ALERTS
	// sample reaches the sample store a moment later (under -race on a
	// busy machine, after the first look: seen in a fresh-check run).
	var series []map[string]string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		r = get("/api/v1/series?match[]=" + url.QueryEscape(`ALERTS{alertstate="firing"}`))
		json.Unmarshal(r.Data, &series)
		if len(series) > 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(series) != 1 || series[0]["alertname"] != "VigilCheckFailing" {
		t.Fatalf("series: %s", r.Data)
	}
	r = get("/api/v1/label/check/values")
	var vals []string
	json.Unmarshal(r.Data, &vals)
	if len(vals) != 1 || vals[0] != "impossible-disk" {
		t.Fatalf("label values: %s", r.Data)
	}
	// A restart keeps the alert's state: firing at once, same activeAt,
	// and no second page before the resend delay (1m).
	var before struct {
		Alerts []struct{ ActiveAt string }
	}
	json.Unmarshal(get("/api/v1/alerts").Data, &before)
	kill9(t, a)
	a = startAgent(t, "--config.file", cfg, "--storage.path", filepath.Join(dir, "vigil.db"))
	var after struct {
		Alerts []struct{ State, ActiveAt string }
	}
	deadline = time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		json.Unmarshal(get("/api/v1/alerts").Data, &after)
		if len(after.Alerts) == 1 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	sameTime := func(a, b string) bool {
		ta, _ := time.Parse(time.RFC3339Nano, a)
		tb, _ := time.Parse(time.RFC3339Nano, b)
		return ta.Truncate(time.Millisecond).Equal(tb.Truncate(time.Millisecond))
	}
	if len(after.Alerts) != 1 || after.Alerts[0].State != "firing" || !sameTime(after.Alerts[0].ActiveAt, before.Alerts[0].ActiveAt) {
		t.Fatalf("after restart: %+v (before %+v)", after, before)
	}
	// Two evaluations of the restored alert after the restart: any page
	// they made would be logged by now.
	a.waitEvaluations(t, 2)
	if strings.Contains(a.logs.String(), "msg=alert ") {
		t.Fatalf("paged again after the restart:\n%s", a.logs.String())
	}

	r = get("/api/v1/rules?type=alert")
	var rules struct {
		Groups []struct {
			Name  string
			Rules []struct {
				Name, State, Health, Type string
			}
		}
	}
	json.Unmarshal(r.Data, &rules)
	if len(rules.Groups) != 1 || len(rules.Groups[0].Rules) != 1 || rules.Groups[0].Rules[0].State != "firing" || rules.Groups[0].Rules[0].Health != "ok" {
		t.Fatalf("rules: %s", r.Data)
	}
}

// TestShippedRules: the shipped rules parse, and their unit tests pass
// under vigil rules test and, where installed, under the real promtool.
func TestShippedRules(t *testing.T) {
	t.Parallel()
	stdout, stderr, code := run(t, "rules", "check", "../../examples/rules/vigil.rules.yml")
	if code != 0 || !strings.Contains(stdout, "SUCCESS: 14 rules found") {
		t.Fatalf("rules check: %d\n%s%s", code, stdout, stderr)
	}
	stdout, stderr, code = run(t, "rules", "test", "../../examples/rules/vigil.rules.test.yml")
	if code != 0 || !strings.Contains(stdout, "SUCCESS") {
		t.Fatalf("rules test: %d\n%s%s", code, stdout, stderr)
	}
	stdout, stderr, code = run(t, "rules", "test", "testdata/rules/failing.test.yml")
	if code != 1 || !strings.Contains(stderr, "FAILED") || !strings.Contains(stderr, "alertname: InvoiceQRFailing, time: 5m") ||
		!strings.Contains(stderr, `expr: "vigil_check_success", time: 1m`) {
		t.Fatalf("failing test file: exit %d\n%s%s", code, stdout, stderr)
	}

	promtool := testenv.NeedBinary(t, "promtool", "prometheus")
	for _, args := range [][]string{
		{"check", "rules", "../../examples/rules/vigil.rules.yml"},
		{"test", "rules", "../../examples/rules/vigil.rules.test.yml"},
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("promtool %v: %v\n%s", args, err, out)
		}
	}
	// promtool agrees that the failing file fails.
	if out, err := exec.Command(promtool, "test", "rules", "testdata/rules/failing.test.yml").CombinedOutput(); err == nil {
		t.Fatalf("promtool passed the failing file:\n%s", out)
	}
}
