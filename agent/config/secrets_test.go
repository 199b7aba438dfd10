package config

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestSecretValues: every secret of a config is found, from ${ENV}
// references in checks and receivers and from *_file fields, and
// certificate paths are not read as secrets.
func TestSecretValues(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("VIGIL_TEST_CHECK_PW", "check-pw-1")
	t.Setenv("VIGIL_TEST_HOOK_URL", "https://hooks.example.com/T0K3N")
	urlFile := filepath.Join(dir, "ding.url")
	os.WriteFile(urlFile, []byte("https://oapi.dingtalk.com/robot/send?access_token=from-file-77\n"), 0o600)
	body := fmt.Sprintf(`checks:
  - name: d
    type: dummy
    dummy:
      password: ${VIGIL_TEST_CHECK_PW}
notify:
  route: {receiver: oncall}
  receivers:
    - name: oncall
      webhook_configs:
        - url_secret: ${VIGIL_TEST_HOOK_URL}
      dingtalk_configs:
        - url_file: %s
`, urlFile)
	cfg, err := Parse("s.yml", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	got := SecretValues(cfg)
	for _, want := range []string{"check-pw-1", "https://hooks.example.com/T0K3N", "https://oapi.dingtalk.com/robot/send?access_token=from-file-77"} {
		if !slices.Contains(got, want) {
			t.Errorf("SecretValues lacks %q: %q", want, got)
		}
	}
	if len(got) != 3 {
		t.Errorf("SecretValues = %q, want 3 values", got)
	}
}
