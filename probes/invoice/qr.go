package invoice

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/vigil-project/vigil/internal/confkit"
	"github.com/vigil-project/vigil/probes"
	"github.com/vigil-project/vigil/probes/invoice/einvoice"
)

func init() {
	probes.Register(probes.Family{Type: "invoice_qr", Step: probes.StepInvoice, NewConfig: func() probes.Config { return defaultQRConfig() }, New: newQR,
		Metrics: []probes.Metric{
			{Name: "vigil_invoice_qr_service_seconds", Help: "Time of the last run spent waiting on the invoice platform (issue, fetches, read-back, void)."},
			{Name: "vigil_invoice_qr_probe_seconds", Help: "Time of the last run spent in the agent's own work (QR, PDF and OFD decoding, validation)."},
		}})
}

// Party is a seller or buyer of the probe invoice.
type Party struct {
	Name  string `yaml:"name" json:"name"`
	TaxID string `yaml:"tax_id" json:"tax_id"`
}

// ItemConfig is the probe invoice's single line.
type ItemConfig struct {
	Name      string `yaml:"name" json:"name"`
	Quantity  string `yaml:"quantity" json:"quantity"`
	UnitPrice string `yaml:"unit_price" json:"unit_price"`
	TaxRate   string `yaml:"tax_rate" json:"tax_rate"`
}

// APIShape adapts the check to an invoice platform: where each operation
// lives ({number} is replaced), how the issue request is written, and where
// each value sits in the JSON responses. The defaults match the demo
// platform (examples/invoice-service).
type APIShape struct {
	IssuePath string `yaml:"issue_path"`
	GetPath   string `yaml:"get_path"`
	QRPath    string `yaml:"qr_path"`
	PDFPath   string `yaml:"pdf_path"`
	OFDPath   string `yaml:"ofd_path"`
	XMLPath   string `yaml:"xml_path"`
	VoidPath  string `yaml:"void_path"`
	// IssueBody is a Go template producing the JSON issue request from
	// .Type, .Seller, .Buyer, .Item and .Remark; `json` quotes a value.
	IssueBody string `yaml:"issue_body"`
	// Fields are JSONPaths into the issue and read-back responses.
	Fields map[string]string `yaml:"fields"`
}

// Fields the check reads; every one has a default JSONPath.
var qrFieldNames = []string{"number", "issued_at", "status", "qr_payload", "qr_amount_basis",
	"total_excluding_tax", "tax", "total_including_tax"}

// QRConfig is the `invoice_qr:` section of a check.
type QRConfig struct {
	HTTPClientConfig `yaml:",inline"`
	Seller           Party      `yaml:"seller"`
	Buyer            Party      `yaml:"buyer"`
	Item             ItemConfig `yaml:"item"`
	// InvoiceType is the QR type code requested: 31 or 32.
	InvoiceType string `yaml:"invoice_type"`
	Remark      string `yaml:"remark"`
	// QRAmountBasis is which total the QR amount must equal: by_type (the
	// default: the tax-inclusive total on 数电 types 31/32, the amount
	// before tax on the others), auto (what the service says in
	// qr_amount_basis), excluding_tax or including_tax.
	QRAmountBasis string `yaml:"qr_amount_basis"`
	// Formats are the documents the platform offers and the check fetches:
	// png (the QR image), pdf, ofd, xml. Default png and pdf (png only
	// with check_pdf: false).
	Formats []string `yaml:"formats"`
	// CheckPDF fetches the PDF and decodes the QR printed on it (when
	// formats is not set).
	CheckPDF bool `yaml:"check_pdf"`
	// Void voids the probe invoice at the end so probes leave none live.
	Void bool     `yaml:"void"`
	API  APIShape `yaml:"api"`
}

const defaultIssueBody = `{"type": {{json .Type}}, "seller": {{json .Seller}}, "buyer": {{json .Buyer}},
 "items": [{{json .Item}}], "remark": {{json .Remark}}}`

func defaultQRConfig() *QRConfig {
	return &QRConfig{
		HTTPClientConfig: HTTPClientConfig{MaxBodyBytes: 4 << 20},
		Buyer:            Party{Name: "VIGIL PROBE (not a sale)"},
		Item:             ItemConfig{Name: "vigil probe", Quantity: "1", UnitPrice: "0.10", TaxRate: "0.13"},
		InvoiceType:      einvoice.TypeDigitalOrdinary,
		Remark:           "vigil health probe; voided automatically",
		QRAmountBasis:    "by_type",
		CheckPDF:         true,
		Void:             true,
		API: APIShape{
			IssuePath: "/api/v1/invoices",
			GetPath:   "/api/v1/invoices/{number}",
			QRPath:    "/api/v1/invoices/{number}/qr.png",
			PDFPath:   "/api/v1/invoices/{number}/pdf",
			OFDPath:   "/api/v1/invoices/{number}/ofd",
			XMLPath:   "/api/v1/invoices/{number}/xml",
			VoidPath:  "/api/v1/invoices/{number}/void",
			IssueBody: defaultIssueBody,
		},
	}
}

// defaultQRFields are the demo platform's JSONPaths; configured fields
// replace them one by one.
var defaultQRFields = map[string]string{
	"number":              "$.number",
	"issued_at":           "$.issued_at",
	"status":              "$.status",
	"qr_payload":          "$.qr.payload",
	"qr_amount_basis":     "$.qr.amount_basis",
	"total_excluding_tax": "$.totals.excluding_tax",
	"tax":                 "$.totals.tax",
	"total_including_tax": "$.totals.including_tax",
}

// withDefaults returns fields with every default name filled in.
func withDefaults(fields, defaults map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range defaults {
		out[k] = v
	}
	for k, v := range fields {
		out[k] = v
	}
	return out
}

var bodyFuncs = template.FuncMap{"json": func(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}}

// Validate reports every problem as a FieldError.
func (c *QRConfig) Validate() error {
	errs := c.HTTPClientConfig.validate("")
	for role, p := range map[string]Party{"seller": c.Seller, "buyer": c.Buyer} {
		if p.Name == "" {
			errs = append(errs, confkit.FieldErrorf(role+".name", "required"))
		}
		// An empty buyer tax ID means the seller's (a self-addressed probe).
		if p.TaxID == "" && role == "buyer" {
			continue
		}
		if err := einvoice.ValidateCreditCode(p.TaxID); err != nil {
			errs = append(errs, confkit.FieldErrorf(role+".tax_id", "%v", err))
		}
	}
	if c.Item.Name == "" {
		errs = append(errs, confkit.FieldErrorf("item.name", "required"))
	}
	if l, err := einvoice.LineAmounts(c.Item.Quantity, c.Item.UnitPrice, c.Item.TaxRate); err != nil {
		errs = append(errs, confkit.FieldErrorf("item", "%v", err))
	} else if l.Tax == 0 {
		errs = append(errs, confkit.FieldErrorf("item", "the tax on %s × %s at %s rounds to 0.00: pick an amount and rate where the totals with and without tax differ, so a QR carrying the wrong one is caught",
			c.Item.Quantity, c.Item.UnitPrice, c.Item.TaxRate))
	}
	if !einvoice.IsDigital(c.InvoiceType) {
		errs = append(errs, confkit.FieldErrorf("invoice_type", "must be 31 or 32 (fully digital invoices), got %q", c.InvoiceType))
	}
	switch c.QRAmountBasis {
	case "by_type", "auto", "excluding_tax", "including_tax":
	default:
		errs = append(errs, confkit.FieldErrorf("qr_amount_basis", "must be by_type, auto, excluding_tax or including_tax, got %q", c.QRAmountBasis))
	}
	hasQR := false
	for i, f := range c.Formats {
		switch {
		case !slices.Contains(allFormats, f):
			errs = append(errs, confkit.FieldErrorf(fmt.Sprintf("formats.%d", i), "unknown format %q (png, pdf, ofd, xml)", f))
		case slices.Index(c.Formats, f) != i:
			errs = append(errs, confkit.FieldErrorf(fmt.Sprintf("formats.%d", i), "%q is listed twice", f))
		}
		hasQR = hasQR || f != "xml"
	}
	if c.Formats != nil && !hasQR {
		errs = append(errs, confkit.FieldErrorf("formats", "needs a format with a QR code (png, pdf or ofd)"))
	}
	for name, p := range map[string]string{"issue_path": c.API.IssuePath, "get_path": c.API.GetPath,
		"qr_path": c.API.QRPath, "pdf_path": c.API.PDFPath, "ofd_path": c.API.OFDPath, "xml_path": c.API.XMLPath, "void_path": c.API.VoidPath} {
		if !strings.HasPrefix(p, "/") {
			errs = append(errs, confkit.FieldErrorf("api."+name, "must start with /, got %q", p))
		}
		if name != "issue_path" && !strings.Contains(p, "{number}") {
			errs = append(errs, confkit.FieldErrorf("api."+name, "must contain {number}"))
		}
	}
	if _, err := template.New("issue_body").Funcs(bodyFuncs).Parse(c.API.IssueBody); err != nil {
		errs = append(errs, confkit.FieldErrorf("api.issue_body", "%v", err))
	}
	errs = append(errs, checkFieldNames(c.API.Fields, qrFieldNames, "api.fields")...)
	return errors.Join(errs...)
}

// allFormats are the documents invoice_qr reads, in the order it reads
// them when several are configured.
var allFormats = []string{"png", "pdf", "ofd", "xml"}

// formats are the configured formats in reading order.
func (c *QRConfig) formats() []string {
	fs := c.Formats
	if fs == nil {
		fs = []string{"png"}
		if c.CheckPDF {
			fs = append(fs, "pdf")
		}
	}
	var out []string
	for _, f := range allFormats {
		if slices.Contains(fs, f) {
			out = append(out, f)
		}
	}
	return out
}

// QR is the invoice_qr check.
type QR struct {
	cfg    *QRConfig
	api    *apiClient
	body   []byte
	fields jsonFields
	paths  map[string]string // JSONPaths, defaults filled in, for messages
	line   einvoice.Line
}

var _ probes.Prober = (*QR)(nil)

func newQR(c probes.Config, _ probes.Options) (probes.Prober, error) {
	cfg, ok := c.(*QRConfig)
	if !ok {
		return nil, fmt.Errorf("invoice_qr: config of type %T", c)
	}
	api, err := newAPIClient(&cfg.HTTPClientConfig)
	if err != nil {
		return nil, err
	}
	buyer := cfg.Buyer
	if buyer.TaxID == "" {
		buyer.TaxID = cfg.Seller.TaxID
	}
	tmpl := template.Must(template.New("issue_body").Funcs(bodyFuncs).Parse(cfg.API.IssueBody))
	var body bytes.Buffer
	if err := tmpl.Execute(&body, struct {
		Type          string
		Seller, Buyer Party
		Item          ItemConfig
		Remark        string
	}{cfg.InvoiceType, cfg.Seller, buyer, cfg.Item, cfg.Remark}); err != nil {
		return nil, fmt.Errorf("invoice_qr: api.issue_body: %w", err)
	}
	if !json.Valid(body.Bytes()) {
		return nil, fmt.Errorf("invoice_qr: api.issue_body does not produce JSON: %s", snippet(body.Bytes()))
	}
	paths := withDefaults(cfg.API.Fields, defaultQRFields)
	fields, _ := compileFields(paths, "")
	line, _ := einvoice.LineAmounts(cfg.Item.Quantity, cfg.Item.UnitPrice, cfg.Item.TaxRate)
	return &QR{cfg: cfg, api: api, body: body.Bytes(), fields: fields, paths: paths, line: line}, nil
}

// qrRun is the state of one run.
type qrRun struct {
	q      *QR
	res    probes.Result
	number string
	// What the QR codes said and what the service said they should say:
	// the diagnostics of a qr_mismatch (a probe invoice, nothing secret).
	decoded, pdfDecoded, ofdDecoded, expected string
	service                                   time.Duration // time spent waiting on the platform
	local                                     time.Duration // decode, parse, validate
}

func (r *qrRun) phase(name string, start time.Time, service bool) {
	d := time.Since(start)
	r.res.Phases = append(r.res.Phases, probes.Phase{Name: name, Duration: d})
	if service {
		r.service += d
	} else {
		r.local += d
	}
}

func (q *QR) path(p, number string) string { return strings.ReplaceAll(p, "{number}", number) }

// Probe issues a probe invoice, checks its QR code (image and PDF) against
// what was asked and answered, reads it back and voids it.
func (q *QR) Probe(ctx context.Context, log *slog.Logger) probes.Result {
	r := &qrRun{q: q}
	reason, msg := r.run(ctx)
	if r.number != "" && q.cfg.Void {
		// Void even when the run failed or timed out, with time of its own,
		// so probes leave no live invoices behind.
		vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		start := time.Now()
		_, err := q.api.do(vctx, http.MethodPost, q.path(q.cfg.API.VoidPath, r.number), nil)
		cancel()
		r.phase("void", start, true)
		if err != nil {
			log.Warn("probe invoice not voided", "number", r.number, "err", err)
			if reason == probes.ReasonNone {
				reason, msg = probes.ReasonVoidFailed, fmt.Sprintf("void probe invoice %s: %v", r.number, err)
			} else {
				msg += fmt.Sprintf(" (and voiding it failed: %v)", err)
			}
		}
	}
	r.res.AddValue("vigil_invoice_qr_service_seconds", r.service.Seconds())
	r.res.AddValue("vigil_invoice_qr_probe_seconds", r.local.Seconds())
	if r.number != "" {
		r.res.Diagnostics = map[string]any{"probe_invoice": r.number}
		for k, v := range map[string]string{"qr_decoded": r.decoded, "pdf_qr_decoded": r.pdfDecoded, "ofd_qr_decoded": r.ofdDecoded, "qr_expected": r.expected} {
			if v != "" {
				r.res.Diagnostics[k] = v
			}
		}
	}
	r.res.Success, r.res.Reason, r.res.Message = reason == probes.ReasonNone, reason, msg
	if r.res.Success {
		var names []string
		for _, f := range q.cfg.formats() {
			names = append(names, strings.ToUpper(f))
		}
		list := strings.Join(names, ", ")
		if i := strings.LastIndex(list, ", "); i >= 0 {
			list = list[:i] + " and " + list[i+2:]
		}
		r.res.Message = fmt.Sprintf("invoice %s issued, QR and documents verified in %s, read back%s", r.number, list,
			map[bool]string{true: ", voided"}[q.cfg.Void])
	}
	return r.res
}

func (r *qrRun) run(ctx context.Context) (probes.Reason, string) {
	q := r.q
	stepErr := func(def probes.Reason, what string, err error) (probes.Reason, string) {
		if isTimeout(ctx, err) {
			return probes.ReasonTimeout, fmt.Sprintf("%s: %v", what, err)
		}
		return def, fmt.Sprintf("%s: %v", what, err)
	}

	// issue
	start := time.Now()
	resp, err := q.api.do(ctx, http.MethodPost, q.cfg.API.IssuePath, q.body)
	r.phase("issue", start, true)
	if err != nil {
		return stepErr(probes.ReasonIssueError, "issue probe invoice", err)
	}
	issued, err := parseJSON(resp.body)
	if err != nil {
		return probes.ReasonIssueError, "issue probe invoice: " + err.Error()
	}
	number, _ := q.fields.str(issued, "number")
	if number == "" {
		return probes.ReasonIssueError, fmt.Sprintf("issue probe invoice: no number at %s in the response", q.paths["number"])
	}
	r.number = number
	want, reason, msg := q.expected(issued)
	r.expected = want.built
	if reason != probes.ReasonNone {
		return reason, msg
	}

	// Each format the platform offers: its QR (every one the same) and,
	// for OFD and XML, the invoice data it embeds.
	var ref, refFormat string
	for _, f := range q.cfg.formats() {
		text, reason, msg := r.document(ctx, f, want)
		if reason != probes.ReasonNone {
			return reason, msg
		}
		switch {
		case text == "": // xml: no QR
		case ref == "":
			ref, refFormat = text, f
			// The first QR is checked field by field; the others must
			// carry the same payload.
			start = time.Now()
			reason, msg = want.verify(text)
			r.phase("verify", start, false)
			if reason != probes.ReasonNone {
				return reason, fmt.Sprintf("invoice %s: %s", number, msg)
			}
		case text != ref:
			return probes.ReasonQRMismatch, fmt.Sprintf("field %s: the %s's QR %q differs from the %s's %q",
				f, documentFormats[f].name, text, documentFormats[refFormat].name, ref)
		}
	}

	// read back
	start = time.Now()
	back, err := q.api.do(ctx, http.MethodGet, q.path(q.cfg.API.GetPath, number), nil)
	r.phase("readback", start, true)
	if err != nil {
		return stepErr(probes.ReasonReadbackMismatch, "read back "+number, err)
	}
	doc, err := parseJSON(back.body)
	if err != nil {
		return probes.ReasonReadbackMismatch, "read back " + number + ": " + err.Error()
	}
	for _, f := range []string{"number", "total_excluding_tax", "tax", "total_including_tax", "qr_payload"} {
		got, _ := q.fields.str(doc, f)
		exp, _ := q.fields.str(issued, f)
		if got != exp {
			return probes.ReasonReadbackMismatch, fmt.Sprintf("read back %s: %s is %q, issued as %q", number, f, got, exp)
		}
	}
	if st, ok := q.fields.str(doc, "status"); ok && st != "issued" {
		return probes.ReasonReadbackMismatch, fmt.Sprintf("read back %s: status %q, expected issued", number, st)
	}
	return probes.ReasonNone, ""
}

// documentFormat is how one format is fetched and reported.
type documentFormat struct {
	name                    string // in messages
	path                    func(APIShape) string
	missing                 probes.Reason // not found, empty or unreadable
	fetchPhase, decodePhase string
}

var documentFormats = map[string]documentFormat{
	"png": {"QR image", func(a APIShape) string { return a.QRPath }, probes.ReasonQRMissing, "qr_fetch", "qr_decode"},
	"pdf": {"PDF", func(a APIShape) string { return a.PDFPath }, probes.ReasonPDFMissingQR, "pdf_fetch", "pdf_decode"},
	"ofd": {"OFD", func(a APIShape) string { return a.OFDPath }, probes.ReasonOFDMissingQR, "ofd_fetch", "ofd_decode"},
	"xml": {"XML", func(a APIShape) string { return a.XMLPath }, probes.ReasonDocumentMismatch, "xml_fetch", "xml_decode"},
}

// document fetches one format of the probe invoice and returns the QR
// payload it carries ("" for xml), having checked what it embeds.
func (r *qrRun) document(ctx context.Context, format string, want expectation) (string, probes.Reason, string) {
	q, number, f := r.q, r.number, documentFormats[format]
	start := time.Now()
	resp, err := q.api.do(ctx, http.MethodGet, q.path(f.path(q.cfg.API), number), nil)
	r.phase(f.fetchPhase, start, true)
	if err != nil {
		var ae *errAPI
		if errors.As(err, &ae) && (ae.status == http.StatusNotFound || ae.status == http.StatusGone) {
			return "", f.missing, fmt.Sprintf("%s of %s: %v", f.name, number, err)
		}
		if isTimeout(ctx, err) {
			return "", probes.ReasonTimeout, fmt.Sprintf("fetch %s of %s: %v", f.name, number, err)
		}
		return "", f.missing, fmt.Sprintf("fetch %s of %s: %v", f.name, number, err)
	}
	if len(resp.body) == 0 {
		return "", f.missing, fmt.Sprintf("%s of %s is empty", f.name, number)
	}
	start = time.Now()
	defer func() { r.phase(f.decodePhase, start, false) }()
	switch format {
	case "png":
		text, err := DecodeQRBytes(resp.body)
		r.decoded = text
		if err != nil {
			return "", probes.ReasonQRUnreadable, fmt.Sprintf("QR image of %s: %v", number, err)
		}
		return text, probes.ReasonNone, ""
	case "pdf":
		text, n, err := QRFromPDF(resp.body)
		r.pdfDecoded = text
		if err != nil {
			return "", probes.ReasonPDFMissingQR, fmt.Sprintf("PDF of %s (%d bytes, %d images): %v", number, len(resp.body), n, err)
		}
		return text, probes.ReasonNone, ""
	case "ofd":
		return r.ofd(resp.body, want)
	default:
		reason, msg := r.xml(resp.body, want)
		return "", reason, msg
	}
}

// expectation is what the QR payload and the documents must say.
type expectation struct {
	typ, number string
	// service is the payload the service says it encoded; built is the
	// payload built from the request (the checksum cannot be: "????").
	service, built string
	amount         einvoice.Fen
	basis          string
	date           string
	// What the documents (OFD, XML) must carry.
	excluding, tax, including einvoice.Fen
	sellerTaxID, buyerTaxID   string
}

// expected derives the expected payload from the request and checks the
// service's own totals against the request first.
func (q *QR) expected(issued any) (expectation, probes.Reason, string) {
	buyer := q.cfg.Buyer.TaxID
	if buyer == "" {
		buyer = q.cfg.Seller.TaxID
	}
	e := expectation{typ: q.cfg.InvoiceType, excluding: q.line.Amount, tax: q.line.Tax, including: q.line.Amount + q.line.Tax,
		sellerTaxID: q.cfg.Seller.TaxID, buyerTaxID: buyer}
	e.number, _ = q.fields.str(issued, "number")
	e.service, _ = q.fields.str(issued, "qr_payload")
	want := map[string]einvoice.Fen{"total_excluding_tax": q.line.Amount, "tax": q.line.Tax, "total_including_tax": q.line.Amount + q.line.Tax}
	for _, f := range []string{"total_excluding_tax", "tax", "total_including_tax"} {
		s, ok := q.fields.str(issued, f)
		if !ok {
			return e, probes.ReasonIssueError, fmt.Sprintf("issue response has no %s at %s", f, q.paths[f])
		}
		got, err := einvoice.ParseFen(s)
		if err != nil || got != want[f] {
			return e, probes.ReasonIssueError, fmt.Sprintf("invoice %s: %s is %q, expected %s for %s × %s at %s",
				e.number, f, s, want[f], q.cfg.Item.Quantity, q.cfg.Item.UnitPrice, q.cfg.Item.TaxRate)
		}
	}
	e.basis = q.cfg.QRAmountBasis
	if e.basis == "by_type" {
		e.basis = einvoice.AmountBasis(e.typ).String()
	}
	if e.basis == "auto" {
		e.basis, _ = q.fields.str(issued, "qr_amount_basis")
		if e.basis != "excluding_tax" && e.basis != "including_tax" {
			return e, probes.ReasonIssueError, fmt.Sprintf("invoice %s: the service does not say which total the QR amount carries (%s is %q); set qr_amount_basis",
				e.number, q.paths["qr_amount_basis"], e.basis)
		}
	}
	e.amount = want["total_"+e.basis]
	at, _ := q.fields.str(issued, "issued_at")
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		return e, probes.ReasonIssueError, fmt.Sprintf("invoice %s: issued_at %q is not an RFC 3339 time", e.number, at)
	}
	e.date = t.In(chinaTime).Format("20060102")
	// What the QR must say, from the request: the number is the service's,
	// the checksum has no public algorithm.
	e.built = strings.Join([]string{"01", e.typ, "", e.number, e.amount.String(), e.date, "", "????"}, ",")
	return e, probes.ReasonNone, ""
}

// chinaTime is UTC+8: invoice dates are calendar dates in China.
var chinaTime = time.FixedZone("CST", 8*3600)

// verify checks a decoded payload field by field.
func (e expectation) verify(text string) (probes.Reason, string) {
	p, err := einvoice.ParsePayload(text)
	if err != nil {
		return probes.ReasonQRMismatch, fmt.Sprintf("QR payload %q: field %v", text, err)
	}
	if e.service != "" && strings.TrimSpace(text) != strings.TrimSpace(e.service) {
		return probes.ReasonQRMismatch, fmt.Sprintf("field payload: the QR says %q, the service %q", text, e.service)
	}
	for _, c := range []struct{ field, got, want string }{
		{"type", p.Type, e.typ},
		{"number", p.Number, e.number},
		{"amount", p.Amount.String(), e.amount.String() + " (" + strings.ReplaceAll(e.basis, "_", " ") + ")"},
		{"date", p.DateString(), e.date},
	} {
		if c.field == "amount" {
			if p.Amount == e.amount {
				continue
			}
		} else if c.got == c.want {
			continue
		}
		return probes.ReasonQRMismatch, fmt.Sprintf("field %s: the QR says %s, expected %s", c.field, c.got, c.want)
	}
	return probes.ReasonNone, ""
}
