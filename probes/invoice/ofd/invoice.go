package ofd

import (
	"fmt"
	"strings"
	"time"

	"github.com/vigil-project/vigil/probes/invoice/einvoice"
	"github.com/vigil-project/vigil/probes/invoice/fpxml"
)

// Invoice is the invoice data an OFD embeds. Source says, for each field
// found, where it was read ("attachment", "CustomTags", "CustomData"); a
// field without an entry there was not found (its value is zero).
type Invoice struct {
	Number    string
	Code      string // empty on 数电 invoices
	IssueDate time.Time

	AmountExclTax einvoice.Fen // 合计金额
	Tax           einvoice.Fen // 合计税额
	Total         einvoice.Fen // 价税合计

	Buyer, Seller fpxml.Party
	CheckCode     string

	Source map[string]string
}

// Field names, as Invoice.Source keys them.
const (
	FieldNumber        = "Number"
	FieldCode          = "Code"
	FieldIssueDate     = "IssueDate"
	FieldTotal         = "Total"
	FieldAmountExclTax = "AmountExclTax"
	FieldTax           = "Tax"
	FieldBuyerName     = "Buyer.Name"
	FieldBuyerTaxID    = "Buyer.TaxID"
	FieldSellerName    = "Seller.Name"
	FieldSellerTaxID   = "Seller.TaxID"
	FieldCheckCode     = "CheckCode"
)

// tagFields maps custom tag names to fields: the names the Suwell (ofd:root)
// and the edrm.org.cn 2019 (fp:eInvoice) tag files of the fixtures use.
var tagFields = map[string]string{
	"InvoiceNo":               FieldNumber,
	"InvoiceCode":             FieldCode,
	"IssueDate":               FieldIssueDate,
	"TaxInclusiveTotalAmount": FieldTotal,
	"TaxExclusiveTotalAmount": FieldAmountExclTax,
	"TaxTotalAmount":          FieldTax,
	"BuyerName":               FieldBuyerName,
	"BuyerTaxID":              FieldBuyerTaxID,
	"SellerName":              FieldSellerName,
	"SellerTaxID":             FieldSellerTaxID,
	"InvoiceCheckCode":        FieldCheckCode,
}

// customDataFields maps DocInfo CustomData names to fields.
var customDataFields = map[string]string{
	"发票号码":      FieldNumber,
	"发票代码":      FieldCode,
	"开票日期":      FieldIssueDate,
	"价税合计":      FieldTotal,
	"合计金额":      FieldAmountExclTax,
	"合计税额":      FieldTax,
	"购买方名称":     FieldBuyerName,
	"购买方纳税人识别号": FieldBuyerTaxID,
	"销售方名称":     FieldSellerName,
	"销售方纳税人识别号": FieldSellerTaxID,
	"校验码":       FieldCheckCode,
}

type source struct {
	name   string
	values map[string]string
}

// merge fills Document.Invoice from the sources, preferring the attachment,
// then the tags, then CustomData, and warns where they disagree.
func (r *reader) merge() error {
	var sources []source
	for _, a := range r.doc.Attachments {
		if inv := a.Invoice; inv != nil {
			v := map[string]string{
				FieldNumber: inv.Number, FieldCode: inv.Code, FieldIssueDate: inv.IssueTime,
				FieldTotal: inv.Total.String(), FieldBuyerName: inv.Buyer.Name, FieldBuyerTaxID: inv.Buyer.TaxID,
				FieldSellerName: inv.Seller.Name, FieldSellerTaxID: inv.Seller.TaxID, FieldCheckCode: inv.CheckCode,
			}
			// Zero is "absent" in fpxml for the optional amounts.
			if inv.AmountExclTax != 0 || inv.Tax != 0 {
				v[FieldAmountExclTax], v[FieldTax] = inv.AmountExclTax.String(), inv.Tax.String()
			}
			sources = append(sources, source{"attachment", v})
			break
		}
	}
	for _, s := range []struct {
		name   string
		raw    map[string]string
		fields map[string]string
	}{{"CustomTags", r.doc.Tags, tagFields}, {"CustomData", r.doc.CustomData, customDataFields}} {
		v := map[string]string{}
		for k, val := range s.raw {
			if f, ok := s.fields[k]; ok {
				v[f] = val
			}
		}
		sources = append(sources, source{s.name, v})
	}
	inv := &r.doc.Invoice
	inv.Source = map[string]string{}
	fields := []string{FieldNumber, FieldCode, FieldIssueDate, FieldTotal, FieldAmountExclTax, FieldTax,
		FieldBuyerName, FieldBuyerTaxID, FieldSellerName, FieldSellerTaxID, FieldCheckCode}
	for _, f := range fields {
		var chosen, chosenFrom string
		for _, s := range sources {
			raw := strings.TrimSpace(s.values[f])
			if raw == "" {
				continue
			}
			norm, err := inv.set(f, raw, chosen == "")
			if err != nil {
				r.doc.Warnings = append(r.doc.Warnings, fmt.Sprintf("ofd: %s %s %q: %v", s.name, f, raw, err))
				continue
			}
			if chosen == "" {
				chosen, chosenFrom = norm, s.name
				inv.Source[f] = s.name
			} else if norm != chosen {
				r.doc.Warnings = append(r.doc.Warnings, fmt.Sprintf("ofd: %s says %s is %q, %s says %q", chosenFrom, f, chosen, s.name, norm))
			}
		}
	}
	return nil
}

// set parses raw for field f, stores it when store is set, and returns the
// normalised value for comparison between sources.
func (inv *Invoice) set(f, raw string, store bool) (string, error) {
	switch f {
	case FieldIssueDate:
		d, err := fpxml.ParseDate(raw)
		if err != nil {
			return "", err
		}
		if store {
			inv.IssueDate = d
		}
		return d.Format("2006-01-02"), nil
	case FieldTotal, FieldAmountExclTax, FieldTax:
		a, err := fpxml.ParseAmount(raw)
		if err != nil {
			return "", err
		}
		if store {
			switch f {
			case FieldTotal:
				inv.Total = a
			case FieldAmountExclTax:
				inv.AmountExclTax = a
			default:
				inv.Tax = a
			}
		}
		return a.String(), nil
	case FieldCheckCode, FieldNumber, FieldCode:
		// Printed in groups on some invoices ("11058 76307 04808 54113").
		raw = strings.Join(strings.Fields(raw), "")
	}
	if store {
		switch f {
		case FieldNumber:
			inv.Number = raw
		case FieldCode:
			inv.Code = raw
		case FieldCheckCode:
			inv.CheckCode = raw
		case FieldBuyerName:
			inv.Buyer.Name = raw
		case FieldBuyerTaxID:
			inv.Buyer.TaxID = raw
		case FieldSellerName:
			inv.Seller.Name = raw
		case FieldSellerTaxID:
			inv.Seller.TaxID = raw
		}
	}
	return raw, nil
}
