// Package dingtalk pages a DingTalk (钉钉) group through a custom robot
// (自定义机器人) webhook, as a Markdown message.
//
// The robot's address carries its access_token, so it is configured as a
// secret and kept out of every error. A robot protected by 加签 (signed
// requests) also needs its SEC… secret: each request then carries the
// current timestamp and an HMAC of it in the query string. Robots protected
// by custom keywords (自定义关键词) only accept messages containing one of
// them: put the keyword in the title or message template.
//
// DingTalk answers HTTP 200 whatever happened; the outcome is the errcode
// of the JSON answer. A robot takes 20 messages a minute; beyond that it
// answers errcode 130101 and the message is retried later.
package dingtalk

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/internal/confkit"
)

const (
	// maxMessage is DingTalk's limit on a message (errcode 460101 "message
	// too long, exceed 20000 bytes"). The title and the @-mentions are
	// counted in it too, to stay clear of the limit whichever way DingTalk
	// measures.
	maxMessage = 20000
	// rateLimitWait is how long to wait after DingTalk's rate limit: the
	// limit is per minute.
	rateLimitWait = time.Minute
)

// DingTalk errcodes that decide whether a failed send is retried.
const (
	errBusy        = -1     // 系统繁忙: a transient server-side failure
	errSendTooFast = 130101 // "send too fast, exceed 20 times per minute"
	errRateLimited = 410100 // 发送速度太快而限流 (newer name of the same limit)
)

func init() {
	notify.Register(notify.Integration{
		Kind: "dingtalk", Key: "dingtalk_configs", Order: 20,
		NewConfig: func() notify.Config { return &Config{} },
		New:       notify.Adapt(New),
	})
}

// Config is one dingtalk_configs entry.
type Config struct {
	// URL is the robot's webhook address,
	// https://oapi.dingtalk.com/robot/send?access_token=…; URLFile reads it
	// from a file instead.
	URL     confkit.Secret `yaml:"url" json:"url,omitzero"`
	URLFile string         `yaml:"url_file" json:"url_file,omitempty"`
	// Secret is the robot's 加签 secret (SEC…), when the robot signs
	// requests; SecretFile reads it from a file instead.
	Secret     confkit.Secret `yaml:"secret" json:"secret,omitzero"`
	SecretFile string         `yaml:"secret_file" json:"secret_file,omitempty"`
	// Title and Message override the title (shown in the chat list and
	// notification) and the Markdown text.
	Title   string `yaml:"title" json:"title,omitempty"`
	Message string `yaml:"message" json:"message,omitempty"`
	// AtMobiles are the phone numbers of group members to @-mention; AtAll
	// mentions everyone.
	AtMobiles []string `yaml:"at_mobiles" json:"at_mobiles,omitempty"`
	AtAll     bool     `yaml:"at_all" json:"at_all,omitempty"`
}

// addressHint is what url must be, for errors (which never quote the
// address: it holds the access token).
const addressHint = "the robot's webhook address, https://oapi.dingtalk.com/robot/send?access_token=…"

// errCodes says which of DingTalk's errcodes are retried.
var errCodes = notify.ErrCodes{
	RateLimited: []int{errSendTooFast, errRateLimited}, RateLimitWait: rateLimitWait,
	Busy: []int{errBusy},
}

// Validate checks the entry.
func (c *Config) Validate() error {
	errs := []error{
		notify.CheckSecretURL(c.URL, c.URLFile, addressHint),
		notify.CheckSecret("secret", c.Secret, c.SecretFile, false),
	}
	for i, m := range c.AtMobiles {
		if strings.TrimSpace(m) == "" {
			errs = append(errs, confkit.FieldErrorf(fmt.Sprintf("at_mobiles.%d", i), "must not be empty"))
		}
	}
	return errors.Join(append(errs,
		notify.CheckField("title", c.Title, "", notify.DefaultMarkdown),
		notify.CheckField("message", "", c.Message, notify.DefaultMarkdown))...)
}

// Notifier sends to one robot.
type Notifier struct {
	cfg    Config
	tmpl   *notify.Template
	base   *url.URL
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
		return nil, fmt.Errorf("dingtalk: %w", err)
	}
	tmpl, err := notify.ParseTemplate(cfg.Title, cfg.Message, notify.DefaultMarkdown)
	if err != nil {
		return nil, fmt.Errorf("dingtalk: %w", err)
	}
	addr, base, err := notify.ReadSecretURL(cfg.URL, cfg.URLFile, addressHint)
	if err != nil {
		return nil, fmt.Errorf("dingtalk: %w", err)
	}
	secret, err := notify.ReadSecret("secret", cfg.Secret, cfg.SecretFile)
	if err != nil {
		return nil, fmt.Errorf("dingtalk: %w", err)
	}
	redact := notify.NewRedactor(notify.MinHidden, append(notify.URLValues(addr, base), secret.Reveal())...)
	return &Notifier{cfg: cfg, tmpl: tmpl, base: base, secret: secret.Reveal(),
		hook: notify.Hook{Name: "dingtalk", Client: client, Redact: redact}, now: time.Now}, nil
}

// Payload is the robot's Markdown message.
type Payload struct {
	MsgType  string   `json:"msgtype"`
	Markdown Markdown `json:"markdown"`
	At       *At      `json:"at,omitempty"`
}

// Markdown is a Markdown message: Title shows in the chat list and the
// notification, Text in the chat.
type Markdown struct {
	Title string `json:"title"`
	Text  string `json:"text"`
}

// At lists who the message @-mentions.
type At struct {
	AtMobiles []string `json:"atMobiles,omitempty"`
	IsAtAll   bool     `json:"isAtAll"`
}

// payload renders the message.
func (n *Notifier) payload(m *notify.Message) (Payload, error) {
	d := notify.NewData(m)
	title, text, err := n.tmpl.Render(d)
	if err != nil {
		return Payload{}, err
	}
	p := Payload{MsgType: "markdown", Markdown: Markdown{Title: title}}
	// DingTalk only highlights a mention in a Markdown message when the
	// text itself names the number ("@138…"); atMobiles alone notifies
	// without showing who. The mentions go after the cut so a long message
	// still pages its people.
	var mentions string
	if len(n.cfg.AtMobiles) > 0 || n.cfg.AtAll {
		p.At = &At{AtMobiles: n.cfg.AtMobiles, IsAtAll: n.cfg.AtAll}
		for _, mob := range n.cfg.AtMobiles {
			if !strings.Contains(text, "@"+mob) {
				mentions += " @" + mob
			}
		}
		if mentions != "" {
			mentions = "\n\n" + strings.TrimSpace(mentions)
		}
	}
	// A title long enough to eat the whole budget is a broken template;
	// DingTalk rejects the message then, but Truncate needs room for its
	// mark.
	p.Markdown.Text = notify.Truncate(text, max(maxMessage-len(title)-len(mentions), 100)) + mentions
	return p, nil
}

// Notify sends the message; DingTalk acknowledges with errcode 0. Markdown
// and mentions keep their <, > and & (the hook does not escape them).
func (n *Notifier) Notify(ctx context.Context, m *notify.Message) error {
	p, err := n.payload(m)
	if err != nil {
		return n.hook.Fail(err)
	}
	return n.hook.Send(ctx, n.endpoint(), p, func(answer []byte) error { return errCodes.Check(answer, n.hook.Redact) })
}

// endpoint is the robot address, signed when the robot has a secret. The
// signature covers the time of sending, not of the alert: DingTalk refuses
// timestamps more than an hour off, and a retry must sign afresh.
func (n *Notifier) endpoint() string {
	if n.secret == "" {
		return n.base.String()
	}
	ms := n.now().UnixMilli()
	u := *n.base
	if u.RawQuery != "" {
		u.RawQuery += "&"
	}
	u.RawQuery += "timestamp=" + strconv.FormatInt(ms, 10) + "&sign=" + url.QueryEscape(sign(n.secret, ms))
	return u.String()
}

// sign is DingTalk's 加签 signature for a timestamp in Unix milliseconds:
// base64(HMAC-SHA256(key: secret, message: timestamp + "\n" + secret)),
// before URL encoding.
func sign(secret string, ms int64) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(strconv.FormatInt(ms, 10) + "\n" + secret))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
