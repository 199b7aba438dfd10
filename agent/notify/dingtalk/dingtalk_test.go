package dingtalk

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/agent/notify/internal/notifytest"
	"github.com/vigil-project/vigil/internal/confkit"
)

const (
	token  = "b7c1e4f09a2d4e6f8a1b3c5d7e9f0a2b4c6d8e0f1a3b5c7d9e1f3a5b7c9d1e3f"
	secret = "SEC000"
)

func message(resolved bool) *notify.Message { return notifytest.Chat.Message(resolved) }

// robot is a fake DingTalk robot; it answers HTTP 200
// {"errcode":0,"errmsg":"ok"} unless told otherwise.
type robot struct{ *notifytest.Receiver }

func newRobot(t *testing.T) robot {
	return robot{notifytest.NewReceiver(t, func(w http.ResponseWriter, _ notifytest.Request) {
		io.WriteString(w, `{"errcode":0,"errmsg":"ok"}`)
	})}
}

func (rb robot) url() string { return rb.URL + "/robot/send?access_token=" + token }

func newNotifier(t *testing.T, cfg Config) *Notifier {
	t.Helper()
	n, err := New(cfg, &http.Client{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	n.now = func() time.Time { return time.UnixMilli(1700000000000) }
	return n
}

func TestPayload(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cfg      Config
		resolved bool
		title    string
		contains []string
		at       *At
	}{
		{name: "firing", title: "[FIRING:1] InvoiceQRFailing · invoice-qr",
			contains: []string{"### [FIRING:1] InvoiceQRFailing · invoice-qr", "**InvoiceQRFailing** · critical · firing",
				"Invoice QR codes do not match the amount due", "qr_mismatch", "amount 0.11 != 0.10",
				"> hop 1 10.0.0.1 0.3ms", "[runbook](https://runbooks.example/invoice-qr)"}},
		{name: "resolved", resolved: true, title: "[RESOLVED] InvoiceQRFailing · invoice-qr",
			contains: []string{"### [RESOLVED] InvoiceQRFailing · invoice-qr", "· resolved", "resolved 2024-11-14 22:12:20 UTC",
				"Invoice QR codes do not match the amount due", "qr_mismatch", "> hop 1 10.0.0.1 0.3ms"}},
		{name: "mentions", cfg: Config{AtMobiles: []string{"13800001111", "13900002222"}, AtAll: true},
			title:    "[FIRING:1] InvoiceQRFailing · invoice-qr",
			contains: []string{"qr_mismatch", "\n\n@13800001111 @13900002222"},
			at:       &At{AtMobiles: []string{"13800001111", "13900002222"}, IsAtAll: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rb := newRobot(t)
			tc.cfg.URL = confkit.NewSecret(rb.url())
			n := newNotifier(t, tc.cfg)
			if err := n.Notify(context.Background(), message(tc.resolved)); err != nil {
				t.Fatal(err)
			}
			req := rb.Last(t)
			if req.Method != http.MethodPost || req.Path != "/robot/send" || req.ContentType != "application/json" {
				t.Errorf("request %s %s (%s), want POST /robot/send (application/json)", req.Method, req.Path, req.ContentType)
			}
			if req.RawQuery != "access_token="+token {
				t.Errorf("query %q, want the access token alone (no signature without a secret)", req.RawQuery)
			}
			notifytest.GoldenJSON(t, tc.name, req.Body)
			p := notifytest.Decode[Payload](t, req.Body)
			if p.MsgType != "markdown" || p.Markdown.Title != tc.title {
				t.Errorf("msgtype %q title %q, want markdown %q", p.MsgType, p.Markdown.Title, tc.title)
			}
			for _, s := range tc.contains {
				if !strings.Contains(p.Markdown.Text, s) {
					t.Errorf("text lacks %q:\n%s", s, p.Markdown.Text)
				}
			}
			if tc.at == nil {
				if p.At != nil || bytes.Contains(req.Body, []byte(`"at"`)) {
					t.Errorf("unexpected at: %s", req.Body)
				}
			} else if p.At == nil || strings.Join(p.At.AtMobiles, ",") != strings.Join(tc.at.AtMobiles, ",") || p.At.IsAtAll != tc.at.IsAtAll {
				t.Errorf("at = %+v, want %+v", p.At, tc.at)
			}
		})
	}
}

// hmacSign recomputes the signature the way DingTalk's documentation
// spells it, independently of sign.
func hmacSign(secret, timestamp string) string {
	h := hmac.New(sha256.New, []byte(secret))
	io.WriteString(h, timestamp)
	io.WriteString(h, "\n")
	io.WriteString(h, secret)
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

func TestSignKnownAnswers(t *testing.T) {
	for _, tc := range []struct {
		secret string
		ms     int64
		want   string
	}{
		// printf '1700000000000\nSEC000' | openssl dgst -sha256 -hmac SEC000 -binary | base64
		{"SEC000", 1700000000000, "ltBBey5eZrWKh1cPzFIdz3v3xpkc4Tjx4lLsPSHqdtA="},
		// The vector of the dingding Rust crate's signature test, before
		// its URL encoding (OuzzJR5%2BxZ4%2FEYwqtNt6sMYZQMTa%2FHEGvc9miJe7XzY%3D).
		{"secret", 1700000000000, "OuzzJR5+xZ4/EYwqtNt6sMYZQMTa/HEGvc9miJe7XzY="},
	} {
		t.Run(tc.secret, func(t *testing.T) {
			if got := sign(tc.secret, tc.ms); got != tc.want {
				t.Errorf("sign = %s, want %s", got, tc.want)
			}
			if got := hmacSign(tc.secret, strconv.FormatInt(tc.ms, 10)); got != tc.want {
				t.Errorf("independent HMAC = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestSignedRequest(t *testing.T) {
	dir := t.TempDir()
	secretFile := notifytest.WriteFile(t, dir, "secret", secret+"\n")
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"secret", Config{Secret: confkit.NewSecret(secret)}},
		{"secret_file", Config{SecretFile: secretFile}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rb := newRobot(t)
			tc.cfg.URL = confkit.NewSecret(rb.url())
			n := newNotifier(t, tc.cfg)
			if err := n.Notify(context.Background(), message(false)); err != nil {
				t.Fatal(err)
			}
			req := rb.Last(t)
			const want = "ltBBey5eZrWKh1cPzFIdz3v3xpkc4Tjx4lLsPSHqdtA="
			wantRaw := "access_token=" + token + "&timestamp=1700000000000&sign=ltBBey5eZrWKh1cPzFIdz3v3xpkc4Tjx4lLsPSHqdtA%3D"
			if req.RawQuery != wantRaw {
				t.Errorf("query %q, want %q", req.RawQuery, wantRaw)
			}
			ts, sig := req.Query["timestamp"], req.Query["sign"]
			if len(ts) != 1 || len(sig) != 1 {
				t.Fatalf("query %q lacks one timestamp and one sign", req.RawQuery)
			}
			if got := hmacSign(secret, ts[0]); got != sig[0] || got != want {
				t.Errorf("sign %s, recomputed %s, known answer %s", sig[0], got, want)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	reply := notifytest.Reply
	for _, tc := range []notifytest.Answer{
		{Name: "ok", Reply: reply(200, `{"errcode":0,"errmsg":"ok"}`), Class: notifytest.OK},
		{Name: "send too fast", Reply: reply(200, `{"errcode":130101,"errmsg":"send too fast, exceed 20 times per minute"}`), Class: notifytest.Retry, After: time.Minute, Msg: "errcode 130101"},
		{Name: "rate limited", Reply: reply(200, `{"errcode":410100,"errmsg":"发送速度太快而限流"}`), Class: notifytest.Retry, After: time.Minute, Msg: "errcode 410100"},
		{Name: "busy", Reply: reply(200, `{"errcode":-1,"errmsg":"系统繁忙"}`), Class: notifytest.Retry, Msg: "errcode -1"},
		{Name: "keywords", Reply: reply(200, `{"errcode":310000,"errmsg":"keywords not in content"}`), Class: notifytest.Permanent, Msg: "errcode 310000: keywords not in content"},
		{Name: "bad token", Reply: reply(200, `{"errcode":300001,"errmsg":"token is not exist"}`), Class: notifytest.Permanent, Msg: "errcode 300001"},
		{Name: "token echoed", Reply: reply(200, `{"errcode":300001,"errmsg":"access_token `+token+` is not exist"}`), Class: notifytest.Permanent, Msg: "access_token <redacted> is not exist"},
		{Name: "http 500", Reply: reply(500, `oops`), Class: notifytest.Retry, Msg: "500"},
		{Name: "http 503 retry-after", Reply: reply(503, `busy`, "Retry-After", "7"), Class: notifytest.Retry, After: 7 * time.Second, Msg: "503"},
		{Name: "http 429 echoing token", Reply: reply(429, `slow down `+token), Class: notifytest.Retry, Msg: "slow down <redacted>"},
		{Name: "http 400", Reply: reply(400, `bad`), Class: notifytest.Permanent, Msg: "400"},
		{Name: "not dingtalk", Reply: reply(200, `<html>login</html>`), Class: notifytest.Permanent, Msg: "unexpected answer"},
		{Name: "no errcode", Reply: reply(200, `{}`), Class: notifytest.Permanent, Msg: "unexpected answer"},
	} {
		t.Run(tc.Name, func(t *testing.T) {
			rb := newRobot(t)
			rb.Reply(tc.Reply)
			n := newNotifier(t, Config{URL: confkit.NewSecret(rb.url()), Secret: confkit.NewSecret("SECabcdef0123456789")})
			// The host may show (a dial error names it); the token must not.
			tc.Check(t, n.Notify(context.Background(), message(false)), "dingtalk: ", token, rb.URL+"/robot/send", "SECabcdef0123456789")
		})
	}
}

func TestUnreachable(t *testing.T) {
	rb := newRobot(t)
	u := rb.url()
	rb.Close()
	n := newNotifier(t, Config{URL: confkit.NewSecret(u)})
	err := n.Notify(context.Background(), message(false))
	notifytest.AssertClass(t, err, notifytest.Retry, 0)
	notifytest.NoSecrets(t, err, token, rb.URL+"/robot/send", secret)
}

func TestTruncate(t *testing.T) {
	rb := newRobot(t)
	n := newNotifier(t, Config{URL: confkit.NewSecret(rb.url()), AtMobiles: []string{"13800001111"}})
	m := message(false)
	// Three-byte runes, so a cut in the middle of one would show.
	m.Alerts[0].Annotations["description"] = strings.Repeat("发票金额不符 ", 3000)
	if err := n.Notify(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	p := notifytest.Decode[Payload](t, rb.Last(t).Body)
	text := p.Markdown.Text
	if size := len(p.Markdown.Title) + len(text); size > maxMessage {
		t.Errorf("message is %d bytes, over DingTalk's %d", size, maxMessage)
	}
	if !utf8.ValidString(text) {
		t.Error("truncation split a rune")
	}
	if !strings.Contains(text, "…") || !strings.HasSuffix(text, "\n\n@13800001111") {
		t.Errorf("want a marked cut followed by the mention, got …%s", text[len(text)-80:])
	}
}

func TestCustomTemplate(t *testing.T) {
	rb := newRobot(t)
	n := newNotifier(t, Config{URL: confkit.NewSecret(rb.url()),
		Title:   `告警 {{ .CommonLabels.alertname }}`,
		Message: `{{ range .Alerts }}{{ .Annotations.summary }} ({{ .Check.Reason }}){{ end }}`})
	if err := n.Notify(context.Background(), message(false)); err != nil {
		t.Fatal(err)
	}
	p := notifytest.Decode[Payload](t, rb.Last(t).Body)
	if want := "告警 InvoiceQRFailing"; p.Markdown.Title != want {
		t.Errorf("title %q, want %q", p.Markdown.Title, want)
	}
	if want := "Invoice QR codes do not match the amount due (qr_mismatch)"; p.Markdown.Text != want {
		t.Errorf("text %q, want %q", p.Markdown.Text, want)
	}
}

func TestNew(t *testing.T) {
	dir := t.TempDir()
	urlFile := notifytest.WriteFile(t, dir, "url", "https://oapi.dingtalk.com/robot/send?access_token="+token+"\n")
	badURLFile := notifytest.WriteFile(t, dir, "bad", "oapi.dingtalk.com/robot/send?access_token="+token)
	for _, tc := range []struct {
		name string
		cfg  Config
		err  string
	}{
		{"url_file", Config{URLFile: urlFile}, ""},
		{"missing url_file", Config{URLFile: filepath.Join(dir, "nope")}, "dingtalk: url_file: read secret file"},
		{"bad url_file", Config{URLFile: badURLFile}, "dingtalk: url_file: must be the robot's webhook address"},
		{"missing secret_file", Config{URLFile: urlFile, SecretFile: filepath.Join(dir, "nope")}, "dingtalk: secret_file: read secret file"},
		{"message parse error", Config{URLFile: urlFile, Message: "{{ .Alerts"}, "message"},
		{"title parse error", Config{URLFile: urlFile, Title: "{{ end }}"}, "title"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := New(tc.cfg, nil)
			if notifytest.WantError(t, err, tc.err, token) {
				return
			}
			if got := n.endpoint(); got != "https://oapi.dingtalk.com/robot/send?access_token="+token {
				t.Errorf("endpoint %q", got)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	good := confkit.NewSecret("https://oapi.dingtalk.com/robot/send?access_token=" + token)
	for _, tc := range []struct {
		name   string
		cfg    Config
		fields []string
	}{
		{"ok", Config{URL: good, Secret: confkit.NewSecret(secret), AtMobiles: []string{"13800001111"}}, nil},
		{"ok url_file", Config{URLFile: "/run/secrets/dingtalk", SecretFile: "/run/secrets/dingtalk-sec"}, nil},
		{"missing url", Config{}, []string{"url"}},
		{"url and url_file", Config{URL: good, URLFile: "/run/secrets/dingtalk"}, []string{"url"}},
		{"not a url", Config{URL: confkit.NewSecret("access_token=" + token)}, []string{"url"}},
		{"secret and secret_file", Config{URL: good, Secret: confkit.NewSecret(secret), SecretFile: "/s"}, []string{"secret"}},
		{"empty mobile", Config{URL: good, AtMobiles: []string{"13800001111", " "}}, []string{"at_mobiles.1"}},
		{"templates", Config{URL: good, Title: "{{ .Status", Message: "{{ range }}"}, []string{"title", "message"}},
		{"several", Config{Secret: confkit.NewSecret(secret), SecretFile: "/s", Message: "{{"}, []string{"url", "secret", "message"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			notifytest.WantFields(t, tc.cfg.Validate(), tc.fields, token)
		})
	}
}

func TestYAML(t *testing.T) {
	t.Setenv("DINGTALK_URL", "https://oapi.dingtalk.com/robot/send?access_token="+token)
	t.Setenv("DINGTALK_SECRET", secret)
	var c Config
	doc := `
url: ${DINGTALK_URL}
secret: ${DINGTALK_SECRET}
title: '{{ .Status }}'
message: '{{ len .Alerts }}'
at_mobiles: ["13800001111"]
at_all: true
`
	if err := yaml.Unmarshal([]byte(doc), &c); err != nil {
		t.Fatal(err)
	}
	if c.URL.Reveal() != "https://oapi.dingtalk.com/robot/send?access_token="+token || c.Secret.Reveal() != secret ||
		c.Title != "{{ .Status }}" || c.Message != "{{ len .Alerts }}" || len(c.AtMobiles) != 1 || !c.AtAll {
		t.Errorf("decoded %#v", c)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	// The address holds the token: it cannot be written inline.
	if err := yaml.Unmarshal([]byte("url: https://oapi.dingtalk.com/robot/send?access_token=x"), &Config{}); err == nil {
		t.Error("an inline url was accepted")
	}
	out, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), token) || strings.Contains(string(out), secret) {
		t.Errorf("rendered config shows a secret: %s", out)
	}
}
