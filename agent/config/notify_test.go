package config

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/vigil-project/vigil/agent/notify"
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
	// YAML shows every registered kind, an empty list where a receiver has
	// none. Those lines are checked against the registry and left out of
	// the golden, so a new kind needs no new golden.
	var yamlLines []string
	empty := map[string]int{}
	for _, line := range strings.SplitAfter(string(ys), "\n") {
		if key, ok := strings.CutSuffix(strings.TrimSpace(line), ": []"); ok && strings.HasSuffix(key, "_configs") {
			empty[key]++
			continue
		}
		yamlLines = append(yamlLines, line)
	}
	for _, kind := range notify.Integrations() {
		used := 0
		for _, r := range cfg.Notify.Receivers {
			if len(r.Configs[kind.Kind]) > 0 {
				used++
			}
		}
		if want := len(cfg.Notify.Receivers) - used; empty[kind.Key] != want {
			t.Errorf("YAML shows %q as an empty list %d times, want %d", kind.Key, empty[kind.Key], want)
		}
	}
	got := "# json\n" + string(js) + "\n# yaml\n" + strings.Join(yamlLines, "") + "# integrations\n"
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

// TestReceiverErrors: a receiver's integration lists are decoded as
// strictly as any section, every problem at its file:line:col.
func TestReceiverErrors(t *testing.T) {
	const head = "notify:\n  route: {receiver: r}\n  receivers:\n    - name: r\n"
	tests := []struct {
		name, body string
		want       []string
	}{
		{"misspelt kind", "      webhook_config:\n        - url: http://a\n", []string{
			`x.yml:4:7: notify.receivers[0]: receiver "r" has no integrations (webhook_configs, pagerduty_configs, ...)`,
			`x.yml:5:7: notify.receivers[0].webhook_config: unknown field (did you mean "webhook_configs"?)`,
		}},
		{"unknown key in an entry", "      webhook_configs:\n        - {url: http://a, urll: x}\n", []string{
			`x.yml:6:27: notify.receivers[0].webhook_configs[0].urll: unknown field (did you mean "url"?)`,
		}},
		{"not a list", "      slack_configs: {channel: ops}\n", []string{
			`x.yml:4:7: notify.receivers[0]: receiver "r" has no integrations (webhook_configs, pagerduty_configs, ...)`,
			`x.yml:5:22: notify.receivers[0].slack_configs: expected a list, got a mapping`,
		}},
		{"wrong type", "      webhook_configs:\n        - {url: http://a, max_alerts: many}\n", []string{
			`x.yml:6:39: notify.receivers[0].webhook_configs[0].max_alerts: expected an integer, got "many"`,
		}},
		{"invalid entry", "      webhook_configs:\n        - url: http://a\n      email_configs:\n        - to: [ops@example.com]\n", []string{
			`x.yml:8:11: notify.receivers[0].email_configs[0].from: the sender address is required`,
			`x.yml:8:11: notify.receivers[0].email_configs[0].smarthost: the relay, host:port, is required`,
		}},
		{"duplicate list", "      webhook_configs: [{url: http://a}]\n      webhook_configs: [{url: http://b}]\n", []string{
			`x.yml:6:7: notify.receivers[0].webhook_configs: duplicate key`,
		}},
		{"empty list", "      webhook_configs:\n", []string{
			`x.yml:4:7: notify.receivers[0]: receiver "r" has no integrations (webhook_configs, pagerduty_configs, ...)`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("x.yml", []byte(head+tt.body))
			if err == nil {
				t.Fatal("no error")
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("errors:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// TestReceiverSecrets: SecretValues finds the secrets inside every kind's
// config, the same list each time.
func TestReceiverSecrets(t *testing.T) {
	secrets := map[string]string{
		"VIGIL_TEST_SMTP_PW": "smtp-pw", "VIGIL_TEST_HOOK_URL": "http://hooks.example.com/T0K3N",
		"VIGIL_TEST_HOOK_TOKEN": "tok", "VIGIL_TEST_PD_KEY": "R0UTINGKEY",
		"VIGIL_TEST_SLACK_URL":  "https://hooks.slack.com/services/T/B/X",
		"VIGIL_TEST_FEISHU_URL": "https://open.feishu.cn/open-apis/bot/v2/hook/H",
		"VIGIL_TEST_DING_URL":   "https://oapi.dingtalk.com/robot/send?access_token=T",
	}
	var want []string
	for k, v := range secrets {
		t.Setenv(k, v)
		want = append(want, v)
	}
	cfg, err := Load(filepath.Join("testdata", "valid-receivers.yml"))
	if err != nil {
		t.Fatal(err)
	}
	first := SecretValues(cfg)
	got := slices.Clone(first)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("SecretValues = %q, want %q", got, want)
	}
	for range 5 {
		if again := SecretValues(cfg); !slices.Equal(again, first) {
			t.Fatalf("SecretValues changes order: %q, then %q", first, again)
		}
	}
}

// TestTimeIntervalErrors: each maintenance-window mistake is reported at
// its file and line: an unknown time zone, a window that never occurs, a
// duplicate name, a route naming a window that does not exist.
func TestTimeIntervalErrors(t *testing.T) {
	const head = "notify:\n  receivers: [{name: r, webhook_configs: [{url: http://a}]}]\n"
	tests := []struct {
		name, body string
		want       []string
	}{
		{"unknown time zone", `  route: {receiver: r}
  time_intervals:
    - name: nightly
      time_intervals:
        - times: [{start_time: "00:00", end_time: "02:00"}]
          location: Asia/Shanghia
`, []string{`x.yml:8:21: notify.time_intervals[0].time_intervals[0].location: unknown time zone Asia/Shanghia`}},
		{"never occurs", `  route: {receiver: r}
  time_intervals:
    - name: nightly
      time_intervals:
        - {days_of_month: ['30'], months: [february]}
`, []string{`x.yml:7:11: notify.time_intervals[0].time_intervals[0]: never occurs from now on (checked 8 years ahead)`}},
		{"bad times", `  route: {receiver: r}
  time_intervals:
    - name: nightly
      time_intervals:
        - times: [{start_time: "25:00", end_time: "26:00"}]
`, []string{`x.yml:7:19: notify.time_intervals[0].time_intervals[0].times[0]: couldn't parse timestamp 25:00, invalid format`}},
		{"duplicate and unknown", `  route:
    receiver: r
    routes:
      - matchers: [team=tax]
        mute_time_intervals: [nightly, nigthly]
  time_intervals:
    - name: nightly
      time_intervals: [{weekdays: [monday]}]
    - name: nightly
      time_intervals: [{weekdays: [tuesday]}]
`, []string{
			`x.yml:7:40: notify.route.routes[0].mute_time_intervals[1]: unknown time interval "nigthly" (notify.time_intervals has: nightly)`,
			`x.yml:11:7: notify.time_intervals[1].name: duplicate time interval name "nightly"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("x.yml", []byte(head+tt.body))
			if err == nil {
				t.Fatal("no error")
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("errors:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}
