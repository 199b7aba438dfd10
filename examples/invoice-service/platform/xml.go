package platform

import (
	"encoding/xml"
	"fmt"

	"github.com/vigil-project/vigil/probes/invoice/einvoice"
)

// The XML rendering of a fully digital invoice (数电发票 XML 版式文件), the
// third download real platforms offer beside PDF and OFD. Element names and
// nesting follow the published 数电 XML format as real files show it: a toll
// invoice's XML quoted, reduced and with its values replaced, in a public Go
// test (xmlinvoice_eui_test.go, found through the code search; the index did
// not name its repository): EInvoice / Header (EIid, EInvoiceTag SWEI<province>00,
// Version 0.32) / EInvoiceData (SellerInformation, BuyerInformation,
// BasicInformation with TotalTax-includedAmount and RequestTime, one
// IssuItemInformation per line with UnPrice, ComTaxAm,
// TotaltaxIncludedAmount) / TaxSupervisionInfo (InvoiceNumber, IssueTime as
// a date, TaxBureauCode 1<province>00000000, TaxBureauName). The
// Header/InherentLabel/GeneralOrSpecialVAT label (LabelCode 01 special, 02
// ordinary) and AdditionalInformation/Remark are placed as the public parsers
// of these files read them; no real file with them was at hand.
//
// Real files are signed (an XML signature inside); this one is not. The
// amount in words, drawer, addresses and bank details are left out: the
// platform does not hold them.
type xmlInvoice struct {
	XMLName xml.Name `xml:"EInvoice"`
	Header  struct {
		EIid          string
		EInvoiceTag   string
		Version       string
		InherentLabel struct {
			GeneralOrSpecialVAT struct{ LabelCode, LabelName string }
		}
	}
	EInvoiceData struct {
		SellerInformation struct{ SellerIdNum, SellerName string }
		BuyerInformation  struct{ BuyerIdNum, BuyerName string }
		BasicInformation  struct {
			TotalAmWithoutTax      string
			TotalTaxAm             string
			TotalTaxIncludedAmount string `xml:"TotalTax-includedAmount"`
			RequestTime            string
		}
		IssuItemInformation   []xmlItem
		AdditionalInformation *struct{ Remark string }
	}
	TaxSupervisionInfo struct {
		InvoiceNumber string
		IssueTime     string
		TaxBureauCode string
		TaxBureauName string
	}
}

type xmlItem struct {
	ItemName               string
	Quantity               string
	UnPrice                string
	Amount                 string
	TaxRate                string
	ComTaxAm               string
	TotaltaxIncludedAmount string
}

// provinces by the two-digit region code that starts the province part of
// 数电 invoice numbers (GB/T 2260), for the tax bureau's name.
var provinces = map[string]string{
	"11": "北京市", "12": "天津市", "13": "河北省", "14": "山西省", "15": "内蒙古自治区",
	"21": "辽宁省", "22": "吉林省", "23": "黑龙江省", "31": "上海市", "32": "江苏省",
	"33": "浙江省", "34": "安徽省", "35": "福建省", "36": "江西省", "37": "山东省",
	"41": "河南省", "42": "湖北省", "43": "湖南省", "44": "广东省", "45": "广西壮族自治区",
	"46": "海南省", "50": "重庆市", "51": "四川省", "52": "贵州省", "53": "云南省",
	"54": "西藏自治区", "61": "陕西省", "62": "甘肃省", "63": "青海省", "64": "宁夏回族自治区",
	"65": "新疆维吾尔自治区",
}

// renderXML writes the invoice's XML file. skew is added to
// TotalTax-includedAmount only (the xml_amount_mismatch fault).
func renderXML(inv *Invoice, skew einvoice.Fen) ([]byte, error) {
	total, err := einvoice.ParseFen(inv.Totals.IncludingTax)
	if err != nil {
		return nil, fmt.Errorf("xml: total: %w", err)
	}
	region := inv.Number[2:4]
	issued := inv.IssuedAt.In(chinaTime)
	var x xmlInvoice
	x.Header.EIid = inv.Number
	x.Header.EInvoiceTag = "SWEI" + region + "00"
	x.Header.Version = "0.32"
	label := &x.Header.InherentLabel.GeneralOrSpecialVAT
	label.LabelCode, label.LabelName = "02", "普通发票"
	if inv.Type == einvoice.TypeDigitalSpecial {
		label.LabelCode, label.LabelName = "01", "增值税专用发票"
	}
	d := &x.EInvoiceData
	d.SellerInformation.SellerIdNum, d.SellerInformation.SellerName = inv.Seller.TaxID, inv.Seller.Name
	d.BuyerInformation.BuyerIdNum, d.BuyerInformation.BuyerName = inv.Buyer.TaxID, inv.Buyer.Name
	d.BasicInformation.TotalAmWithoutTax = inv.Totals.ExcludingTax
	d.BasicInformation.TotalTaxAm = inv.Totals.Tax
	d.BasicInformation.TotalTaxIncludedAmount = (total + skew).String()
	d.BasicInformation.RequestTime = issued.Format("2006-01-02 15:04:05")
	for i, it := range inv.Items {
		amount, err1 := einvoice.ParseFen(it.Amount)
		tax, err2 := einvoice.ParseFen(it.Tax)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("xml: items[%d]: amount %q, tax %q", i, it.Amount, it.Tax)
		}
		d.IssuItemInformation = append(d.IssuItemInformation, xmlItem{ItemName: it.Name, Quantity: it.Quantity,
			UnPrice: it.UnitPrice, Amount: it.Amount, TaxRate: it.TaxRate, ComTaxAm: it.Tax,
			TotaltaxIncludedAmount: (amount + tax).String()})
	}
	if inv.Remark != "" {
		d.AdditionalInformation = &struct{ Remark string }{inv.Remark}
	}
	s := &x.TaxSupervisionInfo
	s.InvoiceNumber = inv.Number
	s.IssueTime = issued.Format("2006-01-02")
	s.TaxBureauCode = "1" + region + "00000000"
	s.TaxBureauName = "国家税务总局" + provinces[region] + "税务局"
	b, err := xml.MarshalIndent(x, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("xml: %w", err)
	}
	return append([]byte(xml.Header), append(b, '\n')...), nil
}
