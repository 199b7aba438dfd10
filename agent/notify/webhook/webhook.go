// Package webhook posts the Alertmanager webhook payload (version 4), so
// receivers written for Alertmanager work unchanged.
package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/internal/confkit"
)

func init() {
	notify.Register(notify.Integration{
		Kind: "webhook", Key: "webhook_configs", Order: 10,
		NewConfig: func() notify.Config { return &Config{} },
		New:       notify.Adapt(func(c Config, h *http.Client) (*Notifier, error) { return New(c, h), nil }),
	})
}

// Config is one webhook_configs entry.
type Config struct {
	// URL is the receiver's address; url_secret takes it from the
	// environment when it holds a token.
	URL       string            `yaml:"url" json:"url,omitempty"`
	URLSecret confkit.Secret    `yaml:"url_secret" json:"url_secret,omitzero"`
	Headers   map[string]string `yaml:"headers" json:"headers,omitempty"`
	// BearerToken is sent as Authorization: Bearer.
	BearerToken confkit.Secret `yaml:"bearer_token" json:"bearer_token,omitzero"`
	// MaxAlerts caps the alerts in one payload (0: all); the rest are
	// counted in truncatedAlerts.
	MaxAlerts int `yaml:"max_alerts" json:"max_alerts,omitempty"`
}

// Validate checks the entry.
func (c *Config) Validate() error {
	if (c.URL == "") == !c.URLSecret.IsSet() {
		return confkit.FieldErrorf("url", "set exactly one of url and url_secret")
	}
	if c.MaxAlerts < 0 {
		return confkit.FieldErrorf("max_alerts", "must not be negative")
	}
	return nil
}

// Notifier posts webhook payloads.
type Notifier struct {
	cfg    Config
	client *http.Client
}

var _ notify.Notifier = (*Notifier)(nil)

// New builds a notifier; client carries the timeout and TLS settings.
func New(cfg Config, client *http.Client) *Notifier { return &Notifier{cfg: cfg, client: client} }

// Payload is the Alertmanager webhook body, version 4.
type Payload struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []Alert           `json:"alerts"`
}

// Alert is one alert in the payload.
type Alert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// NewPayload builds the version 4 payload of a message.
func NewPayload(m *notify.Message, maxAlerts int) Payload {
	p := Payload{
		Version: "4", GroupKey: m.GroupKey, Status: m.Status(), Receiver: m.Receiver,
		GroupLabels: nonNil(m.GroupLabels), CommonLabels: m.CommonLabels(), CommonAnnotations: m.CommonAnnotations(),
		ExternalURL: m.ExternalURL, Alerts: []Alert{},
	}
	for _, a := range m.Alerts {
		if maxAlerts > 0 && len(p.Alerts) == maxAlerts {
			p.TruncatedAlerts++
			continue
		}
		wa := Alert{Status: a.Status(m.Created), Labels: nonNil(a.Labels), Annotations: nonNil(a.Annotations),
			StartsAt: a.StartsAt, EndsAt: a.EndsAt, GeneratorURL: a.GeneratorURL, Fingerprint: a.Fingerprint}
		if wa.Status == "firing" {
			// As Alertmanager sends it: a firing alert has no end yet.
			wa.EndsAt = time.Time{}
		}
		p.Alerts = append(p.Alerts, wa)
	}
	return p
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// Notify posts the payload; any 2xx is an acknowledgement.
func (n *Notifier) Notify(ctx context.Context, m *notify.Message) error {
	body, err := json.Marshal(NewPayload(m, n.cfg.MaxAlerts))
	if err != nil {
		return notify.Permanent(fmt.Errorf("webhook: %w", err))
	}
	h := http.Header{}
	for k, v := range n.cfg.Headers {
		h.Set(k, v)
	}
	if n.cfg.BearerToken.IsSet() {
		h.Set("Authorization", "Bearer "+n.cfg.BearerToken.Reveal())
	}
	url := n.cfg.URL
	if n.cfg.URLSecret.IsSet() {
		url = n.cfg.URLSecret.Reveal()
	}
	if _, err := notify.Post(ctx, n.client, url, "application/json", body, h); err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	return nil
}
