package tencentsms

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vigil-project/vigil/agent/notify/internal/notifytest"
	"github.com/vigil-project/vigil/agent/notify/internal/phonepage"
	"github.com/vigil-project/vigil/agent/notify/internal/tc3/tc3test"
	"github.com/vigil-project/vigil/internal/confkit"
)

const (
	secretID  = "AKIDvigilTestSecretId0000000000000001"
	secretKey = "vigilTestSecretKey00000000000001"
)

func config(f *tc3test.Fake, numbers ...string) Config {
	return Config{SecretID: confkit.NewSecret(secretID), SecretKey: confkit.NewSecret(secretKey), Endpoint: f.URL, Region: DefaultRegion,
		PhoneNumbers: numbers, SmsSdkAppID: "1400006666", SignName: "发票平台", TemplateID: "1234567"}
}

func newNotifier(t *testing.T, cfg Config) *Notifier {
	t.Helper()
	n, err := New(cfg, &http.Client{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSend(t *testing.T) {
	for _, tc := range []struct {
		name     string
		params   []string
		resolved bool
		want     []string
	}{
		{name: "default params", want: []string{"InvoiceQRFailing", "firing", "1", "invoice-qr"}},
		{name: "resolved", resolved: true, want: []string{"InvoiceQRFailing", "resolved", "1", "invoice-qr"}},
		{name: "ordered params", params: []string{"{{ (index .Alerts 0).Check.Reason }}", "{{ .CommonLabels.severity }}"},
			want: []string{"qr_mismatch", "critical"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc3test.New(t, secretID, secretKey)
			cfg := config(f, "+8613800001111", "13900002222")
			cfg.TemplateParams = tc.params
			n := newNotifier(t, cfg)
			if err := n.Notify(context.Background(), notifytest.Message(tc.resolved)); err != nil {
				t.Fatal(err)
			}
			calls := f.Calls()
			if len(calls) != 1 {
				t.Fatalf("%d requests, want one for all numbers", len(calls))
			}
			r := calls[0].Req
			if !slices.Equal(r.PhoneNumberSet, []string{"+8613800001111", "13900002222"}) || r.SmsSdkAppId != "1400006666" ||
				r.SignName != "发票平台" || r.TemplateId != "1234567" || !slices.Equal(r.TemplateParamSet, tc.want) {
				t.Errorf("request %+v, want params %q", r, tc.want)
			}
			if h := calls[0].Header; h.Get("X-TC-Region") != "ap-guangzhou" || h.Get("Content-Type") != contentType ||
				!strings.Contains(h.Get("Authorization"), "SignedHeaders=content-type;host;x-tc-action,") {
				t.Errorf("headers %v", h)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	reply := func(status int, body string) func(tc3test.Call) (int, string) {
		return func(tc3test.Call) (int, string) { return status, body }
	}
	status := func(code string) func(tc3test.Call) (int, string) {
		return func(c tc3test.Call) (int, string) {
			return 200, tc3test.Statuses(c.Req.PhoneNumberSet, map[string]string{"13800001111": code})
		}
	}
	for _, tc := range []struct {
		notifytest.Answer
		answer func(tc3test.Call) (int, string)
	}{
		{notifytest.Answer{Name: "ok", Class: notifytest.OK}, nil},
		{notifytest.Answer{Name: "30 second limit", Class: notifytest.Retry, After: 30 * time.Second,
			Msg: "138****1111: LimitExceeded.PhoneNumberThirtySecondLimit"}, status("LimitExceeded.PhoneNumberThirtySecondLimit")},
		{notifytest.Answer{Name: "hour limit", Class: notifytest.Retry, After: time.Minute, Msg: "LimitExceeded.PhoneNumberOneHourLimit"},
			status("LimitExceeded.PhoneNumberOneHourLimit")},
		{notifytest.Answer{Name: "daily limit", Class: notifytest.Permanent, Msg: "LimitExceeded.PhoneNumberDailyLimit"},
			status("LimitExceeded.PhoneNumberDailyLimit")},
		{notifytest.Answer{Name: "blacklisted", Class: notifytest.Permanent, Msg: "FailedOperation.PhoneNumberInBlacklist"},
			status("FailedOperation.PhoneNumberInBlacklist")},
		{notifytest.Answer{Name: "request throttled", Class: notifytest.Retry, Msg: "RequestLimitExceeded: 请求的次数超过了频率限制"},
			reply(200, tc3test.Error("RequestLimitExceeded", "请求的次数超过了频率限制"))},
		{notifytest.Answer{Name: "internal", Class: notifytest.Retry, Msg: "InternalError.Timeout"},
			reply(200, tc3test.Error("InternalError.Timeout", "请求下发短信超时"))},
		{notifytest.Answer{Name: "template", Class: notifytest.Permanent, Msg: "FailedOperation.TemplateIncorrectOrUnapproved: 模版未审批或内容不匹配 (request fake-req-2)"},
			reply(200, tc3test.Error("FailedOperation.TemplateIncorrectOrUnapproved", "模版未审批或内容不匹配"))},
		{notifytest.Answer{Name: "key echoed", Class: notifytest.Permanent, Msg: "AuthFailure.SecretIdNotFound: <redacted> not found"},
			reply(200, tc3test.Error("AuthFailure.SecretIdNotFound", secretID+" not found"))},
		{notifytest.Answer{Name: "bad gateway", Class: notifytest.Retry, Msg: "answered 502 Bad Gateway"}, reply(502, "<html>502</html>")},
		{notifytest.Answer{Name: "not tencent", Class: notifytest.Permanent, Msg: "answered 200 OK: {}"}, reply(200, "{}")},
		{notifytest.Answer{Name: "no status", Class: notifytest.Retry, Msg: "no status for the number"},
			reply(200, tc3test.Statuses([]string{"13900009999"}, nil))},
	} {
		t.Run(tc.Name, func(t *testing.T) {
			f := tc3test.New(t, secretID, secretKey)
			f.Answer(tc.answer)
			n := newNotifier(t, config(f, "13800001111"))
			tc.Check(t, n.Notify(context.Background(), notifytest.Message(false)), "tencent_sms: ", secretID, secretKey)
		})
	}
}

// TestFakeChecksSignature: a request signed with another key is refused as
// Tencent refuses it, permanently.
func TestFakeChecksSignature(t *testing.T) {
	f := tc3test.New(t, secretID, secretKey)
	f.Lenient()
	cfg := config(f, "13800001111")
	cfg.SecretKey = confkit.NewSecret("anotherSecretKey0000000000000001")
	err := newNotifier(t, cfg).Notify(context.Background(), notifytest.Message(false))
	notifytest.AssertClass(t, err, notifytest.Permanent, 0)
	if !strings.Contains(err.Error(), "AuthFailure.SignatureFailure") || len(f.Calls()) != 0 {
		t.Errorf("error %v, %d calls", err, len(f.Calls()))
	}
}

// TestRetryTextsOnlyTheRest: numbers Tencent accepted are not texted
// again when the notification is retried for another.
func TestRetryTextsOnlyTheRest(t *testing.T) {
	f := tc3test.New(t, secretID, secretKey)
	f.Answer(func(c tc3test.Call) (int, string) {
		return 200, tc3test.Statuses(c.Req.PhoneNumberSet, map[string]string{"13900002222": "LimitExceeded.PhoneNumberThirtySecondLimit"})
	})
	n := newNotifier(t, config(f, "13800001111", "13900002222"))
	m := notifytest.Message(false)
	notifytest.AssertClass(t, n.Notify(context.Background(), m), notifytest.Retry, 30*time.Second)
	f.Answer(nil)
	if err := n.Notify(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	calls := f.Calls()
	if len(calls) != 2 || !slices.Equal(calls[1].Req.PhoneNumberSet, []string{"13900002222"}) {
		t.Errorf("calls %+v: the retry must text only the throttled number", calls)
	}
}

func TestUnreachable(t *testing.T) {
	f := tc3test.New(t, secretID, secretKey)
	cfg := config(f, "13800001111")
	f.Close()
	err := newNotifier(t, cfg).Notify(context.Background(), notifytest.Message(false))
	notifytest.AssertClass(t, err, notifytest.Retry, 0)
	notifytest.NoSecrets(t, err, secretID, secretKey, "13800001111")
}

func TestNew(t *testing.T) {
	dir := t.TempDir()
	idFile := notifytest.WriteFile(t, dir, "id", secretID+"\n")
	keyFile := notifytest.WriteFile(t, dir, "key", secretKey+"\n")
	base := Config{Region: DefaultRegion, PhoneNumbers: []string{"+8613800001111"}, SmsSdkAppID: "1400006666", SignName: "s", TemplateID: "1"}
	for _, tc := range []struct {
		name string
		cfg  func(Config) Config
		err  string
	}{
		{"files", func(c Config) Config { c.SecretIDFile, c.SecretKeyFile = idFile, keyFile; return c }, ""},
		{"missing key file", func(c Config) Config { c.SecretIDFile, c.SecretKeyFile = idFile, filepath.Join(dir, "nope"); return c },
			"tencent_sms: secret_key_file: read secret file"},
		{"param parse error", func(c Config) Config {
			c.SecretIDFile, c.SecretKeyFile, c.TemplateParams = idFile, keyFile, []string{"ok", "{{ .Alerts"}
			return c
		}, "template_params.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := New(tc.cfg(base), nil)
			if notifytest.WantError(t, err, tc.err, secretID, secretKey) {
				return
			}
			if n.endpoint.String() != DefaultEndpoint+"/" {
				t.Errorf("endpoint %s", n.endpoint)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	ok := Config{SecretIDFile: "/run/secrets/id", SecretKey: confkit.NewSecret(secretKey), Region: DefaultRegion,
		PhoneNumbers: []string{"+8613800001111"}, SmsSdkAppID: "1400006666", SignName: "s", TemplateID: "1", Limits: phonepage.DefaultLimits()}
	for _, tc := range []struct {
		name   string
		cfg    func(Config) Config
		fields []string
	}{
		{"ok", func(c Config) Config { return c }, nil},
		{"no keys", func(c Config) Config { c.SecretIDFile, c.SecretKey = "", confkit.Secret{}; return c }, []string{"secret_id", "secret_key"}},
		{"bad number", func(c Config) Config { c.PhoneNumbers = []string{"+86 138"}; return c }, []string{"phone_numbers.0"}},
		{"bad endpoint", func(c Config) Config { c.Endpoint = "sms.tencentcloudapi.com"; return c }, []string{"endpoint"}},
		{"required", func(c Config) Config { c.Region, c.SmsSdkAppID, c.SignName, c.TemplateID = "", "", "", ""; return c },
			[]string{"region", "sms_sdk_app_id", "sign_name", "template_id"}},
		{"param", func(c Config) Config { c.TemplateParams = []string{"x", "{{ .Nope }}"}; return c }, []string{"template_params.1"}},
		{"limits", func(c Config) Config { c.PhoneMaxPerHour = -2; return c }, []string{"phone_max_per_hour"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.cfg(ok)
			notifytest.WantFields(t, c.Validate(), tc.fields, secretID, secretKey)
		})
	}
}

func TestYAML(t *testing.T) {
	t.Setenv("TENCENT_SECRET_ID", secretID)
	t.Setenv("TENCENT_SECRET_KEY", secretKey)
	c := Config{Region: DefaultRegion, Limits: phonepage.DefaultLimits()}
	doc := `
secret_id: ${TENCENT_SECRET_ID}
secret_key: ${TENCENT_SECRET_KEY}
phone_numbers: ["+8613800001111"]
sms_sdk_app_id: "1400006666"
sign_name: 发票平台
template_id: "1234567"
template_params: ['{{ .CommonLabels.alertname }}', '{{ .Status }}']
`
	if err := yaml.Unmarshal([]byte(doc), &c); err != nil {
		t.Fatal(err)
	}
	if c.SecretKey.Reveal() != secretKey || c.Region != "ap-guangzhou" || len(c.TemplateParams) != 2 || c.TemplateID != "1234567" {
		t.Errorf("decoded %#v", c)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	if err := yaml.Unmarshal([]byte("secret_key: "+secretKey), &Config{}); err == nil {
		t.Error("an inline secret_key was accepted")
	}
	out, _ := json.Marshal(c)
	if strings.Contains(string(out), secretKey) || strings.Contains(string(out), secretID) {
		t.Errorf("rendered config shows a secret: %s", out)
	}
}
