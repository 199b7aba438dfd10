package rules

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
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
// them failing on purpose, and so do the shipped rules' tests.
func TestPromtoolOracle(t *testing.T) {
	promtool := os.Getenv("VIGIL_PROMTOOL")
	if promtool == "" {
		testenv.Missing(t, "promtool of the go.mod Prometheus version",
			"set VIGIL_PROMTOOL to one built with go install github.com/prometheus/prometheus/cmd/promtool@VERSION (.ci/run does)")
	}
	files, _ := filepath.Glob("testdata/oracle/*.test.yml")
	files = append(files, "../examples/rules/vigil.rules.test.yml")
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
			if strings.HasPrefix(filepath.Base(f), "failing") && vigil {
				t.Error("the deliberately failing file passed")
			}
		})
	}
}
