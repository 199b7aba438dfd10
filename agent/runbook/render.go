package runbook

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"text/template"
)

// Escaping of label values. A runbook's steps are code written by the
// operator; alert labels are data that may come from anywhere (a log line,
// a probe target). Every step field is rendered with the labels escaped for
// where they land, so a label value can never become code: a URL gets them
// percent-encoded, a JSON body gets them as string contents, a header gets
// them without line breaks, and exec gets them as single arguments (never
// through a shell).
type escCtx int

const (
	ctxText   escCtx = iota // messages: as is
	ctxURL                  // every byte but unreserved characters percent-encoded
	ctxJSON                 // JSON string contents
	ctxHeader               // control characters removed
	ctxArg                  // one argv element: as is (no shell ever sees it)
)

var templateFuncs = template.FuncMap{
	"upper": strings.ToUpper,
	"lower": strings.ToLower,
}

// Data is what step templates see.
type Data struct {
	Labels      map[string]string
	Annotations map[string]string
	Runbook     string
	Run         string
	Target      string
}

func escape(c escCtx, s string) string {
	switch c {
	case ctxURL:
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			ch := s[i]
			if ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '.' || ch == '_' || ch == '~' {
				b.WriteByte(ch)
			} else {
				fmt.Fprintf(&b, "%%%02X", ch)
			}
		}
		return b.String()
	case ctxJSON:
		q, _ := json.Marshal(s)
		return string(q[1 : len(q)-1])
	case ctxHeader:
		return strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return -1
			}
			return r
		}, s)
	}
	return s
}

func escapeMap(c escCtx, m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = escape(c, v)
	}
	return out
}

// render executes a field template with the data escaped for context c.
func render(c escCtx, tmpl string, d Data) (string, error) {
	if !strings.Contains(tmpl, "{{") {
		return tmpl, nil
	}
	t, err := parseTemplate(tmpl)
	if err != nil {
		return "", err
	}
	esc := Data{Labels: escapeMap(c, d.Labels), Annotations: escapeMap(c, d.Annotations),
		Runbook: escape(c, d.Runbook), Run: escape(c, d.Run), Target: escape(c, d.Target)}
	var b strings.Builder
	if err := t.Execute(&b, esc); err != nil {
		return "", fmt.Errorf("render %q: %w", tmpl, err)
	}
	return b.String(), nil
}

// alertEnv passes the alert's labels to exec steps as VIGIL_ALERT_<NAME>
// (upper-cased; characters other than letters, digits and _ become _).
func alertEnv(labels map[string]string) []string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	env := make([]string, 0, len(keys))
	for _, k := range keys {
		name := strings.Map(func(r rune) rune {
			switch {
			case r >= 'a' && r <= 'z':
				return r - 'a' + 'A'
			case r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_':
				return r
			}
			return '_'
		}, k)
		env = append(env, "VIGIL_ALERT_"+name+"="+labels[k])
	}
	return env
}

// RenderedStep is a step with its fields rendered, as the journal records
// it and a dry run shows it.
type RenderedStep struct {
	Name    string            `json:"name"`
	Kind    string            `json:"kind"`
	Method  string            `json:"method,omitempty"`
	URL     string            `json:"url,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    string            `json:"body,omitempty"`
	Argv    []string          `json:"argv,omitempty"`
	Env     []string          `json:"env,omitempty"`
	Check   string            `json:"check,omitempty"`
	Message string            `json:"message,omitempty"`
	Wait    string            `json:"wait,omitempty"`
}

// Render renders every field of a step for the given data; its kind
// says which fields and how each is escaped.
func (s *Step) Render(d Data) (RenderedStep, error) {
	r := RenderedStep{Name: s.Name, Kind: s.Kind()}
	if k := kindOf(s.Config); k != nil {
		return r, k.render(s.Config, d, &r)
	}
	return r, nil
}
