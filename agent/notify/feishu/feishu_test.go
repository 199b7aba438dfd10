package feishu

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
	hook   = "8a1c2e3f-4b5d-4e6f-9a0b-1c2d3e4f5a6b"
	secret = "SECfeishu"
)

func message(resolved bool) *notify.Message { return notifytest.Chat.Message(resolved) }

// bot is a fake Feishu custom bot; it answers HTTP 200
// {"code":0,"msg":"success"} unless told otherwise.
type bot struct{ *notifytest.Receiver }

func newBot(t *testing.T) bot {
	return bot{notifytest.NewReceiver(t, func(w http.ResponseWriter, _ notifytest.Request) {
		io.WriteString(w, `{"code":0,"data":{},"msg":"success"}`)
	})}
}

func (b bot) url() string { return b.URL + "/open-apis/bot/v2/hook/" + hook }

func newNotifier(t *testing.T, cfg Config) *Notifier {
	t.Helper()
	n, err := New(cfg, &http.Client{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	n.now = func() time.Time { return time.Unix(1700000000, 0) }
	return n
}

// hmacSign recomputes the signature the way Feishu's documentation spells
// it, independently of sign: the string to sign is the HMAC key and the
// hashed message is empty.
func hmacSign(secret, timestamp string) string {
	h := hmac.New(sha256.New, []byte(timestamp+"\n"+secret))
	h.Write(nil)
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

func TestPayload(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cfg      Config
		resolved bool
		title    string
		colour   string
		signed   bool
		contains []string
	}{
		{name: "firing", title: "[FIRING:1] InvoiceQRFailing · invoice-qr", colour: "red",
			contains: []string{"**InvoiceQRFailing** · critical · firing", "Invoice QR codes do not match the amount due",
				"qr_mismatch", "amount 0.11 != 0.10", "> hop 1 10.0.0.1 0.3ms", "[runbook](https://runbooks.example/invoice-qr)"}},
		{name: "resolved", resolved: true, title: "[RESOLVED] InvoiceQRFailing · invoice-qr", colour: "green",
			contains: []string{"**InvoiceQRFailing** · critical · resolved", "resolved 2024-11-14 22:12:20 UTC",
				"Invoice QR codes do not match the amount due", "qr_mismatch", "> hop 1 10.0.0.1 0.3ms"}},
		{name: "signed", cfg: Config{Secret: confkit.NewSecret(secret)}, signed: true,
			title: "[FIRING:1] InvoiceQRFailing · invoice-qr", colour: "red", contains: []string{"qr_mismatch"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBot(t)
			tc.cfg.URL = confkit.NewSecret(b.url())
			n := newNotifier(t, tc.cfg)
			if err := n.Notify(context.Background(), message(tc.resolved)); err != nil {
				t.Fatal(err)
			}
			req := b.Last(t)
			if req.Method != http.MethodPost || req.Path != "/open-apis/bot/v2/hook/"+hook || req.RawQuery != "" || req.ContentType != "application/json" {
				t.Errorf("request %s %s?%s (%s), want POST to the bot address (application/json)", req.Method, req.Path, req.RawQuery, req.ContentType)
			}
			notifytest.GoldenJSON(t, tc.name, req.Body)
			p := notifytest.Decode[Payload](t, req.Body)
			c := p.Card
			if p.MsgType != "interactive" || !c.Config.WideScreenMode || c.Header.Title.Tag != "plain_text" ||
				c.Header.Title.Content != tc.title || c.Header.Template != tc.colour {
				t.Errorf("card header %+v (msg_type %q), want %q in %s", c.Header, p.MsgType, tc.title, tc.colour)
			}
			if len(c.Elements) != 1 || c.Elements[0].Tag != "markdown" {
				t.Fatalf("elements %+v, want one markdown element", c.Elements)
			}
			md := c.Elements[0].Content
			// The header carries the title; the default body drops its own.
			if strings.Contains(md, "InvoiceQRFailing · invoice-qr") {
				t.Errorf("title repeated in the body:\n%s", md)
			}
			for _, s := range tc.contains {
				if !strings.Contains(md, s) {
					t.Errorf("markdown lacks %q:\n%s", s, md)
				}
			}
			if !tc.signed {
				if p.Timestamp != "" || p.Sign != "" || bytes.Contains(req.Body, []byte(`"sign"`)) {
					t.Errorf("unsigned bot got a signature: %s", req.Body)
				}
				return
			}
			if p.Timestamp != "1700000000" {
				t.Errorf("timestamp %q, want Unix seconds 1700000000", p.Timestamp)
			}
			// printf '' | openssl dgst -sha256 -hmac "$(printf '1700000000\nSECfeishu')" -binary | base64
			const want = "T8PVsiE1HpAJWexa3tsPCf4uGJILpRXgMBTql5lUpP0="
			if got := hmacSign(secret, p.Timestamp); p.Sign != got || got != want {
				t.Errorf("sign %s, recomputed %s, known answer %s", p.Sign, got, want)
			}
		})
	}
}

func TestSignKnownAnswers(t *testing.T) {
	for _, tc := range []struct {
		secret string
		ts     int64
		want   string
	}{
		// printf '' | openssl dgst -sha256 -hmac "$(printf '1700000000\nSECfeishu')" -binary | base64
		{"SECfeishu", 1700000000, "T8PVsiE1HpAJWexa3tsPCf4uGJILpRXgMBTql5lUpP0="},
		// A third-party project's test vector for the same scheme.
		{"orbit-test-secret", 1756800000, "sN+9ZKa5w6BQmKyxCaxNA1DWEgtEnZaOcfEOCqZ26fg="},
	} {
		t.Run(tc.secret, func(t *testing.T) {
			if got := sign(tc.secret, tc.ts); got != tc.want {
				t.Errorf("sign = %s, want %s", got, tc.want)
			}
			if got := hmacSign(tc.secret, strconv.FormatInt(tc.ts, 10)); got != tc.want {
				t.Errorf("independent HMAC = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestSecretFile(t *testing.T) {
	f := notifytest.WriteFile(t, t.TempDir(), "secret", secret+"\n")
	b := newBot(t)
	n := newNotifier(t, Config{URL: confkit.NewSecret(b.url()), SecretFile: f})
	if err := n.Notify(context.Background(), message(false)); err != nil {
		t.Fatal(err)
	}
	p := notifytest.Decode[Payload](t, b.Last(t).Body)
	if p.Timestamp != "1700000000" || p.Sign != "T8PVsiE1HpAJWexa3tsPCf4uGJILpRXgMBTql5lUpP0=" {
		t.Errorf("timestamp %q sign %q", p.Timestamp, p.Sign)
	}
}

func TestErrors(t *testing.T) {
	reply := notifytest.Reply
	for _, tc := range []notifytest.Answer{
		{Name: "ok", Reply: reply(200, `{"code":0,"data":{},"msg":"success"}`), Class: notifytest.OK},
		{Name: "ok old api", Reply: reply(200, `{"Extra":null,"StatusCode":0,"StatusMessage":"success"}`), Class: notifytest.OK},
		{Name: "frequency limited", Reply: reply(200, `{"code":11232,"msg":"frequency limited psm[lark.oapi.app_platform_runtime]appID[1]"}`),
			Class: notifytest.Retry, After: time.Minute, Msg: "code 11232: frequency limited"},
		{Name: "9499 too many requests", Reply: reply(200, `{"code":9499,"msg":"too many request"}`), Class: notifytest.Retry, After: time.Minute, Msg: "code 9499"},
		{Name: "9499 bad request", Reply: reply(200, `{"code":9499,"msg":"Bad Request","data":{}}`), Class: notifytest.Permanent, Msg: "code 9499: Bad Request"},
		{Name: "sign mismatch", Reply: reply(200, `{"code":19021,"msg":"sign match fail or timestamp is not within one hour from current time"}`),
			Class: notifytest.Permanent, Msg: "code 19021: sign match fail"},
		{Name: "keyword", Reply: reply(200, `{"code":19024,"msg":"Key Words Not Found"}`), Class: notifytest.Permanent, Msg: "code 19024"},
		{Name: "old api error", Reply: reply(200, `{"StatusCode":19001,"StatusMessage":"param invalid: incoming webhook access token invalid"}`),
			Class: notifytest.Permanent, Msg: "code 19001: param invalid"},
		{Name: "both fields", Reply: reply(200, `{"code":9499,"msg":"Bad Request","StatusCode":9499,"StatusMessage":"Bad Request"}`), Class: notifytest.Permanent, Msg: "code 9499"},
		{Name: "token echoed", Reply: reply(200, `{"code":19001,"msg":"token `+hook+` invalid"}`), Class: notifytest.Permanent, Msg: "token <redacted> invalid"},
		{Name: "http 500", Reply: reply(500, `oops`), Class: notifytest.Retry, Msg: "500"},
		{Name: "http 503 retry-after", Reply: reply(503, `busy`, "Retry-After", "7"), Class: notifytest.Retry, After: 7 * time.Second, Msg: "503"},
		{Name: "http 429 echoing token", Reply: reply(429, `slow down `+hook), Class: notifytest.Retry, Msg: "slow down <redacted>"},
		{Name: "http 400", Reply: reply(400, `{"code":9499,"msg":"Bad Request"}`), Class: notifytest.Permanent, Msg: "400"},
		{Name: "not feishu", Reply: reply(200, `<html>login</html>`), Class: notifytest.Permanent, Msg: "unexpected answer"},
		{Name: "no code", Reply: reply(200, `{"msg":"success"}`), Class: notifytest.Permanent, Msg: "unexpected answer"},
	} {
		t.Run(tc.Name, func(t *testing.T) {
			b := newBot(t)
			b.Reply(tc.Reply)
			n := newNotifier(t, Config{URL: confkit.NewSecret(b.url()), Secret: confkit.NewSecret("SECabcdef0123456789")})
			// The host may show (a dial error names it); the token must not.
			tc.Check(t, n.Notify(context.Background(), message(false)), "feishu: ", hook, b.URL+"/open-apis", "SECabcdef0123456789")
		})
	}
}

func TestUnreachable(t *testing.T) {
	b := newBot(t)
	u := b.url()
	b.Close()
	n := newNotifier(t, Config{URL: confkit.NewSecret(u)})
	err := n.Notify(context.Background(), message(false))
	notifytest.AssertClass(t, err, notifytest.Retry, 0)
	notifytest.NoSecrets(t, err, hook, b.URL+"/open-apis", secret)
}

func TestTruncate(t *testing.T) {
	b := newBot(t)
	n := newNotifier(t, Config{URL: confkit.NewSecret(b.url()), Secret: confkit.NewSecret(secret)})
	m := message(false)
	// Three-byte runes, so a cut in the middle of one would show.
	m.Alerts[0].Annotations["description"] = strings.Repeat("发票金额不符 ", 3000)
	if err := n.Notify(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	req := b.Last(t)
	md := notifytest.Decode[Payload](t, req.Body).Card.Elements[0].Content
	if len(md) > maxMarkdown || len(md) < maxMarkdown-8 {
		t.Errorf("markdown is %d bytes, want just under %d", len(md), maxMarkdown)
	}
	if !utf8.ValidString(md) || !strings.HasSuffix(md, "…") {
		t.Errorf("want a marked cut on a rune boundary, got …%q", md[len(md)-20:])
	}
	if len(req.Body) > 20<<10 {
		t.Errorf("request is %d bytes, over Feishu's 20 KB", len(req.Body))
	}
}

func TestCustomTemplate(t *testing.T) {
	b := newBot(t)
	n := newNotifier(t, Config{URL: confkit.NewSecret(b.url()),
		Title:   `告警 {{ .CommonLabels.alertname }}`,
		Message: `{{ range .Alerts }}{{ .Annotations.summary }} ({{ .Check.Reason }}){{ end }} <at id=all></at>`})
	if err := n.Notify(context.Background(), message(true)); err != nil {
		t.Fatal(err)
	}
	req := b.Last(t)
	c := notifytest.Decode[Payload](t, req.Body).Card
	if c.Header.Title.Content != "告警 InvoiceQRFailing" || c.Header.Template != "green" {
		t.Errorf("header %+v", c.Header)
	}
	if want := "Invoice QR codes do not match the amount due (qr_mismatch) <at id=all></at>"; c.Elements[0].Content != want {
		t.Errorf("markdown %q, want %q", c.Elements[0].Content, want)
	}
	if !bytes.Contains(req.Body, []byte("<at id=all></at>")) {
		t.Errorf("mention HTML-escaped on the wire: %s", req.Body)
	}
}

func TestNew(t *testing.T) {
	dir := t.TempDir()
	urlFile := notifytest.WriteFile(t, dir, "url", "https://open.feishu.cn/open-apis/bot/v2/hook/"+hook+"\n")
	badURLFile := notifytest.WriteFile(t, dir, "bad", hook)
	for _, tc := range []struct {
		name string
		cfg  Config
		err  string
	}{
		{"url_file", Config{URLFile: urlFile}, ""},
		{"missing url_file", Config{URLFile: filepath.Join(dir, "nope")}, "feishu: url_file: read secret file"},
		{"bad url_file", Config{URLFile: badURLFile}, "feishu: url_file: must be the bot's webhook address"},
		{"missing secret_file", Config{URLFile: urlFile, SecretFile: filepath.Join(dir, "nope")}, "feishu: secret_file: read secret file"},
		{"message parse error", Config{URLFile: urlFile, Message: "{{ .Alerts"}, "message"},
		{"title parse error", Config{URLFile: urlFile, Title: "{{ end }}"}, "title"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := New(tc.cfg, nil)
			if notifytest.WantError(t, err, tc.err, hook) {
				return
			}
			if n.url != "https://open.feishu.cn/open-apis/bot/v2/hook/"+hook {
				t.Errorf("url %q", n.url)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	good := confkit.NewSecret("https://open.feishu.cn/open-apis/bot/v2/hook/" + hook)
	for _, tc := range []struct {
		name   string
		cfg    Config
		fields []string
	}{
		{"ok", Config{URL: good, Secret: confkit.NewSecret(secret)}, nil},
		{"ok url_file", Config{URLFile: "/run/secrets/feishu", SecretFile: "/run/secrets/feishu-sec"}, nil},
		{"missing url", Config{}, []string{"url"}},
		{"url and url_file", Config{URL: good, URLFile: "/run/secrets/feishu"}, []string{"url"}},
		{"not a url", Config{URL: confkit.NewSecret(hook)}, []string{"url"}},
		{"secret and secret_file", Config{URL: good, Secret: confkit.NewSecret(secret), SecretFile: "/s"}, []string{"secret"}},
		{"templates", Config{URL: good, Title: "{{ .Status", Message: "{{ range }}"}, []string{"title", "message"}},
		{"several", Config{Secret: confkit.NewSecret(secret), SecretFile: "/s", Title: "{{"}, []string{"url", "secret", "title"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			notifytest.WantFields(t, tc.cfg.Validate(), tc.fields, hook)
		})
	}
}

func TestYAML(t *testing.T) {
	t.Setenv("FEISHU_URL", "https://open.feishu.cn/open-apis/bot/v2/hook/"+hook)
	t.Setenv("FEISHU_SECRET", secret)
	var c Config
	doc := `
url: ${FEISHU_URL}
secret: ${FEISHU_SECRET}
title: '{{ .Status }}'
message: '{{ len .Alerts }}'
`
	if err := yaml.Unmarshal([]byte(doc), &c); err != nil {
		t.Fatal(err)
	}
	if c.URL.Reveal() != "https://open.feishu.cn/open-apis/bot/v2/hook/"+hook || c.Secret.Reveal() != secret ||
		c.Title != "{{ .Status }}" || c.Message != "{{ len .Alerts }}" {
		t.Errorf("decoded %#v", c)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	// The address holds the token: it cannot be written inline.
	if err := yaml.Unmarshal([]byte("url: https://open.feishu.cn/open-apis/bot/v2/hook/x"), &Config{}); err == nil {
		t.Error("an inline url was accepted")
	}
	out, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), hook) || strings.Contains(string(out), secret) {
		t.Errorf("rendered config shows a secret: %s", out)
	}
}
