package rules

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/vigil-project/vigil/internal/testenv"
)

// TestStartTimestamp: promtool's start_timestamp (RFC 3339 or Unix
// seconds) moves the input series and every eval_time: time() and
// timestamp() read from there, and alerts fire as they would at epoch.
func TestStartTimestamp(t *testing.T) {
	for _, start := range []string{`"2024-01-01T00:00:00Z"`, `1704067200`} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "rules.yml"), []byte("groups:\n  - name: g\n    rules:\n      - alert: Down\n        expr: up == 0\n        for: 1m\n"), 0o644)
		test := `rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    start_timestamp: ` + start + `
    input_series:
      - series: 'up{job="a"}'
        values: '1 0 0 0'
    alert_rule_test:
      - eval_time: 1m
        alertname: Down
      - eval_time: 3m
        alertname: Down
        exp_alerts:
          - exp_labels: {job: a}
    promql_expr_test:
      - expr: time()
        eval_time: 1m
        exp_samples:
          - value: 1704067260
      - expr: timestamp(up)
        eval_time: 2m
        exp_samples:
          - labels: '{job="a"}'
            value: 1704067320
`
		path := filepath.Join(dir, "test.yml")
		os.WriteFile(path, []byte(test), 0o644)
		var out, errOut strings.Builder
		if !TestFiles(&out, &errOut, path) {
			t.Errorf("start_timestamp %s:\n%s%s", start, out.String(), errOut.String())
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "test.yml")
	os.WriteFile(path, []byte("tests:\n  - start_timestamp: yesterday\n"), 0o644)
	var out, errOut strings.Builder
	if TestFiles(&out, &errOut, path) || !strings.Contains(errOut.String(), `cannot parse "yesterday" to a valid timestamp`) {
		t.Errorf("bad start_timestamp: %s%s", out.String(), errOut.String())
	}
}

// TestPromtoolOracle: every test file under testdata/oracle gets the same
// verdict from `vigil rules test` as from promtool built from the
// Prometheus module in go.mod (VIGIL_PROMTOOL; .ci/run builds it), one of
// them failing on purpose, and so do the shipped rules' tests; where both
// fail, they report the same failed test cases.
func TestPromtoolOracle(t *testing.T) {
	promtool := os.Getenv("VIGIL_PROMTOOL")
	if promtool == "" {
		testenv.Missing(t, "promtool of the go.mod Prometheus version",
			"set VIGIL_PROMTOOL to one built with go install github.com/prometheus/prometheus/cmd/promtool@VERSION (.ci/run does)")
	}
	files, _ := filepath.Glob("testdata/oracle/*.test.yml")
	files = append(files, "../examples/rules/vigil.rules.test.yml", "../examples/slo/vigil-slos.rules.test.yml")
	if len(files) < 4 {
		t.Fatalf("oracle test files: %v", files)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			var out, errOut strings.Builder
			vigil := TestFiles(&out, &errOut, f)
			cmd := exec.Command(promtool, "test", "rules", filepath.Base(f))
			cmd.Dir = filepath.Dir(f)
			pout, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if err != nil && !errors.As(err, &exit) {
				t.Fatalf("promtool: %v", err)
			}
			if prom := err == nil; prom != vigil {
				t.Errorf("promtool passed=%v, vigil passed=%v\npromtool:\n%s\nvigil:\n%s%s", prom, vigil, pout, out.String(), errOut.String())
			}
			if p, v := failedCases(string(pout)), failedCases(errOut.String()); !slices.Equal(p, v) {
				t.Errorf("failed test cases differ\npromtool: %q\nvigil:    %q", p, v)
			}
			if strings.HasPrefix(filepath.Base(f), "failing") && vigil {
				t.Error("the deliberately failing file passed")
			}
		})
	}
}

// TestUnitTestOracleFiles: without promtool too, every oracle file passes
// under vigil except the deliberately failing ones.
func TestUnitTestOracleFiles(t *testing.T) {
	files, _ := filepath.Glob("testdata/oracle/*.test.yml")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			var out, errOut strings.Builder
			want := !strings.HasPrefix(filepath.Base(f), "failing")
			if got := TestFiles(&out, &errOut, f); got != want {
				t.Errorf("passed=%v, want %v\n%s%s", got, want, out.String(), errOut.String())
			}
		})
	}
}

// failedCaseRE matches the first line of a failed test case in the output
// of promtool test rules (and vigil rules test): an expression or an alert
// and its eval time, or a rule that failed to evaluate and when.
var failedCaseRE = regexp.MustCompile(`(?m)^\s*((?:expr: "(?:[^"\\]|\\.)*"|alertname: [^,]+|rule: [^,]+), time: [^,\s]+)`)

// failedCases lists the failed test cases an output reports, in order.
func failedCases(output string) []string {
	var out []string
	for _, m := range failedCaseRE.FindAllStringSubmatch(output, -1) {
		out = append(out, m[1])
	}
	return out
}

func TestOracleFailedCases(t *testing.T) {
	for _, tc := range []struct {
		name, output string
		want         []string
	}{
		{"none", "Processing test file: a.yml\n  SUCCESS\n", nil},
		{"expression, alert and rule", "  FAILED:\n    name: g,\n    alertname: Down, time: 3m, \n        exp:[], \n" +
			"    expr: \"up == 0\", time: 1m,\n        exp: nil\n        got: {} 1E+00\n" +
			"    expr: \"foo{a=\\\"b\\\"}\", time: 0s, err: parse error: \"x\", time: 9m\n" +
			"    rule: r, time: 2m, err: boom\n",
			[]string{"alertname: Down, time: 3m", `expr: "up == 0", time: 1m`, `expr: "foo{a=\"b\"}", time: 0s`, "rule: r, time: 2m"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := failedCases(tc.output); !slices.Equal(got, tc.want) {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestUnitTestHistogramErrors: a native histogram vigil cannot read, in
// input_series or in an expected sample, fails the file with an error that
// names the series (or the expected sample) and says what is wrong.
func TestUnitTestHistogramErrors(t *testing.T) {
	const rules = "groups:\n  - name: g\n    rules:\n      - record: r\n        expr: vector(1)\n"
	input := func(values string) string {
		return "rule_files: [rules.yml]\ntests:\n  - input_series:\n      - series: 'lat_seconds{job=\"a\"}'\n        values: '" + values + "'\n" +
			"    promql_expr_test:\n      - expr: vector(1)\n        eval_time: 0m\n        exp_samples:\n          - value: 1\n"
	}
	expected := func(hist string) string {
		return "rule_files: [rules.yml]\ntests:\n  - input_series:\n      - series: 'lat_seconds{job=\"a\"}'\n        values: '{{count:1 buckets:[1]}}'\n" +
			"    promql_expr_test:\n      - expr: lat_seconds\n        eval_time: 0m\n        exp_samples:\n          - labels: 'lat_seconds{job=\"a\"}'\n            histogram: '" + hist + "'\n"
	}
	inSeries := `input series "lat_seconds{job=\"a\"}": `
	inExp := `expr: "lat_seconds", time: 0s, err: labels "lat_seconds{job=\"a\"}": histogram `
	for _, tc := range []struct {
		name, file string
		want       []string
	}{
		{"unclosed bucket list", input(`{{schema:0 sum:5 count:4 buckets:[1 2 1}}`), []string{inSeries, "invalid character in buckets description"}},
		{"unknown field", input(`{{schema:0 sum:5 count:4 bukkets:[1 2 1]}}`), []string{inSeries, "bukkets"}},
		{"float added to a histogram", input(`{{schema:0 sum:5 count:4 buckets:[1 2 1]}}+1x3`), []string{inSeries}},
		{"schema out of range", input(`{{schema:10 count:1 buckets:[1]}}x2`), []string{inSeries, "value 1", "schema 10"}},
		{"negative bucket", input(`1 2 {{schema:0 count:2 buckets:[1 -2 3]}}`), []string{inSeries, "value 3", "negative"}},
		{"expected histogram unclosed", expected(`{{count:1 buckets:[1]`), []string{inExp + `"{{count:1 buckets:[1]"`}},
		{"expected histogram is a float", expected(`3`), []string{inExp + `"3": expected a histogram`}},
		{"expected histogram is two values", expected(`{{count:1}}x1`), []string{inExp + `"{{count:1}}x1": expected 1 value, got 2`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "rules.yml"), []byte(rules), 0o644); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "test.yml")
			if err := os.WriteFile(path, []byte(tc.file), 0o644); err != nil {
				t.Fatal(err)
			}
			var out, errOut strings.Builder
			if TestFiles(&out, &errOut, path) {
				t.Fatalf("passed:\n%s", out.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut.String(), w) {
					t.Errorf("error lacks %q:\n%s", w, errOut.String())
				}
			}
		})
	}
}
