package notify

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"text/template"
	"time"

	amtemplate "github.com/prometheus/alertmanager/template"

	"github.com/vigil-project/vigil/internal/confkit"
)

// Data is what message templates see: Alertmanager's template data
// (its template package's Data, so .Receiver, .Status, .GroupLabels,
// .CommonLabels, .CommonAnnotations, .ExternalURL and the label sets'
// SortedPairs, Names, Values, Remove and String are Alertmanager's own),
// so templates written for Alertmanager work unchanged. vigil adds .Firing,
// .Resolved, .Drill and, on each alert, .Check.
type Data struct {
	amtemplate.Data
	// Alerts shadows Data.Alerts: the same alerts, each with its check.
	Alerts   Alerts
	Firing   Alerts
	Resolved Alerts
	// Drill is true when the alerts come from an incident drill.
	Drill bool
}

// KV is a label or annotation set in template data (Alertmanager's).
type KV = amtemplate.KV

// Alerts is a list of alerts in template data.
type Alerts []TemplateAlert

// Firing are the alerts still firing.
func (as Alerts) Firing() Alerts { return as.with("firing") }

// Resolved are the alerts that resolved.
func (as Alerts) Resolved() Alerts { return as.with("resolved") }

func (as Alerts) with(status string) Alerts {
	out := Alerts{}
	for _, a := range as {
		if a.Status == status {
			out = append(out, a)
		}
	}
	return out
}

// TemplateAlert is one alert in template data: Alertmanager's, plus the
// failing check.
type TemplateAlert struct {
	amtemplate.Alert
	Check *CheckInfo
}

// NewData builds template data for a message.
func NewData(m *Message) *Data {
	d := &Data{Data: amtemplate.Data{
		// Alertmanager quotes the receiver name for use in a regular
		// expression (silence links); so does vigil.
		Receiver: regexp.QuoteMeta(m.Receiver), Status: m.Status(), GroupLabels: KV(nonNil(m.GroupLabels)),
		CommonLabels: KV(m.CommonLabels()), CommonAnnotations: KV(m.CommonAnnotations()), RouteLabels: KV{}, ExternalURL: m.ExternalURL,
	}}
	for _, a := range m.Alerts {
		ta := TemplateAlert{Alert: amtemplate.Alert{Status: a.Status(m.Created), Labels: KV(nonNil(a.Labels)), Annotations: KV(nonNil(a.Annotations)),
			StartsAt: a.StartsAt, EndsAt: a.EndsAt, GeneratorURL: a.GeneratorURL, Fingerprint: a.Fingerprint}, Check: a.Check}
		if ta.Status == "resolved" {
			d.Resolved = append(d.Resolved, ta)
		} else {
			ta.EndsAt = time.Time{}
			d.Firing = append(d.Firing, ta)
		}
		if a.Labels["drill"] == "true" {
			d.Drill = true
		}
	}
	// Firing first, so a long message shows what needs attention.
	d.Alerts = append(append(Alerts{}, d.Firing...), d.Resolved...)
	for _, a := range d.Alerts {
		d.Data.Alerts = append(d.Data.Alerts, a.Alert)
	}
	return d
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// Funcs are available in every template: Alertmanager's own function map
// (toUpper, toLower, title, trimSpace, join, match, reReplaceAll, safeHtml,
// stringSlice, date, tz, since, humanizeDuration, toJson, dict, …) and
// vigil's time, truncate and labelList.
var Funcs = func() template.FuncMap {
	fm := template.FuncMap{}
	for k, v := range amtemplate.DefaultFuncs {
		fm[k] = v
	}
	fm["time"] = func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }
	fm["truncate"] = func(n int, s string) string { return Truncate(s, n) }
	// labelList renders a label set as k=v pairs in name order.
	fm["labelList"] = func(m map[string]string) string {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + "=" + m[k]
		}
		return strings.Join(parts, ", ")
	}
	return fm
}()

// Default templates. Title is one line; Markdown suits DingTalk, WeCom,
// Feishu and e-mail; Slack uses its own link syntax.
const (
	DefaultTitle = `{{ if .Drill }}[DRILL] {{ end }}[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ len .Firing }}{{ end }}] {{ with .CommonLabels.alertname }}{{ . }}{{ else }}{{ len .Alerts }} alerts{{ end }}{{ with .CommonLabels.check }} · {{ . }}{{ end }}`

	DefaultMarkdown = `### {{ template "title" . }}
{{ range .Alerts }}
**{{ .Labels.alertname }}**{{ with .Labels.severity }} · {{ . }}{{ end }} · {{ .Status }}
{{ with .Annotations.summary }}
{{ . }}
{{ end }}{{ with .Annotations.description }}
{{ . }}
{{ end }}{{ with .Check }}
check **{{ .Name }}** ({{ .Type }}){{ if .Success }} passing now{{ else }}: {{ .Reason }}{{ with .Message }} — {{ . }}{{ end }}{{ end }}
{{ range .Diagnostics }}
> {{ . }}
{{ end }}{{ end }}
started {{ .StartsAt | time }}{{ if eq .Status "resolved" }}, resolved {{ .EndsAt | time }}{{ end }}

{{ with .Annotations.runbook_url }}[runbook]({{ . }}){{ end }}{{ if and .Annotations.runbook_url .GeneratorURL }} · {{ end }}{{ with .GeneratorURL }}[source]({{ . }}){{ end }}
{{ end }}`

	DefaultSlack = `{{ range .Alerts }}*{{ .Labels.alertname }}*{{ with .Labels.severity }} · {{ . }}{{ end }} · {{ .Status }}
{{ with .Annotations.summary }}{{ . }}
{{ end }}{{ with .Check }}check *{{ .Name }}* ({{ .Type }}){{ if .Success }} passing now{{ else }}: {{ .Reason }}{{ with .Message }} — {{ . }}{{ end }}{{ end }}
{{ range .Diagnostics }}> {{ . }}
{{ end }}{{ end }}started {{ .StartsAt | time }}{{ if eq .Status "resolved" }}, resolved {{ .EndsAt | time }}{{ end }}
{{ with .Annotations.runbook_url }}<{{ . }}|runbook>{{ end }}{{ if and .Annotations.runbook_url .GeneratorURL }} · {{ end }}{{ with .GeneratorURL }}<{{ . }}|source>{{ end }}
{{ end }}`
)

// Template is a parsed title + body pair.
type Template struct {
	t *template.Template
}

// ParseTemplate parses a title and a body template; empty strings take the
// defaults. The body can use {{ template "title" . }}.
func ParseTemplate(title, body, defaultBody string) (*Template, error) {
	if title == "" {
		title = DefaultTitle
	}
	if body == "" {
		body = defaultBody
	}
	root := template.New("body").Funcs(Funcs).Option("missingkey=zero")
	if _, err := root.New("title").Parse(title); err != nil {
		return nil, fmt.Errorf("title template: %w", err)
	}
	if _, err := root.Parse(body); err != nil {
		return nil, fmt.Errorf("message template: %w", err)
	}
	return &Template{t: root}, nil
}

// ParseField parses a template override of one config key (a title, a
// body, a PagerDuty detail, an e-mail header) as ParseTemplate does. Its
// error names the key in place of ParseTemplate's "title template:" or
// "message template:" prefix, which for a single key says less.
func ParseField(field, title, body, defaultBody string) (*Template, error) {
	t, err := ParseTemplate(title, body, defaultBody)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, templateCause(err))
	}
	return t, nil
}

// CheckField is ParseField for Validate: nil, or a field error at field.
// Integrations parse each override on its own so an error points at the
// right key.
func CheckField(field, title, body, defaultBody string) error {
	t, err := ParseTemplate(title, body, defaultBody)
	if err != nil {
		return confkit.FieldErrorf(field, "%w", templateCause(err))
	}
	// A template that parses can still fail on every page it renders
	// ("can't evaluate field Firing"): render it against a sample group
	// now, so the mistake is a config error instead of dead-lettered
	// pages. Failures that depend on the data (an index past the end, an
	// alert without check information) are left to the page that has it.
	if _, _, err := t.Render(SampleData()); err != nil && structural(err) {
		return confkit.FieldErrorf(field, "cannot render a sample alert group: %v", errors.Unwrap(err))
	}
	return nil
}

// structural reports whether a render error would happen whatever the
// alerts: a field or method the data does not have, a function called
// with the wrong arguments.
func structural(err error) bool {
	msg := err.Error()
	for _, s := range []string{"can't evaluate field", "wrong type for value", "wrong number of args", "can't call method"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// SampleData is a group of one firing and one resolved alert with the
// labels and annotations vigil's rules set, for checking templates.
func SampleData() *Data {
	now := time.Now()
	lbls := map[string]string{"alertname": "InvoiceQRFailing", "check": "invoice_qr", "severity": "critical", "team": "ops"}
	ann := map[string]string{"summary": "invoice QR codes fail", "description": "qr_mismatch on invoice 26111000000000000002",
		"runbook_url": "https://runbooks.example/invoice-qr"}
	m := &Message{Receiver: "oncall", GroupKey: "{}:{alertname=\"InvoiceQRFailing\"}", GroupLabels: map[string]string{"alertname": "InvoiceQRFailing"},
		ExternalURL: "http://vigil.example:9877", Created: now, Alerts: []Alert{
			{Labels: lbls, Annotations: ann, StartsAt: now.Add(-time.Minute), EndsAt: now.Add(time.Hour), GeneratorURL: "http://vigil.example:9877/api/v1/alerts",
				Fingerprint: Fingerprint(lbls), Check: &CheckInfo{Name: "invoice_qr", Type: "invoice_qr", Reason: "qr_mismatch", Message: "amount differs",
					Diagnostics: []string{"qr_decoded: 01,32,,26111000000000000002,1.10,20261204,,1DD6"}}},
			{Labels: map[string]string{"alertname": "InvoiceQRFailing", "check": "invoice_qr_standby", "severity": "critical", "team": "ops"},
				Annotations: ann, StartsAt: now.Add(-time.Hour), EndsAt: now.Add(-time.Minute),
				Check: &CheckInfo{Name: "invoice_qr_standby", Type: "invoice_qr", Success: true}},
		}}
	return NewData(m)
}

// templateCause drops ParseTemplate's prefix from its error.
func templateCause(err error) error {
	if u := errors.Unwrap(err); u != nil {
		return u
	}
	return err
}

// MustTemplate is ParseTemplate for the built-in defaults.
func MustTemplate(defaultBody string) *Template {
	t, err := ParseTemplate("", "", defaultBody)
	if err != nil {
		panic(err)
	}
	return t
}

// Title renders the title for a message.
func (t *Template) Title(d *Data) (string, error) { return t.exec("title", d) }

// Render renders the title and the body, the title first: a title that
// fails to render is the error reported.
func (t *Template) Render(d *Data) (title, body string, err error) {
	if title, err = t.Title(d); err != nil {
		return "", "", err
	}
	if body, err = t.Body(d); err != nil {
		return "", "", err
	}
	return title, body, nil
}

// Body renders the body for a message.
func (t *Template) Body(d *Data) (string, error) { return t.exec("body", d) }

func (t *Template) exec(name string, d *Data) (string, error) {
	var b strings.Builder
	if err := t.t.ExecuteTemplate(&b, name, d); err != nil {
		// A template that fails for this data fails the same way on every
		// retry.
		return "", Permanent(fmt.Errorf("render %s: %w", name, err))
	}
	return strings.TrimSpace(b.String()), nil
}
