// Package wecom pages a WeCom (企业微信) group through a group robot
// (群机器人) webhook, as a Markdown message or, when people must be
// @-mentioned by phone number, as a text message.
//
// The robot's address carries its key, so it is configured as a secret and
// kept out of every error. WeCom answers HTTP 200 whatever happened; the
// outcome is the errcode of the JSON answer. A robot takes 20 messages a
// minute; beyond that it answers errcode 45009 and the message is retried
// later.
package wecom

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/internal/confkit"
)

const (
	// maxMarkdown and maxText are WeCom's limits on a message's content,
	// in bytes of UTF-8.
	maxMarkdown = 4096
	maxText     = 2048
	// rateLimitWait is how long to wait after WeCom's rate limit: the limit
	// is per minute.
	rateLimitWait = time.Minute
)

// WeCom errcodes that decide whether a failed send is retried.
const (
	errBusy      = -1    // 系统繁忙: a transient server-side failure
	errRateLimit = 45009 // "api freq out of limit"
)

// Message types.
const (
	Markdown = "markdown"
	Text     = "text"
)

// defaultBody is the default Markdown without its title heading: the
// title is prepended as a heading of its own, so a custom message template
// gets it too.
var defaultBody = strings.TrimPrefix(notify.DefaultMarkdown, "### {{ template \"title\" . }}\n")

func init() {
	notify.Register(notify.Integration{
		Kind: "wecom", Key: "wecom_configs", Order: 30,
		NewConfig: func() notify.Config { return &Config{} },
		New:       notify.Adapt(New),
	})
}

// Config is one wecom_configs entry.
type Config struct {
	// URL is the robot's webhook address,
	// https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…; URLFile reads
	// it from a file instead.
	URL     confkit.Secret `yaml:"url" json:"url,omitzero"`
	URLFile string         `yaml:"url_file" json:"url_file,omitempty"`
	// MsgType is markdown (the default) or text. Only text messages can
	// @-mention people: Markdown ones render <@userid> in the template but
	// ignore the mention lists.
	MsgType string `yaml:"msgtype" json:"msgtype,omitempty"`
	// Title and Message override the title (the first line) and the body.
	Title   string `yaml:"title" json:"title,omitempty"`
	Message string `yaml:"message" json:"message,omitempty"`
	// MentionedList are WeCom user IDs and MentionedMobileList phone
	// numbers to @-mention ("@all" for everyone); text messages only.
	MentionedList       []string `yaml:"mentioned_list" json:"mentioned_list,omitempty"`
	MentionedMobileList []string `yaml:"mentioned_mobile_list" json:"mentioned_mobile_list,omitempty"`
}

// addressHint is what url must be, for errors (which never quote the
// address: it holds the key).
const addressHint = "the robot's webhook address, https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…"

// errCodes says which of WeCom's errcodes are retried; 93000, a wrong or
// deleted robot, is not.
var errCodes = notify.ErrCodes{RateLimited: []int{errRateLimit}, RateLimitWait: rateLimitWait, Busy: []int{errBusy}}

// Validate checks the entry.
func (c *Config) Validate() error {
	errs := []error{notify.CheckSecretURL(c.URL, c.URLFile, addressHint)}
	switch c.MsgType {
	case "", Markdown:
		// A Markdown message would drop the mentions without a word.
		if len(c.MentionedList) > 0 {
			errs = append(errs, confkit.FieldErrorf("mentioned_list", "needs msgtype: text (Markdown messages mention with <@userid> in the message template)"))
		}
		if len(c.MentionedMobileList) > 0 {
			errs = append(errs, confkit.FieldErrorf("mentioned_mobile_list", "needs msgtype: text (Markdown messages cannot mention by phone number)"))
		}
	case Text:
	default:
		errs = append(errs, confkit.FieldErrorf("msgtype", "must be markdown or text, not %q", c.MsgType))
	}
	for _, l := range []struct {
		field string
		list  []string
	}{{"mentioned_list", c.MentionedList}, {"mentioned_mobile_list", c.MentionedMobileList}} {
		for i, v := range l.list {
			if strings.TrimSpace(v) == "" {
				errs = append(errs, confkit.FieldErrorf(fmt.Sprintf("%s.%d", l.field, i), "must not be empty"))
			}
		}
	}
	return errors.Join(append(errs,
		notify.CheckField("title", c.Title, "", defaultBody),
		notify.CheckField("message", "", c.Message, defaultBody))...)
}

// Notifier sends to one robot.
type Notifier struct {
	cfg  Config
	tmpl *notify.Template
	url  string
	// hook posts, hiding what no error may show: the address and its key.
	// (WeCom robots do not sign requests, so unlike DingTalk and Feishu
	// there is no clock to fix.)
	hook notify.Hook
}

var _ notify.Notifier = (*Notifier)(nil)

// New builds a notifier: it parses the templates and reads url_file, so a
// broken entry fails at load rather than at the first page. client carries
// the timeout and TLS settings.
func New(cfg Config, client *http.Client) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("wecom: %w", err)
	}
	tmpl, err := notify.ParseTemplate(cfg.Title, cfg.Message, defaultBody)
	if err != nil {
		return nil, fmt.Errorf("wecom: %w", err)
	}
	addr, u, err := notify.ReadSecretURL(cfg.URL, cfg.URLFile, addressHint)
	if err != nil {
		return nil, fmt.Errorf("wecom: %w", err)
	}
	if cfg.MsgType == "" {
		cfg.MsgType = Markdown
	}
	redact := notify.NewRedactor(notify.MinHidden, notify.URLValues(addr, u)...)
	return &Notifier{cfg: cfg, tmpl: tmpl, url: addr, hook: notify.Hook{Name: "wecom", Client: client, Redact: redact}}, nil
}

// Payload is the robot's message: Markdown or Text, as MsgType says.
type Payload struct {
	MsgType  string           `json:"msgtype"`
	Markdown *MarkdownMessage `json:"markdown,omitempty"`
	Text     *TextMessage     `json:"text,omitempty"`
}

// MarkdownMessage is a Markdown message.
type MarkdownMessage struct {
	Content string `json:"content"`
}

// TextMessage is a text message with its mentions.
type TextMessage struct {
	Content             string   `json:"content"`
	MentionedList       []string `json:"mentioned_list,omitempty"`
	MentionedMobileList []string `json:"mentioned_mobile_list,omitempty"`
}

// payload renders the message.
func (n *Notifier) payload(m *notify.Message) (Payload, error) {
	d := notify.NewData(m)
	title, body, err := n.tmpl.Render(d)
	if err != nil {
		return Payload{}, err
	}
	if n.cfg.MsgType == Text {
		return Payload{MsgType: Text, Text: &TextMessage{
			Content:             notify.Truncate(title+"\n\n"+body, maxText),
			MentionedList:       n.cfg.MentionedList,
			MentionedMobileList: n.cfg.MentionedMobileList,
		}}, nil
	}
	return Payload{MsgType: Markdown, Markdown: &MarkdownMessage{
		Content: notify.Truncate("## "+title+"\n"+body, maxMarkdown),
	}}, nil
}

// Notify sends the message; WeCom acknowledges with errcode 0. <@userid>
// mentions and <font> keep their < and > (the hook does not escape them).
func (n *Notifier) Notify(ctx context.Context, m *notify.Message) error {
	p, err := n.payload(m)
	if err != nil {
		return n.hook.Fail(err)
	}
	return n.hook.Send(ctx, n.url, p, func(answer []byte) error { return errCodes.Check(answer, n.hook.Redact) })
}
