package invoice

import (
	"fmt"
	"time"

	"github.com/vigil-project/vigil/probes"
	"github.com/vigil-project/vigil/probes/invoice/fpxml"
	"github.com/vigil-project/vigil/probes/invoice/ofd"
)

// ofd reads the probe invoice's OFD: the first of its QR-like images that
// decodes is its QR; the invoice data it embeds (an XML attachment,
// CustomTags or CustomData) must agree with the request.
func (r *qrRun) ofd(b []byte, want expectation) (string, probes.Reason, string) {
	doc, err := ofd.Read(b, ofd.DefaultLimits)
	if err != nil {
		return "", probes.ReasonOFDMissingQR, fmt.Sprintf("OFD of %s (%d bytes): %v", r.number, len(b), err)
	}
	text, err := qrFromOFD(doc)
	r.ofdDecoded = text
	if err != nil {
		return "", probes.ReasonOFDMissingQR, fmt.Sprintf("OFD of %s: %v", r.number, err)
	}
	inv := doc.Invoice
	fields := []docField{
		{"number", inv.Number, want.number, has(inv.Source, ofd.FieldNumber)},
		{"date", dateOf(inv.IssueDate), dashed(want.date), has(inv.Source, ofd.FieldIssueDate)},
		{"total", inv.Total.String(), want.including.String(), has(inv.Source, ofd.FieldTotal)},
		{"amount_excluding_tax", inv.AmountExclTax.String(), want.excluding.String(), has(inv.Source, ofd.FieldAmountExclTax)},
		{"tax", inv.Tax.String(), want.tax.String(), has(inv.Source, ofd.FieldTax)},
		{"seller_tax_id", inv.Seller.TaxID, want.sellerTaxID, has(inv.Source, ofd.FieldSellerTaxID)},
		{"buyer_tax_id", inv.Buyer.TaxID, want.buyerTaxID, has(inv.Source, ofd.FieldBuyerTaxID)},
	}
	if reason, msg := compareDoc("OFD", r.number, fields); reason != probes.ReasonNone {
		return "", reason, msg
	}
	return text, probes.ReasonNone, ""
}

// qrFromOFD decodes the QR-like images of an OFD in order and returns the
// first payload read.
func qrFromOFD(doc *ofd.Document) (string, error) {
	if len(doc.Images) == 0 {
		return "", fmt.Errorf("no image in the document (%d pages)", doc.Pages)
	}
	var firstErr error
	for _, img := range doc.Images {
		if !img.QRLikely {
			continue
		}
		text, err := DecodeQRBytes(img.Data)
		if err == nil {
			return text, nil
		}
		if firstErr == nil {
			firstErr = fmt.Errorf("image %s: %w", img.Path, err)
		}
	}
	if firstErr == nil {
		return "", fmt.Errorf("none of its %d images looks like a QR code", len(doc.Images))
	}
	return "", firstErr
}

// xml reads the probe invoice's 数电 XML file; its number, date, totals
// and tax IDs must agree with the request.
func (r *qrRun) xml(b []byte, want expectation) (probes.Reason, string) {
	inv, err := fpxml.Parse(b)
	if err != nil {
		return probes.ReasonDocumentMismatch, fmt.Sprintf("field xml: the XML of %s does not read: %v", r.number, err)
	}
	return compareDoc("XML", r.number, []docField{
		{"number", inv.Number, want.number, true},
		{"date", dateOf(inv.IssueDate), dashed(want.date), true},
		{"total", inv.Total.String(), want.including.String(), true},
		{"amount_excluding_tax", inv.AmountExclTax.String(), want.excluding.String(), inv.AmountExclTax != 0},
		{"tax", inv.Tax.String(), want.tax.String(), inv.Tax != 0},
		{"seller_tax_id", inv.Seller.TaxID, want.sellerTaxID, true},
		{"buyer_tax_id", inv.Buyer.TaxID, want.buyerTaxID, inv.Buyer.TaxID != ""},
	})
}

// docField is one value a document carries and what it must be; present
// is false when the document does not carry it (nothing to compare).
type docField struct {
	name, got, want string
	present         bool
}

// compareDoc reports the first field a document gets wrong, by name.
func compareDoc(kind, number string, fields []docField) (probes.Reason, string) {
	for _, f := range fields {
		if f.present && f.got != f.want {
			return probes.ReasonDocumentMismatch, fmt.Sprintf("invoice %s: field %s: the %s says %s, expected %s", number, f.name, kind, orNone(f.got), f.want)
		}
	}
	return probes.ReasonNone, ""
}

func has(m map[string]string, k string) bool { _, ok := m[k]; return ok }

func dateOf(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.DateOnly)
}

// dashed turns YYYYMMDD into YYYY-MM-DD.
func dashed(d string) string {
	if len(d) != 8 {
		return d
	}
	return d[:4] + "-" + d[4:6] + "-" + d[6:]
}

func orNone(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}
