// Package fpxml reads the XML form of Chinese e-invoices, input from
// targets and so bounded in size, nesting and tokens before anything else:
//
//   - the 数电 (fully digitalised e-invoice) XML file the tax platform
//     issues beside the PDF and OFD: root EInvoice with Header,
//     EInvoiceData (SellerInformation, BuyerInformation, BasicInformation,
//     IssuItemInformation…) and TaxSupervisionInfo;
//   - the invoice XML embedded in OFD e-invoices of 2019–2023
//     (Doc_0/Attachs/original_invoice.xml): root eInvoice in the namespace
//     http://www.edrm.org.cn/schema/e-invoice/2019, elements fp:InvoiceNo,
//     fp:TaxInclusiveTotalAmount, fp:GraphCode (the QR payload)…
//
// Elements are matched by local name, whatever the namespace prefix. Only
// fields are read: the signatures some of these files carry are not checked.
package fpxml

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-project/vigil/probes/invoice/einvoice"
	"github.com/vigil-project/vigil/probes/invoice/internal/xmltree"
)

// Bounds on an XML invoice. A real 数电 XML is a few kilobytes, 100 lines
// of an ordinary invoice's attachment about 40 KB, and both are five or six
// elements deep.
const (
	MaxSize   = 4 << 20 // bytes
	MaxDepth  = 32      // nested elements
	MaxTokens = 400_000 // elements, text runs, comments
)

// LimitError is an input refused for its size or shape.
type LimitError struct {
	Limit string // "size", "depth" or "tokens"
	Max   int64
}

func (e *LimitError) Error() string {
	switch e.Limit {
	case "size":
		return fmt.Sprintf("fpxml: XML larger than the %d-byte limit", e.Max)
	case "depth":
		return fmt.Sprintf("fpxml: XML nested deeper than the limit of %d elements", e.Max)
	}
	return fmt.Sprintf("fpxml: XML longer than the limit of %d tokens", e.Max)
}

// Format says which XML invoice was read.
type Format string

const (
	// Digital is the 数电 invoice XML (root EInvoice).
	Digital Format = "EInvoice"
	// OFDAttachment is the edrm.org.cn 2019 e-invoice XML embedded in OFD
	// invoices (root eInvoice).
	OFDAttachment Format = "eInvoice"
)

// Party is the buyer or the seller.
type Party struct {
	Name  string
	TaxID string // unified social credit code or taxpayer ID; may be empty for a private buyer
}

// Invoice is what the XML says. Amounts absent from the file are zero;
// Number, IssueDate and Total are always present (Parse fails otherwise).
type Invoice struct {
	Format    Format
	Number    string    // 发票号码: 20 digits on 数电 invoices, 8 before
	Code      string    // 发票代码; empty on 数电 invoices
	IssueDate time.Time // calendar date, UTC midnight
	IssueTime string    // the date or time as written

	AmountExclTax einvoice.Fen // 合计金额
	Tax           einvoice.Fen // 合计税额
	Total         einvoice.Fen // 价税合计

	Buyer, Seller Party

	Type      string // GeneralOrSpecialVAT LabelCode (01 special, 02 ordinary) or TypeCode
	TypeName  string // GeneralOrSpecialVAT LabelName (增值税专用发票, 普通发票)
	CheckCode string // 校验码 (eInvoice only)
	QRPayload string // GraphCode: the QR payload (eInvoice only)
	TaxBureau string // TaxSupervisionInfo TaxBureauCode (数电 only)
	Items     int    // line items
}

// Parse reads a 数电 XML invoice or an OFD invoice attachment.
func Parse(b []byte) (*Invoice, error) {
	if len(b) > MaxSize {
		return nil, &LimitError{Limit: "size", Max: MaxSize}
	}
	root, err := xmltree.Parse(b, MaxDepth, MaxTokens)
	if err != nil {
		var le *xmltree.LimitError
		if errors.As(err, &le) {
			return nil, &LimitError{Limit: le.Limit, Max: int64(le.Max)}
		}
		return nil, fmt.Errorf("fpxml: %w", err)
	}
	var inv *Invoice
	switch root.Name {
	case string(Digital):
		inv, err = digital(root)
	case string(OFDAttachment):
		inv, err = attachment(root)
	default:
		return nil, fmt.Errorf("fpxml: root element <%s> is neither EInvoice (数电 XML) nor eInvoice (OFD invoice attachment)", root.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("fpxml: %s: %w", root.Name, err)
	}
	return inv, nil
}

// digital reads the 数电 XML. Element names as published by the tax
// platform's files (see testdata/README.md for where they were taken from).
func digital(root *xmltree.Node) (*Invoice, error) {
	data := root.Child("EInvoiceData")
	basic := data.Child("BasicInformation")
	sup := root.Child("TaxSupervisionInfo")
	inv := &Invoice{
		Format:    Digital,
		Number:    first(sup.TextOf("InvoiceNumber"), root.TextOf("Header", "EIid")),
		IssueTime: first(sup.TextOf("IssueTime"), basic.TextOf("RequestTime")),
		Seller:    Party{Name: data.TextOf("SellerInformation", "SellerName"), TaxID: data.TextOf("SellerInformation", "SellerIdNum")},
		Buyer:     Party{Name: data.TextOf("BuyerInformation", "BuyerName"), TaxID: data.TextOf("BuyerInformation", "BuyerIdNum")},
		TaxBureau: sup.TextOf("TaxBureauCode"),
		Items:     len(data.All("IssuItemInformation")),
	}
	// GeneralOrSpecialVAT sits under Header/InherentLabel in some files and
	// under TaxSupervisionInfo in others.
	root.Walk(func(n *xmltree.Node) bool {
		if n.Name == "GeneralOrSpecialVAT" && inv.TypeName == "" && inv.Type == "" {
			inv.Type, inv.TypeName = n.TextOf("LabelCode"), n.TextOf("LabelName")
		}
		return true
	})
	amounts := []struct {
		name string
		dst  *einvoice.Fen
		req  bool
	}{
		{"TotalTax-includedAmount", &inv.Total, true},
		{"TotalAmWithoutTax", &inv.AmountExclTax, false},
		{"TotalTaxAm", &inv.Tax, false},
	}
	for _, a := range amounts {
		if err := amount(basic.TextOf(a.name), "BasicInformation/"+a.name, a.req, a.dst); err != nil {
			return nil, err
		}
	}
	return inv, finish(inv, "TaxSupervisionInfo/InvoiceNumber", "TaxSupervisionInfo/IssueTime")
}

// attachment reads the edrm.org.cn 2019 e-invoice XML (original_invoice.xml).
func attachment(root *xmltree.Node) (*Invoice, error) {
	inv := &Invoice{
		Format:    OFDAttachment,
		Number:    root.TextOf("InvoiceNo"),
		Code:      root.TextOf("InvoiceCode"),
		IssueTime: root.TextOf("IssueDate"),
		Seller:    Party{Name: root.TextOf("Seller", "SellerName"), TaxID: root.TextOf("Seller", "SellerTaxID")},
		Buyer:     Party{Name: root.TextOf("Buyer", "BuyerName"), TaxID: root.TextOf("Buyer", "BuyerTaxID")},
		Type:      root.TextOf("TypeCode"),
		CheckCode: root.TextOf("InvoiceCheckCode"),
		QRPayload: root.TextOf("GraphCode"),
		Items:     len(root.Child("GoodsInfos").All("GoodsInfo")),
	}
	amounts := []struct {
		name string
		dst  *einvoice.Fen
		req  bool
	}{
		{"TaxInclusiveTotalAmount", &inv.Total, true},
		{"TaxExclusiveTotalAmount", &inv.AmountExclTax, false},
		{"TaxTotalAmount", &inv.Tax, false},
	}
	for _, a := range amounts {
		if err := amount(root.TextOf(a.name), a.name, a.req, a.dst); err != nil {
			return nil, err
		}
	}
	return inv, finish(inv, "InvoiceNo", "IssueDate")
}

func finish(inv *Invoice, numberElem, dateElem string) error {
	if inv.Number == "" {
		return fmt.Errorf("no invoice number (%s)", numberElem)
	}
	if inv.IssueTime == "" {
		return fmt.Errorf("no issue date (%s)", dateElem)
	}
	d, err := ParseDate(inv.IssueTime)
	if err != nil {
		return fmt.Errorf("%s: %w", dateElem, err)
	}
	inv.IssueDate = d
	return nil
}

func first(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func amount(s, elem string, required bool, dst *einvoice.Fen) error {
	if s == "" {
		if required {
			return fmt.Errorf("no %s", elem)
		}
		return nil
	}
	f, err := ParseAmount(s)
	if err != nil {
		return fmt.Errorf("%s: %w", elem, err)
	}
	*dst = f
	return nil
}

// ParseAmount reads an amount as invoices print it: "¥17699.12",
// "￥ 1,234.50", "-3.00".
func ParseAmount(s string) (einvoice.Fen, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimPrefix(t, "¥")
	t = strings.TrimPrefix(t, "￥")
	t = strings.ReplaceAll(strings.TrimSpace(t), ",", "")
	if len(t) > 24 {
		return 0, fmt.Errorf("amount %.24q… too long", t)
	}
	return einvoice.ParseFen(t)
}

var (
	dateSepRE     = regexp.MustCompile(`^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?(?:$|[ T])`)
	dateCompactRE = regexp.MustCompile(`^(\d{4})(\d{2})(\d{2})(?:$|\d{6}|[ T])`)
)

// ParseDate reads the date part of an issue date or time as the invoice
// formats write it: 2024-04-22, 2024-04-22 10:11:12, 2024年04月22日,
// 20240422. The result is the calendar date at UTC midnight, like the QR
// payload's.
func ParseDate(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	m := dateSepRE.FindStringSubmatch(s)
	if m == nil {
		m = dateCompactRE.FindStringSubmatch(s)
	}
	if m == nil {
		return time.Time{}, fmt.Errorf("%.40q is not a date", s)
	}
	y, _ := strconv.Atoi(m[1])
	mo, _ := strconv.Atoi(m[2])
	d, _ := strconv.Atoi(m[3])
	t := time.Date(y, time.Month(mo), d, 0, 0, 0, 0, time.UTC)
	if t.Year() != y || int(t.Month()) != mo || t.Day() != d {
		return time.Time{}, fmt.Errorf("%.40q is not a calendar date", s)
	}
	return t, nil
}
