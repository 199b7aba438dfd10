// Package alertmanager pushes alerts to an Alertmanager through its v2 API
// (POST /api/v2/alerts), as Prometheus does: firing alerts are re-sent
// while they fire with endsAt a few intervals ahead, resolved alerts are
// sent with their real endsAt. Alertmanager deduplicates by label set, so
// a retried or repeated push never creates a second alert; an HA cluster
// needs every peer configured, each delivered independently.
package alertmanager

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/internal/confkit"
)

// Config is one Alertmanager peer.
type Config struct {
	// URL is the peer's base address, e.g. http://alertmanager:9093 (with a
	// path prefix when Alertmanager runs under one).
	URL         string         `yaml:"url" json:"url"`
	BasicAuth   *BasicAuth     `yaml:"basic_auth" json:"basic_auth,omitempty"`
	BearerToken confkit.Secret `yaml:"bearer_token" json:"bearer_token,omitzero"`
	// SendDrills lets alerts labelled drill="true" reach this peer. Off by
	// default: a drill must not page the real on-call through a shared
	// Alertmanager unless its routing was prepared for drills.
	SendDrills bool `yaml:"send_drills" json:"send_drills"`
}

// BasicAuth is HTTP basic auth for a peer.
type BasicAuth struct {
	Username     string         `yaml:"username" json:"username"`
	Password     confkit.Secret `yaml:"password" json:"password,omitzero"`
	PasswordFile string         `yaml:"password_file" json:"password_file,omitempty"`
}

// Validate checks the entry.
func (c *Config) Validate() error {
	if err := notify.CheckURL(c.URL, "an http(s) URL like http://alertmanager:9093"); err != nil {
		return confkit.FieldErrorf("url", "%w", err)
	}
	if b := c.BasicAuth; b != nil {
		if b.Username == "" {
			return confkit.FieldErrorf("basic_auth.username", "is required")
		}
		if b.Password.IsSet() == (b.PasswordFile != "") {
			return confkit.FieldErrorf("basic_auth.password", "set exactly one of password and password_file")
		}
	}
	if c.BasicAuth != nil && c.BearerToken.IsSet() {
		return confkit.FieldErrorf("bearer_token", "set at most one of basic_auth and bearer_token")
	}
	return nil
}

// Notifier pushes to one peer.
type Notifier struct {
	cfg      Config
	client   *http.Client
	endpoint string
	password string
}

var _ notify.Notifier = (*Notifier)(nil)

// New builds a notifier for one peer.
func New(cfg Config, client *http.Client) (*Notifier, error) {
	n := &Notifier{cfg: cfg, client: client, endpoint: strings.TrimSuffix(cfg.URL, "/") + "/api/v2/alerts"}
	if b := cfg.BasicAuth; b != nil {
		n.password = b.Password.Reveal()
		if b.PasswordFile != "" {
			s, err := confkit.ReadSecretFile(b.PasswordFile)
			if err != nil {
				return nil, fmt.Errorf("alertmanager: %w", err)
			}
			n.password = s.Reveal()
		}
	}
	return n, nil
}

// PostableAlert is one alert of the v2 API.
type PostableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt,omitzero"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// Payload converts a message's alerts.
func Payload(m *notify.Message) []PostableAlert {
	out := make([]PostableAlert, 0, len(m.Alerts))
	for _, a := range m.Alerts {
		out = append(out, PostableAlert{Labels: a.Labels, Annotations: a.Annotations, StartsAt: a.StartsAt, EndsAt: a.EndsAt, GeneratorURL: a.GeneratorURL})
	}
	return out
}

// Notify pushes the message's alerts; Alertmanager answers 200 when it
// accepted them.
func (n *Notifier) Notify(ctx context.Context, m *notify.Message) error {
	body, err := json.Marshal(Payload(m))
	if err != nil {
		return notify.Permanent(fmt.Errorf("alertmanager: %w", err))
	}
	h := http.Header{}
	switch {
	case n.cfg.BasicAuth != nil:
		req := &http.Request{Header: http.Header{}}
		req.SetBasicAuth(n.cfg.BasicAuth.Username, n.password)
		h.Set("Authorization", req.Header.Get("Authorization"))
	case n.cfg.BearerToken.IsSet():
		h.Set("Authorization", "Bearer "+n.cfg.BearerToken.Reveal())
	}
	if _, err := notify.Post(ctx, n.client, n.endpoint, "application/json", body, h); err != nil {
		return fmt.Errorf("alertmanager %s: %w", redactUserinfo(n.cfg.URL), err)
	}
	return nil
}

func redactUserinfo(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(bad url)"
	}
	return u.Redacted()
}
