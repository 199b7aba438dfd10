package aliyunsms

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/agent/notify/internal/aliyun"
	"github.com/vigil-project/vigil/agent/notify/internal/aliyun/aliyuntest"
	"github.com/vigil-project/vigil/agent/notify/internal/notifytest"
	"github.com/vigil-project/vigil/agent/notify/internal/phonepage"
	"github.com/vigil-project/vigil/internal/confkit"
)

const (
	keyID  = "LTAI5tVigilTestKeyId00001"
	secret = "VigilTestAccessKeySecret0000000001"
)

func newFake(t *testing.T) *aliyuntest.Fake {
	return aliyuntest.New(t, keyID, secret, "SendSms", "2017-05-25")
}

// config is an entry pointing at the fake, limits off unless a test sets
// them.
func config(f *aliyuntest.Fake, numbers ...string) Config {
	return Config{Credentials: Credentials(f), PhoneNumbers: numbers, SignName: "发票平台", TemplateCode: "SMS_460755082"}
}

// Credentials are the test AccessKey pair with the fake as endpoint.
func Credentials(f *aliyuntest.Fake) aliyun.Credentials {
	return aliyun.Credentials{AccessKeyID: confkit.NewSecret(keyID), AccessKeySecret: confkit.NewSecret(secret), Endpoint: f.URL}
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
		params   map[string]string
		resolved bool
		want     map[string]string
	}{
		{name: "default params", want: map[string]string{"alert": "InvoiceQRFailing", "status": "firing", "count": "1", "check": "invoice-qr"}},
		{name: "resolved", resolved: true, want: map[string]string{"alert": "InvoiceQRFailing", "status": "resolved", "count": "1", "check": "invoice-qr"}},
		{name: "custom params", params: map[string]string{"name": "{{ .CommonLabels.alertname }}", "reason": "{{ (index .Alerts 0).Check.Reason }}",
			"summary": "{{ .CommonAnnotations.summary }}"},
			want: map[string]string{"name": "InvoiceQRFailing", "reason": "qr_mismatch", "summary": "Invoice QR codes do not match the…"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			cfg := config(f, "13800001111", "+8613900002222")
			cfg.TemplateParam = tc.params
			n := newNotifier(t, cfg)
			if err := n.Notify(context.Background(), notifytest.Message(tc.resolved)); err != nil {
				t.Fatal(err)
			}
			calls := f.Calls()
			if len(calls) != 2 {
				t.Fatalf("%d calls, want one per number", len(calls))
			}
			for i, num := range []string{"13800001111", "+8613900002222"} {
				p := calls[i].Params
				if p["PhoneNumbers"] != num || p["SignName"] != "发票平台" || p["TemplateCode"] != "SMS_460755082" || len(p) != 4 {
					t.Errorf("call %d params %v", i, p)
				}
				var got map[string]string
				if err := json.Unmarshal([]byte(p["TemplateParam"]), &got); err != nil {
					t.Fatalf("TemplateParam %q: %v", p["TemplateParam"], err)
				}
				if len(got) != len(tc.want) {
					t.Errorf("TemplateParam %v, want %v", got, tc.want)
				}
				for k, v := range tc.want {
					if got[k] != v {
						t.Errorf("TemplateParam[%s] = %q, want %q", k, got[k], v)
					}
				}
			}
		})
	}
}

func TestErrors(t *testing.T) {
	reply := func(status int, body string) func(aliyuntest.Call) (int, string) {
		return func(aliyuntest.Call) (int, string) { return status, body }
	}
	for _, tc := range []struct {
		notifytest.Answer
		answer func(aliyuntest.Call) (int, string)
	}{
		{notifytest.Answer{Name: "ok", Class: notifytest.OK}, nil},
		{notifytest.Answer{Name: "number flow control", Class: notifytest.Retry, After: time.Minute, Msg: "138****1111: isv.BUSINESS_LIMIT_CONTROL: 触发分钟级流控Permits:1"},
			reply(200, aliyuntest.JSON("isv.BUSINESS_LIMIT_CONTROL", "触发分钟级流控Permits:1"))},
		{notifytest.Answer{Name: "api throttling", Class: notifytest.Retry, Msg: "Throttling.User: Request was denied due to user flow control."},
			reply(400, aliyuntest.JSON("Throttling.User", "Request was denied due to user flow control."))},
		{notifytest.Answer{Name: "system error", Class: notifytest.Retry, Msg: "isp.SYSTEM_ERROR"},
			reply(200, aliyuntest.JSON("isp.SYSTEM_ERROR", "isp.SYSTEM_ERROR"))},
		{notifytest.Answer{Name: "template", Class: notifytest.Permanent, Msg: "isv.SMS_TEMPLATE_ILLEGAL: 该账号下找不到对应模板 (request FAKE-2)"},
			reply(200, aliyuntest.JSON("isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板"))},
		{notifytest.Answer{Name: "out of credit", Class: notifytest.Permanent, Msg: "isv.AMOUNT_NOT_ENOUGH"},
			reply(200, aliyuntest.JSON("isv.AMOUNT_NOT_ENOUGH", "账户余额不足"))},
		{notifytest.Answer{Name: "signature echoed", Class: notifytest.Permanent, Msg: "SignatureDoesNotMatch: Specified signature is not matched with our calculation. server string to sign is:<redacted>"},
			reply(400, aliyuntest.JSON("SignatureDoesNotMatch", "Specified signature is not matched with our calculation. server string to sign is:"+secret))},
		{notifytest.Answer{Name: "key id echoed", Class: notifytest.Permanent, Msg: "Specified access key is not found: <redacted>"},
			reply(404, aliyuntest.JSON("InvalidAccessKeyId.NotFound", "Specified access key is not found: "+keyID))},
		{notifytest.Answer{Name: "bad gateway", Class: notifytest.Retry, Msg: "answered 502 Bad Gateway: <html>"}, reply(502, "<html>bad gateway</html>")},
		{notifytest.Answer{Name: "not aliyun", Class: notifytest.Permanent, Msg: "answered 200 OK: <html>login"}, reply(200, "<html>login</html>")},
	} {
		t.Run(tc.Name, func(t *testing.T) {
			f := newFake(t)
			f.Answer(tc.answer)
			n := newNotifier(t, config(f, "13800001111"))
			tc.Check(t, n.Notify(context.Background(), notifytest.Message(false)), "aliyun_sms: ", secret, keyID)
		})
	}
}

// TestFakeChecksSignature: the fake refuses a request signed with another
// secret as Aliyun does, which is permanent.
func TestFakeChecksSignature(t *testing.T) {
	f := newFake(t)
	f.Lenient()
	cfg := config(f, "13800001111")
	cfg.AccessKeySecret = confkit.NewSecret("AnotherAccessKeySecret000000001")
	err := newNotifier(t, cfg).Notify(context.Background(), notifytest.Message(false))
	notifytest.AssertClass(t, err, notifytest.Permanent, 0)
	if !strings.Contains(err.Error(), "SignatureDoesNotMatch") || len(f.Calls()) != 0 {
		t.Errorf("error %v, %d calls accepted", err, len(f.Calls()))
	}
}

func TestUnreachable(t *testing.T) {
	f := newFake(t)
	cfg := config(f, "13800001111")
	f.Close()
	err := newNotifier(t, cfg).Notify(context.Background(), notifytest.Message(false))
	notifytest.AssertClass(t, err, notifytest.Retry, 0)
	// The request URL holds the number and the parameters.
	notifytest.NoSecrets(t, err, secret, keyID, "13800001111", "TemplateParam")
}

// TestRetryTextsOnlyTheRest: when one number is throttled, the retry
// texts that number alone.
func TestRetryTextsOnlyTheRest(t *testing.T) {
	f := newFake(t)
	f.Answer(func(c aliyuntest.Call) (int, string) {
		if c.Params["PhoneNumbers"] == "13900002222" {
			return 200, aliyuntest.JSON("isv.BUSINESS_LIMIT_CONTROL", "触发分钟级流控Permits:1")
		}
		return 200, aliyuntest.JSON("OK", "OK")
	})
	n := newNotifier(t, config(f, "13800001111", "13900002222"))
	m := notifytest.Message(false)
	err := n.Notify(context.Background(), m)
	notifytest.AssertClass(t, err, notifytest.Retry, time.Minute)
	if strings.Contains(err.Error(), "138****1111") || !strings.Contains(err.Error(), "139****2222") {
		t.Errorf("error %q: want the throttled number only", err)
	}
	f.Answer(nil)
	if err := n.Notify(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range f.Calls() {
		got = append(got, c.Params["PhoneNumbers"])
	}
	if strings.Join(got, ",") != "13800001111,13900002222,13900002222" {
		t.Errorf("numbers called %v: the retry must text only the throttled number", got)
	}
	// A new notification goes to both again.
	m2 := notifytest.Message(true)
	if err := n.Notify(context.Background(), m2); err != nil {
		t.Fatal(err)
	}
	if len(f.Calls()) != 5 {
		t.Errorf("%d calls, want 5", len(f.Calls()))
	}
}

// TestPerNumberLimits: a number inside its minimum gap waits (the outbox
// retries when the gap has passed); over its hourly cap it is not texted
// and the notification is dead-lettered.
func TestPerNumberLimits(t *testing.T) {
	f := newFake(t)
	cfg := config(f, "13800001111")
	cfg.Limits = phonepage.Limits{PhoneMinInterval: model.Duration(time.Minute), PhoneMaxPerHour: 2}
	n := newNotifier(t, cfg)
	now := time.Date(2026, 3, 9, 14, 30, 0, 0, time.UTC)
	n.sender = phonepage.NewSender(cfg.Limits, func() time.Time { return now })
	page := func(i int) *notify.Message {
		m := notifytest.Message(false)
		m.GroupKey += string(rune('a' + i))
		return m
	}
	if err := n.Notify(context.Background(), page(0)); err != nil {
		t.Fatal(err)
	}
	now = now.Add(20 * time.Second)
	err := n.Notify(context.Background(), page(1))
	notifytest.AssertClass(t, err, notifytest.Retry, 40*time.Second)
	if !strings.Contains(err.Error(), "138****1111: waiting for phone_min_interval") {
		t.Errorf("error %q", err)
	}
	now = now.Add(40 * time.Second)
	if err := n.Notify(context.Background(), page(1)); err != nil {
		t.Fatal(err)
	}
	now = now.Add(10 * time.Minute)
	err = n.Notify(context.Background(), page(2))
	notifytest.AssertClass(t, err, notifytest.Permanent, 0)
	if !strings.Contains(err.Error(), "138****1111: not sent: over phone_max_per_hour") {
		t.Errorf("error %q", err)
	}
	if len(f.Calls()) != 2 {
		t.Errorf("%d calls, want 2 (one deferred, one capped)", len(f.Calls()))
	}
	// An hour after the first, the number has room again.
	now = now.Add(50 * time.Minute)
	if err := n.Notify(context.Background(), page(3)); err != nil {
		t.Fatal(err)
	}
}

func TestNew(t *testing.T) {
	dir := t.TempDir()
	idFile := notifytest.WriteFile(t, dir, "id", keyID+"\n")
	secretFile := notifytest.WriteFile(t, dir, "secret", secret+"\n")
	base := Config{PhoneNumbers: []string{"13800001111"}, SignName: "发票平台", TemplateCode: "SMS_1"}
	for _, tc := range []struct {
		name string
		cfg  func(Config) Config
		err  string
	}{
		{"files", func(c Config) Config { c.AccessKeyIDFile, c.AccessKeySecretFile = idFile, secretFile; return c }, ""},
		{"missing secret file", func(c Config) Config {
			c.AccessKeyIDFile, c.AccessKeySecretFile = idFile, filepath.Join(dir, "nope")
			return c
		}, "aliyun_sms: access_key_secret_file: read secret file"},
		{"param parse error", func(c Config) Config {
			c.AccessKeyIDFile, c.AccessKeySecretFile = idFile, secretFile
			c.TemplateParam = map[string]string{"alert": "{{ .Alerts"}
			return c
		}, "template_param.alert"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg(base), nil)
			notifytest.WantError(t, err, tc.err, secret, keyID)
		})
	}
}

func TestValidate(t *testing.T) {
	creds := aliyun.Credentials{AccessKeyID: confkit.NewSecret(keyID), AccessKeySecret: confkit.NewSecret(secret)}
	ok := Config{Credentials: creds, PhoneNumbers: []string{"13800001111"}, SignName: "s", TemplateCode: "SMS_1", Limits: phonepage.DefaultLimits()}
	for _, tc := range []struct {
		name   string
		cfg    func(Config) Config
		fields []string
	}{
		{"ok", func(c Config) Config { return c }, nil},
		{"no credentials", func(c Config) Config { c.Credentials = aliyun.Credentials{}; return c }, []string{"access_key_id", "access_key_secret"}},
		{"secret and file", func(c Config) Config { c.AccessKeySecretFile = "/s"; return c }, []string{"access_key_secret"}},
		{"bad endpoint", func(c Config) Config { c.Endpoint = "dysmsapi.aliyuncs.com"; return c }, []string{"endpoint"}},
		{"no numbers", func(c Config) Config { c.PhoneNumbers = nil; return c }, []string{"phone_numbers"}},
		{"bad and duplicate number", func(c Config) Config {
			c.PhoneNumbers = []string{"13800001111", "138-0000", "13800001111"}
			return c
		}, []string{"phone_numbers.1", "phone_numbers.2"}},
		{"no sign or template", func(c Config) Config { c.SignName, c.TemplateCode = "", " "; return c }, []string{"sign_name", "template_code"}},
		{"param template", func(c Config) Config { c.TemplateParam = map[string]string{"a": "{{ .Nope }}"}; return c }, []string{"template_param.a"}},
		{"negative limits", func(c Config) Config {
			c.Limits = phonepage.Limits{PhoneMinInterval: -1, PhoneMaxPerHour: -1}
			return c
		},
			[]string{"phone_min_interval", "phone_max_per_hour"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.cfg(ok)
			notifytest.WantFields(t, c.Validate(), tc.fields, secret, keyID)
		})
	}
}

func TestYAML(t *testing.T) {
	t.Setenv("ALIYUN_AK_ID", keyID)
	t.Setenv("ALIYUN_AK_SECRET", secret)
	c := Config{Limits: phonepage.DefaultLimits()}
	doc := `
access_key_id: ${ALIYUN_AK_ID}
access_key_secret: ${ALIYUN_AK_SECRET}
endpoint: https://dysmsapi.ap-southeast-1.aliyuncs.com
phone_numbers: ["13800001111"]
sign_name: 发票平台
template_code: SMS_460755082
template_param: {alert: '{{ .CommonLabels.alertname }}'}
phone_max_per_hour: 3
`
	if err := yaml.Unmarshal([]byte(doc), &c); err != nil {
		t.Fatal(err)
	}
	if c.AccessKeyID.Reveal() != keyID || c.AccessKeySecret.Reveal() != secret || c.SignName != "发票平台" ||
		c.PhoneMaxPerHour != 3 || c.PhoneMinInterval != phonepage.DefaultMinInterval || c.TemplateParam["alert"] == "" {
		t.Errorf("decoded %#v", c)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	// The AccessKey cannot be written inline.
	if err := yaml.Unmarshal([]byte("access_key_secret: "+secret), &Config{}); err == nil {
		t.Error("an inline access_key_secret was accepted")
	}
	out, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), secret) || strings.Contains(string(out), keyID) {
		t.Errorf("rendered config shows a secret: %s", out)
	}
	if !strings.Contains(string(out), `"access_key_secret":"\u003csecret\u003e"`) || !strings.Contains(string(out), `"sign_name":"发票平台"`) {
		t.Errorf("rendered config %s", out)
	}
}
