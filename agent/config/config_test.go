package config

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vigil-project/vigil/internal/confkit"
	"github.com/vigil-project/vigil/probes"
	_ "github.com/vigil-project/vigil/probes/all"
)

var update = flag.Bool("update", false, "rewrite golden files")

// dummyConfig is a second family so tests can show a section that does
// not match the check's type.
type dummyConfig struct {
	Target   string         `yaml:"target"`
	Password confkit.Secret `yaml:"password"`
}

func (c *dummyConfig) Validate() error { return nil }

func init() {
	probes.Register(probes.Family{
		Type:      "dummy",
		Step:      probes.StepHost,
		NewConfig: func() probes.Config { return &dummyConfig{} },
		New: func(probes.Config, probes.Options) (probes.Prober, error) {
			return nil, errors.New("dummy checks do not run")
		},
	})
}

func TestInvalid(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"invalid-unknown-key.yml", []string{
			`:3:3: global.recheck_intervall: unknown field (did you mean "recheck_interval"?)`,
			`:7:5: checks[0].intervall: unknown field (did you mean "interval"?)`,
			`:8:1: checkz: unknown field (did you mean "checks"?)`,
		}},
		{"invalid-types.yml", []string{
			`:2:13: global.interval: unknown unit "x" in duration "5x"`,
			`:3:20: global.max_concurrency: expected an integer, got "many"`,
			`:4:11: global.labels: expected a mapping, got a list`,
			`:8:14: checks[0].timeout: cannot unmarshal !!seq into string`,
			`:10:16: checks[0].host.cpu_max: expected a number, got "high"`,
		}},
		{"invalid-notify.yml", []string{
			`:4:7: notify.alertmanagers[0].url: must be an http(s) URL like http://alertmanager:9093`,
			`:6:5: notify.route.receiver: unknown receiver "oncal" (configured: oncall, oncall, empty)`,
			`:7:5: notify.route.group_interval: must be greater than 0`,
			`:9:20: notify.route.routes[0].matchers[0]: bad matcher "severity=crit\"ical": matcher value contains unescaped double quote: crit"ical (want name="value", or !=, =~, !~)`,
			`:12:7: notify.inhibit_rules[0].source_matchers: is required`,
			`:13:3: notify.drill_receiver: unknown receiver "drills"`,
			`:17:11: notify.receivers[0].webhook_configs[0].url: set exactly one of url and url_secret`,
			`:18:7: notify.receivers[1].name: duplicate receiver name "oncall"`,
			`:21:7: notify.receivers[2]: receiver "empty" has no integrations (webhook_configs, pagerduty_configs, ...)`,
		}},
		{"invalid-depends.yml", []string{
			`:2:43: checks[0].depends_on: dependency cycle: net → sync → net`,
			`:5:23: checks[1].depends_on[1]: no check named "nosuch"`,
			`:5:31: checks[1].depends_on[2]: a check cannot depend on itself`,
		}},
		{"invalid-slo-sli.yml", []string{
			`:7:5: slos[0].sli: set checks or sli, not both`,
			`:11:7: slos[1].sli.error_query: must use {{.window}} as its range, e.g. sum(rate(x[{{.window}}]))`,
			`:12:7: slos[1].sli.total_query: 1:15: parse error: unclosed left parenthesis`,
		}},
		{"invalid-slos.yml", []string{
			`:5:5: slos[0].objective: must be a ratio between 0 and 1 exclusive, e.g. 0.999 for 99.9%, got 99.9`,
			`:6:5: slos[0].window: must be between 1d and 90d, got 2h`,
			`:7:19: slos[0].checks[1]: no check named "wbe"`,
			`:8:5: slos[1].name: duplicate SLO name "web-up"`,
			`:8:5: slos[1].checks: required: the checks whose runs the objective is about (or sli: with error_query and total_query)`,
			`:10:14: slos[1].labels.bad-label: invalid label name (must match [a-zA-Z_][a-zA-Z0-9_]* and not start with __)`,
			`:11:5: slos[2].name: required`,
			`:13:5: slos[2].windw: unknown field (did you mean "window"?)`,
		}},
		{"invalid-duplicate-name.yml", []string{
			`:6:11: checks[2].name: duplicate check name "host" (first defined at line 2)`,
		}},
		{"invalid-unknown-type.yml", []string{
			`:3:11: checks[0].type: unknown check type "htp" (known: dns, dummy, host, http, icmp, invoice_qr, invoice_sync, logscan, mysql, postgres, redis, sqlite, tcp)`,
			`:4:5: checks[1]: missing required field "type" (one of dns, dummy, host, http, icmp, invoice_qr, invoice_sync, logscan, mysql, postgres, redis, sqlite, tcp)`,
			`:5:5: checks[2]: missing required field "name"`,
		}},
		{"invalid-host-section.yml", []string{
			`:5:7: checks[0].host.cpu_max: must be between 0 and 1, got 1.5`,
			`:6:7: checks[0].host.disk_free_min: must be between 0 and 1, got -0.1`,
			":7:7: checks[0].host.mount_points_exclude: invalid regular expression: missing closing ): `(unclosed`",
			`:8:7: checks[0].host.swap: unknown field`,
			`:9:5: checks[0].dummy: section "dummy" does not match the check's type "host"`,
		}},
		// yaml.v3 reports where the broken mapping's context began.
		{"invalid-syntax.yml", []string{
			`:2:1: did not find expected key`,
		}},
		{"invalid-durations.yml", []string{
			`:3:3: global.jitter: must be less than global.interval (1m)`,
			`:4:3: global.recheck_interval: must be greater than 0`,
			`:5:3: global.max_concurrency: must be at least 1`,
			`:6:3: global.schedule_granularity: must be between 0 (exact start times) and 1m`,
			`:11:5: checks[0].timeout: timeout 30s is longer than the interval 10s`,
			`:14:15: checks[1].interval: must be greater than 0`,
		}},
		{"invalid-timezone.yml", []string{
			`:3:13: global.timezone: unknown time zone "Asia/Shangai" (want an IANA name like Asia/Shanghai or UTC)`,
		}},
		{"invalid-labels.yml", []string{
			`:4:5: global.labels.bad-name: invalid label name (must match [a-zA-Z_][a-zA-Z0-9_]* and not start with __)`,
			`:6:11: checks[0].name: invalid check name "host check": use letters, digits, '_', '.', ':' or '-' (at most 63)`,
			`:9:7: checks[0].labels.check: label name is reserved for the agent's own use`,
			`:10:7: checks[0].labels.__meta: invalid label name (must match [a-zA-Z_][a-zA-Z0-9_]* and not start with __)`,
		}},
		{"invalid-remote-write.yml", []string{
			`:3:5: remote_write[0].url: must be an http(s) URL like http://prometheus:9090/api/v1/write`,
			`:4:5: remote_write[1].url: credentials cannot be written in the URL: use basic_auth with password_file or password: ${ENV}`,
			`:7:5: remote_write[2].remote_timeout: must be greater than 0`,
			`:8:5: remote_write[2].interval: must be at least 1s`,
			`:9:15: remote_write[2].headers.Authorization: is set by the agent (credentials go in basic_auth or bearer_token, which are secrets)`,
			`:10:43: remote_write[2].basic_auth.password: secrets cannot be written inline: use an environment reference like ${NAME} or the matching _file field`,
			`:11:20: remote_write[2].queue_config.capacity: must be between max_samples_per_send (100) and 10000000, got 10`,
			`:11:61: remote_write[2].queue_config.min_backoff: must not exceed max_backoff (5s)`,
			`:12:5: remote_write[3].name: duplicate remote name "prom.example:9090" (remote_write[2] has it); give each remote its own name`,
			`:13:23: remote_write[3].external_labels.bad-name: invalid label name (must match [a-zA-Z_][a-zA-Z0-9_]* and not start with __)`,
			":15:9: remote_write[3].write_relabel_configs[0]: regex: error parsing regexp: missing closing ): `^(?s:()$`",
			`:16:9: remote_write[3].write_relabel_configs[1]: unknown relabel action "explode"`,
			`:17:20: remote_write[3].queue_config.capacty: unknown field (did you mean "capacity"?)`,
			`:18:5: remote_write[4].url: required: the receiver's write endpoint, e.g. http://prometheus:9090/api/v1/write`,
		}},
		{"invalid-empty.yml", []string{
			`: config is empty`,
		}},
		{"invalid-shape.yml", []string{
			`:2:3: checks: expected a list, got a mapping`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join("testdata", tt.file)
			_, err := Load(path)
			if err == nil {
				t.Fatal("no error")
			}
			errs, ok := err.(Errors)
			if !ok {
				t.Fatalf("error is %T, want Errors: %v", err, err)
			}
			var got []string
			for _, e := range errs {
				got = append(got, strings.TrimPrefix(e.Error(), path))
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestDefaultGolden pins the embedded default config after defaults are
// applied, so a change to defaults is a visible, reviewed diff.
func TestDefaultGolden(t *testing.T) {
	cfg, err := Load("")
	if err != nil {
		t.Fatalf("embedded default does not load: %v", err)
	}
	if cfg.File != DefaultFile {
		t.Errorf("File = %q", cfg.File)
	}
	got, err := json.MarshalIndent(effective(cfg), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	golden := filepath.Join("testdata", "default.golden.json")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("effective default config changed (go test -run TestDefaultGolden -update to accept):\n%s", got)
	}
}

// effective renders a config with each spec through its yaml tags.
func effective(cfg *Config) any {
	type check struct {
		Check
		Spec map[string]any `json:"spec"`
	}
	out := struct {
		Global Global  `json:"global"`
		Checks []check `json:"checks"`
	}{Global: cfg.Global}
	for _, c := range cfg.Checks {
		b, _ := yaml.Marshal(c.Spec)
		var m map[string]any
		yaml.Unmarshal(b, &m)
		out.Checks = append(out.Checks, check{Check: c, Spec: m})
	}
	return out
}

func TestValid(t *testing.T) {
	cfg, err := Parse("x.yml", []byte(`
global:
  interval: 10m
  labels: {env: prod}
checks:
  - name: a
    type: host
  - name: b
    type: host
    interval: 1m
    timeout: 5s
    recheck_interval: 10s
    labels: {team: invoice}
    host:
      cpu_max: 0.5
`))
	if err != nil {
		t.Fatal(err)
	}
	a, b := cfg.Checks[0], cfg.Checks[1]
	if a.Interval.String() != "10m" || a.Timeout.String() != "30s" || a.RecheckInterval.String() != "30s" {
		t.Errorf("check a did not inherit globals: %s %s %s", a.Interval, a.Timeout, a.RecheckInterval)
	}
	if b.Interval.String() != "1m" || b.Timeout.String() != "5s" || b.RecheckInterval.String() != "10s" || b.Labels["team"] != "invoice" {
		t.Errorf("check b overrides lost: %+v", b)
	}
	if a.Line != 6 || b.Line != 8 {
		t.Errorf("lines = %d, %d", a.Line, b.Line)
	}
	if a.Fingerprint() == b.Fingerprint() {
		t.Error("different checks share a fingerprint")
	}
	if cfg.Global.Labels["env"] != "prod" {
		t.Errorf("global labels lost")
	}
}

// TestTimezone: global.timezone names the zone the status page shows
// times in; without it the host's local zone.
func TestTimezone(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       string // the zone's name; "" for time.Local
	}{
		{"default is the host's zone", "global: {interval: 1m}\n", ""},
		{"IANA name", "global: {timezone: Asia/Shanghai}\n", "Asia/Shanghai"},
		{"UTC", "global: {timezone: UTC}\n", "UTC"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("x.yml", []byte(tt.yaml+"checks: [{name: a, type: host}]\n"))
			if err != nil {
				t.Fatal(err)
			}
			loc := cfg.Global.Zone()
			if tt.want == "" {
				if loc != time.Local {
					t.Errorf("zone %v, want the host's", loc)
				}
				return
			}
			if loc.String() != tt.want {
				t.Errorf("zone %v, want %s", loc, tt.want)
			}
		})
	}
	if _, err := Parse("x.yml", []byte("global: {timezone: Local}\nchecks: [{name: a, type: host}]\n")); err == nil {
		t.Error(`timezone "Local" accepted: it is not an IANA name`)
	}
}

func TestExampleConfigs(t *testing.T) {
	// The database example takes its DSNs from the environment.
	for _, v := range []string{"INVOICE_PG_DSN", "INVOICE_MYSQL_DSN", "INVOICE_REDIS_DSN", "INVOICE_API_TOKEN", "TAX_API_TOKEN"} {
		t.Setenv(v, "set-by-test")
	}
	// The paging example's robots check the shape of their addresses.
	for k, v := range map[string]string{
		"ONCALL_PD_KEY": "R0UTINGKEY", "OPS_DINGTALK_SECRET": "SEC0", "OPS_FEISHU_SECRET": "s", "SMTP_PASSWORD": "p",
		"OPS_DINGTALK_URL":     "https://oapi.dingtalk.com/robot/send?access_token=T",
		"OPS_WECOM_URL":        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K",
		"OPS_FEISHU_URL":       "https://open.feishu.cn/open-apis/bot/v2/hook/H",
		"OPS_SLACK_URL":        "https://hooks.slack.com/services/T/B/X",
		"ALIYUN_ACCESS_KEY_ID": "LTAI5tExample", "ALIYUN_ACCESS_KEY_SECRET": "s",
		"TENCENT_SECRET_ID": "AKIDExample", "TENCENT_SECRET_KEY": "k",
		// The remote-write example's basic auth.
		"VM_PASSWORD": "p",
	} {
		t.Setenv(k, v)
	}
	files, _ := filepath.Glob("../../examples/*.yml")
	files = append(files, "testdata/valid-all-types.yml")
	if len(files) == 0 {
		t.Fatal("no example configs found")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg, err := Load(f)
			if err != nil {
				t.Fatalf("example config does not load:\n%v", err)
			}
			for _, c := range cfg.Checks {
				specPlainMatchesYAML(t, c)
			}
		})
	}
}

// specPlainMatchesYAML holds confkit.Plain (how the API shows a check's
// config section) to what it stands in for: the spec written as YAML and
// read back.
func specPlainMatchesYAML(t *testing.T, c Check) {
	t.Helper()
	got, err := confkit.Plain(c.Spec)
	if err != nil {
		t.Errorf("%s: Plain: %v", c.Name, err)
		return
	}
	want, err := confkit.PlainViaText(c.Spec)
	if err != nil {
		t.Fatal(err)
	}
	gj, err1 := json.Marshal(got)
	wj, err2 := json.Marshal(want)
	if err1 != nil || err2 != nil {
		t.Fatalf("%s: %v %v", c.Name, err1, err2)
	}
	if string(gj) != string(wj) {
		t.Errorf("%s (%s): Plain\n%s\nYAML round trip\n%s", c.Name, c.Type, gj, wj)
	}
}

func FuzzParse(f *testing.F) {
	for _, p := range append(append(mustGlob(f, "testdata/*.yml"), mustGlob(f, "../../examples/*.yml")...), "default.yml") {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yml", data)
		if err == nil && cfg == nil {
			t.Fatal("nil config without error")
		}
		if err != nil {
			if _, ok := err.(Errors); !ok {
				t.Fatalf("error of type %T", err)
			}
		}
	})
}

func mustGlob(f *testing.F, pattern string) []string {
	m, err := filepath.Glob(pattern)
	if err != nil || len(m) == 0 {
		f.Fatalf("glob %s: %v", pattern, err)
	}
	return m
}

func TestSecrets(t *testing.T) {
	t.Setenv("VIGIL_TEST_PW", "s3cr3t")
	const body = "checks:\n  - name: d\n    type: dummy\n    dummy:\n      password: %s\n"
	cfg, err := Parse("s.yml", []byte(fmt.Sprintf(body, "${VIGIL_TEST_PW}")))
	if err != nil {
		t.Fatal(err)
	}
	spec := cfg.Checks[0].Spec.(*dummyConfig)
	if spec.Password.Reveal() != "s3cr3t" {
		t.Fatalf("secret not resolved: %q", spec.Password.Reveal())
	}
	b, _ := json.Marshal(cfg)
	y, _ := yaml.Marshal(spec)
	for _, out := range []string{string(b), string(y), cfg.Checks[0].Fingerprint()} {
		if strings.Contains(out, "s3cr3t") {
			t.Errorf("secret leaked: %s", out)
		}
	}
	// A rotated secret changes the fingerprint, so a reload restarts the check.
	fp := cfg.Checks[0].Fingerprint()
	t.Setenv("VIGIL_TEST_PW", "rotated")
	cfg2, err := Parse("s.yml", []byte(fmt.Sprintf(body, "${VIGIL_TEST_PW}")))
	if err != nil {
		t.Fatal(err)
	}
	if cfg2.Checks[0].Fingerprint() == fp {
		t.Error("fingerprint ignores the secret's value")
	}

	_, err = Parse("s.yml", []byte(fmt.Sprintf(body, "hunter2")))
	want := "s.yml:5:17: checks[0].dummy.password: secrets cannot be written inline: use an environment reference like ${NAME} or the matching _file field"
	if err == nil || err.Error() != want {
		t.Errorf("inline secret: %v\nwant %s", err, want)
	}
	if strings.Contains(fmt.Sprint(err), "hunter2") {
		t.Error("the rejected inline secret is echoed in the error")
	}
}

// TestPublicStatusText: public_status's title and description, per
// language, bounded; unknown keys are errors like everywhere.
func TestPublicStatusText(t *testing.T) {
	cfg, err := Parse("x.yml", []byte("public_status: {title: Invoices, title_zh: 开票, description: All steps}\nchecks: [{name: a, type: host}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if ti, d := cfg.PublicStatus.Text("zh"); ti != "开票" || d != "All steps" {
		t.Errorf("zh: %q %q", ti, d)
	}
	if ti, _ := cfg.PublicStatus.Text("en"); ti != "Invoices" {
		t.Errorf("en: %q", ti)
	}
	for _, bad := range []string{
		"public_status: {title: \"" + strings.Repeat("x", 81) + "\"}\n",
		"public_status: {title: \"a\\nb\"}\n",
		"public_status: {description: \"" + strings.Repeat("说", 301) + "\"}\n",
		"public_status: {subtitle: x}\n",
	} {
		if _, err := Parse("x.yml", []byte(bad+"checks: [{name: a, type: host}]\n")); err == nil || !strings.Contains(err.Error(), "public_status") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
