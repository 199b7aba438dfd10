// Package pagerduty opens and resolves PagerDuty incidents through the
// Events API v2, the way Alertmanager's pagerduty_configs do: one alert
// group is one PagerDuty alert, identified by a dedup_key derived from the
// group, so a retried or repeated notification updates the open alert
// instead of paging a second time, and the resolve event closes it.
//
// The routing key (the integration key of an Events API v2 integration)
// is the only credential; it travels in the JSON body and is kept out of
// every error. PagerDuty answers 202 for an accepted event, 400 for an
// invalid one (never retried), and 429 or 5xx when it wants the event again
// later.
package pagerduty

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/internal/confkit"
)

// DefaultURL is the Events API v2 endpoint.
const DefaultURL = "https://events.pagerduty.com/v2/enqueue"

const (
	// maxSummary is PagerDuty's limit on payload.summary.
	maxSummary = 1024
	// maxEventSize is PagerDuty's limit on an event (512 KB); past it the
	// custom details are dropped, as Alertmanager does, rather than have
	// the event rejected and the page lost.
	maxEventSize = 512000
	// maxLinks bounds the links of one event: a large group would
	// otherwise list every alert's source twice.
	maxLinks = 20
)

// DefaultSeverity takes the severity label the alerts share.
const DefaultSeverity = `{{ with .CommonLabels.severity }}{{ . }}{{ end }}`

// Severities PagerDuty accepts, most severe first.
var severities = []string{"critical", "error", "warning", "info"}

// severityAliases maps common spellings of severity labels onto
// PagerDuty's four levels.
var severityAliases = map[string]string{
	"critical": "critical", "crit": "critical", "fatal": "critical", "emergency": "critical", "page": "critical",
	"error": "error", "err": "error",
	"warning": "warning", "warn": "warning",
	"info": "info", "information": "info", "informational": "info", "notice": "info",
}

// instances renders alerts like Alertmanager's pagerduty.default.instances,
// with the check's state added.
func instances(list string) string {
	return `{{ range ` + list + ` }}Labels:
{{ range $k, $v := .Labels }} - {{ $k }} = {{ $v }}
{{ end }}Annotations:
{{ range $k, $v := .Annotations }} - {{ $k }} = {{ $v }}
{{ end }}{{ with .Check }}Check: {{ .Name }} ({{ .Type }}){{ if .Success }} passing now{{ else }}: {{ .Reason }}{{ with .Message }} — {{ . }}{{ end }}{{ end }}
{{ range .Diagnostics }} > {{ . }}
{{ end }}{{ end }}Source: {{ .GeneratorURL }}
{{ end }}`
}

// DefaultDetails are the custom details of a trigger event, as
// Alertmanager sends them.
func DefaultDetails() map[string]string {
	return map[string]string{
		"firing":       instances(".Firing"),
		"resolved":     instances(".Resolved"),
		"num_firing":   `{{ len .Firing }}`,
		"num_resolved": `{{ len .Resolved }}`,
	}
}

func init() {
	notify.Register(notify.Integration{
		Kind: "pagerduty", Key: "pagerduty_configs", Order: 50,
		NewConfig: func() notify.Config { return &Config{} },
		New:       notify.Adapt(New),
	})
}

// Config is one pagerduty_configs entry.
type Config struct {
	// URL is the Events API v2 endpoint (default DefaultURL; PagerDuty's
	// EU service region uses https://events.eu.pagerduty.com/v2/enqueue).
	URL string `yaml:"url" json:"url,omitempty"`
	// RoutingKey is the integration key of an Events API v2 integration;
	// RoutingKeyFile reads it from a file instead.
	RoutingKey     confkit.Secret `yaml:"routing_key" json:"routing_key,omitempty"`
	RoutingKeyFile string         `yaml:"routing_key_file" json:"routing_key_file,omitempty"`
	// Severity is a template whose result is mapped onto critical, error,
	// warning or info (see severityOf); default DefaultSeverity.
	Severity string `yaml:"severity" json:"severity,omitempty"`
	// Source is the affected system (a template); default the agent's
	// host name.
	Source string `yaml:"source" json:"source,omitempty"`
	// Component, Group and Class are optional payload fields (templates).
	Component string `yaml:"component" json:"component,omitempty"`
	Group     string `yaml:"group" json:"group,omitempty"`
	Class     string `yaml:"class" json:"class,omitempty"`
	// Title is the summary template (default notify.DefaultTitle), cut to
	// PagerDuty's 1024 characters.
	Title string `yaml:"title" json:"title,omitempty"`
	// Details are custom_details templates, merged over DefaultDetails; an
	// empty template removes a default key.
	Details map[string]string `yaml:"details" json:"details,omitempty"`
	// Client and ClientURL name and link the sender in PagerDuty's UI
	// (templates; default "vigil" and the message's external URL).
	Client    string `yaml:"client" json:"client,omitempty"`
	ClientURL string `yaml:"client_url" json:"client_url,omitempty"`
}

// templates lists the entry's template fields with their effective text;
// source is absent when it defaults to the host name.
func (c *Config) templates() map[string]string {
	t := map[string]string{
		"severity": or(c.Severity, DefaultSeverity), "component": c.Component, "group": c.Group, "class": c.Class,
		"client": or(c.Client, "vigil"), "client_url": or(c.ClientURL, "{{ .ExternalURL }}"),
	}
	if c.Source != "" {
		t["source"] = c.Source
	}
	for k, v := range c.details() {
		t["details."+k] = v
	}
	return t
}

// details merges the configured details over the defaults, dropping keys
// set to an empty template.
func (c *Config) details() map[string]string {
	d := DefaultDetails()
	for k, v := range c.Details {
		if v == "" {
			delete(d, k)
			continue
		}
		d[k] = v
	}
	return d
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Validate checks the entry.
func (c *Config) Validate() error {
	errs := []error{notify.CheckSecret("routing_key", c.RoutingKey, c.RoutingKeyFile, true)}
	if c.URL != "" {
		if err := notify.CheckURL(c.URL, "an http(s) URL such as "+DefaultURL); err != nil {
			errs = append(errs, confkit.FieldErrorf("url", "%w", err))
		}
	}
	for k := range c.Details {
		if strings.TrimSpace(k) == "" {
			errs = append(errs, confkit.FieldErrorf("details", "keys must not be empty"))
		}
	}
	// With the default title, so an error points at the right key.
	errs = append(errs, notify.CheckField("title", c.Title, "", ""))
	tm := c.templates()
	keys := make([]string, 0, len(tm))
	for k := range tm {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		errs = append(errs, notify.CheckField(k, "", tm[k], ""))
	}
	return errors.Join(errs...)
}

// Notifier sends events to one PagerDuty integration.
type Notifier struct {
	cfg    Config
	client *http.Client
	url    string
	key    string
	// redact keeps the routing key out of errors: PagerDuty's 400 answers
	// quote the offending fields, and a proxy may echo the body.
	redact *notify.Redactor
	// title renders the summary; fields the other templates by key
	// (severity, source, details.firing, ...).
	title  *notify.Template
	fields map[string]*notify.Template
	// source is the default source, the host name, when none is
	// configured.
	source string
}

var _ notify.Notifier = (*Notifier)(nil)

// New builds a notifier: it parses the templates and reads the routing key
// file, so a broken entry fails at load rather than at the first page.
// client carries the timeout and TLS settings.
func New(cfg Config, client *http.Client) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("pagerduty: %w", err)
	}
	if client == nil {
		client = http.DefaultClient
	}
	key, err := notify.ReadSecret("routing_key", cfg.RoutingKey, cfg.RoutingKeyFile)
	if err != nil {
		return nil, fmt.Errorf("pagerduty: %w", err)
	}
	n := &Notifier{cfg: cfg, client: client, url: or(cfg.URL, DefaultURL), key: key.Reveal(),
		redact: notify.NewRedactor(notify.MinHidden, key.Reveal()), fields: map[string]*notify.Template{}}
	if n.title, err = notify.ParseTemplate(cfg.Title, "", ""); err != nil {
		return nil, fmt.Errorf("pagerduty: %w", err)
	}
	for k, text := range cfg.templates() {
		// Every field sees the title, so {{ template "title" . }} works in
		// details too.
		t, err := notify.ParseField(k, cfg.Title, text, "")
		if err != nil {
			return nil, fmt.Errorf("pagerduty: %w", err)
		}
		n.fields[k] = t
	}
	if cfg.Source == "" {
		// PagerDuty wants "the unique location of the affected system,
		// preferably a hostname": the agent's is the best default there is.
		if n.source, err = os.Hostname(); err != nil || n.source == "" {
			n.source = "vigil"
		}
	}
	return n, nil
}

// Event is an Events API v2 alert event. Resolve events carry only the
// routing key, the dedup key and the action.
type Event struct {
	RoutingKey  string   `json:"routing_key"`
	EventAction string   `json:"event_action"`
	DedupKey    string   `json:"dedup_key"`
	Payload     *Payload `json:"payload,omitempty"`
	Client      string   `json:"client,omitempty"`
	ClientURL   string   `json:"client_url,omitempty"`
	Links       []Link   `json:"links,omitempty"`
}

// Payload describes the problem of a trigger event.
type Payload struct {
	Summary       string            `json:"summary"`
	Source        string            `json:"source"`
	Severity      string            `json:"severity"`
	Timestamp     string            `json:"timestamp,omitempty"`
	Component     string            `json:"component,omitempty"`
	Group         string            `json:"group,omitempty"`
	Class         string            `json:"class,omitempty"`
	CustomDetails map[string]string `json:"custom_details,omitempty"`
}

// Link is a link shown on the PagerDuty alert.
type Link struct {
	Href string `json:"href"`
	Text string `json:"text,omitempty"`
}

// event renders the event for a message: trigger while any alert of the
// group fires, resolve once all have resolved.
func (n *Notifier) event(m *notify.Message) (*Event, error) {
	// The same group always maps to the same PagerDuty alert: a retry or a
	// repeat updates it, the resolve closes it.
	ev := &Event{RoutingKey: n.key, DedupKey: m.DedupKey(), EventAction: "trigger"}
	if m.Status() == "resolved" {
		ev.EventAction = "resolve"
		return ev, nil
	}
	d := notify.NewData(m)
	var err error
	render := func(k string) string {
		if err != nil {
			return ""
		}
		var s string
		s, err = n.fields[k].Body(d)
		return s
	}
	summary, terr := n.title.Title(d)
	if terr != nil {
		return nil, terr
	}
	p := &Payload{
		Summary:   notify.Truncate(summary, maxSummary),
		Source:    n.source,
		Severity:  severityOf(render("severity"), d.Firing),
		Component: render("component"),
		Group:     render("group"),
		Class:     render("class"),
	}
	if _, ok := n.fields["source"]; ok {
		p.Source = render("source")
	}
	ev.Client, ev.ClientURL = render("client"), render("client_url")
	details := map[string]string{}
	for k := range n.fields {
		if name, ok := strings.CutPrefix(k, "details."); ok {
			details[name] = render(k)
		}
	}
	if err != nil {
		return nil, err
	}
	if len(details) > 0 {
		p.CustomDetails = details
	}
	if p.Summary == "" {
		// PagerDuty requires a summary; an empty one would be rejected
		// and the page lost.
		p.Summary = "vigil alert group " + d.Status
	}
	if p.Source == "" {
		p.Source = or(n.source, "vigil")
	}
	if ts := firstStart(d.Firing); !ts.IsZero() {
		p.Timestamp = ts.UTC().Format(time.RFC3339)
	}
	ev.Payload, ev.Links = p, links(d.Alerts)
	return ev, nil
}

// severityOf maps a rendered severity onto PagerDuty's levels. Known
// spellings (crit, warn, ...) are mapped case-insensitively. An empty
// result — the default template when the firing alerts carry different
// severities — takes the most severe level among the firing alerts'
// severity labels, so a group holding a critical alert pages as critical.
// Anything else, or no severity at all, is "error", Alertmanager's default:
// PagerDuty rejects unknown severities, and a page must not be lost over a
// label spelling.
func severityOf(rendered string, firing []notify.TemplateAlert) string {
	s := strings.ToLower(strings.TrimSpace(rendered))
	if v, ok := severityAliases[s]; ok {
		return v
	}
	if s != "" {
		return "error"
	}
	best := len(severities)
	for _, a := range firing {
		v, ok := severityAliases[strings.ToLower(strings.TrimSpace(a.Labels["severity"]))]
		if !ok {
			continue
		}
		for i, level := range severities {
			if level == v && i < best {
				best = i
			}
		}
	}
	if best < len(severities) {
		return severities[best]
	}
	return "error"
}

// firstStart is when the earliest firing alert started: when the problem
// was detected, which is what payload.timestamp means.
func firstStart(as []notify.TemplateAlert) time.Time {
	var t time.Time
	for _, a := range as {
		if !a.StartsAt.IsZero() && (t.IsZero() || a.StartsAt.Before(t)) {
			t = a.StartsAt
		}
	}
	return t
}

// links lists the runbooks and sources of the alerts, firing first, each
// address once.
func links(as []notify.TemplateAlert) []Link {
	var out []Link
	seen := map[string]bool{}
	add := func(href, text, name string) {
		if href == "" || seen[href] || len(out) == maxLinks {
			return
		}
		seen[href] = true
		if name != "" {
			text += ": " + name
		}
		out = append(out, Link{Href: href, Text: text})
	}
	for _, a := range as {
		add(a.Annotations["runbook_url"], "Runbook", a.Labels["alertname"])
		add(a.GeneratorURL, "Source", a.Labels["alertname"])
	}
	return out
}

// encode renders the event as JSON, dropping the custom details when the
// event is over PagerDuty's size limit.
func encode(ev *Event) ([]byte, error) {
	// Links and details hold URLs with &: EncodeJSON keeps them readable.
	b, err := notify.EncodeJSON(ev)
	if err != nil || len(b) <= maxEventSize || ev.Payload == nil {
		return b, err
	}
	ev.Payload.CustomDetails = map[string]string{
		"error": fmt.Sprintf("custom details removed: the event exceeded PagerDuty's limit of %d bytes", maxEventSize),
	}
	if b, err = notify.EncodeJSON(ev); err != nil {
		return nil, err
	}
	if len(b) > maxEventSize {
		return nil, fmt.Errorf("event is %d bytes, over PagerDuty's limit of %d", len(b), maxEventSize)
	}
	return b, nil
}

// answer is PagerDuty's reply: {"status":"success","message":"Event
// processed","dedup_key":"…"}.
type answer struct {
	Status   string `json:"status"`
	Message  string `json:"message"`
	DedupKey string `json:"dedup_key"`
}

// Notify sends the event; PagerDuty acknowledges with 202.
func (n *Notifier) Notify(ctx context.Context, m *notify.Message) error {
	return n.redact.Scrub(n.notify(ctx, m))
}

func (n *Notifier) notify(ctx context.Context, m *notify.Message) error {
	ev, err := n.event(m)
	if err != nil {
		return fmt.Errorf("pagerduty: %w", err)
	}
	body, err := encode(ev)
	if err != nil {
		return notify.Permanent(fmt.Errorf("pagerduty: %w", err))
	}
	// notify.Post retries 429 and 5xx (honouring Retry-After) and makes
	// 400, PagerDuty's "invalid event", permanent.
	data, err := notify.Post(ctx, n.client, n.url, "application/json", body, nil)
	if err != nil {
		return fmt.Errorf("pagerduty: %w", err)
	}
	// Any 2xx is an acceptance; a JSON answer that says otherwise is not
	// (a proxy or an incompatible endpoint). Non-JSON 2xx answers are
	// accepted: PagerDuty-compatible receivers answer in their own way.
	var a answer
	if json.Unmarshal(data, &a) == nil && a.Status != "" && !strings.EqualFold(a.Status, "success") {
		return notify.Permanent(fmt.Errorf("pagerduty: event not accepted: %s: %s",
			notify.Truncate(a.Status, 100), notify.Truncate(a.Message, 200)))
	}
	return nil
}
