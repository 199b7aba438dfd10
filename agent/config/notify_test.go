package config

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestReceiversGolden pins how receivers render (JSON as an API or a
// diff shows them, YAML) and the order of their integrations, so moving
// integration configs behind the registry cannot change either.
func TestReceiversGolden(t *testing.T) {
	for k, v := range map[string]string{
		"VIGIL_TEST_SMTP_PW": "smtp-pw", "VIGIL_TEST_HOOK_URL": "http://hooks.example.com/T0K3N",
		"VIGIL_TEST_HOOK_TOKEN": "tok", "VIGIL_TEST_PD_KEY": "R0UTINGKEY",
		"VIGIL_TEST_SLACK_URL":  "https://hooks.slack.com/services/T/B/X",
		"VIGIL_TEST_FEISHU_URL": "https://open.feishu.cn/open-apis/bot/v2/hook/H",
		"VIGIL_TEST_DING_URL":   "https://oapi.dingtalk.com/robot/send?access_token=T",
	} {
		t.Setenv(k, v)
	}
	cfg, err := Load(filepath.Join("testdata", "valid-receivers.yml"))
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.MarshalIndent(cfg.Notify.Receivers, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	ys, err := yaml.Marshal(cfg.Notify.Receivers)
	if err != nil {
		t.Fatal(err)
	}
	got := "# json\n" + string(js) + "\n# yaml\n" + string(ys) + "# integrations\n"
	for _, r := range cfg.Notify.Receivers {
		for _, in := range r.Integrations() {
			got += fmt.Sprintf("%s %s %T\n", in.Target(r.Name), in.Key, in.Config)
		}
	}
	golden := filepath.Join("testdata", "receivers.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("receivers render differently (go test -run TestReceiversGolden -update to accept):\n%s", got)
	}
}
