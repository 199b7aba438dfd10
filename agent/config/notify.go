package config

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/vigil-project/vigil/agent/notify/alertmanager"
	"github.com/vigil-project/vigil/agent/notify/dingtalk"
	"github.com/vigil-project/vigil/agent/notify/email"
	"github.com/vigil-project/vigil/agent/notify/feishu"
	"github.com/vigil-project/vigil/agent/notify/pagerduty"
	"github.com/vigil-project/vigil/agent/notify/route"
	"github.com/vigil-project/vigil/agent/notify/slack"
	"github.com/vigil-project/vigil/agent/notify/webhook"
	"github.com/vigil-project/vigil/agent/notify/wecom"
	"github.com/vigil-project/vigil/probes"
)

// Notify is the paging section: Alertmanager peers that get every alert,
// and — for deployments without an Alertmanager — receivers with a route
// tree, inhibit rules and the outbox's delivery settings.
type Notify struct {
	// ExternalURL is how people reach this agent (links in pages,
	// generatorURL); default http://<host name>:<port of --web.listen-address>.
	ExternalURL   string                `yaml:"external_url" json:"external_url,omitempty"`
	Alertmanagers []alertmanager.Config `yaml:"alertmanagers" json:"alertmanagers,omitempty"`
	Route         *route.Config         `yaml:"route" json:"route,omitempty"`
	InhibitRules  []route.InhibitConfig `yaml:"inhibit_rules" json:"inhibit_rules,omitempty"`
	Receivers     []Receiver            `yaml:"receivers" json:"receivers,omitempty"`
	// DrillReceiver receives alerts labelled drill="true" instead of the
	// route tree; when unset, drill alerts are not sent anywhere.
	DrillReceiver string `yaml:"drill_receiver" json:"drill_receiver,omitempty"`
	// Timeout of one delivery attempt.
	Timeout model.Duration `yaml:"timeout" json:"timeout"`
	// MaxAge: a notification still undelivered after this long is
	// dead-lettered (vigil_notify_dead_letter_total).
	MaxAge model.Duration `yaml:"max_age" json:"max_age"`
	// MinBackoff and MaxBackoff bound the retry delay.
	MinBackoff model.Duration `yaml:"min_backoff" json:"min_backoff"`
	MaxBackoff model.Duration `yaml:"max_backoff" json:"max_backoff"`
}

// Receiver is a named set of integrations that a route pages.
type Receiver struct {
	Name string `yaml:"name" json:"name"`
	// SendResolved: send a notification when the alerts resolve (default true).
	SendResolved *bool `yaml:"send_resolved" json:"send_resolved,omitempty"`
	// Concurrency bounds parallel deliveries per integration (default 1).
	Concurrency int `yaml:"concurrency" json:"concurrency,omitempty"`
	// RateLimit is deliveries per second per integration (0: unlimited),
	// with RateBurst.
	RateLimit float64 `yaml:"rate_limit" json:"rate_limit,omitempty"`
	RateBurst int     `yaml:"rate_burst" json:"rate_burst,omitempty"`

	WebhookConfigs   []webhook.Config   `yaml:"webhook_configs" json:"webhook_configs,omitempty"`
	DingtalkConfigs  []dingtalk.Config  `yaml:"dingtalk_configs" json:"dingtalk_configs,omitempty"`
	WecomConfigs     []wecom.Config     `yaml:"wecom_configs" json:"wecom_configs,omitempty"`
	FeishuConfigs    []feishu.Config    `yaml:"feishu_configs" json:"feishu_configs,omitempty"`
	PagerdutyConfigs []pagerduty.Config `yaml:"pagerduty_configs" json:"pagerduty_configs,omitempty"`
	SlackConfigs     []slack.Config     `yaml:"slack_configs" json:"slack_configs,omitempty"`
	EmailConfigs     []email.Config     `yaml:"email_configs" json:"email_configs,omitempty"`
}

// WantsResolved reports the effective send_resolved.
func (r *Receiver) WantsResolved() bool { return r.SendResolved == nil || *r.SendResolved }

// Integrations lists the receiver's integrations as kind, index and config
// (with Validate), in a fixed order.
func (r *Receiver) Integrations() []Integration {
	var out []Integration
	for i := range r.WebhookConfigs {
		out = append(out, Integration{Kind: "webhook", Key: "webhook_configs", Index: i, Config: &r.WebhookConfigs[i]})
	}
	for i := range r.DingtalkConfigs {
		out = append(out, Integration{Kind: "dingtalk", Key: "dingtalk_configs", Index: i, Config: &r.DingtalkConfigs[i]})
	}
	for i := range r.WecomConfigs {
		out = append(out, Integration{Kind: "wecom", Key: "wecom_configs", Index: i, Config: &r.WecomConfigs[i]})
	}
	for i := range r.FeishuConfigs {
		out = append(out, Integration{Kind: "feishu", Key: "feishu_configs", Index: i, Config: &r.FeishuConfigs[i]})
	}
	for i := range r.PagerdutyConfigs {
		out = append(out, Integration{Kind: "pagerduty", Key: "pagerduty_configs", Index: i, Config: &r.PagerdutyConfigs[i]})
	}
	for i := range r.SlackConfigs {
		out = append(out, Integration{Kind: "slack", Key: "slack_configs", Index: i, Config: &r.SlackConfigs[i]})
	}
	for i := range r.EmailConfigs {
		out = append(out, Integration{Kind: "email", Key: "email_configs", Index: i, Config: &r.EmailConfigs[i]})
	}
	return out
}

// Integration is one configured integration of a receiver.
type Integration struct {
	Kind   string
	Key    string // the YAML list it came from
	Index  int
	Config interface{ Validate() error }
}

// Target names the integration as a delivery target: "oncall/webhook[0]".
func (i Integration) Target(receiver string) string {
	return fmt.Sprintf("%s/%s[%d]", receiver, i.Kind, i.Index)
}

var indexRE = regexp.MustCompile(`\.(\d+)\b`)

func defaultNotify() Notify {
	return Notify{
		Timeout:    model.Duration(10e9),
		MaxAge:     model.Duration(24 * 3600e9),
		MinBackoff: model.Duration(1e9),
		MaxBackoff: model.Duration(300e9),
	}
}

func (d *decoder) validateNotify(root *yaml.Node, n *Notify) {
	nn := lookupValue(root, "notify")
	if nn == nil {
		return
	}
	at := func(path string) *yaml.Node {
		if k := lookupPath(nn, path); k != nil {
			return k
		}
		return nn
	}
	// Keys are looked up by dotted path; messages show list indexes as
	// checks[0] does.
	show := func(path string) string { return "notify." + indexRE.ReplaceAllString(path, "[$1]") }
	report := func(base, path string, err error) {
		for _, e := range probes.FlattenErrors(err) {
			var fe *probes.FieldError
			if errors.As(e, &fe) {
				p := base
				if p != "" {
					p += "."
				}
				d.errorf(at(p+fe.Field), show(p+fe.Field), "%s", fe.Err)
				continue
			}
			d.errorf(at(base), show(base), "%s", e)
		}
	}
	if n.ExternalURL != "" {
		if u, err := url.Parse(n.ExternalURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			d.errorf(at("external_url"), "notify.external_url", "must be an http(s) URL")
		}
	}
	for i := range n.Alertmanagers {
		report(fmt.Sprintf("alertmanagers.%d", i), "", n.Alertmanagers[i].Validate())
	}
	names := []string{}
	seen := map[string]bool{}
	for i := range n.Receivers {
		r := &n.Receivers[i]
		base := fmt.Sprintf("receivers.%d", i)
		switch {
		case r.Name == "":
			d.errorf(at(base), show(base), "missing required field \"name\"")
		case seen[r.Name]:
			d.errorf(at(base+".name"), show(base+".name"), "duplicate receiver name %q", r.Name)
		case strings.ContainsAny(r.Name, "/[]"):
			d.errorf(at(base+".name"), show(base+".name"), "receiver names cannot contain '/', '[' or ']'")
		}
		seen[r.Name] = true
		names = append(names, r.Name)
		if r.Concurrency < 0 || r.RateLimit < 0 || r.RateBurst < 0 {
			d.errorf(at(base), show(base), "concurrency, rate_limit and rate_burst must not be negative")
		}
		integrations := r.Integrations()
		if len(integrations) == 0 {
			d.errorf(at(base), show(base), "receiver %q has no integrations (webhook_configs, pagerduty_configs, ...)", r.Name)
		}
		for _, in := range integrations {
			report(fmt.Sprintf("%s.%s.%d", base, in.Key, in.Index), "", in.Config.Validate())
		}
	}
	if n.Route == nil {
		if len(n.Receivers) > 0 {
			d.errorf(nn, "notify.route", "receivers are configured but no route says which alerts go to them")
		}
	} else {
		report("route", "", n.Route.Validate(names))
	}
	for i := range n.InhibitRules {
		report(fmt.Sprintf("inhibit_rules.%d", i), "", n.InhibitRules[i].Validate())
	}
	if n.DrillReceiver != "" && !seen[n.DrillReceiver] {
		d.errorf(at("drill_receiver"), "notify.drill_receiver", "unknown receiver %q", n.DrillReceiver)
	}
	for _, f := range []struct {
		key string
		v   model.Duration
	}{{"timeout", n.Timeout}, {"max_age", n.MaxAge}, {"min_backoff", n.MinBackoff}, {"max_backoff", n.MaxBackoff}} {
		if f.v <= 0 {
			d.errorf(at(f.key), "notify."+f.key, "must be greater than 0")
		}
	}
	if n.MinBackoff > n.MaxBackoff {
		d.errorf(at("min_backoff"), "notify.min_backoff", "must not exceed max_backoff")
	}
}
