package platform

import (
	"archive/zip"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"encoding/xml"
	"image"
	_ "image/png"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-project/vigil/internal/testenv"
	"github.com/vigil-project/vigil/probes/invoice"
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
	for _, link := range []string{"qr_png", "pdf", "ofd", "xml"} {
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
	for _, body := range []string{`{"error_rate":2}`, `{"latency":"forever"}`, `{"qr_wrong":true}`,
		`{"ofd_missing_qr":1}`, `{"xml_amount_mismatch":"yes"}`, `{"qr_space_filled":null,"ofd_qr_missing":true}`} {
		if st := call(t, "POST", d.AdminURL["primary"]+"/admin/faults", body, nil); st != 400 {
			t.Errorf("%s: %d", body, st)
		}
	}
	var f Faults
	call(t, "POST", d.AdminURL["primary"]+"/admin/faults", `{"latency":"20ms","sync_drop_rate":0.5}`, &f)
	if time.Duration(f.Latency) != 20*time.Millisecond || f.SyncDropRate != 0.5 {
		t.Fatalf("%+v", f)
	}
	f = Faults{}
	call(t, "POST", d.AdminURL["primary"]+"/admin/faults", `{"ofd_missing_qr":true,"xml_amount_mismatch":true,"qr_space_filled":true}`, &f)
	if f != (Faults{OFDMissingQR: true, XMLAmountMismatch: true, QRSpaceFilled: true}) {
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

// issue posts an invoice of the given type to the gateway.
func issue(t *testing.T, d *Demo, typ, remark string) Invoice {
	t.Helper()
	body := `{"type":"` + typ + `","remark":"` + remark + `","seller":` + seller + `,"buyer":` + buyer + `,"items":[
		{"name":"*信息技术服务*咨询","quantity":"3","unit_price":"33.335","tax_rate":"0.06"},
		{"name":"b","quantity":"1.5","unit_price":"2.05","tax_rate":"0.13"}]}`
	var inv Invoice
	if st := call(t, "POST", d.URL["gateway"]+"/api/v1/invoices", body, &inv); st != 201 {
		t.Fatalf("issue: %d", st)
	}
	return inv
}

// download fetches one of an invoice's links and checks its content type.
func download(t *testing.T, d *Demo, inv Invoice, link, contentType string) []byte {
	t.Helper()
	resp, err := http.Get(d.URL["gateway"] + inv.Links[link])
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), contentType) {
		t.Fatalf("%s: %d %s: %.200s", link, resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	return b
}

// The QR amount follows the invoice type unless the issuer is told otherwise.
func TestQRAmountBasis(t *testing.T) {
	for _, tc := range []struct{ typ, configured, want string }{
		{"31", "auto", BasisIncludingTax},
		{"32", "auto", BasisIncludingTax},
		{"32", "", BasisIncludingTax},
		{"01", "auto", BasisExcludingTax},
		{"04", "auto", BasisExcludingTax},
		{"08", "auto", BasisExcludingTax},
		{"10", "auto", BasisExcludingTax},
		{"20", "auto", BasisExcludingTax},
		{"32", BasisExcludingTax, BasisExcludingTax},
		{"10", BasisIncludingTax, BasisIncludingTax},
	} {
		if got := qrAmountBasis(tc.typ, tc.configured); got != tc.want {
			t.Errorf("type %s, %q: %s, want %s", tc.typ, tc.configured, got, tc.want)
		}
	}
	// The platform issues only 31 and 32; the issued payloads carry the
	// tax-inclusive total by default and the amount before tax on request.
	auto, _ := startDemo(t, DemoOptions{})
	excl, _ := startDemo(t, DemoOptions{AmountBasis: BasisExcludingTax})
	for _, tc := range []struct {
		name, typ string
		d         *Demo
		basis     string
	}{
		{"31 auto", "31", auto, BasisIncludingTax},
		{"32 auto", "32", auto, BasisIncludingTax},
		{"32 excluding_tax", "32", excl, BasisExcludingTax},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv := issue(t, tc.d, tc.typ, "")
			p, err := einvoice.ParsePayload(inv.QR.Payload)
			want := map[string]string{BasisIncludingTax: inv.Totals.IncludingTax, BasisExcludingTax: inv.Totals.ExcludingTax}[tc.basis]
			if err != nil || p.Type != tc.typ || p.Amount.String() != want || inv.QR.AmountBasis != tc.basis {
				t.Fatalf("payload %q basis %s (%v), want amount %s basis %s", inv.QR.Payload, inv.QR.AmountBasis, err, want, tc.basis)
			}
		})
	}
	if _, err := NewIssuer(context.Background(), IssuerOptions{Node: 1, Region: "11", AmountBasis: "gross"}); err == nil {
		t.Error("amount basis gross accepted")
	}
}

// ofdPackage is an unpacked OFD file.
type ofdPackage struct {
	order []string
	files map[string][]byte
}

func openOFD(t *testing.T, b []byte) ofdPackage {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("OFD is not a zip: %v", err)
	}
	p := ofdPackage{files: map[string][]byte{}}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		p.files[f.Name], _ = io.ReadAll(rc)
		rc.Close()
		p.order = append(p.order, f.Name)
	}
	return p
}

func (p ofdPackage) xml(t *testing.T, name string, into any) {
	t.Helper()
	b, ok := p.files[name]
	if !ok {
		t.Fatalf("no %s in %v", name, p.order)
	}
	if err := xml.Unmarshal(b, into); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// ofdView reads an OFD the way a reader of real invoice OFDs would: from
// OFD.xml to the document, its page, resources and custom tags.
type ofdView struct {
	texts  map[string]string   // TextObject ID → text
	images []string            // QR image files the page draws
	tags   map[string][]string // tag path (Buyer/BuyerTaxID) → texts it points at, joined per occurrence
	custom map[string]string   // OFD.xml CustomData
}

// tagNode is an element of a custom tag file: ObjectRefs to page objects
// and nested tags.
type tagNode struct {
	XMLName xml.Name
	Refs    []string  `xml:"ObjectRef"`
	Kids    []tagNode `xml:",any"`
}

func readOFD(t *testing.T, p ofdPackage) ofdView {
	t.Helper()
	var root struct {
		DocBody struct {
			DocRoot string
			DocInfo struct {
				CustomData []struct {
					Name  string `xml:"Name,attr"`
					Value string `xml:",chardata"`
				} `xml:"CustomDatas>CustomData"`
			}
		}
	}
	p.xml(t, "OFD.xml", &root)
	dir := path.Dir(root.DocBody.DocRoot)
	var doc struct {
		DocumentRes string `xml:"CommonData>DocumentRes"`
		Pages       []struct {
			BaseLoc string `xml:"BaseLoc,attr"`
		} `xml:"Pages>Page"`
		CustomTags string
	}
	p.xml(t, root.DocBody.DocRoot, &doc)
	var res struct {
		BaseLoc string `xml:"BaseLoc,attr"`
		Media   []struct {
			ID   string `xml:"ID,attr"`
			File string `xml:"MediaFile"`
		} `xml:"MultiMedias>MultiMedia"`
	}
	p.xml(t, path.Join(dir, doc.DocumentRes), &res)
	if len(doc.Pages) != 1 {
		t.Fatalf("%d pages", len(doc.Pages))
	}
	var page struct {
		Images []struct {
			Resource string `xml:"ResourceID,attr"`
		} `xml:"Content>Layer>ImageObject"`
		Texts []struct {
			ID   string `xml:"ID,attr"`
			Text string `xml:"TextCode"`
		} `xml:"Content>Layer>TextObject"`
	}
	p.xml(t, path.Join(dir, doc.Pages[0].BaseLoc), &page)
	v := ofdView{texts: map[string]string{}, tags: map[string][]string{}, custom: map[string]string{}}
	for _, c := range root.DocBody.DocInfo.CustomData {
		v.custom[c.Name] = c.Value
	}
	for _, o := range page.Texts {
		v.texts[o.ID] = o.Text
	}
	for _, img := range page.Images {
		for _, m := range res.Media {
			if m.ID == img.Resource {
				v.images = append(v.images, path.Join(dir, res.BaseLoc, m.File))
			}
		}
	}
	var index struct {
		Tags []string `xml:"CustomTag>FileLoc"`
	}
	p.xml(t, path.Join(dir, doc.CustomTags), &index)
	var walk func(prefix string, n tagNode)
	walk = func(prefix string, n tagNode) {
		for _, k := range n.Kids {
			key := prefix + k.XMLName.Local
			if len(k.Refs) > 0 || len(k.Kids) == 0 {
				var s strings.Builder
				for _, id := range k.Refs {
					s.WriteString(v.texts[id])
				}
				v.tags[key] = append(v.tags[key], s.String())
			}
			walk(key+"/", k)
		}
	}
	for _, loc := range index.Tags {
		var root tagNode
		p.xml(t, path.Join(dir, path.Dir(doc.CustomTags), loc), &root)
		walk("", root)
	}
	return v
}

func TestOFD(t *testing.T) {
	d, _ := startDemo(t, DemoOptions{})
	inv := issue(t, d, "31", "备注 & <测试>")
	p := openOFD(t, download(t, d, inv, "ofd", "application/ofd"))
	if p.order[0] != "OFD.xml" {
		t.Errorf("first entry %s, want OFD.xml", p.order[0])
	}
	v := readOFD(t, p)
	if len(v.images) != 1 {
		t.Fatalf("QR images drawn: %v", v.images)
	}
	img, format, err := image.Decode(bytes.NewReader(p.files[v.images[0]]))
	if err != nil || format != "png" {
		t.Fatalf("%s: %s %v", v.images[0], format, err)
	}
	if payload, err := invoice.DecodeQR(img); err != nil || payload != inv.QR.Payload {
		t.Fatalf("QR in the OFD: %q %v, want %q", payload, err, inv.QR.Payload)
	}
	date := inv.IssuedAt.In(chinaTime).Format("2006年01月02日")
	for _, tc := range []struct{ tag, want string }{
		{"InvoiceNo", inv.Number},
		{"IssueDate", date},
		{"Buyer/BuyerName", "Buyer Ltd"},
		{"Buyer/BuyerTaxID", "91440300708461136T"},
		{"Seller/SellerName", "Demo Seller Co"},
		{"Seller/SellerTaxID", "91350100M000100Y43"},
		{"TaxExclusiveTotalAmount", "¥" + inv.Totals.ExcludingTax},
		{"TaxTotalAmount", "¥" + inv.Totals.Tax},
		{"TaxInclusiveTotalAmount", "¥" + inv.Totals.IncludingTax},
		{"Note", inv.Remark},
		{"Item", "*信息技术服务*咨询,b"},
		{"Amount", inv.Items[0].Amount + "," + inv.Items[1].Amount},
		{"TaxScheme", "6%,13%"},
	} {
		if got := strings.Join(v.tags[tc.tag], ","); got != tc.want {
			t.Errorf("tag %s: %q, want %q", tc.tag, got, tc.want)
		}
	}
	for name, want := range map[string]string{"发票号码": inv.Number, "开票日期": date, "合计金额": inv.Totals.ExcludingTax,
		"合计税额": inv.Totals.Tax, "购买方纳税人识别号": inv.Buyer.TaxID, "销售方纳税人识别号": inv.Seller.TaxID} {
		if v.custom[name] != want {
			t.Errorf("CustomData %s: %q, want %q", name, v.custom[name], want)
		}
	}
	if _, ok := p.files["Doc_0/Signs/Signatures.xml"]; ok {
		t.Error("the demo OFD claims a signature")
	}
}

// xmlFile is what a reader of 数电 XML invoices takes from one.
type xmlFile struct {
	xmlHead
	Items []struct {
		Name, Amount, ComTaxAm, TotaltaxIncludedAmount string
	} `xml:"EInvoiceData>IssuItemInformation"`
}

type xmlHead struct {
	Number    string `xml:"TaxSupervisionInfo>InvoiceNumber"`
	IssueTime string `xml:"TaxSupervisionInfo>IssueTime"`
	Bureau    string `xml:"TaxSupervisionInfo>TaxBureauCode"`
	SellerID  string `xml:"EInvoiceData>SellerInformation>SellerIdNum"`
	BuyerID   string `xml:"EInvoiceData>BuyerInformation>BuyerIdNum"`
	Excl      string `xml:"EInvoiceData>BasicInformation>TotalAmWithoutTax"`
	Tax       string `xml:"EInvoiceData>BasicInformation>TotalTaxAm"`
	Incl      string `xml:"EInvoiceData>BasicInformation>TotalTax-includedAmount"`
	Requested string `xml:"EInvoiceData>BasicInformation>RequestTime"`
	Remark    string `xml:"EInvoiceData>AdditionalInformation>Remark"`
}

func parseXMLFile(t *testing.T, b []byte) xmlFile {
	t.Helper()
	var x xmlFile
	if err := xml.Unmarshal(b, &x); err != nil {
		t.Fatalf("XML invoice: %v\n%s", err, b)
	}
	return x
}

func TestXMLInvoice(t *testing.T) {
	d, _ := startDemo(t, DemoOptions{})
	for _, typ := range []string{"31", "32"} {
		t.Run(typ, func(t *testing.T) {
			inv := issue(t, d, typ, "remark")
			b := download(t, d, inv, "xml", "application/xml")
			x := parseXMLFile(t, b)
			issued := inv.IssuedAt.In(chinaTime)
			want := xmlHead{Number: inv.Number, IssueTime: issued.Format("2006-01-02"), Bureau: "11100000000",
				SellerID: inv.Seller.TaxID, BuyerID: inv.Buyer.TaxID, Excl: inv.Totals.ExcludingTax, Tax: inv.Totals.Tax,
				Incl: inv.Totals.IncludingTax, Requested: issued.Format("2006-01-02 15:04:05"), Remark: "remark"}
			if x.xmlHead != want {
				t.Fatalf("got  %+v\nwant %+v", x.xmlHead, want)
			}
			items := x.Items
			var excl, tax, incl einvoice.Fen
			for _, it := range items {
				a, _ := einvoice.ParseFen(it.Amount)
				c, _ := einvoice.ParseFen(it.ComTaxAm)
				s, _ := einvoice.ParseFen(it.TotaltaxIncludedAmount)
				if a+c != s {
					t.Errorf("item %+v: amount and tax do not add up", it)
				}
				excl, tax, incl = excl+a, tax+c, incl+s
			}
			if len(items) != 2 || excl.String() != inv.Totals.ExcludingTax || tax.String() != inv.Totals.Tax || incl.String() != inv.Totals.IncludingTax {
				t.Fatalf("items %+v do not sum to %+v", items, inv.Totals)
			}
			label := map[string]string{"31": "<LabelCode>01</LabelCode>", "32": "<LabelCode>02</LabelCode>"}[typ]
			if !bytes.Contains(b, []byte(label)) {
				t.Errorf("type %s without %s", typ, label)
			}
		})
	}
}

// Each new fault changes exactly what it names and nothing else.
func TestDocumentFaults(t *testing.T) {
	d, _ := startDemo(t, DemoOptions{})
	setFaults := func(body string) {
		t.Helper()
		if st := call(t, "POST", d.AdminURL["primary"]+"/admin/faults", body, nil); st != 200 {
			t.Fatalf("faults %s: %d", body, st)
		}
	}
	for _, tc := range []struct {
		name, fault string
		check       func(t *testing.T, inv Invoice)
	}{
		{"ofd_missing_qr", `{"ofd_missing_qr":true}`, func(t *testing.T, inv Invoice) {
			setFaults(`{}`)
			good := openOFD(t, download(t, d, inv, "ofd", "application/ofd"))
			setFaults(`{"ofd_missing_qr":true}`)
			bad := openOFD(t, download(t, d, inv, "ofd", "application/ofd"))
			if v := readOFD(t, bad); len(v.images) != 0 || v.tags["InvoiceNo"][0] != inv.Number {
				t.Fatalf("QR still drawn: %v", v.images)
			}
			imageObject := regexp.MustCompile(`<ofd:ImageObject [^>]*/>`)
			media := regexp.MustCompile(`<ofd:MultiMedias>.*</ofd:MultiMedias>`)
			for _, name := range good.order {
				g, b := good.files[name], bad.files[name]
				switch {
				case strings.HasPrefix(name, "Doc_0/Res/"):
					if _, ok := bad.files[name]; ok {
						t.Errorf("%s still in the package", name)
					}
				case name == "Doc_0/Pages/Page_0/Content.xml":
					g = imageObject.ReplaceAll(g, nil)
				case name == "Doc_0/DocumentRes.xml":
					g = media.ReplaceAll(g, nil)
					g = bytes.Replace(g, []byte(`"Res">`), []byte(`"Res"/>`), 1)
					g = bytes.Replace(g, []byte(`</ofd:Res>`), nil, 1)
				}
				if !strings.HasPrefix(name, "Doc_0/Res/") && !bytes.Equal(g, b) {
					t.Errorf("%s differs beyond the QR:\n%s\n%s", name, g, b)
				}
			}
		}},
		{"xml_amount_mismatch", `{"xml_amount_mismatch":true}`, func(t *testing.T, inv Invoice) {
			setFaults(`{}`)
			good := download(t, d, inv, "xml", "application/xml")
			setFaults(`{"xml_amount_mismatch":true}`)
			bad := download(t, d, inv, "xml", "application/xml")
			total, _ := einvoice.ParseFen(inv.Totals.IncludingTax)
			if x := parseXMLFile(t, bad); x.Incl != (total + 1).String() {
				t.Fatalf("TotalTax-includedAmount %s, want %s", x.Incl, (total + 1).String())
			}
			tag := func(s string) []byte { return []byte("<TotalTax-includedAmount>" + s + "<") }
			if fixed := bytes.Replace(bad, tag((total + 1).String()), tag(inv.Totals.IncludingTax), 1); !bytes.Equal(fixed, good) {
				t.Errorf("the XML differs beyond the total:\n%s\n%s", good, bad)
			}
		}},
		{"qr_space_filled", `{"qr_space_filled":true}`, func(t *testing.T, inv Invoice) {
			// A valid real shape: "01,31, ,<number>,<amount>,<date>, ,<checksum>".
			f := strings.Split(inv.QR.Payload, ",")
			want := []string{"01", inv.Type, " ", inv.Number, inv.Totals.IncludingTax, inv.IssuedAt.In(chinaTime).Format("20060102"), " "}
			if len(f) != 8 || strings.Join(f[:7], ",") != strings.Join(want, ",") || f[7] != einvoice.Checksum(strings.Join(want, ",")+",") {
				t.Fatalf("payload %q", inv.QR.Payload)
			}
			for _, link := range []string{"qr_png", "ofd"} {
				b := download(t, d, inv, link, "")
				if link == "ofd" {
					p := openOFD(t, b)
					b = p.files[readOFD(t, p).images[0]]
				}
				if got, err := invoice.DecodeQRBytes(b); err != nil || got != inv.QR.Payload {
					t.Errorf("%s: %q %v", link, got, err)
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setFaults(tc.fault)
			inv := issue(t, d, "32", "")
			setFaults(`{}`)
			clean := issue(t, d, "32", "")
			if !strings.Contains(tc.fault, "qr_") && strings.Replace(inv.QR.Payload, inv.Number, clean.Number, 1)[:len(inv.QR.Payload)-4] != clean.QR.Payload[:len(clean.QR.Payload)-4] {
				t.Errorf("%s changed the QR payload: %s vs %s", tc.name, inv.QR.Payload, clean.QR.Payload)
			}
			tc.check(t, inv)
			setFaults(`{}`)
		})
	}
}
