package ruleeval

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/rules"
)

// TestStateChangeLog: alert state changes are logged at info level with
// the fingerprint the alert's pages carry (external labels filled in).
func TestStateChangeLog(t *testing.T) {
	var buf strings.Builder
	e := New(Options{Logger: slog.New(slog.NewTextHandler(&buf, nil)),
		ExternalLabels: func() map[string]string { return map[string]string{"site": "sh"} }})
	a := rules.Alert{Labels: labels.FromStrings("alertname", "InvoiceQRFailing", "check", "invoice_qr"), ActiveAt: time.Now()}
	for _, c := range []rules.StateChange{
		{Alert: a, From: rules.StateInactive, To: rules.StatePending},
		{Alert: a, From: rules.StatePending, To: rules.StateFiring},
		{Alert: a, From: rules.StateFiring, To: rules.StateInactive},
	} {
		e.logChange(c)
	}
	fp := notify.Fingerprint(map[string]string{"alertname": "InvoiceQRFailing", "check": "invoice_qr", "site": "sh"})
	for _, want := range []string{`msg="alert pending"`, `msg="alert firing"`, `msg="alert resolved"`, "fingerprint=" + fp, "alert=InvoiceQRFailing"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, buf.String())
		}
	}
}
