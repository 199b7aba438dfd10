package notify

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

func testMessage(resolved bool) *Message {
	t0 := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	end := t0.Add(time.Hour)
	if resolved {
		end = t0.Add(4 * time.Minute)
	}
	return &Message{Receiver: "oncall", GroupKey: "g", Created: t0.Add(5 * time.Minute), ExternalURL: "http://vigil:9877",
		Alerts: []Alert{{
			Labels:       map[string]string{"alertname": "UpstreamUnreachable", "severity": "page", "check": "tax-authority"},
			Annotations:  map[string]string{"summary": "tax-authority unreachable", "runbook_url": "https://runbooks.example/up"},
			StartsAt:     t0,
			EndsAt:       end,
			GeneratorURL: "http://vigil:9877/api/v1/alerts?alertname=UpstreamUnreachable",
			Check: &CheckInfo{Name: "tax-authority", Type: "icmp", Reason: "packet_loss", Message: "100% loss",
				Diagnostics: []string{"hops: 1 10.0.0.1 0.3ms", "hops: 2 *"}},
		}}}
}

func TestDefaultTemplates(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		resolved   bool
		want       []string
	}{
		{"markdown firing", DefaultMarkdown, false, []string{"### [FIRING:1] UpstreamUnreachable · tax-authority", "**UpstreamUnreachable** · page · firing",
			"tax-authority unreachable", "check **tax-authority** (icmp): packet_loss — 100% loss", "> hops: 1 10.0.0.1 0.3ms", "> hops: 2 *",
			"started 2026-11-23 08:00:00 UTC", "[runbook](https://runbooks.example/up) · [source](http://vigil:9877/api/v1/alerts?alertname=UpstreamUnreachable)"}},
		{"markdown resolved", DefaultMarkdown, true, []string{"### [RESOLVED] UpstreamUnreachable", "resolved 2026-11-23 08:04:00 UTC"}},
		{"slack", DefaultSlack, false, []string{"*UpstreamUnreachable* · page · firing", "> hops: 2 *", "<https://runbooks.example/up|runbook>"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmpl := MustTemplate(tc.body)
			body, err := tmpl.Body(NewData(testMessage(tc.resolved)))
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("missing %q in:\n%s", w, body)
				}
			}
		})
	}
	m := testMessage(false)
	m.Alerts[0].Labels["drill"] = "true"
	if title, _ := MustTemplate(DefaultMarkdown).Title(NewData(m)); !strings.HasPrefix(title, "[DRILL] [FIRING:1]") {
		t.Errorf("drill title %q", title)
	}
	if _, err := ParseTemplate("{{ .Nope", "", DefaultMarkdown); err == nil {
		t.Error("bad title template accepted")
	}
	tmpl, _ := ParseTemplate("", "{{ .Alerts.Missing }}", DefaultMarkdown)
	if _, err := tmpl.Body(NewData(m)); !IsPermanent(err) {
		t.Errorf("render error should be permanent: %v", err)
	}
}

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{{"short", 10, "short"}, {"发票二维码错误", 10, "发票…"}, {"abcdefghij", 6, "abc…"}, {"abcdef", 2, "ab"}, {"发票", 2, ""}, {"abc", 0, ""}} {
		if got := Truncate(tc.in, tc.n); got != tc.want || len(got) > tc.n {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func TestPostRetryAfter(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "42")
		http.Error(w, "slow down", http.StatusTooManyRequests)
	}))
	defer srv.Close()
	_, err := Post(context.Background(), srv.Client(), srv.URL, "application/json", []byte("{}"), nil)
	var ra *RetryAfterError
	if !errors.As(err, &ra) || ra.After != 42*time.Second || IsPermanent(err) || !strings.Contains(err.Error(), "429") {
		t.Errorf("err %v", err)
	}
}

func TestDedupKeyStable(t *testing.T) {
	a, b := testMessage(false), testMessage(true)
	if a.DedupKey() != b.DedupKey() {
		t.Error("firing and resolved of one group must share the dedup key")
	}
	b.GroupKey = "other"
	if a.DedupKey() == b.DedupKey() {
		t.Error("different groups share a dedup key")
	}
}

// TestAlertmanagerTemplateSemantics: templates written for Alertmanager
// render the same here: .Alerts.Firing and .Alerts.Resolved, KV's
// SortedPairs (alertname first), Names, Values and Remove, and its
// functions.
func TestAlertmanagerTemplateSemantics(t *testing.T) {
	d := SampleData()
	d.Receiver = regexp.QuoteMeta("on.call") // as NewData quotes it, like Alertmanager
	d.Alerts[0].StartsAt = time.Date(2026, 12, 4, 8, 59, 0, 0, time.UTC)
	for _, tc := range []struct{ tmpl, want string }{
		{`{{ len .Alerts.Firing }}/{{ len .Alerts.Resolved }}`, "1/1"},
		{`{{ range .Alerts.Firing }}{{ .Labels.check }}{{ end }}`, "invoice_qr"},
		{`{{ range .CommonLabels.SortedPairs }}{{ .Name }}={{ .Value }} {{ end }}`, "alertname=InvoiceQRFailing severity=critical team=ops"}, // bodies are trimmed
		{`{{ .CommonLabels.Names | join "," }}`, "alertname,severity,team"},
		{`{{ (.CommonLabels.Remove (stringSlice "team")).Values | join "," }}`, "InvoiceQRFailing,critical"},
		{`{{ .GroupLabels.SortedPairs.Values | join " " }}`, "InvoiceQRFailing"},
		{`{{ title "invoice qr" }} {{ toUpper .Status }} {{ reReplaceAll "_" " " "a_b" }} {{ match "^Inv" .CommonLabels.alertname }}`, "Invoice Qr FIRING a b true"},
		// Alertmanager's own KV and function map: String, Strings.Join,
		// date, tz, toJson, dict, humanizeDuration.
		{`{{ .GroupLabels }}`, "alertname=InvoiceQRFailing"},
		{`{{ .CommonLabels.SortedPairs.Names.Join "+" }}`, "alertname+severity+team"},
		{`{{ (index .Alerts 0).StartsAt | tz "Asia/Shanghai" | date "2006-01-02 15:04 MST" }}`, "2026-12-04 16:59 CST"},
		{`{{ toJson .GroupLabels }}`, `{"alertname":"InvoiceQRFailing"}`},
		{`{{ (dict "a" 1).a }} {{ humanizeDuration 90 }}`, "1 1m 30s"},
		{`{{ .Receiver }}`, `on\.call`},
	} {
		tp, err := ParseTemplate("x", tc.tmpl, "")
		if err != nil {
			t.Fatalf("%s: %v", tc.tmpl, err)
		}
		if got, err := tp.Body(d); err != nil || got != tc.want {
			t.Errorf("%s = %q, %v; want %q", tc.tmpl, got, err, tc.want)
		}
	}
}

// TestCheckFieldRendersSample: a template that parses but cannot render
// for any alert group is a config error; one whose failure depends on the
// data is not.
func TestCheckFieldRendersSample(t *testing.T) {
	if err := CheckField("message", "", `{{ range .Alerts }}{{ .Firing }}{{ end }}`, ""); err == nil || !strings.Contains(err.Error(), "can't evaluate field Firing") {
		t.Errorf("structural error: %v", err)
	}
	if err := CheckField("message", "", `{{ .CommonLabels.SortedPairs.Nope }}`, ""); err == nil {
		t.Error("unknown method accepted")
	}
	if err := CheckField("message", "", `{{ index .Alerts 3 }}`, ""); err != nil {
		t.Errorf("data-dependent failure refused: %v", err)
	}
	if err := CheckField("message", "", DefaultMarkdown, ""); err != nil {
		t.Errorf("default template: %v", err)
	}
}
