// Package aliyunsms pages on-call by text message through Aliyun's SMS
// service (阿里云短信服务, dysmsapi, API version 2017-05-25, SendSms).
//
// The text lives in a template approved in Aliyun's console, sent under an
// approved signature (签名): vigil only fills the template's parameters,
// each a Go template over the alert group. Requests carry the
// ACS3-HMAC-SHA256 (V3) signature of the entry's AccessKey pair, which
// comes from the environment or files only and never shows in an error.
//
// Each number gets its own SendSms call, so one number's flow control or
// refusal does not hold back the others, and a retry texts only the numbers
// that have not had the message. Aliyun's answer Code says what happened:
// "OK" is sent, isv.BUSINESS_LIMIT_CONTROL (per-number flow control) is
// retried after a minute, throttling and server errors are retried, and
// template, signature, number or account errors are permanent.
package aliyunsms

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/agent/notify/internal/aliyun"
	"github.com/vigil-project/vigil/agent/notify/internal/phonepage"
	"github.com/vigil-project/vigil/internal/confkit"
)

// API is SendSms of dysmsapi.
var API = aliyun.API{Name: "aliyun_sms", Action: "SendSms", Version: "2017-05-25", DefaultEndpoint: "https://dysmsapi.aliyuncs.com"}

// maxParam is Aliyun's limit on one template variable of a notification
// template: 35 characters. Longer values are cut (and marked) rather than
// have the message refused.
const maxParam = 35

func init() {
	notify.Register(notify.Integration{
		Kind: "aliyun_sms", Key: "aliyun_sms_configs", Order: 80,
		NewConfig: func() notify.Config { return &Config{Limits: phonepage.DefaultLimits()} },
		New:       notify.Adapt(New),
	})
}

// Config is one aliyun_sms_configs entry.
type Config struct {
	// access_key_id, access_key_secret (or their _file) and endpoint.
	aliyun.Credentials `yaml:",inline"`
	// PhoneNumbers are the numbers to text, each its own SendSms call
	// (mainland numbers as 1390000xxxx, others with their country code).
	PhoneNumbers []string `yaml:"phone_numbers" json:"phone_numbers"`
	// SignName is the approved signature (签名名称).
	SignName string `yaml:"sign_name" json:"sign_name"`
	// TemplateCode is the approved template (SMS_…).
	TemplateCode string `yaml:"template_code" json:"template_code"`
	// TemplateParam maps the template's variables to Go templates over
	// the alert group; when unset, vigil fills alert, status, count and
	// check (phonepage.DefaultParams).
	TemplateParam map[string]string `yaml:"template_param" json:"template_param,omitempty"`
	// phone_min_interval and phone_max_per_hour.
	phonepage.Limits `yaml:",inline"`
}

// Validate checks the entry.
func (c *Config) Validate() error {
	errs := []error{c.Credentials.Validate(), phonepage.CheckNumbers("phone_numbers", c.PhoneNumbers)}
	if strings.TrimSpace(c.SignName) == "" {
		errs = append(errs, confkit.FieldErrorf("sign_name", "the approved signature (签名名称) is required"))
	}
	if strings.TrimSpace(c.TemplateCode) == "" {
		errs = append(errs, confkit.FieldErrorf("template_code", "the approved template's code (SMS_…) is required"))
	}
	return errors.Join(append(errs, phonepage.CheckParams("template_param", c.TemplateParam), c.Limits.Validate())...)
}

// Notifier texts the numbers of one entry.
type Notifier struct {
	cfg    Config
	client *aliyun.Client
	params *phonepage.Params
	sender *phonepage.Sender
}

var _ notify.Notifier = (*Notifier)(nil)

// New builds a notifier: it reads the AccessKey files and parses the
// parameter templates, so a broken entry fails at load.
func New(cfg Config, client *http.Client) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("aliyun_sms: %w", err)
	}
	c, err := aliyun.NewClient(API, cfg.Credentials, client)
	if err != nil {
		return nil, fmt.Errorf("aliyun_sms: %w", err)
	}
	p, err := phonepage.ParseParams("template_param", phonepage.SortedKeys(cfg.TemplateParam), cfg.TemplateParam, maxParam)
	if err != nil {
		return nil, fmt.Errorf("aliyun_sms: %w", err)
	}
	return &Notifier{cfg: cfg, client: c, params: p, sender: phonepage.NewSender(cfg.Limits, time.Now)}, nil
}

// TemplateParam renders the template parameters of a message as the JSON
// object SendSms takes.
func (n *Notifier) TemplateParam(m *notify.Message) (string, error) {
	vals, err := n.params.Render(m)
	if err != nil {
		return "", err
	}
	obj := make(map[string]string, len(vals))
	for i, k := range n.params.Names {
		obj[k] = vals[i]
	}
	b, err := notify.EncodeJSON(obj)
	if err != nil {
		return "", notify.Permanent(err)
	}
	return string(b), nil
}

// Notify texts every number of the entry that has not had this message.
func (n *Notifier) Notify(ctx context.Context, m *notify.Message) error {
	tp, err := n.TemplateParam(m)
	if err != nil {
		return n.fail(err)
	}
	r := n.sender.Begin(m, n.cfg.PhoneNumbers)
	for _, num := range r.Due {
		if ctx.Err() != nil {
			break
		}
		_, err := n.client.Call(ctx, map[string]string{
			"PhoneNumbers": num, "SignName": n.cfg.SignName, "TemplateCode": n.cfg.TemplateCode, "TemplateParam": tp,
		})
		r.Result(num, err)
	}
	return n.fail(r.Outcome())
}

func (n *Notifier) fail(err error) error {
	if err == nil {
		return nil
	}
	return n.client.Redact.Scrub(fmt.Errorf("aliyun_sms: %w", err))
}
