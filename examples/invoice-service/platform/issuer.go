package platform

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-project/vigil/probes/invoice/einvoice"
)

// IssuerOptions configure one issuer (primary or standby).
type IssuerOptions struct {
	// Name appears in responses, logs and the X-Issuer header.
	Name string
	// Node (1–9) is the invoice-number digit that keeps numbers issued by
	// different issuers apart.
	Node int
	// Region is the two-digit region code at the start of invoice numbers.
	Region string
	// AmountBasis is which total the QR amount carries: auto (the default:
	// what real platforms do for the invoice's type, see qrAmountBasis), or
	// excluding_tax / including_tax for every type, overriding it.
	AmountBasis string
	DB          *DB
	// UpstreamURL is the tax platform's base URL the sync worker pushes to.
	UpstreamURL  string
	SyncInterval time.Duration
	Client       *http.Client
	Logger       *slog.Logger
	// Now is the clock (tests); time.Now by default.
	Now func() time.Time
}

// Issuer issues invoices and syncs them upstream.
type Issuer struct {
	opts   IssuerOptions
	db     *DB
	log    *slog.Logger
	faults faultSet
	kick   chan struct{}
}

// NewIssuer prepares the issuer's schema.
func NewIssuer(ctx context.Context, opts IssuerOptions) (*Issuer, error) {
	if opts.Node < 1 || opts.Node > 9 {
		return nil, fmt.Errorf("issuer node must be 1–9, got %d", opts.Node)
	}
	if len(opts.Region) != 2 || strings.Trim(opts.Region, "0123456789") != "" {
		return nil, fmt.Errorf("region must be two digits, got %q", opts.Region)
	}
	switch opts.AmountBasis {
	case "":
		opts.AmountBasis = BasisAuto
	case BasisAuto, BasisExcludingTax, BasisIncludingTax:
	default:
		return nil, fmt.Errorf("amount basis must be auto, excluding_tax or including_tax, got %q", opts.AmountBasis)
	}
	if opts.SyncInterval <= 0 {
		opts.SyncInterval = time.Second
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: 5 * time.Second}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	i := &Issuer{opts: opts, db: opts.DB, log: opts.Logger.With("role", opts.Name), kick: make(chan struct{}, 1)}
	err := i.db.migrate(ctx,
		`CREATE TABLE IF NOT EXISTS invoices (
			number TEXT PRIMARY KEY,
			type TEXT NOT NULL,
			issuer TEXT NOT NULL,
			status TEXT NOT NULL,
			issued_at TEXT NOT NULL,
			voided_at TEXT,
			seller_name TEXT NOT NULL, seller_tax_id TEXT NOT NULL,
			buyer_name TEXT NOT NULL, buyer_tax_id TEXT NOT NULL,
			items TEXT NOT NULL,
			remark TEXT NOT NULL,
			amount TEXT NOT NULL, tax TEXT NOT NULL, total TEXT NOT NULL,
			qr_payload TEXT NOT NULL, qr_amount_basis TEXT NOT NULL,
			sync_pending INTEGER NOT NULL,
			synced_at TEXT,
			sync_attempts INTEGER NOT NULL DEFAULT 0)`,
		`CREATE INDEX IF NOT EXISTS invoices_issued_at ON invoices (issued_at)`,
		`CREATE INDEX IF NOT EXISTS invoices_sync_pending ON invoices (sync_pending, issued_at)`,
		`CREATE TABLE IF NOT EXISTS invoice_sequences (node INTEGER PRIMARY KEY, next BIGINT NOT NULL)`)
	if err != nil {
		return nil, err
	}
	return i, nil
}

// Handler serves the public issuing API.
func (i *Issuer) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/invoices", i.handleIssue)
	mux.HandleFunc("GET /api/v1/invoices", i.handleList)
	mux.HandleFunc("GET /api/v1/invoices/{number}", i.handleGet)
	mux.HandleFunc("POST /api/v1/invoices/{number}/void", i.handleVoid)
	mux.HandleFunc("GET /api/v1/invoices/{number}/qr.png", i.handleQR)
	mux.HandleFunc("GET /api/v1/invoices/{number}/pdf", i.handlePDF)
	mux.HandleFunc("GET /api/v1/invoices/{number}/ofd", i.handleOFD)
	mux.HandleFunc("GET /api/v1/invoices/{number}/xml", i.handleXML)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := i.db.PingContext(r.Context()); err != nil {
			writeError(w, r, http.StatusServiceUnavailable, "DB_UNAVAILABLE", err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "issuer": i.opts.Name})
	})
	faulty := i.faults.middleware(mux)
	return accessLog(i.log, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Issuer", i.opts.Name)
		faulty.ServeHTTP(w, r)
	}))
}

// AdminHandler serves faults and resync; it belongs on a loopback listener.
func (i *Issuer) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	i.faults.adminRoutes(mux)
	mux.HandleFunc("POST /admin/resync", i.handleResync)
	mux.HandleFunc("GET /admin/sync", i.handleSyncStatus)
	return accessLog(i.log.With("listener", "admin"), mux)
}

func (i *Issuer) handleIssue(w http.ResponseWriter, r *http.Request) {
	var req IssueRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, r, http.StatusBadRequest, "BAD_REQUEST", "request body: "+err.Error())
		return
	}
	amount, tax, err := req.validate()
	if err != nil {
		writeError(w, r, http.StatusUnprocessableEntity, "INVALID_INVOICE", err.Error())
		return
	}
	inv, err := i.issue(r.Context(), req, amount, tax)
	if err != nil {
		writeError(w, r, http.StatusInternalServerError, "ISSUE_FAILED", err.Error())
		return
	}
	logFrom(r).Info("invoice issued", "number", inv.Number, "total", inv.Totals.IncludingTax)
	i.kickSync()
	w.Header().Set("Location", inv.Links["self"])
	writeJSON(w, http.StatusCreated, inv)
}

// issue allocates a number and stores the invoice with its QR payload.
func (i *Issuer) issue(ctx context.Context, req IssueRequest, amount, tax einvoice.Fen) (*Invoice, error) {
	now := i.opts.Now().In(chinaTime).Truncate(time.Millisecond)
	tx, err := i.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("issue: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, i.db.rebind(`INSERT INTO invoice_sequences (node, next) VALUES (?, 1) ON CONFLICT (node) DO NOTHING`), i.opts.Node); err != nil {
		return nil, fmt.Errorf("issue: sequence: %w", err)
	}
	var seq int64
	if err := tx.QueryRowContext(ctx, i.db.rebind(`UPDATE invoice_sequences SET next = next + 1 WHERE node = ? RETURNING next - 1`), i.opts.Node).Scan(&seq); err != nil {
		return nil, fmt.Errorf("issue: sequence: %w", err)
	}
	// 20 digits: year (2), region (2), issuer node (1), channel 0 (1), sequence (14).
	number := fmt.Sprintf("%02d%s%d0%014d", now.Year()%100, i.opts.Region, i.opts.Node, seq)
	basis := qrAmountBasis(req.Type, i.opts.AmountBasis)
	qrAmount := amount
	if basis == BasisIncludingTax {
		qrAmount = amount + tax
	}
	payload := i.qrPayload(req.Type, number, qrAmount, now)
	items, _ := json.Marshal(req.Items)
	_, err = tx.ExecContext(ctx, i.db.rebind(`INSERT INTO invoices (number, type, issuer, status, issued_at,
		seller_name, seller_tax_id, buyer_name, buyer_tax_id, items, remark, amount, tax, total,
		qr_payload, qr_amount_basis, sync_pending) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)`),
		number, req.Type, i.opts.Name, StatusIssued, formatTime(now),
		req.Seller.Name, req.Seller.TaxID, req.Buyer.Name, req.Buyer.TaxID, string(items), req.Remark,
		amount.String(), tax.String(), (amount + tax).String(), payload, basis)
	if err != nil {
		return nil, fmt.Errorf("issue: store: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("issue: commit: %w", err)
	}
	return i.get(ctx, number)
}

// QR amount bases: which total the QR payload's amount field carries.
const (
	BasisAuto         = "auto"
	BasisExcludingTax = "excluding_tax"
	BasisIncludingTax = "including_tax"
)

// qrAmountBasis resolves the configured basis for one invoice type. Real
// platforms write the tax-inclusive total (价税合计) into the QR code of fully
// digital invoices (数电, types 31 and 32) and the amount before tax (合计金额)
// into that of the older types (01, 04, 08, 10, 20…): the real payloads in
// ../shared/fixtures/einvoice/EXPECTED.tsv (beside the repository) show
// both. An explicit excluding_tax or including_tax applies to every type.
func qrAmountBasis(typ, configured string) string {
	switch {
	case configured != BasisAuto && configured != "":
		return configured
	case einvoice.IsDigital(typ):
		return BasisIncludingTax
	default:
		return BasisExcludingTax
	}
}

// qrPayload builds the QR content, bent by any QR fault: the bug an issuer
// would have writes the wrong value into every rendering alike.
func (i *Issuer) qrPayload(typ, number string, amount einvoice.Fen, at time.Time) string {
	f := i.faults.get()
	if f.QRWrongAmount {
		amount += 100
	}
	if f.QRWrongDate {
		at = at.AddDate(0, 0, -1)
	}
	if f.QRWrongNumber {
		b := []byte(number)
		b[len(b)-1] = '0' + (b[len(b)-1]-'0'+1)%10
		number = string(b)
	}
	p := einvoice.NewDigitalPayload(typ, number, amount, at)
	if f.QRSpaceFilled && einvoice.IsDigital(typ) {
		// A valid real shape, not a corruption: some platforms write a space
		// for the empty code and check code (jnb_ofd2.ofd, vm_01.pdf in the
		// fixtures). The checksum is the demo's, over the fields as written.
		p.Code, p.CheckCode = " ", " "
		s := p.String()
		p.Checksum = einvoice.Checksum(s[:strings.LastIndexByte(s, ',')+1])
	}
	return p.String()
}

const invoiceColumns = `number, type, issuer, status, issued_at, voided_at, seller_name, seller_tax_id,
	buyer_name, buyer_tax_id, items, remark, amount, tax, total, qr_payload, qr_amount_basis,
	sync_pending, synced_at, sync_attempts`

func scanInvoice(row interface{ Scan(...any) error }) (*Invoice, error) {
	var inv Invoice
	var issuedAt, items string
	var voidedAt, syncedAt sql.NullString
	var pending int
	err := row.Scan(&inv.Number, &inv.Type, &inv.Issuer, &inv.Status, &issuedAt, &voidedAt,
		&inv.Seller.Name, &inv.Seller.TaxID, &inv.Buyer.Name, &inv.Buyer.TaxID, &items, &inv.Remark,
		&inv.Totals.ExcludingTax, &inv.Totals.Tax, &inv.Totals.IncludingTax, &inv.QR.Payload, &inv.QR.AmountBasis,
		&pending, &syncedAt, &inv.Sync.Attempts)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNotFound
	}
	if err != nil {
		return nil, err
	}
	inv.IssuedAt = parseTime(issuedAt)
	if voidedAt.Valid {
		t := parseTime(voidedAt.String)
		inv.VoidedAt = &t
	}
	if syncedAt.Valid {
		t := parseTime(syncedAt.String)
		inv.Sync.SyncedAt = &t
	}
	inv.Sync.Pending = pending != 0
	if err := json.Unmarshal([]byte(items), &inv.Items); err != nil {
		return nil, fmt.Errorf("invoice %s: items: %w", inv.Number, err)
	}
	base := "/api/v1/invoices/" + inv.Number
	inv.Links = map[string]string{"self": base, "qr_png": base + "/qr.png", "pdf": base + "/pdf",
		"ofd": base + "/ofd", "xml": base + "/xml", "void": base + "/void"}
	return &inv, nil
}

// selectInvoices reads every invoice matching where (a condition with ?
// placeholders, optionally followed by ORDER BY and LIMIT).
func (i *Issuer) selectInvoices(ctx context.Context, where string, args ...any) ([]*Invoice, error) {
	rows, err := i.db.query(ctx, `SELECT `+invoiceColumns+` FROM invoices WHERE `+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Invoice
	for rows.Next() {
		inv, err := scanInvoice(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, inv)
	}
	return out, rows.Err()
}

func (i *Issuer) get(ctx context.Context, number string) (*Invoice, error) {
	return scanInvoice(i.db.queryRow(ctx, `SELECT `+invoiceColumns+` FROM invoices WHERE number = ?`, number))
}

func (i *Issuer) lookup(w http.ResponseWriter, r *http.Request) (*Invoice, bool) {
	inv, err := i.get(r.Context(), r.PathValue("number"))
	switch {
	case errors.Is(err, errNotFound):
		writeError(w, r, http.StatusNotFound, "NOT_FOUND", "no invoice "+r.PathValue("number"))
		return nil, false
	case err != nil:
		writeError(w, r, http.StatusInternalServerError, "DB_ERROR", err.Error())
		return nil, false
	}
	return inv, true
}

func (i *Issuer) handleGet(w http.ResponseWriter, r *http.Request) {
	if inv, ok := i.lookup(w, r); ok {
		writeJSON(w, http.StatusOK, inv)
	}
}

// handleList serves GET /api/v1/invoices?issued_after=&issued_before=&limit=
// (RFC 3339 times), oldest first: what a reconciliation reads.
func (i *Issuer) handleList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after, before := time.Unix(0, 0), i.opts.Now().Add(time.Hour)
	var err error
	if s := q.Get("issued_after"); s != "" {
		if after, err = time.Parse(time.RFC3339Nano, s); err != nil {
			writeError(w, r, http.StatusBadRequest, "BAD_REQUEST", "issued_after: "+err.Error())
			return
		}
	}
	if s := q.Get("issued_before"); s != "" {
		if before, err = time.Parse(time.RFC3339Nano, s); err != nil {
			writeError(w, r, http.StatusBadRequest, "BAD_REQUEST", "issued_before: "+err.Error())
			return
		}
	}
	limit := 100
	if s := q.Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > 1000 {
			writeError(w, r, http.StatusBadRequest, "BAD_REQUEST", "limit must be 1–1000")
			return
		}
	}
	list, err := i.selectInvoices(r.Context(), `issued_at > ? AND issued_at < ? ORDER BY issued_at LIMIT ?`, formatTime(after), formatTime(before), limit)
	if err != nil {
		writeError(w, r, http.StatusInternalServerError, "DB_ERROR", err.Error())
		return
	}
	out := struct {
		Invoices []*Invoice `json:"invoices"`
	}{Invoices: append([]*Invoice{}, list...)}
	writeJSON(w, http.StatusOK, out)
}

func (i *Issuer) handleVoid(w http.ResponseWriter, r *http.Request) {
	inv, ok := i.lookup(w, r)
	if !ok {
		return
	}
	if inv.Status == StatusVoid {
		writeError(w, r, http.StatusConflict, "ALREADY_VOID", "invoice "+inv.Number+" is already void")
		return
	}
	now := formatTime(i.opts.Now())
	if _, err := i.db.exec(r.Context(), `UPDATE invoices SET status = ?, voided_at = ?, sync_pending = 1 WHERE number = ? AND status = ?`,
		StatusVoid, now, inv.Number, StatusIssued); err != nil {
		writeError(w, r, http.StatusInternalServerError, "DB_ERROR", err.Error())
		return
	}
	logFrom(r).Info("invoice voided", "number", inv.Number)
	i.kickSync()
	inv, ok = i.lookup(w, r)
	if ok {
		writeJSON(w, http.StatusOK, inv)
	}
}

func (i *Issuer) handleQR(w http.ResponseWriter, r *http.Request) {
	inv, ok := i.lookup(w, r)
	if !ok {
		return
	}
	png, err := qrPNG(inv.QR.Payload, 256, i.faults.get().QRUnreadable)
	if err != nil {
		writeError(w, r, http.StatusInternalServerError, "QR_FAILED", err.Error())
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Write(png)
}

func (i *Issuer) handlePDF(w http.ResponseWriter, r *http.Request) {
	inv, ok := i.lookup(w, r)
	if !ok {
		return
	}
	f := i.faults.get()
	pdf, err := renderPDF(inv, !f.PDFWithoutQR, f.QRUnreadable)
	if err != nil {
		writeError(w, r, http.StatusInternalServerError, "PDF_FAILED", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/pdf")
	w.Header().Set("Content-Disposition", `inline; filename="`+inv.Number+`.pdf"`)
	w.Write(pdf)
}

func (i *Issuer) handleOFD(w http.ResponseWriter, r *http.Request) {
	inv, ok := i.lookup(w, r)
	if !ok {
		return
	}
	f := i.faults.get()
	ofd, err := renderOFD(inv, !f.OFDMissingQR, f.QRUnreadable)
	if err != nil {
		writeError(w, r, http.StatusInternalServerError, "OFD_FAILED", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/ofd")
	w.Header().Set("Content-Disposition", `inline; filename="`+inv.Number+`.ofd"`)
	w.Write(ofd)
}

func (i *Issuer) handleXML(w http.ResponseWriter, r *http.Request) {
	inv, ok := i.lookup(w, r)
	if !ok {
		return
	}
	var skew einvoice.Fen
	if i.faults.get().XMLAmountMismatch {
		skew = 1
	}
	b, err := renderXML(inv, skew)
	if err != nil {
		writeError(w, r, http.StatusInternalServerError, "XML_FAILED", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	w.Header().Set("Content-Disposition", `inline; filename="`+inv.Number+`.xml"`)
	w.Write(b)
}
