package rules

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
