// Package aliyunvoice wakes on-call with a phone call through Aliyun's
// voice service (阿里云语音服务, dyvmsapi, API version 2017-05-25,
// SingleCallByTts): a text-to-speech template approved in Aliyun's console,
// read out with parameters rendered from the alert group.
//
// Each called number is its own call, placed one after the other; a retry
// calls only the numbers that did not get theirs. Signing, credentials,
// per-number limits and the classification of Aliyun's answer Code are the
// SMS integration's (see agent/notify/aliyunsms). A resolved notification
// places no call unless call_resolved is set: nobody should be woken to
// hear that the problem went away.
package aliyunvoice

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/agent/notify/internal/aliyun"
	"github.com/vigil-project/vigil/agent/notify/internal/phonepage"
	"github.com/vigil-project/vigil/internal/confkit"
)

// API is SingleCallByTts of dyvmsapi.
var API = aliyun.API{Name: "aliyun_voice", Action: "SingleCallByTts", Version: "2017-05-25", DefaultEndpoint: "https://dyvmsapi.aliyuncs.com"}

// maxParam bounds one TTS template variable, as for SMS templates.
const maxParam = 35

func init() {
	notify.Register(notify.Integration{
		Kind: "aliyun_voice", Key: "aliyun_voice_configs", Order: 90,
		NewConfig: func() notify.Config { return &Config{Limits: phonepage.DefaultLimits()} },
		New:       notify.Adapt(New),
	})
}

// Config is one aliyun_voice_configs entry.
type Config struct {
	// access_key_id, access_key_secret (or their _file) and endpoint.
	aliyun.Credentials `yaml:",inline"`
	// CalledNumbers are the numbers to call, one call each.
	CalledNumbers []string `yaml:"called_numbers" json:"called_numbers"`
	// CalledShowNumber is the caller number shown (a number bought in
	// Aliyun's console); empty uses the public number pool.
	CalledShowNumber string `yaml:"called_show_number" json:"called_show_number,omitempty"`
	// TtsCode is the approved text-to-speech template (TTS_…).
	TtsCode string `yaml:"tts_code" json:"tts_code"`
	// TtsParam maps the template's variables to Go templates; when unset,
	// vigil fills alert, status, count and check.
	TtsParam map[string]string `yaml:"tts_param" json:"tts_param,omitempty"`
	// PlayTimes (1–3), Volume (0–100) and Speed (-500–500) tune the call;
	// 0 leaves Aliyun's default.
	PlayTimes int `yaml:"play_times" json:"play_times,omitempty"`
	Volume    int `yaml:"volume" json:"volume,omitempty"`
	Speed     int `yaml:"speed" json:"speed,omitempty"`
	// CallResolved places calls for resolved notifications too.
	CallResolved bool `yaml:"call_resolved" json:"call_resolved,omitempty"`
	// phone_min_interval and phone_max_per_hour.
	phonepage.Limits `yaml:",inline"`
}

// Validate checks the entry.
func (c *Config) Validate() error {
	errs := []error{c.Credentials.Validate(), phonepage.CheckNumbers("called_numbers", c.CalledNumbers)}
	if c.CalledShowNumber != "" {
		if err := phonepage.CheckNumbers("called_show_number", []string{c.CalledShowNumber}); err != nil {
			errs = append(errs, confkit.FieldErrorf("called_show_number", "%q is not a phone number", c.CalledShowNumber))
		}
	}
	if strings.TrimSpace(c.TtsCode) == "" {
		errs = append(errs, confkit.FieldErrorf("tts_code", "the approved text-to-speech template's code (TTS_…) is required"))
	}
	if c.PlayTimes < 0 || c.PlayTimes > 3 {
		errs = append(errs, confkit.FieldErrorf("play_times", "must be 1 to 3 (0: Aliyun's default)"))
	}
	if c.Volume < 0 || c.Volume > 100 {
		errs = append(errs, confkit.FieldErrorf("volume", "must be 0 to 100"))
	}
	if c.Speed < -500 || c.Speed > 500 {
		errs = append(errs, confkit.FieldErrorf("speed", "must be -500 to 500"))
	}
	return errors.Join(append(errs, phonepage.CheckParams("tts_param", c.TtsParam), c.Limits.Validate())...)
}

// Notifier calls the numbers of one entry.
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
		return nil, fmt.Errorf("aliyun_voice: %w", err)
	}
	c, err := aliyun.NewClient(API, cfg.Credentials, client)
	if err != nil {
		return nil, fmt.Errorf("aliyun_voice: %w", err)
	}
	p, err := phonepage.ParseParams("tts_param", phonepage.SortedKeys(cfg.TtsParam), cfg.TtsParam, maxParam)
	if err != nil {
		return nil, fmt.Errorf("aliyun_voice: %w", err)
	}
	return &Notifier{cfg: cfg, client: c, params: p, sender: phonepage.NewSender(cfg.Limits, time.Now)}, nil
}

// params renders the call's parameters for a message, less the number.
func (n *Notifier) callParams(m *notify.Message) (map[string]string, error) {
	vals, err := n.params.Render(m)
	if err != nil {
		return nil, err
	}
	obj := make(map[string]string, len(vals))
	for i, k := range n.params.Names {
		obj[k] = vals[i]
	}
	tts, err := notify.EncodeJSON(obj)
	if err != nil {
		return nil, notify.Permanent(err)
	}
	p := map[string]string{"TtsCode": n.cfg.TtsCode, "TtsParam": string(tts)}
	if n.cfg.CalledShowNumber != "" {
		p["CalledShowNumber"] = n.cfg.CalledShowNumber
	}
	for k, v := range map[string]int{"PlayTimes": n.cfg.PlayTimes, "Volume": n.cfg.Volume, "Speed": n.cfg.Speed} {
		if v != 0 {
			p[k] = strconv.Itoa(v)
		}
	}
	return p, nil
}

// Notify calls every number of the entry that has not had this message.
func (n *Notifier) Notify(ctx context.Context, m *notify.Message) error {
	if m.Status() == "resolved" && !n.cfg.CallResolved {
		return nil
	}
	params, err := n.callParams(m)
	if err != nil {
		return n.fail(err)
	}
	r := n.sender.Begin(m, n.cfg.CalledNumbers)
	for _, num := range r.Due {
		if ctx.Err() != nil {
			break
		}
		call := make(map[string]string, len(params)+1)
		for k, v := range params {
			call[k] = v
		}
		call["CalledNumber"] = num
		_, err := n.client.Call(ctx, call)
		r.Result(num, err)
	}
	return n.fail(r.Outcome())
}

func (n *Notifier) fail(err error) error {
	if err == nil {
		return nil
	}
	return n.client.Redact.Scrub(fmt.Errorf("aliyun_voice: %w", err))
}
