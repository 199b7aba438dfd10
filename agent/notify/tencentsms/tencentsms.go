// Package tencentsms pages on-call by text message through Tencent Cloud
// SMS (腾讯云短信, sms.tencentcloudapi.com, API version 2021-01-11,
// SendSms).
//
// The text is a template approved in Tencent's console, sent under an
// approved signature; vigil fills the template's parameters, in order, each
// a Go template over the alert group. Requests carry the TC3-HMAC-SHA256
// signature (content-type, host and x-tc-action signed) of the entry's
// SecretId/SecretKey, which come from the environment or files only and
// never show in an error.
//
// One request goes to every number due; Tencent answers a status per
// number. A request-level error (Response.Error) applies to all of them.
// "Ok" is sent; the per-number limits (LimitExceeded.PhoneNumber…:
// 30 seconds, one hour) and API throttling or internal errors are retried;
// anything else (a template, signature or app not approved, a bad number,
// an exhausted package, a wrong key) is permanent.
package tencentsms

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/agent/notify/internal/phonepage"
	"github.com/vigil-project/vigil/agent/notify/internal/tc3"
	"github.com/vigil-project/vigil/internal/confkit"
)

const (
	// DefaultEndpoint is the API's address (nearest region).
	DefaultEndpoint = "https://sms.tencentcloudapi.com"
	// DefaultRegion is sent as X-TC-Region; SMS serves ap-guangzhou,
	// ap-beijing and ap-nanjing.
	DefaultRegion = "ap-guangzhou"
	service       = "sms"
	action        = "SendSms"
	version       = "2021-01-11"
	contentType   = "application/json; charset=utf-8"
)

func init() {
	notify.Register(notify.Integration{
		Kind: "tencent_sms", Key: "tencent_sms_configs", Order: 100,
		NewConfig: func() notify.Config { return &Config{Region: DefaultRegion, Limits: phonepage.DefaultLimits()} },
		New:       notify.Adapt(New),
	})
}

// Config is one tencent_sms_configs entry.
type Config struct {
	// SecretID and SecretKey are the API key pair (云API密钥), each an
	// environment reference or a file.
	SecretID      confkit.Secret `yaml:"secret_id" json:"secret_id,omitzero"`
	SecretIDFile  string         `yaml:"secret_id_file" json:"secret_id_file,omitempty"`
	SecretKey     confkit.Secret `yaml:"secret_key" json:"secret_key,omitzero"`
	SecretKeyFile string         `yaml:"secret_key_file" json:"secret_key_file,omitempty"`
	// Endpoint is the API's address (default DefaultEndpoint); Region is
	// X-TC-Region (default DefaultRegion).
	Endpoint string `yaml:"endpoint" json:"endpoint,omitempty"`
	Region   string `yaml:"region" json:"region"`
	// PhoneNumbers are the numbers to text, E.164 (+8613800001111).
	PhoneNumbers []string `yaml:"phone_numbers" json:"phone_numbers"`
	// SmsSdkAppID is the SMS application (1400…); SignName the approved
	// signature; TemplateID the approved template.
	SmsSdkAppID string `yaml:"sms_sdk_app_id" json:"sms_sdk_app_id"`
	SignName    string `yaml:"sign_name" json:"sign_name"`
	TemplateID  string `yaml:"template_id" json:"template_id"`
	// TemplateParams are the template's parameters {1}, {2}, … in order,
	// each a Go template; when unset, vigil fills alert, status, count
	// and check.
	TemplateParams []string `yaml:"template_params" json:"template_params,omitempty"`
	// phone_min_interval and phone_max_per_hour.
	phonepage.Limits `yaml:",inline"`
}

// Validate checks the entry.
func (c *Config) Validate() error {
	errs := []error{
		notify.CheckSecret("secret_id", c.SecretID, c.SecretIDFile, true),
		notify.CheckSecret("secret_key", c.SecretKey, c.SecretKeyFile, true),
		phonepage.CheckNumbers("phone_numbers", c.PhoneNumbers),
	}
	if c.Endpoint != "" {
		if err := notify.CheckURL(c.Endpoint, "an http(s) URL such as "+DefaultEndpoint); err != nil {
			errs = append(errs, confkit.FieldErrorf("endpoint", "%w", err))
		}
	}
	for _, f := range []struct{ key, val, want string }{
		{"region", c.Region, "the region (X-TC-Region), such as ap-guangzhou, is required"},
		{"sms_sdk_app_id", c.SmsSdkAppID, "the SMS application's SdkAppId (1400…) is required"},
		{"sign_name", c.SignName, "the approved signature is required"},
		{"template_id", c.TemplateID, "the approved template's ID is required"},
	} {
		if strings.TrimSpace(f.val) == "" {
			errs = append(errs, confkit.FieldErrorf(f.key, "%s", f.want))
		}
	}
	for i, p := range c.TemplateParams {
		errs = append(errs, notify.CheckField(fmt.Sprintf("template_params.%d", i), "", p, ""))
	}
	return errors.Join(append(errs, c.Limits.Validate())...)
}

// Notifier texts the numbers of one entry.
type Notifier struct {
	cfg      Config
	client   *http.Client
	endpoint *url.URL
	id, key  string
	redact   *notify.Redactor
	params   *phonepage.Params
	sender   *phonepage.Sender
	// now is the signing clock; tests fix it.
	now func() time.Time
}

var _ notify.Notifier = (*Notifier)(nil)

// New builds a notifier: it reads the key files and parses the parameter
// templates, so a broken entry fails at load.
func New(cfg Config, client *http.Client) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("tencent_sms: %w", err)
	}
	id, err := notify.ReadSecret("secret_id", cfg.SecretID, cfg.SecretIDFile)
	if err != nil {
		return nil, fmt.Errorf("tencent_sms: %w", err)
	}
	key, err := notify.ReadSecret("secret_key", cfg.SecretKey, cfg.SecretKeyFile)
	if err != nil {
		return nil, fmt.Errorf("tencent_sms: %w", err)
	}
	ep := cfg.Endpoint
	if ep == "" {
		ep = DefaultEndpoint
	}
	u, err := url.Parse(ep)
	if err != nil {
		return nil, errors.New("tencent_sms: endpoint does not parse")
	}
	u.Path, u.RawPath, u.RawQuery = "/", "", ""
	var names []string
	params := map[string]string{}
	for i, p := range cfg.TemplateParams {
		k := strconv.Itoa(i)
		names = append(names, k)
		params[k] = p
	}
	p, err := phonepage.ParseParams("template_params", names, params, 0)
	if err != nil {
		return nil, fmt.Errorf("tencent_sms: %w", err)
	}
	if client == nil {
		client = http.DefaultClient
	}
	return &Notifier{cfg: cfg, client: client, endpoint: u, id: id.Reveal(), key: key.Reveal(),
		redact: notify.NewRedactor(1, id.Reveal(), key.Reveal()), params: p,
		sender: phonepage.NewSender(cfg.Limits, time.Now), now: time.Now}, nil
}

// Request is the SendSms request body.
type Request struct {
	PhoneNumberSet   []string `json:"PhoneNumberSet"`
	SmsSdkAppID      string   `json:"SmsSdkAppId"`
	SignName         string   `json:"SignName"`
	TemplateID       string   `json:"TemplateId"`
	TemplateParamSet []string `json:"TemplateParamSet"`
}

// answer is SendSms's answer: a status per number, or an error.
type answer struct {
	Response struct {
		Error *struct {
			Code    string
			Message string
		}
		SendStatusSet []struct {
			PhoneNumber string
			Code        string
			Message     string
		}
		RequestID string `json:"RequestId"`
	}
}

// Notify texts every number of the entry that has not had this message.
func (n *Notifier) Notify(ctx context.Context, m *notify.Message) error {
	vals, err := n.params.Render(m)
	if err != nil {
		return n.fail(err)
	}
	r := n.sender.Begin(m, n.cfg.PhoneNumbers)
	if len(r.Due) > 0 {
		req := Request{PhoneNumberSet: r.Due, SmsSdkAppID: n.cfg.SmsSdkAppID, SignName: n.cfg.SignName,
			TemplateID: n.cfg.TemplateID, TemplateParamSet: vals}
		a, err := n.send(ctx, req)
		for _, num := range r.Due {
			if err == nil {
				r.Result(num, n.status(a, num))
			} else {
				r.Result(num, err)
			}
		}
	}
	return n.fail(r.Outcome())
}

func (n *Notifier) fail(err error) error {
	if err == nil {
		return nil
	}
	return n.redact.Scrub(fmt.Errorf("tencent_sms: %w", err))
}

// send signs and posts one request; an error is the request's (the
// connection, an HTTP failure, Response.Error).
func (n *Notifier) send(ctx context.Context, body Request) (*answer, error) {
	b, err := notify.EncodeJSON(body)
	if err != nil {
		return nil, notify.Permanent(err)
	}
	now := n.now()
	host := n.endpoint.Host
	s := tc3.Sign(tc3.Request{Service: service, Body: b,
		Headers: map[string]string{"content-type": contentType, "host": host, "x-tc-action": action}}, n.id, n.key, now)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.endpoint.String(), bytes.NewReader(b))
	if err != nil {
		return nil, notify.Permanent(errors.New("build request: bad endpoint"))
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", s.Authorization)
	req.Header.Set("X-TC-Action", action)
	req.Header.Set("X-TC-Version", version)
	req.Header.Set("X-TC-Timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("X-TC-Region", n.cfg.Region)
	req.Header.Set("User-Agent", "vigil")
	resp, err := n.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = fmt.Errorf("%s: %w", ue.Op, ue.Err)
		}
		return nil, fmt.Errorf("send: %w", err)
	}
	defer resp.Body.Close()
	data := phonepage.ReadAnswer(resp.Body)
	var a answer
	if json.Unmarshal(data, &a) != nil || (a.Response.Error == nil && a.Response.SendStatusSet == nil) {
		err := fmt.Errorf("answered %s: %s", resp.Status, n.redact.Excerpt(string(data)))
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode/100 == 5 {
			return nil, err
		}
		return nil, notify.Permanent(err)
	}
	if e := a.Response.Error; e != nil {
		return nil, Classify(e.Code, fmt.Errorf("%s: %s (request %s)", e.Code, n.redact.Excerpt(e.Message), a.Response.RequestID))
	}
	return &a, nil
}

// status is the outcome for one number of a successful request.
func (n *Notifier) status(a *answer, number string) error {
	for _, st := range a.Response.SendStatusSet {
		if e164(st.PhoneNumber) != e164(number) {
			continue
		}
		if st.Code == "Ok" {
			return nil
		}
		return Classify(st.Code, fmt.Errorf("%s: %s (request %s)", st.Code, n.redact.Excerpt(st.Message), a.Response.RequestID))
	}
	// Retried: the message may not have gone out.
	return fmt.Errorf("no status for the number (request %s)", a.Response.RequestID)
}

// e164 writes a mainland number without its country code the way Tencent
// answers it (+86…), so statuses match the configured numbers.
func e164(n string) string {
	if strings.HasPrefix(n, "+") {
		return n
	}
	if len(n) == 11 && n[0] == '1' {
		return "+86" + n
	}
	return "+" + n
}

// Per-number limits of Tencent Cloud SMS, and how long to wait after each.
var numberLimits = map[string]time.Duration{
	"LimitExceeded.PhoneNumberThirtySecondLimit": 30 * time.Second,
	"LimitExceeded.PhoneNumberOneHourLimit":      time.Minute,
}

// Classify says how the outbox treats Tencent's error code: the
// 30-second and hourly per-number limits are retried after a wait,
// request throttling and internal errors at the outbox's pace, anything
// else (daily limits, a template or signature not approved, a bad number,
// an exhausted package, authentication) is permanent.
func Classify(code string, err error) error {
	if d, ok := numberLimits[code]; ok {
		return &notify.RetryAfterError{Err: err, After: d}
	}
	switch {
	case strings.HasPrefix(code, "RequestLimitExceeded"), strings.HasPrefix(code, "InternalError"):
		return err
	default:
		return notify.Permanent(err)
	}
}
