package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/agent/notify/alertmanager"
	"github.com/vigil-project/vigil/agent/notify/route"
	"github.com/vigil-project/vigil/internal/confkit"

	// The receiver integrations are part of the config format: whoever
	// parses a config gets all of them, as when Receiver named each.
	_ "github.com/vigil-project/vigil/agent/notify/all"
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
	// TimeIntervals are named maintenance windows (Alertmanager's format)
	// that routes mute with (mute_time_intervals) or page only within
	// (active_time_intervals).
	TimeIntervals []route.TimeIntervalConfig `yaml:"time_intervals" json:"time_intervals,omitempty"`
	Receivers     []Receiver                 `yaml:"receivers" json:"receivers,omitempty"`
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

// Receiver is a named set of integrations that a route pages. Its
// integrations are the `<kind>_configs` lists of the kinds registered with
// agent/notify; each entry is decoded into the kind's own config.
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

	// Configs holds each kind's list ("webhook" → the webhook_configs
	// entries), every entry a pointer from the kind's NewConfig. It is
	// decoded through the registry and rendered under the kinds' keys.
	Configs map[string][]notify.Config `yaml:"-" json:"-"`
}

// WantsResolved reports the effective send_resolved.
func (r *Receiver) WantsResolved() bool { return r.SendResolved == nil || *r.SendResolved }

// Integrations lists the receiver's integrations as kind, index and config,
// kinds in the registry's order (notify.Integrations), entries in file order.
func (r *Receiver) Integrations() []Integration {
	var out []Integration
	for _, kind := range notify.Integrations() {
		for i, c := range r.Configs[kind.Kind] {
			out = append(out, Integration{Kind: kind.Kind, Key: kind.Key, Index: i, Config: c})
		}
	}
	return out
}

// Integration is one configured integration of a receiver.
type Integration struct {
	Kind   string
	Key    string // the YAML list it came from
	Index  int
	Config notify.Config
}

// Target names the integration as a delivery target: "oncall/webhook[0]".
func (i Integration) Target(receiver string) string {
	return fmt.Sprintf("%s/%s[%d]", receiver, i.Kind, i.Index)
}

// extraKeys claims the registered kinds' keys: each list is decoded
// entry by entry into the kind's config, defaults first, strictly.
func (r *Receiver) extraKeys(d *decoder, path string) extraKeys {
	kinds := notify.Integrations()
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = k.Key
	}
	return extraKeys{Names: names, Claim: func(k, v *yaml.Node) bool {
		kind, ok := notify.LookupKey(k.Value)
		if !ok {
			return false
		}
		if r.Configs == nil {
			r.Configs = map[string][]notify.Config{}
		}
		r.Configs[kind.Kind] = d.decodeIntegrations(v, kind, joinPath(path, k.Value))
		return true
	}}
}

// decodeIntegrations decodes one `<kind>_configs` list, as a slice of the
// kind's config struct would be decoded.
func (d *decoder) decodeIntegrations(n *yaml.Node, kind notify.Integration, path string) []notify.Config {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Tag == "!!null" {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, path, "expected a list, got %s", kindName(n))
		return nil
	}
	out := make([]notify.Config, len(n.Content))
	for i, item := range n.Content {
		c := kind.NewConfig()
		d.decode(item, reflect.ValueOf(c).Elem(), fmt.Sprintf("%s[%d]", path, i))
		out[i] = c
	}
	return out
}

// receiverFields is Receiver without its methods, for rendering its own
// fields before the integration lists.
type receiverFields Receiver

// MarshalJSON renders the receiver as it is written: its fields, then each
// registered kind's non-empty list under the kind's key.
func (r Receiver) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(receiverFields(r))
	if err != nil {
		return nil, err
	}
	b = b[:len(b)-1] // the closing brace; "name" is always there before it
	for _, kind := range notify.Integrations() {
		cs := r.Configs[kind.Kind]
		if len(cs) == 0 {
			continue
		}
		key, _ := json.Marshal(kind.Key)
		list, err := json.Marshal(cs)
		if err != nil {
			return nil, fmt.Errorf("receiver %q: %s: %w", r.Name, kind.Key, err)
		}
		b = append(append(append(append(b, ','), key...), ':'), list...)
	}
	return append(b, '}'), nil
}

// MarshalYAML renders the receiver's fields, then every registered kind's
// list under its key (empty ones too, as yaml.v3 renders an empty slice).
func (r Receiver) MarshalYAML() (any, error) {
	var n yaml.Node
	if err := n.Encode(receiverFields(r)); err != nil {
		return nil, err
	}
	for _, kind := range notify.Integrations() {
		var list yaml.Node
		if err := list.Encode(r.Configs[kind.Kind]); err != nil {
			return nil, fmt.Errorf("receiver %q: %s: %w", r.Name, kind.Key, err)
		}
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: kind.Key}, &list)
	}
	return &n, nil
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
		for _, e := range confkit.FlattenErrors(err) {
			var fe *confkit.FieldError
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
	intervals := []string{}
	for i := range n.TimeIntervals {
		ti := &n.TimeIntervals[i]
		base := fmt.Sprintf("time_intervals.%d", i)
		if slices.Contains(intervals, ti.Name) {
			d.errorf(at(base+".name"), show(base+".name"), "duplicate time interval name %q", ti.Name)
		} else {
			intervals = append(intervals, ti.Name)
		}
		report(base, "", ti.Validate(time.Now()))
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
		report("route", "", n.Route.Validate(names, intervals))
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
