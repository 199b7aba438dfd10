package drill

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestActionsGolden pins how inject and rollback actions decode (a runbook
// step, or simulate) and the messages for broken ones.
func TestActionsGolden(t *testing.T) {
	head := "name: a\nhypothesis: h\nchecks: [c]\ninject:\n"
	var out bytes.Buffer
	for _, c := range []struct{ name, actions string }{
		{"every kind", "  - {name: call, http: {url: 'http://x/{{ .Run }}'}, timeout: 5s, retry: {count: 1}}\n  - exec: {argv: [/bin/true]}\n  - wait: 1s\n  - simulate: {checks: [c], reason: timeout, message: m}\n"},
		{"unknown key", "  - wait: 1s\n    bogus: 1\n"},
		{"unknown key in simulate", "  - simulate: {checks: [c], bogus: 1}\n"},
		{"unknown key in a kind", "  - http: {urll: x}\n"},
		{"simulate and a kind", "  - wait: 1s\n    simulate: {checks: [c]}\n"},
		{"runbook kind", "  - check: {name: c}\n"},
		{"no kind", "  - name: x\n"},
		{"two kinds", "  - wait: 1s\n    exec: {argv: [x]}\n"},
		{"scalar", "  - boom\n"},
		{"duplicate", "  - wait: 1s\n    wait: 2s\n"},
	} {
		d, err := Parse("d.yml", []byte(head+c.actions))
		out.WriteString("== " + c.name + "\n")
		if err != nil {
			out.WriteString(strings.TrimSpace(err.Error()) + "\n")
			continue
		}
		js, _ := json.Marshal(d.Inject)
		out.Write(js)
		out.WriteByte('\n')
	}
	path := "testdata/actions.golden"
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("%s differs (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, out.Bytes(), want)
	}
}
