package platform

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-project/vigil/internal/testenv"
	"github.com/vigil-project/vigil/probes/invoice/einvoice"
)

const (
	seller = `{"name":"Demo Seller Co","tax_id":"91350100M000100Y43"}`
	buyer  = `{"name":"Buyer Ltd","tax_id":"91440300708461136T"}`
)

func startDemo(t *testing.T, o DemoOptions) (*Demo, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	o.SyncInterval = 50 * time.Millisecond
	o.Logger = slog.New(slog.NewJSONHandler(logs, nil))
	d, err := StartDemo(ctx, o)
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
	return d, logs
}

// syncBuffer is a log sink the handlers write while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func call(t *testing.T, method, url, body string, into any) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if into != nil {
		if err := json.Unmarshal(b, into); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, url, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

func TestIssueValidation(t *testing.T) {
	d, _ := startDemo(t, DemoOptions{})
	for _, tc := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"bad seller check character", `{"seller":{"name":"S","tax_id":"91350100M000100Y44"},"buyer":` + buyer + `,"items":[{"name":"x","quantity":"1","unit_price":"1","tax_rate":"0.13"}]}`, 422, "seller.tax_id"},
		{"no items", `{"seller":` + seller + `,"buyer":` + buyer + `,"items":[]}`, 422, "items"},
		{"tax rate as percent", `{"seller":` + seller + `,"buyer":` + buyer + `,"items":[{"name":"x","quantity":"1","unit_price":"1","tax_rate":"13"}]}`, 422, "tax rate"},
		{"paper invoice type", `{"type":"04","seller":` + seller + `,"buyer":` + buyer + `,"items":[{"name":"x","quantity":"1","unit_price":"1","tax_rate":"0.13"}]}`, 422, "fully digital"},
		{"unknown field", `{"seler":{}}`, 400, "unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e apiError
			if got := call(t, "POST", d.URL["gateway"]+"/api/v1/invoices", tc.body, &e); got != tc.status || !strings.Contains(e.Error.Message, tc.code) {
				t.Fatalf("%d %+v, want %d with %q", got, e, tc.status, tc.code)
			}
		})
	}
}

func TestIssueReadVoidSync(t *testing.T) {
	d, logs := startDemo(t, DemoOptions{AmountBasis: "including_tax"})
	body := `{"seller":` + seller + `,"buyer":` + buyer + `,"items":[
		{"name":"a","quantity":"3","unit_price":"33.335","tax_rate":"0.06"},
		{"name":"b","quantity":"1.5","unit_price":"2.05","tax_rate":"0.13"}]}`
	var inv Invoice
	if st := call(t, "POST", d.URL["gateway"]+"/api/v1/invoices", body, &inv); st != 201 {
		t.Fatal(st)
	}
	if inv.Totals != (Totals{ExcludingTax: "103.09", Tax: "6.40", IncludingTax: "109.49"}) {
		t.Fatalf("totals %+v", inv.Totals)
	}
	if len(inv.Number) != 20 || !strings.HasPrefix(inv.Number[2:], "1110") || inv.Issuer != "primary" {
		t.Fatalf("number %s issuer %s", inv.Number, inv.Issuer)
	}
	p, err := einvoice.ParsePayload(inv.QR.Payload)
	if err != nil || p.Number != inv.Number || p.Amount.String() != "109.49" || p.DateString() != inv.IssuedAt.In(chinaTime).Format("20060102") {
		t.Fatalf("payload %q: %+v %v", inv.QR.Payload, p, err)
	}
	var back Invoice
	call(t, "GET", d.URL["gateway"]+inv.Links["self"], "", &back)
	if back.QR != inv.QR || back.Totals != inv.Totals {
		t.Fatalf("read back %+v", back)
	}
	for _, link := range []string{"qr_png", "pdf"} {
		resp, err := http.Get(d.URL["gateway"] + inv.Links[link])
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(b) < 100 {
			t.Fatalf("%s: %d, %d bytes", link, resp.StatusCode, len(b))
		}
	}
	// Synced upstream, then the void follows.
	waitVerify(t, d, inv.Number, "issued")
	if st := call(t, "POST", d.URL["gateway"]+inv.Links["void"], "", &back); st != 200 || back.Status != StatusVoid {
		t.Fatalf("void: %d %s", st, back.Status)
	}
	waitVerify(t, d, inv.Number, "void")
	if st := call(t, "POST", d.URL["gateway"]+inv.Links["void"], "", nil); st != http.StatusConflict {
		t.Fatalf("second void: %d", st)
	}
	if st := call(t, "GET", d.URL["gateway"]+"/api/v1/invoices/00000000000000000000", "", nil); st != 404 {
		t.Fatalf("unknown number: %d", st)
	}

	// Upstream down: sync failures are logged, with a code logscan can count.
	call(t, "POST", d.AdminURL["upstream"]+"/admin/faults", `{"error_rate":1}`, nil)
	call(t, "POST", d.URL["gateway"]+"/api/v1/invoices", body, &inv)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), `"msg":"sync failed"`) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), `"error_code":"UPSTREAM_5XX"`) {
		t.Fatalf("no sync failure logged:\n%s", logs.String())
	}
	call(t, "DELETE", d.AdminURL["upstream"]+"/admin/faults", "", nil)
	waitVerify(t, d, inv.Number, "issued")
}

func waitVerify(t *testing.T, d *Demo, number, status string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		var v VerifyResponse
		call(t, "GET", d.URL["upstream"]+"/api/v1/verify?number="+number, "", &v)
		if v.Found && v.Status == status {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("upstream never had %s as %s", number, status)
}

func TestGatewaySwitch(t *testing.T) {
	d, _ := startDemo(t, DemoOptions{})
	body := `{"seller":` + seller + `,"buyer":` + buyer + `,"items":[{"name":"x","quantity":"1","unit_price":"1","tax_rate":"0.13"}]}`
	issuer := func() string {
		resp, err := http.Post(d.URL["gateway"]+"/api/v1/invoices", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("X-Issuer")
	}
	if got := issuer(); got != "primary" {
		t.Fatal(got)
	}
	if st := call(t, "POST", d.AdminURL["gateway"]+"/admin/switch", `{"active":"nope"}`, nil); st != 400 {
		t.Fatal(st)
	}
	call(t, "POST", d.AdminURL["gateway"]+"/admin/switch", `{"active":"standby"}`, nil)
	if got := issuer(); got != "standby" {
		t.Fatal(got)
	}
	// The admin API is not on the public listener.
	if st := call(t, "POST", d.URL["gateway"]+"/admin/switch", `{"active":"primary"}`, nil); st == 200 {
		t.Fatal("admin switch served on the public port")
	}
}

func TestAdminListensOnLoopbackOnly(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:0"} {
		if ln, err := listenLoopback(addr); err == nil {
			ln.Close()
			t.Errorf("%s accepted", addr)
		}
	}
	ln, err := listenLoopback("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	d, _ := startDemo(t, DemoOptions{Host: "0.0.0.0"})
	for role, u := range d.AdminURL {
		host, _, _ := net.SplitHostPort(strings.TrimPrefix(u, "http://"))
		if host != "127.0.0.1" {
			t.Errorf("%s admin on %s", role, u)
		}
	}
}

func TestFaultsValidation(t *testing.T) {
	d, _ := startDemo(t, DemoOptions{})
	for _, body := range []string{`{"error_rate":2}`, `{"latency":"forever"}`, `{"qr_wrong":true}`} {
		if st := call(t, "POST", d.AdminURL["primary"]+"/admin/faults", body, nil); st != 400 {
			t.Errorf("%s: %d", body, st)
		}
	}
	var f Faults
	call(t, "POST", d.AdminURL["primary"]+"/admin/faults", `{"latency":"20ms","sync_drop_rate":0.5}`, &f)
	if time.Duration(f.Latency) != 20*time.Millisecond || f.SyncDropRate != 0.5 {
		t.Fatalf("%+v", f)
	}
}

// The issuers keep invoices in PostgreSQL when given a DSN.
func TestPostgresStorage(t *testing.T) {
	admin, err := sql.Open("pgx", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable")
	if err == nil {
		err = admin.Ping()
	}
	if err != nil {
		testenv.Missingf(t, "PostgreSQL", "not available on 127.0.0.1:5432: %v", err)
	}
	defer admin.Close()
	admin.Exec(`DROP DATABASE IF EXISTS vigil_invoice_test`)
	if _, err := admin.Exec(`CREATE DATABASE vigil_invoice_test`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Exec(`DROP DATABASE IF EXISTS vigil_invoice_test WITH (FORCE)`) })
	d, _ := startDemo(t, DemoOptions{IssuerDSN: "postgres://postgres@127.0.0.1:5432/vigil_invoice_test?sslmode=disable"})
	body := `{"seller":` + seller + `,"buyer":` + buyer + `,"items":[{"name":"x","quantity":"1","unit_price":"0.10","tax_rate":"0.13"}]}`
	var a, b Invoice
	call(t, "POST", d.URL["gateway"]+"/api/v1/invoices", body, &a)
	call(t, "POST", d.AdminURL["gateway"]+"/admin/switch", `{"active":"standby"}`, nil)
	call(t, "POST", d.URL["gateway"]+"/api/v1/invoices", body, &b)
	if a.Issuer != "primary" || b.Issuer != "standby" || a.Number == b.Number {
		t.Fatalf("%s/%s %s/%s", a.Issuer, a.Number, b.Issuer, b.Number)
	}
	// Shared database: the standby reads what the primary issued.
	var got Invoice
	if st := call(t, "GET", d.URL["standby"]+"/api/v1/invoices/"+a.Number, "", &got); st != 200 || got.Totals.IncludingTax != "0.11" {
		t.Fatalf("%d %+v", st, got)
	}
	waitVerify(t, d, a.Number, "issued")
	waitVerify(t, d, b.Number, "issued")
}

// TestPagerInbox: the demo's stand-in pager accepts webhook notifications
// and lists them; garbage is refused.
func TestPagerInbox(t *testing.T) {
	d, _ := startDemo(t, DemoOptions{})
	page := `{"version":"4","status":"firing","receiver":"oncall","alerts":[{"labels":{"alertname":"InvoiceQRFailing"}}]}`
	if st := call(t, "POST", d.AdminURL["gateway"]+"/admin/pages", page, nil); st != 200 {
		t.Fatal(st)
	}
	if st := call(t, "POST", d.AdminURL["gateway"]+"/admin/pages", `not json`, nil); st != 400 {
		t.Fatalf("garbage accepted: %d", st)
	}
	var got struct {
		Pages []struct {
			Payload struct{ Status, Receiver string }
		}
	}
	call(t, "GET", d.AdminURL["gateway"]+"/admin/pages", "", &got)
	if len(got.Pages) != 1 || got.Pages[0].Payload.Status != "firing" || got.Pages[0].Payload.Receiver != "oncall" {
		t.Fatalf("pages: %+v", got)
	}
}
