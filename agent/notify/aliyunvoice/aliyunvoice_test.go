package aliyunvoice

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vigil-project/vigil/agent/notify/internal/aliyun"
	"github.com/vigil-project/vigil/agent/notify/internal/aliyun/aliyuntest"
	"github.com/vigil-project/vigil/agent/notify/internal/notifytest"
	"github.com/vigil-project/vigil/agent/notify/internal/phonepage"
	"github.com/vigil-project/vigil/internal/confkit"
)

const (
	keyID  = "LTAI5tVigilVoiceKeyId0001"
	secret = "VigilVoiceAccessKeySecret000000001"
)

func newFake(t *testing.T) *aliyuntest.Fake {
	return aliyuntest.New(t, keyID, secret, "SingleCallByTts", "2017-05-25")
}

func config(f *aliyuntest.Fake, numbers ...string) Config {
	return Config{Credentials: aliyun.Credentials{AccessKeyID: confkit.NewSecret(keyID), AccessKeySecret: confkit.NewSecret(secret), Endpoint: f.URL},
		CalledNumbers: numbers, TtsCode: "TTS_10001"}
}

func newNotifier(t *testing.T, cfg Config) *Notifier {
	t.Helper()
	n, err := New(cfg, &http.Client{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCall(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cfg      func(Config) Config
		resolved bool
		calls    int
		want     map[string]string // call parameters besides CalledNumber and TtsParam
		tts      map[string]string
	}{
		{name: "defaults", cfg: func(c Config) Config { return c }, calls: 2,
			want: map[string]string{"TtsCode": "TTS_10001"},
			tts:  map[string]string{"alert": "InvoiceQRFailing", "status": "firing", "count": "1", "check": "invoice-qr"}},
		{name: "tuned", cfg: func(c Config) Config {
			c.CalledShowNumber, c.PlayTimes, c.Volume, c.Speed = "057188773344", 3, 100, -100
			c.TtsParam = map[string]string{"name": "{{ .CommonLabels.alertname }}"}
			return c
		}, calls: 2,
			want: map[string]string{"TtsCode": "TTS_10001", "CalledShowNumber": "057188773344", "PlayTimes": "3", "Volume": "100", "Speed": "-100"},
			tts:  map[string]string{"name": "InvoiceQRFailing"}},
		{name: "resolved is not called", cfg: func(c Config) Config { return c }, resolved: true, calls: 0},
		{name: "call_resolved", cfg: func(c Config) Config { c.CallResolved = true; return c }, resolved: true, calls: 2,
			want: map[string]string{"TtsCode": "TTS_10001"},
			tts:  map[string]string{"alert": "InvoiceQRFailing", "status": "resolved", "count": "1", "check": "invoice-qr"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			n := newNotifier(t, tc.cfg(config(f, "13800001111", "13900002222")))
			if err := n.Notify(context.Background(), notifytest.Message(tc.resolved)); err != nil {
				t.Fatal(err)
			}
			calls := f.Calls()
			if len(calls) != tc.calls {
				t.Fatalf("%d calls, want %d", len(calls), tc.calls)
			}
			for i, c := range calls {
				p := c.Params
				if want := []string{"13800001111", "13900002222"}[i]; p["CalledNumber"] != want {
					t.Errorf("call %d to %s, want %s", i, p["CalledNumber"], want)
				}
				var tts map[string]string
				if err := json.Unmarshal([]byte(p["TtsParam"]), &tts); err != nil {
					t.Fatalf("TtsParam %q: %v", p["TtsParam"], err)
				}
				if len(tts) != len(tc.tts) {
					t.Errorf("TtsParam %v, want %v", tts, tc.tts)
				}
				for k, v := range tc.tts {
					if tts[k] != v {
						t.Errorf("TtsParam[%s] = %q, want %q", k, tts[k], v)
					}
				}
				if len(p) != len(tc.want)+2 {
					t.Errorf("params %v, want %v plus CalledNumber and TtsParam", p, tc.want)
				}
				for k, v := range tc.want {
					if p[k] != v {
						t.Errorf("%s = %q, want %q", k, p[k], v)
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
		{notifytest.Answer{Name: "number flow control", Class: notifytest.Retry, After: time.Minute, Msg: "isv.BUSINESS_LIMIT_CONTROL"},
			reply(200, aliyuntest.JSON("isv.BUSINESS_LIMIT_CONTROL", "触发号码流控"))},
		{notifytest.Answer{Name: "tts template", Class: notifytest.Permanent, Msg: "isv.TTS_TEMPLATE_ILLEGAL"},
			reply(200, aliyuntest.JSON("isv.TTS_TEMPLATE_ILLEGAL", "模板不合法"))},
		{notifytest.Answer{Name: "secret echoed", Class: notifytest.Permanent, Msg: "key <redacted>"},
			reply(400, aliyuntest.JSON("SignatureDoesNotMatch", "key "+secret))},
		{notifytest.Answer{Name: "unavailable", Class: notifytest.Retry, Msg: "ServiceUnavailable"},
			reply(503, aliyuntest.JSON("ServiceUnavailable", "The request has failed due to a temporary failure of the server."))},
	} {
		t.Run(tc.Name, func(t *testing.T) {
			f := newFake(t)
			f.Answer(tc.answer)
			n := newNotifier(t, config(f, "13800001111"))
			tc.Check(t, n.Notify(context.Background(), notifytest.Message(false)), "aliyun_voice: ", secret, keyID)
		})
	}
}

// TestRetryCallsOnlyTheRest: a retry after one number's failure calls
// that number only, never the one already woken.
func TestRetryCallsOnlyTheRest(t *testing.T) {
	f := newFake(t)
	f.Answer(func(c aliyuntest.Call) (int, string) {
		if c.Params["CalledNumber"] == "13900002222" {
			return 200, aliyuntest.JSON("isp.SYSTEM_ERROR", "system error")
		}
		return 200, aliyuntest.JSON("OK", "OK")
	})
	n := newNotifier(t, config(f, "13800001111", "13900002222"))
	m := notifytest.Message(false)
	notifytest.AssertClass(t, n.Notify(context.Background(), m), notifytest.Retry, 0)
	f.Answer(nil)
	if err := n.Notify(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range f.Calls() {
		got = append(got, c.Params["CalledNumber"])
	}
	if strings.Join(got, ",") != "13800001111,13900002222,13900002222" {
		t.Errorf("numbers called %v", got)
	}
}

func TestValidate(t *testing.T) {
	ok := Config{Credentials: aliyun.Credentials{AccessKeyID: confkit.NewSecret(keyID), AccessKeySecretFile: "/run/secrets/ak"},
		CalledNumbers: []string{"13800001111"}, TtsCode: "TTS_1", Limits: phonepage.DefaultLimits()}
	for _, tc := range []struct {
		name   string
		cfg    func(Config) Config
		fields []string
	}{
		{"ok", func(c Config) Config { return c }, nil},
		{"no numbers or template", func(c Config) Config { c.CalledNumbers, c.TtsCode = nil, ""; return c }, []string{"called_numbers", "tts_code"}},
		{"bad show number", func(c Config) Config { c.CalledShowNumber = "caller"; return c }, []string{"called_show_number"}},
		{"ranges", func(c Config) Config { c.PlayTimes, c.Volume, c.Speed = 4, 101, 501; return c }, []string{"play_times", "volume", "speed"}},
		{"tts param", func(c Config) Config { c.TtsParam = map[string]string{"x": "{{ .Nope }}"}; return c }, []string{"tts_param.x"}},
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
called_numbers: ["13800001111"]
called_show_number: "057188773344"
tts_code: TTS_10001
play_times: 2
phone_min_interval: 5m
`
	if err := yaml.Unmarshal([]byte(doc), &c); err != nil {
		t.Fatal(err)
	}
	if c.AccessKeySecret.Reveal() != secret || c.PlayTimes != 2 || c.PhoneMinInterval.String() != "5m" || c.PhoneMaxPerHour != 5 {
		t.Errorf("decoded %#v", c)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	if err := yaml.Unmarshal([]byte("access_key_id: LTAI5tInline"), &Config{}); err == nil {
		t.Error("an inline access_key_id was accepted")
	}
	out, _ := json.Marshal(c)
	if strings.Contains(string(out), secret) || strings.Contains(string(out), keyID) {
		t.Errorf("rendered config shows a secret: %s", out)
	}
}
