package wecom

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/agent/notify/internal/notifytest"
	"github.com/vigil-project/vigil/internal/confkit"
)

const key = "693a91f6-7b3c-4bc4-97a0-0ec2f1a5aa5e"

func message(resolved bool) *notify.Message { return notifytest.Chat.Message(resolved) }

// robot is a fake WeCom robot; it answers HTTP 200
// {"errcode":0,"errmsg":"ok"} unless told otherwise.
type robot struct{ *notifytest.Receiver }

func newRobot(t *testing.T) robot {
	return robot{notifytest.NewReceiver(t, func(w http.ResponseWriter, _ notifytest.Request) {
		io.WriteString(w, `{"errcode":0,"errmsg":"ok"}`)
	})}
}

func (rb robot) url() string { return rb.URL + "/cgi-bin/webhook/send?key=" + key }

func newNotifier(t *testing.T, cfg Config) *Notifier {
	t.Helper()
	n, err := New(cfg, &http.Client{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// content is the message's text, whichever its type.
func content(p Payload) string {
	switch {
	case p.Markdown != nil:
		return p.Markdown.Content
	case p.Text != nil:
		return p.Text.Content
	}
	return ""
}

func TestPayload(t *testing.T) {
	const firingTitle = "[FIRING:1] InvoiceQRFailing · invoice-qr"
	for _, tc := range []struct {
		name     string
		cfg      Config
		resolved bool
		msgtype  string
		prefix   string
		contains []string
	}{
		{name: "firing", msgtype: Markdown, prefix: "## " + firingTitle + "\n**InvoiceQRFailing** · critical · firing\n",
			contains: []string{"Invoice QR codes do not match the amount due", "qr_mismatch", "amount 0.11 != 0.10",
				"> hop 1 10.0.0.1 0.3ms", "[runbook](https://runbooks.example/invoice-qr)"}},
		{name: "resolved", resolved: true, msgtype: Markdown,
			prefix:   "## [RESOLVED] InvoiceQRFailing · invoice-qr\n**InvoiceQRFailing** · critical · resolved\n",
			contains: []string{"resolved 2024-11-14 22:12:20 UTC", "Invoice QR codes do not match the amount due", "qr_mismatch", "> hop 1 10.0.0.1 0.3ms"}},
		{name: "explicit markdown", cfg: Config{MsgType: Markdown}, msgtype: Markdown, prefix: "## " + firingTitle + "\n"},
		{name: "text", cfg: Config{MsgType: Text, MentionedList: []string{"wangqing", "@all"}, MentionedMobileList: []string{"13800001111"}},
			msgtype: Text, prefix: firingTitle + "\n\n**InvoiceQRFailing** · critical · firing\n",
			contains: []string{"Invoice QR codes do not match the amount due", "qr_mismatch", "> hop 1 10.0.0.1 0.3ms"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rb := newRobot(t)
			tc.cfg.URL = confkit.NewSecret(rb.url())
			n := newNotifier(t, tc.cfg)
			if err := n.Notify(context.Background(), message(tc.resolved)); err != nil {
				t.Fatal(err)
			}
			req := rb.Last(t)
			if req.Method != http.MethodPost || req.Path != "/cgi-bin/webhook/send" || req.RawQuery != "key="+key || req.ContentType != "application/json" {
				t.Errorf("request %s %s?%s (%s), want POST to the robot address (application/json)", req.Method, req.Path, req.RawQuery, req.ContentType)
			}
			notifytest.GoldenJSON(t, strings.ReplaceAll(tc.name, " ", "_"), req.Body)
			p := notifytest.Decode[Payload](t, req.Body)
			if p.MsgType != tc.msgtype || (p.Markdown != nil) != (tc.msgtype == Markdown) || (p.Text != nil) != (tc.msgtype == Text) {
				t.Fatalf("msgtype %q, want %q with its object alone: %s", p.MsgType, tc.msgtype, req.Body)
			}
			c := content(p)
			if !strings.HasPrefix(c, tc.prefix) {
				t.Errorf("content does not start with %q:\n%s", tc.prefix, c)
			}
			// The default body drops its own heading: the title shows once.
			if strings.Count(c, "InvoiceQRFailing · invoice-qr") != 1 {
				t.Errorf("title repeated:\n%s", c)
			}
			for _, s := range tc.contains {
				if !strings.Contains(c, s) {
					t.Errorf("content lacks %q:\n%s", s, c)
				}
			}
			if p.Text != nil {
				if strings.Join(p.Text.MentionedList, ",") != "wangqing,@all" || strings.Join(p.Text.MentionedMobileList, ",") != "13800001111" {
					t.Errorf("mentions %v %v", p.Text.MentionedList, p.Text.MentionedMobileList)
				}
			}
		})
	}
}

func TestErrors(t *testing.T) {
	reply := notifytest.Reply
	for _, tc := range []notifytest.Answer{
		{Name: "ok", Reply: reply(200, `{"errcode":0,"errmsg":"ok"}`), Class: notifytest.OK},
		{Name: "rate limit", Reply: reply(200, `{"errcode":45009,"errmsg":"api freq out of limit, hint: [1700000000_1], more info at https://open.work.weixin.qq.com/devtool/query?e=45009"}`),
			Class: notifytest.Retry, After: time.Minute, Msg: "errcode 45009: api freq out of limit"},
		{Name: "busy", Reply: reply(200, `{"errcode":-1,"errmsg":"system busy"}`), Class: notifytest.Retry, Msg: "errcode -1"},
		{Name: "invalid webhook", Reply: reply(200, `{"errcode":93000,"errmsg":"invalid webhook url, hint: [1700000000_2]"}`), Class: notifytest.Permanent, Msg: "errcode 93000: invalid webhook url"},
		{Name: "content too long", Reply: reply(200, `{"errcode":40058,"errmsg":"markdown.content exceed max length 4096"}`), Class: notifytest.Permanent, Msg: "errcode 40058"},
		{Name: "key echoed", Reply: reply(200, `{"errcode":93000,"errmsg":"invalid webhook url key=`+key+`"}`), Class: notifytest.Permanent, Msg: "key=<redacted>"},
		{Name: "http 500", Reply: reply(500, `oops`), Class: notifytest.Retry, Msg: "500"},
		{Name: "http 503 retry-after", Reply: reply(503, `busy`, "Retry-After", "7"), Class: notifytest.Retry, After: 7 * time.Second, Msg: "503"},
		{Name: "http 429 echoing key", Reply: reply(429, `slow down `+key), Class: notifytest.Retry, Msg: "slow down <redacted>"},
		{Name: "http 400", Reply: reply(400, `bad`), Class: notifytest.Permanent, Msg: "400"},
		{Name: "not wecom", Reply: reply(200, `<html>login</html>`), Class: notifytest.Permanent, Msg: "unexpected answer"},
		{Name: "no errcode", Reply: reply(200, `{"ok":true}`), Class: notifytest.Permanent, Msg: "unexpected answer"},
	} {
		t.Run(tc.Name, func(t *testing.T) {
			rb := newRobot(t)
			rb.Reply(tc.Reply)
			n := newNotifier(t, Config{URL: confkit.NewSecret(rb.url())})
			// The host may show (a dial error names it); the key must not.
			tc.Check(t, n.Notify(context.Background(), message(false)), "wecom: ", key, rb.URL+"/cgi-bin")
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
	notifytest.NoSecrets(t, err, key, rb.URL+"/cgi-bin")
}

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		msgtype string
		limit   int
	}{{Markdown, maxMarkdown}, {Text, maxText}} {
		t.Run(tc.msgtype, func(t *testing.T) {
			rb := newRobot(t)
			n := newNotifier(t, Config{URL: confkit.NewSecret(rb.url()), MsgType: tc.msgtype})
			m := message(false)
			// Three-byte runes, so a cut in the middle of one would show.
			m.Alerts[0].Annotations["description"] = strings.Repeat("发票金额不符 ", 1000)
			if err := n.Notify(context.Background(), m); err != nil {
				t.Fatal(err)
			}
			c := content(notifytest.Decode[Payload](t, rb.Last(t).Body))
			if len(c) > tc.limit || len(c) < tc.limit-8 {
				t.Errorf("content is %d bytes, want just under WeCom's %d", len(c), tc.limit)
			}
			if !utf8.ValidString(c) || !strings.HasSuffix(c, "…") {
				t.Errorf("want a marked cut on a rune boundary, got …%q", c[len(c)-20:])
			}
			if !strings.Contains(c, "InvoiceQRFailing · invoice-qr") {
				t.Error("the title was cut")
			}
		})
	}
}

func TestCustomTemplate(t *testing.T) {
	rb := newRobot(t)
	n := newNotifier(t, Config{URL: confkit.NewSecret(rb.url()),
		Title:   `告警 {{ .CommonLabels.alertname }}`,
		Message: `{{ range .Alerts }}{{ .Annotations.summary }} ({{ .Check.Reason }}) <@zhangsan>{{ end }}`})
	if err := n.Notify(context.Background(), message(false)); err != nil {
		t.Fatal(err)
	}
	req := rb.Last(t)
	want := "## 告警 InvoiceQRFailing\nInvoice QR codes do not match the amount due (qr_mismatch) <@zhangsan>"
	if got := content(notifytest.Decode[Payload](t, req.Body)); got != want {
		t.Errorf("content %q, want %q", got, want)
	}
	if !bytes.Contains(req.Body, []byte("<@zhangsan>")) {
		t.Errorf("mention HTML-escaped on the wire: %s", req.Body)
	}
}

func TestNew(t *testing.T) {
	dir := t.TempDir()
	urlFile := notifytest.WriteFile(t, dir, "url", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key="+key+"\n")
	badURLFile := notifytest.WriteFile(t, dir, "bad", key)
	for _, tc := range []struct {
		name string
		cfg  Config
		err  string
	}{
		{"url_file", Config{URLFile: urlFile}, ""},
		{"missing url_file", Config{URLFile: filepath.Join(dir, "nope")}, "wecom: url_file: read secret file"},
		{"bad url_file", Config{URLFile: badURLFile}, "wecom: url_file: must be the robot's webhook address"},
		{"message parse error", Config{URLFile: urlFile, Message: "{{ .Alerts"}, "message"},
		{"title parse error", Config{URLFile: urlFile, Title: "{{ end }}"}, "title"},
		{"invalid config", Config{URLFile: urlFile, MsgType: "news"}, "msgtype"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := New(tc.cfg, nil)
			if notifytest.WantError(t, err, tc.err, key) {
				return
			}
			if n.url != "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key="+key || n.cfg.MsgType != Markdown {
				t.Errorf("url %q msgtype %q", n.url, n.cfg.MsgType)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	good := confkit.NewSecret("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=" + key)
	for _, tc := range []struct {
		name   string
		cfg    Config
		fields []string
	}{
		{"ok", Config{URL: good}, nil},
		{"ok url_file", Config{URLFile: "/run/secrets/wecom"}, nil},
		{"ok text mentions", Config{URL: good, MsgType: Text, MentionedList: []string{"@all"}, MentionedMobileList: []string{"13800001111"}}, nil},
		{"missing url", Config{}, []string{"url"}},
		{"url and url_file", Config{URL: good, URLFile: "/run/secrets/wecom"}, []string{"url"}},
		{"not a url", Config{URL: confkit.NewSecret(key)}, []string{"url"}},
		{"bad msgtype", Config{URL: good, MsgType: "news"}, []string{"msgtype"}},
		{"mentions in markdown", Config{URL: good, MentionedList: []string{"a"}, MentionedMobileList: []string{"13800001111"}},
			[]string{"mentioned_list", "mentioned_mobile_list"}},
		{"empty mention", Config{URL: good, MsgType: Text, MentionedMobileList: []string{""}}, []string{"mentioned_mobile_list.0"}},
		{"templates", Config{URL: good, Title: "{{ .Status", Message: "{{ range }}"}, []string{"title", "message"}},
		{"several", Config{MsgType: "card", Message: "{{"}, []string{"url", "msgtype", "message"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			notifytest.WantFields(t, tc.cfg.Validate(), tc.fields, key)
		})
	}
}

func TestYAML(t *testing.T) {
	t.Setenv("WECOM_URL", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key="+key)
	var c Config
	doc := `
url: ${WECOM_URL}
msgtype: text
title: '{{ .Status }}'
message: '{{ len .Alerts }}'
mentioned_list: ["@all"]
mentioned_mobile_list: ["13800001111"]
`
	if err := yaml.Unmarshal([]byte(doc), &c); err != nil {
		t.Fatal(err)
	}
	if c.URL.Reveal() != "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key="+key || c.MsgType != Text ||
		c.Title != "{{ .Status }}" || c.Message != "{{ len .Alerts }}" || len(c.MentionedList) != 1 || len(c.MentionedMobileList) != 1 {
		t.Errorf("decoded %#v", c)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	// The address holds the key: it cannot be written inline.
	if err := yaml.Unmarshal([]byte("url: https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=x"), &Config{}); err == nil {
		t.Error("an inline url was accepted")
	}
	out, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), key) {
		t.Errorf("rendered config shows the key: %s", out)
	}
}
