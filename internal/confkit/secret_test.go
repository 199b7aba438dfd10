package confkit

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestSecretFromEnv(t *testing.T) {
	t.Setenv("VIGIL_TEST_SECRET", "hunter2")
	t.Setenv("VIGIL_TEST_EMPTY", "")
	tests := []struct {
		yaml, want, err string
	}{
		{`pw: ${VIGIL_TEST_SECRET}`, "hunter2", ""},
		{`pw: hunter2`, "", "secrets cannot be written inline: use an environment reference like ${NAME} or the matching _file field"},
		{`pw: prefix-${VIGIL_TEST_SECRET}`, "", "secrets cannot be written inline"},
		{`pw: ${VIGIL_TEST_UNSET_VAR}`, "", "environment variable VIGIL_TEST_UNSET_VAR is not set"},
		{`pw: ${VIGIL_TEST_EMPTY}`, "", "environment variable VIGIL_TEST_EMPTY is empty"},
		{`pw: [a]`, "", "expected an environment reference like ${NAME}"},
	}
	for _, tt := range tests {
		t.Run(tt.yaml, func(t *testing.T) {
			var v struct{ Pw Secret }
			err := yaml.Unmarshal([]byte(tt.yaml), &v)
			switch {
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("err = %v, want %q", err, tt.err)
			case tt.err == "" && err != nil:
				t.Fatal(err)
			}
			if v.Pw.Reveal() != tt.want {
				t.Errorf("value %q, want %q", v.Pw.Reveal(), tt.want)
			}
		})
	}
}

// TestSecretNeverShown renders a secret every way the agent shows values.
func TestSecretNeverShown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(path, []byte("s3cr3t-value\n"), 0o600)
	s, err := ReadSecretFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.Reveal() != "s3cr3t-value" {
		t.Fatalf("Reveal = %q", s.Reveal())
	}
	cfg := struct {
		Password Secret `yaml:"password" json:"password"`
	}{s}
	y, _ := yaml.Marshal(cfg)
	j, _ := json.Marshal(cfg)
	var logBuf strings.Builder
	slog.New(slog.NewTextHandler(&logBuf, nil)).Info("cfg", "password", s, "cfg", cfg)
	for name, out := range map[string]string{
		"yaml": string(y), "json": string(j), "log": logBuf.String(),
		"%v": fmt.Sprintf("%v", cfg), "%+v": fmt.Sprintf("%+v", cfg), "%#v": fmt.Sprintf("%#v", cfg), "%s": fmt.Sprintf("%s", s),
	} {
		if strings.Contains(out, "s3cr3t") {
			t.Errorf("%s leaks the secret: %s", name, out)
		}
	}
	if _, err := ReadSecretFile(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing file accepted")
	}
}
