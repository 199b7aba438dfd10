package invoice

import (
	"bytes"

	"fmt"
	"strings"

	"github.com/vigil-project/vigil/internal/confkit"
	"github.com/vigil-project/vigil/probes/invoice/einvoice"
	"github.com/vigil-project/vigil/probes/invoice/fpxml"
	"github.com/vigil-project/vigil/probes/invoice/ofd"
)

// Inspection is what one e-invoice input says: its QR payload field by
// field, the invoice data its document embeds, and every problem found.
type Inspection struct {
	Input  string `json:"input"`
	Format string `json:"format"` // png, jpeg, gif, pdf, ofd, xml or payload
	// Payload is the QR content as read; Fields its parsed fields.
	Payload string          `json:"payload,omitempty"`
	Fields  *PayloadFields  `json:"fields,omitempty"`
	Doc     *DocumentFields `json:"document,omitempty"`
	// Problems are what is wrong with a readable input (exit 1);
	// Unreadable says why nothing could be read (exit 2).
	Problems   []string `json:"problems,omitempty"`
	Unreadable string   `json:"unreadable,omitempty"`
}

// PayloadFields are a QR payload's fields with their meaning.
type PayloadFields struct {
	Type       string   `json:"type"`
	TypeZH     string   `json:"type_name_zh,omitempty"`
	TypeEN     string   `json:"type_name_en,omitempty"`
	Code       string   `json:"code,omitempty"`
	Number     string   `json:"number"`
	Date       string   `json:"date"`
	Amount     string   `json:"amount"`
	Basis      string   `json:"amount_basis"`
	CheckCode  string   `json:"check_code,omitempty"`
	Checksum   string   `json:"checksum,omitempty"`
	Normalized []string `json:"normalized,omitempty"`
}

// DocumentFields are the invoice data an OFD or XML document embeds.
type DocumentFields struct {
	Number      string   `json:"number,omitempty"`
	Date        string   `json:"date,omitempty"`
	Total       string   `json:"total_including_tax,omitempty"`
	Excluding   string   `json:"total_excluding_tax,omitempty"`
	Tax         string   `json:"tax,omitempty"`
	Seller      string   `json:"seller,omitempty"`
	SellerTaxID string   `json:"seller_tax_id,omitempty"`
	Buyer       string   `json:"buyer,omitempty"`
	BuyerTaxID  string   `json:"buyer_tax_id,omitempty"`
	Signatures  []string `json:"signatures,omitempty"`
	Warnings    []string `json:"warnings,omitempty"`
}

// Inspect reads one input: an image, a PDF, an OFD or an XML invoice by
// its content, or else a raw payload.
func Inspect(name string, b []byte) Inspection {
	in := Inspection{Input: name, Format: sniff(b)}
	var err error
	switch in.Format {
	case "png", "jpeg", "gif":
		in.Payload, err = DecodeQRBytes(b)
	case "pdf":
		in.Payload, _, err = QRFromPDF(b)
	case "ofd":
		var doc *ofd.Document
		if doc, err = ofd.Read(b, ofd.DefaultLimits); err == nil {
			in.Doc = ofdFields(doc)
			in.Payload, err = qrFromOFD(doc)
		}
	case "xml":
		var inv *fpxml.Invoice
		if inv, err = fpxml.Parse(b); err == nil {
			in.Doc = xmlFields(inv)
			in.Payload = inv.QRPayload
		}
	default:
		in.Payload = strings.TrimSpace(string(b))
	}
	if err != nil {
		in.Unreadable = err.Error()
		return in
	}
	if in.Payload == "" {
		if in.Format != "xml" {
			in.Unreadable = "no QR payload"
		}
		return in
	}
	p, perr := einvoice.ParsePayload(in.Payload)
	for _, e := range confkit.FlattenErrors(perr) {
		in.Problems = append(in.Problems, "field "+e.Error())
	}
	if perr == nil {
		in.Fields = payloadFields(p)
		in.Problems = append(in.Problems, crossCheck(in.Fields, in.Doc)...)
	}
	return in
}

// sniff names a format by its first bytes.
func sniff(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte("\x89PNG")):
		return "png"
	case bytes.HasPrefix(b, []byte("\xff\xd8\xff")):
		return "jpeg"
	case bytes.HasPrefix(b, []byte("GIF8")):
		return "gif"
	case bytes.HasPrefix(b, []byte("%PDF")):
		return "pdf"
	case bytes.HasPrefix(b, []byte("PK\x03\x04")):
		return "ofd"
	case bytes.HasPrefix(bytes.TrimLeft(bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")), " \t\r\n"), []byte("<")):
		return "xml"
	}
	return "payload"
}

func payloadFields(p einvoice.Payload) *PayloadFields {
	f := &PayloadFields{Type: p.Type, Code: p.Code, Number: p.Number, Date: dashed(p.DateString()), Amount: p.Amount.String(),
		Basis: p.AmountBasis().String(), CheckCode: p.CheckCode, Checksum: p.Checksum, Normalized: p.Normalized}
	f.TypeZH, f.TypeEN = einvoice.TypeName(p.Type)
	return f
}

func ofdFields(doc *ofd.Document) *DocumentFields {
	inv := doc.Invoice
	f := &DocumentFields{Number: inv.Number, Date: dateOf(inv.IssueDate), Seller: inv.Seller.Name, SellerTaxID: inv.Seller.TaxID,
		Buyer: inv.Buyer.Name, BuyerTaxID: inv.Buyer.TaxID, Warnings: doc.Warnings}
	if has(inv.Source, ofd.FieldTotal) {
		f.Total = inv.Total.String()
	}
	if has(inv.Source, ofd.FieldAmountExclTax) {
		f.Excluding = inv.AmountExclTax.String()
	}
	if has(inv.Source, ofd.FieldTax) {
		f.Tax = inv.Tax.String()
	}
	for _, s := range doc.Signatures {
		f.Signatures = append(f.Signatures, fmt.Sprintf("signed by %s (seal %q, issuer %s, %s, %s), not verified",
			orNone(s.Signer), s.SealName, orNone(s.Issuer), s.Method, s.Time))
	}
	return f
}

func xmlFields(inv *fpxml.Invoice) *DocumentFields {
	return &DocumentFields{Number: inv.Number, Date: dateOf(inv.IssueDate), Total: inv.Total.String(),
		Excluding: inv.AmountExclTax.String(), Tax: inv.Tax.String(), Seller: inv.Seller.Name, SellerTaxID: inv.Seller.TaxID,
		Buyer: inv.Buyer.Name, BuyerTaxID: inv.Buyer.TaxID}
}

// crossCheck compares the QR's number, date and amount (on its type's
// basis) with what the document embeds.
func crossCheck(p *PayloadFields, d *DocumentFields) []string {
	if d == nil {
		return nil
	}
	var out []string
	amount := map[string]string{"including_tax": d.Total, "excluding_tax": d.Excluding}[p.Basis]
	for _, c := range []struct{ field, qr, doc string }{
		{"number", p.Number, d.Number}, {"date", p.Date, d.Date}, {"amount", p.Amount, amount},
	} {
		if c.doc != "" && c.qr != c.doc {
			out = append(out, fmt.Sprintf("field %s: the QR says %s, the document %s", c.field, c.qr, c.doc))
		}
	}
	return out
}
