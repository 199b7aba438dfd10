package pagerduty

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	amtemplate "github.com/prometheus/alertmanager/template"

	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/agent/notify/internal/notifytest"
	"github.com/vigil-project/vigil/internal/confkit"
)

// routingKey looks like a real integration key (32 characters).
const routingKey = "R0UT1NGKEY0123456789abcdefABCDEF"

// created is when the page the tests send was queued.
var created = notifytest.Linked.Created

func message(resolved bool) *notify.Message { return notifytest.Linked.Message(resolved) }

// pd is a fake Events API v2 endpoint; it answers 202 and PagerDuty's
// success body unless told otherwise.
type pd struct{ *notifytest.Receiver }

func newPD(t *testing.T) pd {
	return pd{notifytest.NewReceiver(t, func(w http.ResponseWriter, r notifytest.Request) {
		var ev Event
		_ = json.Unmarshal(r.Body, &ev)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		json.NewEncoder(w).Encode(map[string]string{"status": "success", "message": "Event processed", "dedup_key": ev.DedupKey})
	})}
}

func (p pd) url() string { return p.URL + "/v2/enqueue" }

// last is the latest event, which must be a JSON POST to the endpoint.
func (p pd) last(t *testing.T) []byte {
	t.Helper()
	req := p.Last(t)
	if got, want := req.Method+" "+req.Path+" "+req.ContentType, "POST /v2/enqueue application/json"; got != want {
		t.Errorf("request %q, want %q", got, want)
	}
	return req.Body
}

// newNotifier builds a notifier for the fake endpoint with a fixed source
// in place of the host name, so golden files do not depend on the machine.
func newNotifier(t *testing.T, p pd, cfg Config) *Notifier {
	t.Helper()
	cfg.URL = p.url()
	if !cfg.RoutingKey.IsSet() && cfg.RoutingKeyFile == "" {
		cfg.RoutingKey = confkit.NewSecret(routingKey)
	}
	n, err := New(cfg, &http.Client{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Source == "" {
		n.source = "agent-1.example"
	}
	return n
}

const firingDetails = `Labels:
 - alertname = InvoiceQRFailing
 - check = invoice-qr
 - severity = critical
Annotations:
 - description = The QR code on issued invoices encodes a different amount.
 - runbook_url = https://runbooks.example/invoice-qr?team=billing&lang=en
 - summary = Invoice QR codes do not match the amount due
Check: invoice-qr (invoice_qr): qr_mismatch — amount 0.11 != 0.10
 > hop 1 10.0.0.1 0.3ms
Source: http://vigil.example:9800/checks/invoice-qr`

func TestEvent(t *testing.T) {
	dedup := message(false).DedupKey()
	for _, tc := range []struct {
		name     string
		cfg      Config
		resolved bool
		want     Event
	}{
		{name: "firing", want: Event{
			RoutingKey: routingKey, EventAction: "trigger", DedupKey: dedup,
			Client: "vigil", ClientURL: "http://vigil.example:9800",
			Payload: &Payload{
				Summary: "[FIRING:1] InvoiceQRFailing · invoice-qr", Source: "agent-1.example", Severity: "critical",
				Timestamp: "2026-03-09T14:20:00Z",
				CustomDetails: map[string]string{
					"firing": firingDetails, "resolved": "", "num_firing": "1", "num_resolved": "0",
				},
			},
			Links: []Link{
				{Href: "https://runbooks.example/invoice-qr?team=billing&lang=en", Text: "Runbook: InvoiceQRFailing"},
				{Href: "http://vigil.example:9800/checks/invoice-qr", Text: "Source: InvoiceQRFailing"},
			},
		}},
		// A resolve event needs nothing but the key, the dedup key and the
		// action.
		{name: "resolved", resolved: true, want: Event{RoutingKey: routingKey, EventAction: "resolve", DedupKey: dedup}},
		{name: "custom", cfg: Config{
			Title:     `{{ .CommonAnnotations.summary }} ({{ .Receiver }})`,
			Severity:  `{{ if .Firing }}warn{{ end }}`,
			Source:    `{{ .CommonLabels.check }}.checks.example`,
			Component: `{{ .CommonLabels.check }}`, Group: "billing", Class: `{{ range .Firing }}{{ .Check.Reason }}{{ end }}`,
			Client: "vigil on {{ .Receiver }}", ClientURL: "{{ .ExternalURL }}/alerts",
			Details: map[string]string{"resolved": "", "num_resolved": "", "title": `{{ template "title" . }}`,
				"reason": `{{ range .Firing }}{{ .Check.Message }}{{ end }}`},
		}, want: Event{
			RoutingKey: routingKey, EventAction: "trigger", DedupKey: dedup,
			Client: "vigil on oncall", ClientURL: "http://vigil.example:9800/alerts",
			Payload: &Payload{
				Summary: "Invoice QR codes do not match the amount due (oncall)", Source: "invoice-qr.checks.example",
				Severity: "warning", Timestamp: "2026-03-09T14:20:00Z", Component: "invoice-qr", Group: "billing", Class: "qr_mismatch",
				CustomDetails: map[string]string{"firing": firingDetails, "num_firing": "1",
					"title": "Invoice QR codes do not match the amount due (oncall)", "reason": "amount 0.11 != 0.10"},
			},
			Links: []Link{
				{Href: "https://runbooks.example/invoice-qr?team=billing&lang=en", Text: "Runbook: InvoiceQRFailing"},
				{Href: "http://vigil.example:9800/checks/invoice-qr", Text: "Source: InvoiceQRFailing"},
			},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPD(t)
			n := newNotifier(t, p, tc.cfg)
			if err := n.Notify(context.Background(), message(tc.resolved)); err != nil {
				t.Fatal(err)
			}
			body := p.last(t)
			notifytest.GoldenJSON(t, tc.name, body)
			if got := notifytest.Decode[Event](t, body); !reflect.DeepEqual(got, tc.want) {
				g, _ := json.MarshalIndent(got, "", "  ")
				w, _ := json.MarshalIndent(tc.want, "", "  ")
				t.Errorf("event\n%s\nwant\n%s", g, w)
			}
			if tc.resolved && bytes.Contains(body, []byte(`"payload"`)) {
				t.Errorf("resolve event carries a payload: %s", body)
			}
		})
	}
}

// TestDedupKey: retries and repeats of one group reach the same PagerDuty
// alert; another group (or the same group for another receiver) opens its
// own.
func TestDedupKey(t *testing.T) {
	p := newPD(t)
	n := newNotifier(t, p, Config{})
	send := func(m *notify.Message) string {
		t.Helper()
		if err := n.Notify(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		return notifytest.Decode[Event](t, p.last(t)).DedupKey
	}
	first := send(message(false))
	later := message(false)
	later.Created = created.Add(5 * time.Minute)
	later.Alerts[0].Annotations["description"] = "changed"
	other := message(false)
	other.GroupKey = `{}:{alertname="InvoicePDFFailing"}`
	otherReceiver := message(false)
	otherReceiver.Receiver = "billing"
	for _, tc := range []struct {
		name string
		m    *notify.Message
		same bool
	}{
		{"retry", message(false), true},
		{"repeat later", later, true},
		{"resolve", message(true), true},
		{"other group", other, false},
		{"other receiver", otherReceiver, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := send(tc.m)
			if (got == first) != tc.same {
				t.Errorf("dedup_key %s vs first %s, want same=%v", got, first, tc.same)
			}
			if len(got) == 0 || len(got) > 255 {
				t.Errorf("dedup_key %q: PagerDuty takes 1 to 255 characters", got)
			}
		})
	}
}

func TestSeverity(t *testing.T) {
	alert := func(sev string) notify.TemplateAlert {
		return notify.TemplateAlert{Alert: amtemplate.Alert{Labels: notify.KV{"severity": sev}}}
	}
	for _, tc := range []struct {
		rendered string
		firing   []notify.TemplateAlert
		want     string
	}{
		{"critical", nil, "critical"},
		{"  CRITICAL\n", nil, "critical"},
		{"error", nil, "error"},
		{"warning", nil, "warning"},
		{"info", nil, "info"},
		{"warn", nil, "warning"},
		{"crit", nil, "critical"},
		{"page", nil, "critical"},
		{"notice", nil, "info"},
		{"informational", nil, "info"},
		{"p1", nil, "error"},
		{"major", []notify.TemplateAlert{alert("critical")}, "error"},
		{"", nil, "error"},
		// Mixed severities have no common label: the most severe wins.
		{"", []notify.TemplateAlert{alert("warning"), alert("critical"), alert("info")}, "critical"},
		{"", []notify.TemplateAlert{alert("info"), alert("warn")}, "warning"},
		{"", []notify.TemplateAlert{alert("bogus"), {}}, "error"},
	} {
		t.Run(tc.rendered, func(t *testing.T) {
			if got := severityOf(tc.rendered, tc.firing); got != tc.want {
				t.Errorf("severityOf(%q) = %q, want %q", tc.rendered, got, tc.want)
			}
		})
	}
}

func TestMixedSeverities(t *testing.T) {
	p := newPD(t)
	n := newNotifier(t, p, Config{})
	m := message(false)
	b := m.Alerts[0]
	b.Labels = map[string]string{"alertname": "InvoiceQRFailing", "severity": "warning", "check": "invoice-qr-standby"}
	b.GeneratorURL = "http://vigil.example:9800/checks/invoice-qr-standby"
	b.StartsAt = created.Add(-20 * time.Minute)
	m.Alerts = append(m.Alerts, b)
	if err := n.Notify(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	ev := notifytest.Decode[Event](t, p.last(t))
	if ev.Payload.Severity != "critical" {
		t.Errorf("severity %q, want critical", ev.Payload.Severity)
	}
	if ev.Payload.Timestamp != "2026-03-09T14:10:00Z" {
		t.Errorf("timestamp %q, want the earliest start", ev.Payload.Timestamp)
	}
	// The runbook is shared and listed once.
	want := []Link{
		{Href: "https://runbooks.example/invoice-qr?team=billing&lang=en", Text: "Runbook: InvoiceQRFailing"},
		{Href: "http://vigil.example:9800/checks/invoice-qr", Text: "Source: InvoiceQRFailing"},
		{Href: "http://vigil.example:9800/checks/invoice-qr-standby", Text: "Source: InvoiceQRFailing"},
	}
	if !reflect.DeepEqual(ev.Links, want) {
		t.Errorf("links %+v, want %+v", ev.Links, want)
	}
	if ev.Payload.CustomDetails["num_firing"] != "2" {
		t.Errorf("details %v", ev.Payload.CustomDetails)
	}
}

func TestDefaultSource(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Skip(err)
	}
	p := newPD(t)
	n, err := New(Config{URL: p.url(), RoutingKey: confkit.NewSecret(routingKey)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Notify(context.Background(), message(false)); err != nil {
		t.Fatal(err)
	}
	if got := notifytest.Decode[Event](t, p.last(t)).Payload.Source; got != host {
		t.Errorf("source %q, want the host name %q", got, host)
	}
}

func TestSizeLimits(t *testing.T) {
	p := newPD(t)
	n := newNotifier(t, p, Config{})
	m := message(false)
	m.Alerts[0].Labels["alertname"] = strings.Repeat("Invoice QR failing ", 100)
	m.Alerts[0].Annotations["description"] = strings.Repeat("x", maxEventSize)
	if err := n.Notify(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	body := p.last(t)
	ev := notifytest.Decode[Event](t, body)
	if len(body) > maxEventSize {
		t.Errorf("event is %d bytes", len(body))
	}
	if len(ev.Payload.Summary) > maxSummary || !strings.HasSuffix(ev.Payload.Summary, "…") {
		t.Errorf("summary is %d bytes, want a marked cut at %d", len(ev.Payload.Summary), maxSummary)
	}
	if len(ev.Payload.CustomDetails) != 1 || !strings.Contains(ev.Payload.CustomDetails["error"], "custom details removed") {
		t.Errorf("custom details %v", ev.Payload.CustomDetails)
	}
}

func TestErrors(t *testing.T) {
	reply := notifytest.Reply
	for _, tc := range []notifytest.Answer{
		{Name: "202", Reply: reply(202, `{"status":"success","message":"Event processed","dedup_key":"x"}`), Class: notifytest.OK},
		{Name: "200 empty", Reply: reply(200, ``), Class: notifytest.OK},
		{Name: "400 invalid event", Reply: reply(400, `{"status":"invalid event","message":"Event object is invalid","errors":["'payload.severity' is invalid"]}`),
			Class: notifytest.Permanent, Msg: "400 Bad Request: {\"status\":\"invalid event\""},
		{Name: "400 echoing the key", Reply: reply(400, `{"status":"invalid event","message":"routing_key `+routingKey+` unknown"}`),
			Class: notifytest.Permanent, Msg: "routing_key <redacted> unknown"},
		{Name: "403", Reply: reply(403, `forbidden`), Class: notifytest.Permanent, Msg: "403"},
		{Name: "429", Reply: reply(429, `{"status":"throttle event","message":"Requests for this service are arriving too quickly."}`), Class: notifytest.Retry, Msg: "429"},
		{Name: "429 retry-after", Reply: reply(429, `slow down`, "Retry-After", "30"), Class: notifytest.Retry, After: 30 * time.Second, Msg: "429"},
		{Name: "500", Reply: reply(500, `oops`), Class: notifytest.Retry, Msg: "500"},
		{Name: "503 retry-after", Reply: reply(503, `busy`, "Retry-After", "7"), Class: notifytest.Retry, After: 7 * time.Second, Msg: "503"},
		{Name: "202 not success", Reply: reply(202, `{"status":"invalid event","message":"Event object is invalid"}`), Class: notifytest.Permanent, Msg: "event not accepted: invalid event"},
	} {
		t.Run(tc.Name, func(t *testing.T) {
			p := newPD(t)
			p.Reply(tc.Reply)
			n := newNotifier(t, p, Config{})
			tc.Check(t, n.Notify(context.Background(), message(false)), "pagerduty: ", routingKey)
		})
	}
}

func TestUnreachable(t *testing.T) {
	p := newPD(t)
	n := newNotifier(t, p, Config{})
	p.Close()
	err := n.Notify(context.Background(), message(false))
	notifytest.AssertClass(t, err, notifytest.Retry, 0)
	notifytest.NoSecrets(t, err, routingKey)
}

func TestTemplateRenderError(t *testing.T) {
	p := newPD(t)
	// Parses, but fails on this message, and would on every retry.
	n := newNotifier(t, p, Config{Class: `{{ index .Alerts 5 }}`})
	err := n.Notify(context.Background(), message(false))
	notifytest.AssertClass(t, err, notifytest.Permanent, 0)
	if got := p.Requests(); len(got) != 0 {
		t.Errorf("sent %d events despite the template error", len(got))
	}
}

func TestNew(t *testing.T) {
	dir := t.TempDir()
	keyFile := notifytest.WriteFile(t, dir, "key", routingKey+"\n")
	for _, tc := range []struct {
		name string
		cfg  Config
		err  string
	}{
		{"routing_key_file", Config{RoutingKeyFile: keyFile}, ""},
		{"missing routing_key_file", Config{RoutingKeyFile: filepath.Join(dir, "nope")}, "pagerduty: routing_key_file: read secret file"},
		{"title parse error", Config{RoutingKeyFile: keyFile, Title: "{{ .Status"}, "pagerduty: title: "},
		{"severity parse error", Config{RoutingKeyFile: keyFile, Severity: "{{ end }}"}, "pagerduty: severity: "},
		{"details parse error", Config{RoutingKeyFile: keyFile, Details: map[string]string{"x": "{{ range }}"}}, "pagerduty: details.x: "},
		{"no key", Config{}, "pagerduty: routing_key: set exactly one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := New(tc.cfg, nil)
			if notifytest.WantError(t, err, tc.err) {
				return
			}
			if n.key != routingKey || n.url != DefaultURL {
				t.Errorf("key read %q, url %q", n.key, n.url)
			}
		})
	}
}

func TestRoutingKeyFile(t *testing.T) {
	keyFile := notifytest.WriteFile(t, t.TempDir(), "key", routingKey+"\n")
	p := newPD(t)
	n := newNotifier(t, p, Config{RoutingKeyFile: keyFile})
	if err := n.Notify(context.Background(), message(true)); err != nil {
		t.Fatal(err)
	}
	if got := notifytest.Decode[Event](t, p.last(t)).RoutingKey; got != routingKey {
		t.Errorf("routing_key %q, want the file's content without its newline", got)
	}
}

func TestValidate(t *testing.T) {
	key := confkit.NewSecret(routingKey)
	for _, tc := range []struct {
		name   string
		cfg    Config
		fields []string
	}{
		{"ok", Config{RoutingKey: key}, nil},
		{"ok file and url", Config{RoutingKeyFile: "/run/secrets/pd", URL: "https://events.eu.pagerduty.com/v2/enqueue"}, nil},
		{"missing key", Config{}, []string{"routing_key"}},
		{"key and file", Config{RoutingKey: key, RoutingKeyFile: "/run/secrets/pd"}, []string{"routing_key"}},
		{"bad url", Config{RoutingKey: key, URL: "events.pagerduty.com/v2/enqueue"}, []string{"url"}},
		{"templates", Config{RoutingKey: key, Title: "{{ .Status", Severity: "{{", Source: "{{ end }}", Component: "{{ range }}",
			Group: "{{ if }}", Class: "{{ .X", Client: "{{", ClientURL: "{{"},
			[]string{"title", "class", "client", "client_url", "component", "group", "severity", "source"}},
		{"details", Config{RoutingKey: key, Details: map[string]string{"": "x", "firing": "{{ .Firing"}}, []string{"details", "details.firing"}},
		{"several", Config{URL: "ftp://x", Title: "{{"}, []string{"routing_key", "url", "title"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			notifytest.WantFields(t, tc.cfg.Validate(), tc.fields, routingKey)
		})
	}
}
