// Package slack posts pages to a Slack channel through an incoming webhook,
// as one message attachment coloured red while alerts fire and green once
// they resolved, the title linking back to the agent, as Alertmanager's
// slack_configs do.
//
// The webhook address (https://hooks.slack.com/services/T…/B…/…) is the
// credential, so it is configured as a secret and kept out of every error.
// Slack answers 200 with the body "ok"; errors come as HTTP statuses with a
// short code in the body (400 invalid_payload, 403 action_prohibited, 404
// channel_not_found, 410 channel_is_archived), which no retry fixes, and
// 429 with Retry-After when the webhook is over its rate limit (about one
// message a second).
package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/internal/confkit"
)

const (
	// maxTitle is Slack's limit on an attachment title (Alertmanager uses
	// the same).
	maxTitle = 1024
	// maxText bounds the attachment text: Slack cuts messages at 40,000
	// characters and folds long attachments behind "Show more" anyway; a
	// page longer than this is unreadable in a channel.
	maxText = 8000
	// rateLimitWait is how long to wait after a rate limit answered
	// without Retry-After: Slack's limits are per second.
	rateLimitWait = 5 * time.Second
)

// addressHint is what url must be, for errors (which never quote the
// address: it holds the token).
const addressHint = "the incoming webhook's address, https://hooks.slack.com/services/…"

// DefaultColor is red while alerts fire, green once they resolved.
const DefaultColor = `{{ if eq .Status "firing" }}danger{{ else }}good{{ end }}`

// emojiRE accepts :name: and a skin tone after it (:wave::skin-tone-2:).
var emojiRE = regexp.MustCompile(`^:[^:\s]+:(:[^:\s]+:)?$`)

func init() {
	notify.Register(notify.Integration{
		Kind: "slack", Key: "slack_configs", Order: 60,
		NewConfig: func() notify.Config { return &Config{} },
		New:       notify.Adapt(New),
	})
}

// Config is one slack_configs entry.
type Config struct {
	// URL is the incoming webhook's address; URLFile reads it from a file
	// instead.
	URL     confkit.Secret `yaml:"url" json:"url,omitempty"`
	URLFile string         `yaml:"url_file" json:"url_file,omitempty"`
	// Channel, Username and IconEmoji override the webhook's defaults
	// (#channel or a channel ID, a display name, an emoji like :rotating_light:).
	// Webhooks created by a Slack app ignore them and post as the app.
	Channel   string `yaml:"channel" json:"channel,omitempty"`
	Username  string `yaml:"username" json:"username,omitempty"`
	IconEmoji string `yaml:"icon_emoji" json:"icon_emoji,omitempty"`
	// Title and Text override the attachment's title and text (defaults
	// notify.DefaultTitle and notify.DefaultSlack, Slack's mrkdwn).
	Title string `yaml:"title" json:"title,omitempty"`
	Text  string `yaml:"text" json:"text,omitempty"`
	// Color is the attachment's colour: a template giving good, warning,
	// danger or a hex colour (default DefaultColor).
	Color string `yaml:"color" json:"color,omitempty"`
}

// Validate checks the entry.
func (c *Config) Validate() error {
	errs := []error{notify.CheckSecretURL(c.URL, c.URLFile, addressHint)}
	if strings.ContainsAny(c.Channel, " \t\r\n") {
		errs = append(errs, confkit.FieldErrorf("channel", "must be a channel name like #alerts or a channel ID"))
	}
	if c.IconEmoji != "" && !emojiRE.MatchString(c.IconEmoji) {
		errs = append(errs, confkit.FieldErrorf("icon_emoji", "must be an emoji name like :rotating_light:"))
	}
	return errors.Join(append(errs,
		notify.CheckField("title", c.Title, "", notify.DefaultSlack),
		notify.CheckField("text", "", c.Text, notify.DefaultSlack),
		notify.CheckField("color", "", c.Color, DefaultColor))...)
}

// Notifier posts to one incoming webhook.
type Notifier struct {
	cfg   Config
	tmpl  *notify.Template
	color *notify.Template
	url   string
	// hook posts, hiding what no error may show: the address and its
	// token-bearing path segments.
	hook notify.Hook
}

var _ notify.Notifier = (*Notifier)(nil)

// New builds a notifier: it parses the templates and reads url_file, so a
// broken entry fails at load rather than at the first page. client carries
// the timeout and TLS settings.
func New(cfg Config, client *http.Client) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("slack: %w", err)
	}
	tmpl, err := notify.ParseTemplate(cfg.Title, cfg.Text, notify.DefaultSlack)
	if err != nil {
		return nil, fmt.Errorf("slack: %w", err)
	}
	color, err := notify.ParseField("color", cfg.Title, cfg.Color, DefaultColor)
	if err != nil {
		return nil, fmt.Errorf("slack: %w", err)
	}
	addr, u, err := notify.ReadSecretURL(cfg.URL, cfg.URLFile, addressHint)
	if err != nil {
		return nil, fmt.Errorf("slack: %w", err)
	}
	// The path is /services/T…/B…/token: every segment but "services"
	// (which is 8 bytes long, so MinHidden alone would not spare it) is
	// part of the credential.
	hidden := notify.URLValues(addr, u)
	for _, seg := range strings.Split(u.Path, "/") {
		if seg != "services" {
			hidden = append(hidden, seg)
		}
	}
	redact := notify.NewRedactor(notify.MinHidden, hidden...)
	return &Notifier{cfg: cfg, tmpl: tmpl, color: color, url: addr,
		hook: notify.Hook{Name: "slack", Client: client, Redact: redact}}, nil
}

// Payload is the incoming webhook's message.
type Payload struct {
	Channel     string       `json:"channel,omitempty"`
	Username    string       `json:"username,omitempty"`
	IconEmoji   string       `json:"icon_emoji,omitempty"`
	Attachments []Attachment `json:"attachments"`
}

// Attachment is a legacy message attachment: the coloured bar on its left
// is what makes firing and resolved pages tell apart at a glance, which
// Block Kit has no equivalent for.
type Attachment struct {
	// Fallback is the plain text shown in notifications.
	Fallback  string   `json:"fallback,omitempty"`
	Color     string   `json:"color,omitempty"`
	Title     string   `json:"title,omitempty"`
	TitleLink string   `json:"title_link,omitempty"`
	Text      string   `json:"text,omitempty"`
	MrkdwnIn  []string `json:"mrkdwn_in,omitempty"`
}

func (n *Notifier) payload(m *notify.Message) (Payload, error) {
	d := notify.NewData(m)
	title, text, err := n.tmpl.Render(d)
	if err != nil {
		return Payload{}, err
	}
	color, err := n.color.Body(d)
	if err != nil {
		return Payload{}, err
	}
	title = notify.Truncate(title, maxTitle)
	att := Attachment{Fallback: title, Color: color, Title: title, TitleLink: m.ExternalURL,
		Text: notify.Truncate(text, maxText)}
	if att.Text != "" {
		att.MrkdwnIn = []string{"text"}
	}
	return Payload{Channel: n.cfg.Channel, Username: n.cfg.Username, IconEmoji: n.cfg.IconEmoji,
		Attachments: []Attachment{att}}, nil
}

// Notify posts the message; Slack acknowledges with "ok". Its <url|text>
// links keep their < and > (the hook does not escape them), its 4xx
// answers are permanent, and 429 (with its Retry-After) and 5xx are
// retried, as notify.Post classifies them.
func (n *Notifier) Notify(ctx context.Context, m *notify.Message) error {
	p, err := n.payload(m)
	if err != nil {
		return n.hook.Fail(err)
	}
	return n.hook.Send(ctx, n.url, p, check)
}

// check classifies a 2xx answer. An incoming webhook answers "ok"; the Web
// API (and compatible receivers) answer JSON with "ok": true, or false and
// an error code, rate limits included. Anything else is not Slack — the
// address points elsewhere — and the page would be lost, so it fails.
func check(body []byte) error {
	s := strings.TrimSpace(string(body))
	if s == "ok" {
		return nil
	}
	var a struct {
		OK    *bool  `json:"ok"`
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &a) == nil && a.OK != nil {
		if *a.OK {
			return nil
		}
		err := fmt.Errorf("slack answered error %s", notify.Truncate(a.Error, 100))
		if a.Error == "ratelimited" || a.Error == "rate_limited" {
			return &notify.RetryAfterError{Err: err, After: rateLimitWait}
		}
		return notify.Permanent(err)
	}
	return notify.Permanent(fmt.Errorf("unexpected answer from the webhook address: %s", notify.Excerpt(body)))
}
