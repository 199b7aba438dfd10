package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/agent/notify/internal/notifytest"
	"github.com/vigil-project/vigil/internal/confkit"
)

func message(resolved bool) *notify.Message {
	t0 := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	created := t0.Add(5 * time.Minute)
	a := notify.Alert{
		Labels:       map[string]string{"alertname": "InvoiceQRFailing", "severity": "critical", "check": "invoice-qr"},
		Annotations:  map[string]string{"summary": "invoice QR wrong", "runbook_url": "https://runbooks.example/qr"},
		StartsAt:     t0,
		EndsAt:       created.Add(4 * time.Minute),
		GeneratorURL: "http://vigil.example:9877/api/v1/alerts?alertname=InvoiceQRFailing",
		Fingerprint:  "5347e5e1a3bf67ea",
		Check:        &notify.CheckInfo{Name: "invoice-qr", Type: "invoice_qr", Reason: "qr_mismatch"},
	}
	if resolved {
		a.EndsAt = created.Add(-time.Minute)
	}
	b := a
	b.Labels = map[string]string{"alertname": "InvoiceQRFailing", "severity": "critical", "check": "invoice-qr-standby"}
	b.Fingerprint = "0c1d2e3f4a5b6c7d"
	return &notify.Message{Receiver: "oncall", GroupKey: `{}:{alertname="InvoiceQRFailing"}`, GroupLabels: map[string]string{"alertname": "InvoiceQRFailing"},
		Alerts: []notify.Alert{a, b}, ExternalURL: "http://vigil.example:9877", Created: created}
}

// TestPayloadGolden compares the exact bodies with golden files written in
// Alertmanager's webhook format (version 4).
func TestPayloadGolden(t *testing.T) {
	for _, tc := range []struct {
		name      string
		resolved  bool
		maxAlerts int
	}{{"firing", false, 0}, {"resolved", true, 0}, {"truncated", false, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			var got []byte
			var hdr http.Header
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got, _ = io.ReadAll(r.Body)
				hdr = r.Header
			}))
			defer srv.Close()
			cfg := Config{URL: srv.URL, MaxAlerts: tc.maxAlerts, Headers: map[string]string{"X-Team": "ops"}, BearerToken: confkit.NewSecret("tok3n")}
			if err := New(cfg, srv.Client()).Notify(context.Background(), message(tc.resolved)); err != nil {
				t.Fatal(err)
			}
			if hdr.Get("Authorization") != "Bearer tok3n" || hdr.Get("X-Team") != "ops" || hdr.Get("Content-Type") != "application/json" {
				t.Errorf("headers %v", hdr)
			}
			var pretty bytes.Buffer
			json.Indent(&pretty, got, "", "  ")
			notifytest.Golden(t, filepath.Join("testdata", tc.name+".json"), append(pretty.Bytes(), '\n'))
		})
	}
}

func TestErrorsAreClassifiedAndRedacted(t *testing.T) {
	for _, tc := range []struct {
		status    int
		permanent bool
	}{{500, false}, {503, false}, {429, false}, {400, true}, {404, true}} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "nope", tc.status)
		}))
		err := New(Config{URLSecret: confkit.NewSecret(srv.URL + "/hook?token=s3cret")}, srv.Client()).Notify(context.Background(), message(false))
		srv.Close()
		if err == nil || notify.IsPermanent(err) != tc.permanent {
			t.Errorf("status %d: err %v, permanent %v", tc.status, err, notify.IsPermanent(err))
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error leaks the URL: %v", err)
		}
	}
	// Connection refused: retryable, URL not in the message.
	err := New(Config{URLSecret: confkit.NewSecret("http://127.0.0.1:1/hook?token=s3cret")}, http.DefaultClient).Notify(context.Background(), message(false))
	if err == nil || notify.IsPermanent(err) || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("refused: %v", err)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "url: set exactly one of url and url_secret"},
		{Config{URL: "http://a", URLSecret: confkit.NewSecret("http://b")}, "url: set exactly one"},
		{Config{URL: "http://a", MaxAlerts: -1}, "max_alerts: must not be negative"},
		{Config{URL: "http://a"}, ""},
	} {
		err := tc.cfg.Validate()
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
