package runbook

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// TestJSONGolden pins the JSON the API serves for runbooks (GET
// /api/v1/runbooks) and the rendered steps the journal records.
func TestJSONGolden(t *testing.T) {
	t.Setenv("VIGIL_TEST_GOLDEN_SECRET", "s3cret-value")
	var out bytes.Buffer
	for _, f := range []string{"testdata/invoice-failover.yml", "testdata/all-kinds.yml"} {
		rb, err := Load(f)
		if err != nil {
			t.Fatal(err)
		}
		// As the API's writeJSON encodes it.
		enc := json.NewEncoder(&out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rb); err != nil {
			t.Fatal(err)
		}
		d := Data{Labels: map[string]string{"alertname": "A<b>", "check": "q r", "platform": "p1"}, Runbook: rb.Name, Run: "r1", Target: "p1"}
		for _, list := range [][]Step{rb.Preconditions, rb.Steps, rb.Rollback} {
			for i := range list {
				r, err := list[i].Render(d)
				if err != nil {
					t.Fatal(err)
				}
				js, _ := json.Marshal(r) // as the journal stores it
				out.Write(js)
				out.WriteByte('\n')
			}
		}
	}
	golden(t, "json.golden", out.Bytes())
}

// TestParseErrorsGolden pins the messages (and their lines) for broken
// runbook files.
func TestParseErrorsGolden(t *testing.T) {
	t.Setenv("VIGIL_TEST_GOLDEN_SECRET", "s3cret-value")
	head := "name: a\ntrigger: {manual: true}\nsteps:\n"
	var out bytes.Buffer
	for _, c := range []struct{ name, steps string }{
		{"unknown step key", "  - wait: 1s\n    bogus: 1\n"},
		{"unknown key in a kind", "  - http:\n      url: http://x\n      urll: http://y\n"},
		{"unknown key in retry", "  - wait: 1s\n    retry: {count: 1, bakoff: 1s}\n"},
		{"bad timeout", "  - wait: 1s\n    timeout: soon\n"},
		{"bad wait", "  - wait: soon\n"},
		{"scalar step", "  - just do it\n"},
		{"list as config", "  - http: [a]\n"},
		{"no kind", "  - name: nothing\n"},
		{"two kinds", "  - wait: 1s\n    notify: {receiver: r, message: m}\n"},
		{"two kinds, one broken", "  - wait: 1s\n    http: {urll: x}\n"},
		{"unknown key and broken kind", "  - http: {urll: x}\n    bogus: 1\n"},
		{"duplicate key", "  - wait: 1s\n    wait: 2s\n"},
		{"secret_env bad", "  - exec: {argv: [x], secret_env: {A: plain}}\n"},
		{"secret_env missing", "  - exec: {argv: [x], secret_env: {A: '${VIGIL_TEST_GOLDEN_UNSET}'}}\n"},
		{"exec env names", "  - exec: {argv: [x], env: {VIGIL_X: 1, 'a b': 2}}\n"},
		{"check without name", "  - check: {successes: 2}\n"},
		{"notify without receiver", "  - notify: {message: '{{ .Labels.x '}\n"},
		{"negative wait", "  - wait: 0s\n"},
		{"merge key", "  - &base {wait: 1s, timeout: 5s}\n  - <<: *base\n    name: again\n    on_failure: continue\n"},
		{"merge key unknown", "  - &base {wait: 1s}\n  - <<: *base\n    bogus: 1\n"},
		{"null step", "  -\n"},
		{"alias step", "  - &s {wait: 1s, name: one}\n  - *s\n"},
	} {
		rb, err := Parse("rb.yml", []byte(head+c.steps))
		out.WriteString("== " + c.name + "\n")
		if err != nil {
			// The list of kinds in "a step has exactly one of …" is the
			// registry's, whatever kinds are linked in: a new kind must
			// not need a golden file edited.
			msg := strings.ReplaceAll(err.Error(), strings.Join(StepKinds(), ", "), "<the registered kinds>")
			out.WriteString(strings.TrimSpace(msg) + "\n")
			continue
		}
		js, _ := json.Marshal(rb.Steps)
		out.Write(js)
		out.WriteByte('\n')
	}
	golden(t, "errors.golden", out.Bytes())
}
