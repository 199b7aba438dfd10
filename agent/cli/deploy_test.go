package cli_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/vigil-project/vigil/internal/testenv"
)

// TestDeploySystemdUnit: the shipped unit keeps its hardening with what
// the checks need (process checks see every process, logscan reads
// /var/log through the adm and systemd-journal groups, the store in the
// state directory), passes `systemd-analyze verify` (with ExecStart
// pointed at the built binary) without a single warning, and
// `systemd-analyze security` rates its exposure at most 2.0 (README
// "Deploy" records the score).
func TestDeploySystemdUnit(t *testing.T) {
	t.Parallel()
	unit, err := os.ReadFile("../../examples/deploy/systemd/vigil.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"User=vigil", "AmbientCapabilities=CAP_NET_RAW", "CapabilityBoundingSet=CAP_NET_RAW", "NoNewPrivileges=yes",
		"ProtectSystem=strict", "StateDirectory=vigil", "ProtectProc=default", "SupplementaryGroups=adm systemd-journal", "ReadOnlyPaths=/var/log",
		"ExecReload=/bin/kill -HUP $MAINPID", "ExecStartPre=/usr/bin/vigil check-config /etc/vigil/vigil.yml"} {
		if !bytes.Contains(unit, []byte("\n"+want+"\n")) {
			t.Errorf("unit lacks %s", want)
		}
	}
	if bytes.Contains(unit, []byte("\nProtectProc=invisible")) || bytes.Contains(unit, []byte("\nDynamicUser=yes")) {
		t.Error("ProtectProc=invisible with a dynamic user hides the processes the host check looks for")
	}
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		testenv.SkipOptional(t, "systemd-analyze", "not available; the unit is checked where it is")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "vigil.service")
	os.WriteFile(path, bytes.ReplaceAll(unit, []byte("/usr/bin/vigil"), []byte(vigilBin)), 0o644)
	out, err := exec.Command(sa, "verify", path).CombinedOutput()
	if err != nil || bytes.Contains(out, []byte("vigil.service")) {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// --threshold is on a 0-100 scale: 20 is the 2.0 shown.
	out, err = exec.Command(sa, "security", "--offline=true", "--threshold=20", "--no-pager", path).CombinedOutput()
	switch {
	case bytes.Contains(out, []byte("unrecognized option")):
		testenv.SkipOptional(t, "systemd-analyze security --offline", "systemd older than 250")
	case err != nil:
		t.Errorf("systemd-analyze security: %v\n%s", err, out)
	}
	if m := regexp.MustCompile(`Overall exposure level for vigil.service: (\S+)`).FindSubmatch(out); m != nil {
		t.Logf("systemd-analyze security: exposure %s", m[1])
	}
}

// TestDeploySystemdConfig: the config the packages install as
// /etc/vigil/vigil.yml passes `vigil check-config`, and so do its
// commented-out examples once uncommented.
func TestDeploySystemdConfig(t *testing.T) {
	t.Parallel()
	const path = "../../examples/deploy/systemd/vigil.yml"
	if out, errOut, code := run(t, "check-config", path); code != 0 {
		t.Fatalf("check-config %s: %d\n%s%s", path, code, out, errOut)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	uncommented := regexp.MustCompile(`(?m)^(  |      )# ((- |  ).*|processes:)$`).ReplaceAllString(string(b), "$1$2")
	cfg := writeConfig(t, t.TempDir(), "vigil.yml", uncommented)
	out, errOut, code := run(t, "check-config", cfg)
	if code != 0 || !strings.Contains(out, "4 check(s)") {
		t.Errorf("the examples uncommented: %d\n%s%s\n%s", code, out, errOut, uncommented)
	}
}

// TestDeployPrometheus: the scrape config passes `promtool check config`
// and the file_sd target files parse.
func TestDeployPrometheus(t *testing.T) {
	t.Parallel()
	promtool := testenv.NeedBinary(t, "promtool", "prometheus")
	if out, err := exec.Command(promtool, "check", "config", "../../examples/deploy/prometheus/prometheus.yml").CombinedOutput(); err != nil {
		t.Errorf("promtool check config: %v\n%s", err, out)
	}
	files, _ := filepath.Glob("../../examples/deploy/prometheus/targets/vigil-*.json")
	if len(files) == 0 {
		t.Fatal("no file_sd target files")
	}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		var groups []struct {
			Targets []string
			Labels  map[string]string
		}
		if err := json.Unmarshal(b, &groups); err != nil || len(groups) == 0 || len(groups[0].Targets) == 0 {
			t.Errorf("%s: %v %+v", f, err, groups)
		}
	}
}

// TestCentralRulesMatchAgentRules: the central Prometheus rules pass
// `promtool check rules` and hold every alert the agents evaluate, with the
// same expression (aggregations also keep instance), `for` and labels.
func TestCentralRulesMatchAgentRules(t *testing.T) {
	t.Parallel()
	type rule struct {
		Alert, Expr, For string
		Labels           map[string]string
	}
	load := func(path string) map[string]rule {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var f struct{ Groups []struct{ Rules []rule } }
		if err := yaml.Unmarshal(b, &f); err != nil {
			t.Fatal(err)
		}
		out := map[string]rule{}
		for _, g := range f.Groups {
			for _, r := range g.Rules {
				out[r.Alert] = r
			}
		}
		return out
	}
	agent, central := load("../../examples/rules/vigil.rules.yml"), load("../../dashboards/vigil-central.rules.yml")
	for name, a := range agent {
		c, ok := central[name]
		want := strings.ReplaceAll(a.Expr, "sum by (check)", "sum by (instance, check)")
		switch {
		case !ok:
			t.Errorf("%s: missing from the central rules", name)
		case c.Expr != want || c.For != a.For || c.Labels["severity"] != a.Labels["severity"]:
			t.Errorf("%s differs:\n central %+v\n agent   %+v", name, c, a)
		}
	}
	if _, ok := central["VigilAgentDown"]; !ok {
		t.Error("no VigilAgentDown in the central rules")
	}
	// Last, so that without promtool everything above is still checked.
	promtool := testenv.NeedBinary(t, "promtool", "prometheus")
	if out, err := exec.Command(promtool, "check", "rules", "../../dashboards/vigil-central.rules.yml").CombinedOutput(); err != nil {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
}
