package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/agent/notify/internal/notifytest"
	"github.com/vigil-project/vigil/internal/confkit"
)

// hookPath is a webhook path shaped like Slack's; the last segment is the
// token.
const (
	hookPath = "/services/T0VIGIL01/B0VIGIL02/xoxWebhookToken0123456789"
	token    = "xoxWebhookToken0123456789"
)

func message(resolved bool) *notify.Message { return notifytest.Linked.Message(resolved) }

// hook is a fake incoming webhook; it answers 200 "ok" unless told
// otherwise.
type hook struct{ *notifytest.Receiver }

func newHook(t *testing.T) hook {
	return hook{notifytest.NewReceiver(t, func(w http.ResponseWriter, _ notifytest.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "ok")
	})}
}

func (h hook) url() string { return h.URL + hookPath }

// last is the body of the latest request, which must be a JSON POST to
// the webhook's path.
func (h hook) last(t *testing.T) []byte {
	t.Helper()
	req := h.Last(t)
	if got, want := req.Method+" "+req.Path+" "+req.ContentType, "POST "+hookPath+" application/json"; got != want {
		t.Errorf("request %q, want %q", got, want)
	}
	return req.Body
}

func newNotifier(t *testing.T, cfg Config) *Notifier {
	t.Helper()
	n, err := New(cfg, &http.Client{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPayload(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cfg      Config
		resolved bool
		want     Payload
	}{
		{name: "firing", want: Payload{Attachments: []Attachment{{
			Fallback: "[FIRING:1] InvoiceQRFailing · invoice-qr", Color: "danger",
			Title: "[FIRING:1] InvoiceQRFailing · invoice-qr", TitleLink: "http://vigil.example:9800",
			Text: "*InvoiceQRFailing* · critical · firing\n" +
				"Invoice QR codes do not match the amount due\n" +
				"check *invoice-qr* (invoice_qr): qr_mismatch — amount 0.11 != 0.10\n" +
				"> hop 1 10.0.0.1 0.3ms\n" +
				"started 2026-03-09 14:20:00 UTC\n" +
				"<https://runbooks.example/invoice-qr?team=billing&lang=en|runbook> · <http://vigil.example:9800/checks/invoice-qr|source>",
			MrkdwnIn: []string{"text"},
		}}}},
		{name: "resolved", resolved: true, want: Payload{Attachments: []Attachment{{
			Fallback: "[RESOLVED] InvoiceQRFailing · invoice-qr", Color: "good",
			Title: "[RESOLVED] InvoiceQRFailing · invoice-qr", TitleLink: "http://vigil.example:9800",
			Text: "*InvoiceQRFailing* · critical · resolved\n" +
				"Invoice QR codes do not match the amount due\n" +
				"check *invoice-qr* (invoice_qr): qr_mismatch — amount 0.11 != 0.10\n" +
				"> hop 1 10.0.0.1 0.3ms\n" +
				"started 2026-03-09 14:20:00 UTC, resolved 2026-03-09 14:29:00 UTC\n" +
				"<https://runbooks.example/invoice-qr?team=billing&lang=en|runbook> · <http://vigil.example:9800/checks/invoice-qr|source>",
			MrkdwnIn: []string{"text"},
		}}}},
		{name: "custom", cfg: Config{Channel: "#billing-oncall", Username: "vigil", IconEmoji: ":rotating_light:",
			Title: `{{ .CommonLabels.alertname }} is {{ .Status }}`,
			Text:  `{{ template "title" . }}: {{ range .Alerts }}{{ .Check.Message }}{{ end }} <!here>`,
			Color: `{{ if eq .Status "firing" }}#d63232{{ else }}#2eb67d{{ end }}`,
		}, want: Payload{Channel: "#billing-oncall", Username: "vigil", IconEmoji: ":rotating_light:", Attachments: []Attachment{{
			Fallback: "InvoiceQRFailing is firing", Color: "#d63232",
			Title: "InvoiceQRFailing is firing", TitleLink: "http://vigil.example:9800",
			Text:     "InvoiceQRFailing is firing: amount 0.11 != 0.10 <!here>",
			MrkdwnIn: []string{"text"},
		}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHook(t)
			tc.cfg.URL = confkit.NewSecret(h.url())
			n := newNotifier(t, tc.cfg)
			if err := n.Notify(context.Background(), message(tc.resolved)); err != nil {
				t.Fatal(err)
			}
			body := h.last(t)
			notifytest.GoldenJSON(t, tc.name, body)
			if got := notifytest.Decode[Payload](t, body); !reflect.DeepEqual(got, tc.want) {
				g, _ := json.MarshalIndent(got, "", "  ")
				w, _ := json.MarshalIndent(tc.want, "", "  ")
				t.Errorf("payload\n%s\nwant\n%s", g, w)
			}
			if bytes.Contains(body, []byte(`\u003c`)) {
				t.Errorf("links HTML-escaped on the wire: %s", body)
			}
		})
	}
}

// TestOmitEmpty: fields left unset are absent, not empty strings (Slack
// takes "channel": "" as a channel name).
func TestOmitEmpty(t *testing.T) {
	h := newHook(t)
	m := message(false)
	m.ExternalURL = ""
	n := newNotifier(t, Config{URL: confkit.NewSecret(h.url()), Text: `{{ "" }}`})
	if err := n.Notify(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(h.last(t), &raw); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"attachments": []any{map[string]any{
		"fallback": "[FIRING:1] InvoiceQRFailing · invoice-qr", "color": "danger",
		"title": "[FIRING:1] InvoiceQRFailing · invoice-qr",
	}}}
	if !reflect.DeepEqual(raw, want) {
		t.Errorf("payload %v, want %v", raw, want)
	}
}

func TestTruncate(t *testing.T) {
	h := newHook(t)
	n := newNotifier(t, Config{URL: confkit.NewSecret(h.url())})
	m := message(false)
	m.Alerts[0].Labels["alertname"] = strings.Repeat("发票", 400)
	m.Alerts[0].Annotations["summary"] = strings.Repeat("二维码金额不符 ", 1000)
	if err := n.Notify(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	a := notifytest.Decode[Payload](t, h.last(t)).Attachments[0]
	for name, s := range map[string]struct {
		v   string
		max int
	}{"title": {a.Title, maxTitle}, "text": {a.Text, maxText}} {
		if len(s.v) > s.max || !utf8.ValidString(s.v) || !strings.HasSuffix(s.v, "…") {
			t.Errorf("%s is %d bytes, want a marked cut on a rune boundary under %d", name, len(s.v), s.max)
		}
	}
}

func TestErrors(t *testing.T) {
	reply := notifytest.Reply
	for _, tc := range []notifytest.Answer{
		{Name: "ok", Reply: reply(200, "ok"), Class: notifytest.OK},
		{Name: "ok newline", Reply: reply(200, "ok\n"), Class: notifytest.OK},
		{Name: "json ok", Reply: reply(200, `{"ok":true,"channel":"C1","ts":"1.2"}`), Class: notifytest.OK},
		{Name: "400 invalid_payload", Reply: reply(400, "invalid_payload"), Class: notifytest.Permanent, Msg: "400 Bad Request: invalid_payload"},
		{Name: "403 action_prohibited", Reply: reply(403, "action_prohibited"), Class: notifytest.Permanent, Msg: "403 Forbidden: action_prohibited"},
		{Name: "403 invalid_token", Reply: reply(403, "invalid_token"), Class: notifytest.Permanent, Msg: "invalid_token"},
		{Name: "404 channel_not_found", Reply: reply(404, "channel_not_found"), Class: notifytest.Permanent, Msg: "404 Not Found: channel_not_found"},
		{Name: "404 no_service", Reply: reply(404, "no_service"), Class: notifytest.Permanent, Msg: "no_service"},
		{Name: "410 channel_is_archived", Reply: reply(410, "channel_is_archived"), Class: notifytest.Permanent, Msg: "channel_is_archived"},
		{Name: "429 retry-after", Reply: reply(429, "rate_limited", "Retry-After", "3"), Class: notifytest.Retry, After: 3 * time.Second, Msg: "429"},
		{Name: "429", Reply: reply(429, "rate_limited"), Class: notifytest.Retry, Msg: "429"},
		{Name: "500 rollup_error", Reply: reply(500, "rollup_error"), Class: notifytest.Retry, Msg: "rollup_error"},
		{Name: "json error", Reply: reply(200, `{"ok":false,"error":"channel_not_found"}`), Class: notifytest.Permanent, Msg: "slack answered error channel_not_found"},
		{Name: "json ratelimited", Reply: reply(200, `{"ok":false,"error":"ratelimited"}`), Class: notifytest.Retry, After: rateLimitWait, Msg: "ratelimited"},
		{Name: "not slack", Reply: reply(200, "<html>sign in</html>"), Class: notifytest.Permanent, Msg: "unexpected answer from the webhook address: <html>"},
		{Name: "empty", Reply: reply(204, ""), Class: notifytest.Permanent, Msg: "(empty body)"},
		{Name: "token echoed", Reply: reply(404, "no_service for "+hookPath), Class: notifytest.Permanent, Msg: "no_service for /services/<redacted>/<redacted>/<redacted>"},
	} {
		t.Run(tc.Name, func(t *testing.T) {
			h := newHook(t)
			h.Reply(tc.Reply)
			n := newNotifier(t, Config{URL: confkit.NewSecret(h.url())})
			tc.Check(t, n.Notify(context.Background(), message(false)), "slack: ", secrets(h)...)
		})
	}
}

func TestUnreachable(t *testing.T) {
	h := newHook(t)
	u := h.url()
	h.Close()
	n := newNotifier(t, Config{URL: confkit.NewSecret(u)})
	err := n.Notify(context.Background(), message(false))
	notifytest.AssertClass(t, err, notifytest.Retry, 0)
	notifytest.NoSecrets(t, err, secrets(h)...)
}

// secrets are what no error may show. The host may show (a dial error
// names it); the path must not.
func secrets(h hook) []string {
	return []string{token, "T0VIGIL01/B0VIGIL02", h.URL + "/services"}
}

func TestNew(t *testing.T) {
	dir := t.TempDir()
	urlFile := notifytest.WriteFile(t, dir, "url", "https://hooks.slack.com"+hookPath+"\n")
	badURLFile := notifytest.WriteFile(t, dir, "bad", token)
	for _, tc := range []struct {
		name string
		cfg  Config
		err  string
	}{
		{"url_file", Config{URLFile: urlFile}, ""},
		{"missing url_file", Config{URLFile: filepath.Join(dir, "nope")}, "slack: url_file: read secret file"},
		{"bad url_file", Config{URLFile: badURLFile}, "slack: url_file: must be the incoming webhook's address"},
		{"text parse error", Config{URLFile: urlFile, Text: "{{ .Alerts"}, "slack: text: "},
		{"title parse error", Config{URLFile: urlFile, Title: "{{ end }}"}, "slack: title: "},
		{"color parse error", Config{URLFile: urlFile, Color: "{{ if }}"}, "slack: color: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := New(tc.cfg, nil)
			if notifytest.WantError(t, err, tc.err, token) {
				return
			}
			if n.url != "https://hooks.slack.com"+hookPath {
				t.Errorf("url not read from the file")
			}
		})
	}
}

func TestValidate(t *testing.T) {
	good := confkit.NewSecret("https://hooks.slack.com" + hookPath)
	for _, tc := range []struct {
		name   string
		cfg    Config
		fields []string
	}{
		{"ok", Config{URL: good, Channel: "#alerts", IconEmoji: ":rotating_light:"}, nil},
		{"ok url_file", Config{URLFile: "/run/secrets/slack", Channel: "C0123456789", IconEmoji: ":wave::skin-tone-2:"}, nil},
		{"missing url", Config{}, []string{"url"}},
		{"url and url_file", Config{URL: good, URLFile: "/run/secrets/slack"}, []string{"url"}},
		{"not a url", Config{URL: confkit.NewSecret(token)}, []string{"url"}},
		{"channel", Config{URL: good, Channel: "#on call"}, []string{"channel"}},
		{"emoji", Config{URL: good, IconEmoji: "rotating_light"}, []string{"icon_emoji"}},
		{"templates", Config{URL: good, Title: "{{ .Status", Text: "{{ range }}", Color: "{{"}, []string{"title", "text", "color"}},
		{"several", Config{IconEmoji: "x", Title: "{{"}, []string{"url", "icon_emoji", "title"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			notifytest.WantFields(t, tc.cfg.Validate(), tc.fields, token)
		})
	}
}
