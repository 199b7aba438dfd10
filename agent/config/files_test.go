package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGlobsMatchingNothing: a rule_files, runbooks or drills entry that
// matches no file is an error at its line (a typo must not turn alerting
// off); optional entries may match nothing; a glob as written renders back
// the same.
func TestGlobsMatchingNothing(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rules.yml"), []byte("groups: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "vigil.yml")
	for _, tc := range []struct {
		name, yaml string
		want       []string // substrings of the error, "" for none
	}{
		{"matches", "rule_files: [rules.yml]\n", nil},
		{"typo", "rule_files:\n  - rules.yml\n  - rulez/*.yml\n", []string{`vigil.yml:3:5: rule_files[1]: "rulez/*.yml" matches no file`, "optional: true"}},
		{"runbooks and drills", "runbooks: [runbooks/*.yml]\ndrills:\n  - drills/*.yml\n",
			[]string{`vigil.yml:1:12: runbooks[0]: "runbooks/*.yml" matches no file`, `vigil.yml:3:5: drills[0]: "drills/*.yml" matches no file`}},
		{"optional", "drills:\n  - {glob: drills/*.yml, optional: true}\n", nil},
		{"bad glob", "rule_files: ['[']\n", []string{"rule_files[0]: bad glob"}},
		{"bad entry", "runbooks:\n  - {glob: a.yml, optinal: true}\n", []string{"vigil.yml:2", `unknown key "optinal"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse(file, []byte(tc.yaml))
			if tc.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.yaml)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			_ = cfg
		})
	}
	cfg, err := Parse(file, []byte("rule_files: [rules.yml]\ndrills:\n  - {glob: drills/*.yml, optional: true}\n"))
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(struct {
		R FileGlobs `json:"rule_files"`
		D FileGlobs `json:"drills"`
	}{cfg.RuleFiles, cfg.Drills})
	if string(js) != `{"rule_files":["rules.yml"],"drills":[{"glob":"drills/*.yml","optional":true}]}` {
		t.Errorf("rendered %s", js)
	}
}

func TestFailureThreshold(t *testing.T) {
	base := "checks:\n  - name: db\n    type: tcp\n    tcp: {address: 127.0.0.1:5432}\n"
	cfg, err := Parse("vigil.yml", []byte(base+"    failure_threshold: 3\n"))
	if err != nil || cfg.Checks[0].FailureThreshold != 3 {
		t.Fatalf("failure_threshold 3: %v", err)
	}
	if _, err := Parse("vigil.yml", []byte(base+"    failure_threshold: -1\n")); err == nil || !strings.Contains(err.Error(), "vigil.yml:5:5: checks[0].failure_threshold: must be between 1 and 100") {
		t.Errorf("negative threshold: %v", err)
	}
}
