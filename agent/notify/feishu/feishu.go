// Package feishu pages a Feishu (飞书) or Lark group through a custom bot
// (自定义机器人) webhook, as an interactive card: the title in a header
// coloured red while alerts fire and green once they resolved, the body as
// a Markdown element.
//
// The bot's address carries its token (the last path segment), so it is
// configured as a secret and kept out of every error. A bot with signature
// verification (签名校验) also needs its secret: each request then carries
// the current timestamp and a signature of it in the JSON body. Bots
// protected by keywords only accept cards containing one: put it in the
// title or message template.
//
// Feishu answers HTTP 200 with a JSON code; a bot takes 100 messages a
// minute and 5 a second, beyond which it answers code 11232 and the
// message is retried later.
package feishu

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/internal/confkit"
)

const (
	// maxMarkdown bounds the card's Markdown so the whole request stays
	// under the limit Feishu puts on a custom bot's request (20 KB), with
	// room for the header, the JSON escaping and the signature.
	maxMarkdown = 18000
	// rateLimitWait is how long to wait after Feishu's rate limit: the
	// limit is per minute.
	rateLimitWait = time.Minute
)

// errFrequencyLimited is Feishu's code for a bot over its rate limit.
const errFrequencyLimited = 11232

// defaultBody is the default Markdown without its title heading: the card
// header shows the title.
var defaultBody = strings.TrimPrefix(notify.DefaultMarkdown, "### {{ template \"title\" . }}\n")

func init() {
	notify.Register(notify.Integration{
		Kind: "feishu", Key: "feishu_configs", Order: 40,
		NewConfig: func() notify.Config { return &Config{} },
		New:       notify.Adapt(New),
	})
}

// Config is one feishu_configs entry.
type Config struct {
	// URL is the bot's webhook address,
	// https://open.feishu.cn/open-apis/bot/v2/hook/… (or Lark's
	// https://open.larksuite.com/…); URLFile reads it from a file instead.
	URL     confkit.Secret `yaml:"url" json:"url,omitzero"`
	URLFile string         `yaml:"url_file" json:"url_file,omitempty"`
	// Secret is the bot's signature verification secret, when it checks
	// signatures; SecretFile reads it from a file instead.
	Secret     confkit.Secret `yaml:"secret" json:"secret,omitzero"`
	SecretFile string         `yaml:"secret_file" json:"secret_file,omitempty"`
	// Title and Message override the card's header and its Markdown.
	Title   string `yaml:"title" json:"title,omitempty"`
	Message string `yaml:"message" json:"message,omitempty"`
}

// addressHint is what url must be, for errors (which never quote the
// address: it holds the token).
const addressHint = "the bot's webhook address, https://open.feishu.cn/open-apis/bot/v2/hook/…"

// Validate checks the entry.
func (c *Config) Validate() error {
	return errors.Join(
		notify.CheckSecretURL(c.URL, c.URLFile, addressHint),
		notify.CheckSecret("secret", c.Secret, c.SecretFile, false),
		notify.CheckField("title", c.Title, "", defaultBody),
		notify.CheckField("message", "", c.Message, defaultBody))
}

// Notifier sends to one bot.
type Notifier struct {
	cfg    Config
	tmpl   *notify.Template
	url    string
	secret string
	// hook posts, hiding what no error may show: the address, its token,
	// the signing secret.
	hook notify.Hook
	// now is the signing clock; tests fix it.
	now func() time.Time
}

var _ notify.Notifier = (*Notifier)(nil)

// New builds a notifier: it parses the templates and reads the *_file
// secrets, so a broken entry fails at load rather than at the first page.
// client carries the timeout and TLS settings.
func New(cfg Config, client *http.Client) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("feishu: %w", err)
	}
	tmpl, err := notify.ParseTemplate(cfg.Title, cfg.Message, defaultBody)
	if err != nil {
		return nil, fmt.Errorf("feishu: %w", err)
	}
	addr, u, err := notify.ReadSecretURL(cfg.URL, cfg.URLFile, addressHint)
	if err != nil {
		return nil, fmt.Errorf("feishu: %w", err)
	}
	secret, err := notify.ReadSecret("secret", cfg.Secret, cfg.SecretFile)
	if err != nil {
		return nil, fmt.Errorf("feishu: %w", err)
	}
	// The token is the address's last path segment.
	hidden := append(notify.URLValues(addr, u), path.Base(u.Path), secret.Reveal())
	redact := notify.NewRedactor(notify.MinHidden, hidden...)
	return &Notifier{cfg: cfg, tmpl: tmpl, url: addr, secret: secret.Reveal(),
		hook: notify.Hook{Name: "feishu", Client: client, Redact: redact}, now: time.Now}, nil
}

// Payload is the bot's message: an interactive card, signed when the bot
// has a secret.
type Payload struct {
	Timestamp string `json:"timestamp,omitempty"`
	Sign      string `json:"sign,omitempty"`
	MsgType   string `json:"msg_type"`
	Card      Card   `json:"card"`
}

// Card is a message card with a header and Markdown elements.
type Card struct {
	Config   CardConfig `json:"config"`
	Header   Header     `json:"header"`
	Elements []Element  `json:"elements"`
}

// CardConfig lets the card use the chat's full width.
type CardConfig struct {
	WideScreenMode bool `json:"wide_screen_mode"`
}

// Header is the card's title bar; Template is its colour.
type Header struct {
	Title    PlainText `json:"title"`
	Template string    `json:"template"`
}

// PlainText is a text shown as is.
type PlainText struct {
	Tag     string `json:"tag"`
	Content string `json:"content"`
}

// Element is a card element; the cards here have one, of tag markdown.
type Element struct {
	Tag     string `json:"tag"`
	Content string `json:"content"`
}

// payload renders the message and signs it.
func (n *Notifier) payload(m *notify.Message) (Payload, error) {
	d := notify.NewData(m)
	title, body, err := n.tmpl.Render(d)
	if err != nil {
		return Payload{}, err
	}
	colour := "red"
	if d.Status == "resolved" {
		colour = "green"
	}
	p := Payload{MsgType: "interactive", Card: Card{
		Config:   CardConfig{WideScreenMode: true},
		Header:   Header{Title: PlainText{Tag: "plain_text", Content: title}, Template: colour},
		Elements: []Element{{Tag: "markdown", Content: notify.Truncate(body, maxMarkdown)}},
	}}
	// Signed at sending, not when the alert was queued: Feishu refuses
	// timestamps more than an hour off, and a retry must sign afresh.
	if n.secret != "" {
		ts := n.now().Unix()
		p.Timestamp, p.Sign = strconv.FormatInt(ts, 10), sign(n.secret, ts)
	}
	return p, nil
}

// sign is Feishu's custom bot signature for a timestamp in Unix seconds:
// base64(HMAC-SHA256(key: timestamp + "\n" + secret, message: empty)).
// Unlike DingTalk's, the secret is in the key and nothing is hashed.
func sign(secret string, ts int64) string {
	mac := hmac.New(sha256.New, []byte(strconv.FormatInt(ts, 10)+"\n"+secret))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Notify sends the card; Feishu acknowledges with code 0. <at id=all></at>
// mentions keep their < and > (the hook does not escape them).
func (n *Notifier) Notify(ctx context.Context, m *notify.Message) error {
	p, err := n.payload(m)
	if err != nil {
		return n.hook.Fail(err)
	}
	return n.hook.Send(ctx, n.url, p, n.check)
}

// answer is Feishu's reply: {"code":0,"msg":"success"}, or from older
// deployments {"StatusCode":0,"StatusMessage":"success"}; some carry both.
type answer struct {
	Code          *int   `json:"code"`
	Msg           string `json:"msg"`
	StatusCode    *int   `json:"StatusCode"`
	StatusMessage string `json:"StatusMessage"`
}

// check classifies Feishu's reply: the rate limit is retried, anything
// else (19021 for a signature mismatch or a clock off by more than an hour,
// 19024 for a missing keyword, 9499 for a rejected payload, 19001 for a bad
// token) fails the same way on every retry.
func (n *Notifier) check(body []byte) error {
	var a answer
	if err := json.Unmarshal(body, &a); err != nil || (a.Code == nil && a.StatusCode == nil) {
		return n.hook.Redact.Unexpected("bot", body)
	}
	code, msg := a.Code, a.Msg
	if code == nil {
		code, msg = a.StatusCode, a.StatusMessage
	}
	if *code == 0 {
		return nil
	}
	err := fmt.Errorf("bot answered code %d: %s", *code, n.hook.Redact.Excerpt(msg))
	if *code == errFrequencyLimited || rateLimitMessage(msg) {
		return &notify.RetryAfterError{Err: err, After: rateLimitWait}
	}
	return notify.Permanent(err)
}

// rateLimitMessage recognises a rate limit by its message: Feishu's
// generic code 9499 mostly means "Bad Request", which no retry fixes, but
// has also been seen with "too many request".
func rateLimitMessage(msg string) bool {
	msg = strings.ToLower(msg)
	for _, s := range []string{"too many request", "frequency limit", "rate limit"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}
