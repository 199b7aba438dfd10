package ruleeval

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-project/vigil/agent/config"
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

// TestSelectedSeriesOnly: with no rules, the agent's metrics are not
// stored; a drill's query of a new expression starts keeping its series
// and scrapes at once, so it sees the current value.
func TestSelectedSeriesOnly(t *testing.T) {
	e := New(Options{Series: rules.TextSource(func(w io.Writer) {
		fmt.Fprintln(w, `vigil_notify_queue_length{receiver="oncall"} 60`)
		fmt.Fprintln(w, `vigil_check_success{check="web1",type="http"} 1`)
	})})
	e.Apply(&config.Config{}, nil)
	ctx := context.Background()
	e.EvalNow(ctx, time.Now())
	if series, _, _ := e.store.Stats(); series != 0 {
		t.Fatalf("no rules, yet %d series stored", series)
	}
	n, err := e.Count(ctx, `vigil_notify_queue_length > 50`)
	if err != nil || n != 1 {
		t.Fatalf("drill query: %d, %v", n, err)
	}
	if series, _, _ := e.store.Stats(); series != 1 {
		t.Errorf("%d series stored, want only the queried one", series)
	}
}
