package invoice

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vigil-project/vigil/examples/invoice-service/platform"
	"github.com/vigil-project/vigil/internal/confkit"
	"github.com/vigil-project/vigil/internal/testenv"
	"github.com/vigil-project/vigil/probes"
)

const (
	sellerID = "91350100M000100Y43"
	buyerID  = "91440300708461136T"
)

// startDemo runs the demo platform on free loopback ports for one test.
func startDemo(t testing.TB) *platform.Demo {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d, err := platform.StartDemo(ctx, platform.DemoOptions{DataDir: t.TempDir(), SyncInterval: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := d.Wait(); err != nil {
			t.Error(err)
		}
	})
	return d
}

func admin(t testing.TB, method, u string, body any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, u, rd)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s %s: %d %s", method, u, resp.StatusCode, b)
	}
}

func qrCheck(t testing.TB, base string, edit func(*QRConfig)) probes.Prober {
	t.Helper()
	fam, _ := probes.Lookup("invoice_qr")
	cfg := fam.NewConfig().(*QRConfig)
	cfg.URL = base
	cfg.Seller = Party{Name: "Demo Seller Co", TaxID: sellerID}
	cfg.Buyer.TaxID = buyerID
	if edit != nil {
		edit(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := fam.New(cfg, probes.Options{CheckName: "invoice_qr"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func syncCheck(t testing.TB, d *platform.Demo, edit func(*SyncConfig)) probes.Prober {
	t.Helper()
	fam, _ := probes.Lookup("invoice_sync")
	cfg := fam.NewConfig().(*SyncConfig)
	cfg.Source.API = &APISource{HTTPClientConfig: HTTPClientConfig{URL: d.URL["primary"]}}
	cfg.Upstream.URL = d.URL["upstream"]
	cfg.Grace = 0
	if edit != nil {
		edit(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := fam.New(cfg, probes.Options{CheckName: "invoice_sync"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func run(t testing.TB, p probes.Prober, timeout time.Duration) probes.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return p.Probe(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// issue creates an ordinary invoice through the gateway, as a client would.
func issue(t testing.TB, base string) string {
	t.Helper()
	body := `{"seller":{"name":"Demo Seller Co","tax_id":"` + sellerID + `"},"buyer":{"name":"Buyer Ltd","tax_id":"` + buyerID + `"},
		"items":[{"name":"consulting","quantity":"2","unit_price":"150.00","tax_rate":"0.06"}]}`
	resp, err := http.Post(base+"/api/v1/invoices", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var inv platform.Invoice
	if err := json.NewDecoder(resp.Body).Decode(&inv); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("issue: %d %v", resp.StatusCode, err)
	}
	return inv.Number
}

// settle waits until the issuer's sync worker has nothing pending.
func settle(t testing.TB, d *platform.Demo, role string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(d.AdminURL[role] + "/admin/sync")
		if err == nil {
			var s struct{ Pending int }
			json.NewDecoder(resp.Body).Decode(&s)
			resp.Body.Close()
			if s.Pending == 0 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("sync did not settle")
}

func TestInvoiceQRFaults(t *testing.T) {
	d := startDemo(t)
	check := qrCheck(t, d.URL["gateway"], func(c *QRConfig) { c.Formats = []string{"png", "pdf", "ofd", "xml"} })
	if r := run(t, check, 10*time.Second); !r.Success {
		t.Fatalf("healthy platform: %s: %s", r.Reason, r.Message)
	}
	for _, tc := range []struct {
		name    string
		role    string
		faults  platform.Faults
		reason  probes.Reason
		message string // must appear in the message
	}{
		{"error rate", "primary", platform.Faults{ErrorRate: 1}, probes.ReasonIssueError, "503"},
		{"latency beyond the timeout", "primary", platform.Faults{Latency: platform.Duration(3 * time.Second)}, probes.ReasonTimeout, "issue"},
		{"gateway errors", "gateway", platform.Faults{ErrorRate: 1}, probes.ReasonIssueError, "SERVICE_UNAVAILABLE"},
		{"wrong amount", "primary", platform.Faults{QRWrongAmount: true}, probes.ReasonQRMismatch, "field amount"},
		{"wrong date", "primary", platform.Faults{QRWrongDate: true}, probes.ReasonQRMismatch, "field date"},
		{"wrong number", "primary", platform.Faults{QRWrongNumber: true}, probes.ReasonQRMismatch, "field number"},
		{"unreadable image", "primary", platform.Faults{QRUnreadable: true}, probes.ReasonQRUnreadable, "no readable QR code"},
		{"PDF without QR", "primary", platform.Faults{PDFWithoutQR: true}, probes.ReasonPDFMissingQR, "no images"},
		{"OFD without QR", "primary", platform.Faults{OFDMissingQR: true}, probes.ReasonOFDMissingQR, "OFD of"},
		{"XML total off by a fen", "primary", platform.Faults{XMLAmountMismatch: true}, probes.ReasonDocumentMismatch, "field total: the XML says 0.12, expected 0.11"},
		// A real shape (a space for the empty code and check code): passes.
		{"space-filled QR fields", "primary", platform.Faults{QRSpaceFilled: true}, probes.ReasonNone, "verified in PNG, PDF, OFD and XML"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			admin(t, http.MethodPost, d.AdminURL[tc.role]+"/admin/faults", tc.faults)
			// The latency fault must hit the 2s bound; the others get time
			// enough for four documents under -race on a loaded machine.
			timeout := 15 * time.Second
			if tc.faults.Latency > 0 {
				timeout = 2 * time.Second
			}
			r := run(t, check, timeout)
			admin(t, http.MethodDelete, d.AdminURL[tc.role]+"/admin/faults", nil)
			if r.Success != (tc.reason == probes.ReasonNone) || r.Reason != tc.reason || !strings.Contains(r.Message, tc.message) {
				t.Errorf("got %v %s: %q; want %s containing %q", r.Success, r.Reason, r.Message, tc.reason, tc.message)
			}
			if r := run(t, check, 10*time.Second); !r.Success {
				t.Errorf("after clearing: %s: %s", r.Reason, r.Message)
			}
		})
	}
	t.Run("failover keeps the check passing", func(t *testing.T) {
		admin(t, http.MethodPost, d.AdminURL["primary"]+"/admin/faults", platform.Faults{QRWrongAmount: true})
		defer admin(t, http.MethodDelete, d.AdminURL["primary"]+"/admin/faults", nil)
		admin(t, http.MethodPost, d.AdminURL["gateway"]+"/admin/switch", map[string]string{"active": "standby"})
		defer admin(t, http.MethodPost, d.AdminURL["gateway"]+"/admin/switch", map[string]string{"active": "primary"})
		r := run(t, check, 10*time.Second)
		if !r.Success || !strings.Contains(r.Message, "1120") { // standby numbers: region 11, node 2
			t.Fatalf("on the standby: %v %s %s", r.Success, r.Reason, r.Message)
		}
	})
}

// tamper sits between the check and the platform and breaks one answer.
func tamper(t testing.TB, target string, mode string) string {
	t.Helper()
	u, _ := url.Parse(target)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		req := resp.Request
		switch {
		case mode == "readback" && req.Method == http.MethodGet && strings.Count(req.URL.Path, "/") == 4:
			b, _ := io.ReadAll(resp.Body)
			b = bytes.Replace(b, []byte(`"including_tax":"0.11"`), []byte(`"including_tax":"0.12"`), 1)
			resp.Body = io.NopCloser(bytes.NewReader(b))
			resp.ContentLength = int64(len(b))
			resp.Header.Del("Content-Length")
		case mode == "void" && strings.HasSuffix(req.URL.Path, "/void"):
			resp.StatusCode = http.StatusInternalServerError
		}
		return nil
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestInvoiceQRAdapterFailures(t *testing.T) {
	t.Parallel()
	d := startDemo(t)
	for _, tc := range []struct {
		name   string
		base   string
		edit   func(*QRConfig)
		reason probes.Reason
		msg    string
	}{
		{"QR path answers 404", d.URL["gateway"], func(c *QRConfig) { c.API.QRPath = "/api/v1/invoices/{number}/qr.gif" }, probes.ReasonQRMissing, "404"},
		{"read-back differs", tamper(t, d.URL["gateway"], "readback"), nil, probes.ReasonReadbackMismatch, "total_including_tax"},
		{"void refused", tamper(t, d.URL["gateway"], "void"), nil, probes.ReasonVoidFailed, "HTTP 500"},
		{"amount basis wrong", d.URL["gateway"], func(c *QRConfig) { c.QRAmountBasis = "excluding_tax" }, probes.ReasonQRMismatch, "field amount: the QR says 0.11, expected 0.10"},
		{"nothing listening", "http://127.0.0.1:1", nil, probes.ReasonIssueError, "refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, qrCheck(t, tc.base, tc.edit), 20*time.Second) // generous: -race on a loaded machine
			if r.Success || r.Reason != tc.reason || !strings.Contains(r.Message, tc.msg) {
				t.Fatalf("got %v %s: %q; want %s containing %q", r.Success, r.Reason, r.Message, tc.reason, tc.msg)
			}
		})
	}
}

func TestInvoiceQRLeavesNoLiveInvoices(t *testing.T) {
	t.Parallel()
	d := startDemo(t)
	check := qrCheck(t, d.URL["gateway"], nil)
	for i := 0; i < 3; i++ {
		if r := run(t, check, 10*time.Second); !r.Success {
			t.Fatal(r.Reason, r.Message)
		}
	}
	// A failed run voids its invoice too.
	admin(t, http.MethodPost, d.AdminURL["primary"]+"/admin/faults", platform.Faults{QRWrongDate: true})
	if r := run(t, check, 10*time.Second); r.Reason != probes.ReasonQRMismatch {
		t.Fatal(r.Reason, r.Message)
	}
	resp, err := http.Get(d.URL["primary"] + "/api/v1/invoices")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct{ Invoices []platform.Invoice }
	json.NewDecoder(resp.Body).Decode(&list)
	if len(list.Invoices) != 4 {
		t.Fatalf("%d invoices, want 4", len(list.Invoices))
	}
	for _, inv := range list.Invoices {
		if inv.Status != platform.StatusVoid || inv.Buyer.Name != "VIGIL PROBE (not a sale)" {
			t.Errorf("invoice %s: status %s buyer %q", inv.Number, inv.Status, inv.Buyer.Name)
		}
	}
}

func TestInvoiceSync(t *testing.T) {
	d := startDemo(t)
	check := syncCheck(t, d, nil)
	for i := 0; i < 3; i++ {
		issue(t, d.URL["gateway"])
	}
	settle(t, d, "primary")
	r := run(t, check, 5*time.Second)
	if !r.Success || value(r, "vigil_invoice_sync_checked") != 3 {
		t.Fatalf("healthy: %v %s %s %v", r.Success, r.Reason, r.Message, r.Values)
	}

	t.Run("stalled sync", func(t *testing.T) {
		admin(t, http.MethodPost, d.AdminURL["primary"]+"/admin/faults", platform.Faults{SyncStalled: true})
		n := issue(t, d.URL["gateway"])
		time.Sleep(300 * time.Millisecond)
		r := run(t, check, 5*time.Second)
		if r.Reason != probes.ReasonInvoicesMissingUpstream || !strings.Contains(r.Message, n) || value(r, "vigil_invoice_sync_missing") != 1 ||
			value(r, "vigil_invoice_sync_lag_seconds") < 0.3 {
			t.Fatalf("got %s %q %v", r.Reason, r.Message, r.Values)
		}
		admin(t, http.MethodDelete, d.AdminURL["primary"]+"/admin/faults", nil)
		settle(t, d, "primary")
		if r := run(t, check, 5*time.Second); !r.Success {
			t.Fatalf("after the stall: %s %s", r.Reason, r.Message)
		}
	})

	t.Run("silently dropped syncs, then resync", func(t *testing.T) {
		admin(t, http.MethodPost, d.AdminURL["primary"]+"/admin/faults", platform.Faults{SyncDropRate: 1})
		var dropped []string
		for i := 0; i < 12; i++ {
			dropped = append(dropped, issue(t, d.URL["gateway"]))
		}
		settle(t, d, "primary") // the issuer believes all is synced
		r := run(t, check, 5*time.Second)
		if r.Reason != probes.ReasonInvoicesMissingUpstream || value(r, "vigil_invoice_sync_missing") != 12 {
			t.Fatalf("got %s %q", r.Reason, r.Message)
		}
		// At most ten numbers, never more.
		for _, n := range dropped[:10] {
			if !strings.Contains(r.Message, n) {
				t.Errorf("message lacks %s: %s", n, r.Message)
			}
		}
		if !strings.Contains(r.Message, "and 2 more") {
			t.Errorf("message: %s", r.Message)
		}
		admin(t, http.MethodDelete, d.AdminURL["primary"]+"/admin/faults", nil)
		if r := run(t, check, 5*time.Second); r.Success {
			t.Fatal("clearing the fault alone cannot bring dropped invoices back")
		}
		admin(t, http.MethodPost, d.AdminURL["primary"]+"/admin/resync", nil)
		if r := run(t, check, 5*time.Second); !r.Success {
			t.Fatalf("after resync: %s %s", r.Reason, r.Message)
		}
	})

	t.Run("upstream holds a different amount", func(t *testing.T) {
		n := issue(t, d.URL["gateway"])
		settle(t, d, "primary")
		body := platform.UpstreamInvoice{Number: n, Type: "32", AmountExcludingTax: "300.00", Tax: "18.00", AmountIncludingTax: "381.00",
			Date: time.Now().In(chinaTime).Format("20060102"), Status: "issued"}
		admin(t, http.MethodPost, d.URL["upstream"]+"/api/v1/invoices", body)
		r := run(t, check, 5*time.Second)
		if r.Reason != probes.ReasonUpstreamMismatch || !strings.Contains(r.Message, n+": amount upstream \"381.00\", local 318.00") {
			t.Fatalf("got %s %q", r.Reason, r.Message)
		}
		admin(t, http.MethodPost, d.AdminURL["primary"]+"/admin/resync", nil)
	})

	t.Run("upstream unreachable", func(t *testing.T) {
		admin(t, http.MethodPost, d.AdminURL["upstream"]+"/admin/faults", platform.Faults{ErrorRate: 1})
		r := run(t, check, 5*time.Second)
		admin(t, http.MethodDelete, d.AdminURL["upstream"]+"/admin/faults", nil)
		if r.Reason != probes.ReasonUpstreamUnreachable || !strings.Contains(r.Message, "503") {
			t.Fatalf("got %s %q", r.Reason, r.Message)
		}
		if r := run(t, check, 5*time.Second); !r.Success {
			t.Fatalf("after clearing: %s %s", r.Reason, r.Message)
		}
	})

	t.Run("source unreachable", func(t *testing.T) {
		p := syncCheck(t, d, func(c *SyncConfig) { c.Source.API.URL = "http://127.0.0.1:1" })
		if r := run(t, p, 5*time.Second); r.Reason != probes.ReasonSourceError {
			t.Fatalf("got %s %q", r.Reason, r.Message)
		}
	})

	t.Run("sampling", func(t *testing.T) {
		p := syncCheck(t, d, func(c *SyncConfig) { c.MaxInvoices = 5 })
		r := run(t, p, 5*time.Second)
		if !r.Success || value(r, "vigil_invoice_sync_checked") != 5 || value(r, "vigil_invoice_sync_window_invoices") < 17 {
			t.Fatalf("got %v %s %v", r.Success, r.Message, r.Values)
		}
	})

	t.Run("grace skips fresh invoices", func(t *testing.T) {
		admin(t, http.MethodPost, d.AdminURL["primary"]+"/admin/faults", platform.Faults{SyncStalled: true})
		defer admin(t, http.MethodDelete, d.AdminURL["primary"]+"/admin/faults", nil)
		issue(t, d.URL["gateway"])
		p := syncCheck(t, d, func(c *SyncConfig) { c.Grace.Set("1m") })
		if r := run(t, p, 5*time.Second); !r.Success {
			t.Fatalf("an invoice younger than the grace period counted: %s", r.Message)
		}
	})
}

func TestInvoiceSyncFromSQLite(t *testing.T) {
	t.Parallel()
	d := startDemo(t)
	dir := d.DataDir
	n := issue(t, d.URL["gateway"])
	settle(t, d, "primary")
	p := syncCheck(t, d, func(c *SyncConfig) {
		c.Source.API = nil
		c.Source.SQL = &SQLSource{Driver: "sqlite", Path: dir + "/primary.db", Query: "SELECT number, total, issued_at FROM invoices WHERE status = 'issued'"}
	})
	if r := run(t, p, 5*time.Second); !r.Success || value(r, "vigil_invoice_sync_checked") != 1 {
		t.Fatalf("%v %s %s", r.Success, r.Reason, r.Message)
	}
	admin(t, http.MethodPost, d.AdminURL["primary"]+"/admin/faults", platform.Faults{SyncDropRate: 1})
	m := issue(t, d.URL["gateway"])
	settle(t, d, "primary")
	r := run(t, p, 5*time.Second)
	if r.Reason != probes.ReasonInvoicesMissingUpstream || !strings.Contains(r.Message, m) || strings.Contains(r.Message, n) {
		t.Fatalf("%s %s", r.Reason, r.Message)
	}
}

func value(r probes.Result, name string) float64 {
	for _, v := range r.Values {
		if v.Name == name {
			return v.Value
		}
	}
	return -1
}

// The SQL source against PostgreSQL: both demo issuers keep their invoices
// in one database, and the check reads them with the pgx driver.
func TestInvoiceSyncFromPostgres(t *testing.T) {
	adminDB, err := sql.Open("pgx", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
	if err == nil {
		err = adminDB.Ping()
	}
	if err != nil {
		testenv.Missingf(t, "PostgreSQL", "not available on 127.0.0.1:5432: %v", err)
	}
	defer adminDB.Close()
	adminDB.Exec(`DROP DATABASE IF EXISTS vigil_invoice_sync_test WITH (FORCE)`)
	if _, err := adminDB.Exec(`CREATE DATABASE vigil_invoice_sync_test`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { adminDB.Exec(`DROP DATABASE IF EXISTS vigil_invoice_sync_test WITH (FORCE)`) })
	dsn := "postgres://postgres@127.0.0.1:5432/vigil_invoice_sync_test?sslmode=disable"

	ctx, cancel := context.WithCancel(context.Background())
	d, err := platform.StartDemo(ctx, platform.DemoOptions{DataDir: t.TempDir(), IssuerDSN: dsn, SyncInterval: 50 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); d.Wait() })

	t.Setenv("TEST_INVOICE_DSN", dsn)
	var secret confkit.Secret
	if err := yaml.Unmarshal([]byte("${TEST_INVOICE_DSN}"), &secret); err != nil {
		t.Fatal(err)
	}
	p := syncCheck(t, d, func(c *SyncConfig) {
		c.Source.API = nil
		c.Source.SQL = &SQLSource{Driver: "postgres", DSN: secret,
			Query: "SELECT number, total, issued_at FROM invoices WHERE status = 'issued'"}
	})
	admin(t, http.MethodPost, d.AdminURL["primary"]+"/admin/faults", platform.Faults{SyncDropRate: 1})
	n := issue(t, d.URL["gateway"])
	settle(t, d, "primary")
	r := run(t, p, 5*time.Second)
	if r.Reason != probes.ReasonInvoicesMissingUpstream || !strings.Contains(r.Message, n) {
		t.Fatalf("%s %s", r.Reason, r.Message)
	}
	admin(t, http.MethodDelete, d.AdminURL["primary"]+"/admin/faults", nil)
	admin(t, http.MethodPost, d.AdminURL["primary"]+"/admin/resync", nil)
	if r := run(t, p, 5*time.Second); !r.Success || value(r, "vigil_invoice_sync_checked") != 1 {
		t.Fatalf("after resync: %v %s %s", r.Success, r.Reason, r.Message)
	}
	// A wrong query is a source error that names the problem, not the DSN.
	bad := syncCheck(t, d, func(c *SyncConfig) {
		c.Source.API = nil
		c.Source.SQL = &SQLSource{Driver: "postgres", DSN: secret, Query: "SELECT number FROM invoices"}
	})
	if r := run(t, bad, 5*time.Second); r.Reason != probes.ReasonSourceError || !strings.Contains(r.Message, "1 columns") {
		t.Fatalf("%s %s", r.Reason, r.Message)
	}
}

// TestQRConfigFormats: formats and the amount basis are validated with the
// entry named.
func TestQRConfigFormats(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		formats []string
		basis   string
		want    string // "" valid
	}{
		{[]string{"png", "pdf", "ofd", "xml"}, "by_type", ""},
		{[]string{"ofd"}, "including_tax", ""},
		{[]string{"png", "docx"}, "by_type", `formats.1: unknown format "docx" (png, pdf, ofd, xml)`},
		{[]string{"pdf", "pdf"}, "by_type", `formats.1: "pdf" is listed twice`},
		{[]string{"xml"}, "by_type", "formats: needs a format with a QR code (png, pdf or ofd)"},
		{nil, "tax_free", `qr_amount_basis: must be by_type, auto, excluding_tax or including_tax, got "tax_free"`},
	} {
		fam, _ := probes.Lookup("invoice_qr")
		cfg := fam.NewConfig().(*QRConfig)
		cfg.URL, cfg.Seller = "http://127.0.0.1:1", Party{Name: "Demo Seller Co", TaxID: sellerID}
		cfg.Formats, cfg.QRAmountBasis = tc.formats, tc.basis
		err := cfg.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.formats, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v %s: error %v, want %q", tc.formats, tc.basis, err, tc.want)
		}
	}
}

// TestQRExpectedFromRequest: on a mismatch, qr_expected is the payload
// built from the request (the number the service gave, the amount on the
// type's basis, the issue date), not the service's own payload.
func TestQRExpectedFromRequest(t *testing.T) {
	t.Parallel()
	d := startDemo(t)
	admin(t, http.MethodPost, d.AdminURL["primary"]+"/admin/faults", platform.Faults{QRWrongAmount: true})
	r := run(t, qrCheck(t, d.URL["gateway"], nil), 10*time.Second)
	exp, _ := r.Diagnostics["qr_expected"].(string)
	dec, _ := r.Diagnostics["qr_decoded"].(string)
	parts := strings.Split(exp, ",")
	if r.Reason != probes.ReasonQRMismatch || len(parts) != 8 || parts[1] != "32" || parts[4] != "0.11" || parts[7] != "????" || exp == dec {
		t.Errorf("reason %s, qr_expected %q, qr_decoded %q", r.Reason, exp, dec)
	}
}
