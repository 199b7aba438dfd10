package notify

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"text/template"
	"time"

	"github.com/vigil-project/vigil/internal/confkit"
)

// Data is what message templates see (close to Alertmanager's template data,
// so existing templates port over).
type Data struct {
	Receiver          string
	Status            string
	GroupLabels       map[string]string
	CommonLabels      map[string]string
	CommonAnnotations map[string]string
	ExternalURL       string
	Alerts            []TemplateAlert
	Firing            []TemplateAlert
	Resolved          []TemplateAlert
	// Drill is true when the alerts come from an incident drill.
	Drill bool
}

// TemplateAlert is one alert in template data.
type TemplateAlert struct {
	Status       string
	Labels       map[string]string
	Annotations  map[string]string
	StartsAt     time.Time
	EndsAt       time.Time
	GeneratorURL string
	Fingerprint  string
	Check        *CheckInfo
}

// NewData builds template data for a message.
func NewData(m *Message) *Data {
	d := &Data{
		Receiver: m.Receiver, Status: m.Status(), GroupLabels: m.GroupLabels,
		CommonLabels: m.CommonLabels(), CommonAnnotations: m.CommonAnnotations(), ExternalURL: m.ExternalURL,
	}
	for _, a := range m.Alerts {
		ta := TemplateAlert{Status: a.Status(m.Created), Labels: a.Labels, Annotations: a.Annotations,
			StartsAt: a.StartsAt, EndsAt: a.EndsAt, GeneratorURL: a.GeneratorURL, Fingerprint: a.Fingerprint, Check: a.Check}
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
	d.Alerts = append(append([]TemplateAlert{}, d.Firing...), d.Resolved...)
	return d
}

// Funcs are available in every template.
var Funcs = template.FuncMap{
	"toUpper":  strings.ToUpper,
	"toLower":  strings.ToLower,
	"join":     func(sep string, s []string) string { return strings.Join(s, sep) },
	"time":     func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"truncate": func(n int, s string) string { return Truncate(s, n) },
	// labelList renders a label set as k=v pairs in name order.
	"labelList": func(m map[string]string) string {
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
	},
}

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
	if _, err := ParseTemplate(title, body, defaultBody); err != nil {
		return confkit.FieldErrorf(field, "%w", templateCause(err))
	}
	return nil
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
