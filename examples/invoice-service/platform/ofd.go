package platform

import (
	"archive/zip"
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"

	"github.com/vigil-project/vigil/probes/invoice/einvoice"
)

// The OFD rendering (GB/T 33190) of an invoice, laid out like the 数电 OFDs
// real platforms hand out (jnb_odf1.ofd, jnb_ofd2.ofd and erma0_sample.ofd in
// ../shared/fixtures/einvoice, all written by the tax bureau's Suwell SDK):
//
//	OFD.xml                      DocInfo with the CustomData the fixtures carry
//	                             (发票号码, 合计金额, 合计税额, 开票日期, both tax IDs)
//	Doc_0/Document.xml           CommonData, the page, CustomTags
//	Doc_0/PublicRes.xml          fonts
//	Doc_0/DocumentRes.xml        the QR image as MultiMedia, BaseLoc Res
//	Doc_0/Res/image_<id>.png     the QR code
//	Doc_0/Pages/Page_0/Content.xml  TextObjects and the QR ImageObject
//	Doc_0/Tags/CustomTags.xml    one CustomTag, TypeID root → CustomTag.xml
//	Doc_0/Tags/CustomTag.xml     <ofd:root>: InvoiceNo, IssueDate,
//	                             Buyer/BuyerName, Buyer/BuyerTaxID,
//	                             Seller/SellerName, Seller/SellerTaxID,
//	                             TaxExclusiveTotalAmount, TaxTotalAmount,
//	                             TaxInclusiveTotalAmount, Note, and per line
//	                             Item, TaxScheme, Amount, TaxAmount, Price,
//	                             Quantity; each an ObjectRef to the page's
//	                             TextObject showing the value
//
// As in the fixtures, the tags carry no values themselves: they point at
// text objects, and amounts point at two (the "¥" and the figures). The
// template page, annotations (the download-count watermark) and, above all,
// the tax bureau's signature (Signs/, which zc310_999.ofd has) are left out:
// this package is unsigned and no verifier would accept it as an invoice.
const ofdNS = "http://www.ofdspec.org/2016"

// ofdElem is one element of an OFD part, written with the ofd: prefix.
type ofdElem struct {
	name  string
	attrs []string // name, value, name, value…
	text  string
	kids  []*ofdElem
}

func oe(name string, kids ...*ofdElem) *ofdElem { return &ofdElem{name: name, kids: kids} }

func oleaf(name, text string, attrs ...string) *ofdElem {
	return &ofdElem{name: name, text: text, attrs: attrs}
}

func (e *ofdElem) with(attrs ...string) *ofdElem { e.attrs = append(e.attrs, attrs...); return e }

func (e *ofdElem) write(b *bytes.Buffer) {
	b.WriteString("<ofd:" + e.name)
	for i := 0; i+1 < len(e.attrs); i += 2 {
		b.WriteString(" " + e.attrs[i] + `="`)
		xml.EscapeText(b, []byte(e.attrs[i+1]))
		b.WriteString(`"`)
	}
	if e.text == "" && len(e.kids) == 0 {
		b.WriteString("/>")
		return
	}
	b.WriteString(">")
	xml.EscapeText(b, []byte(e.text))
	for _, k := range e.kids {
		k.write(b)
	}
	b.WriteString("</ofd:" + e.name + ">")
}

// ofdPart serializes a part's root element with the OFD namespace.
func ofdPart(root *ofdElem) []byte {
	root.attrs = append([]string{"xmlns:ofd", ofdNS}, root.attrs...)
	var b bytes.Buffer
	b.WriteString(xml.Header)
	root.write(&b)
	return b.Bytes()
}

// ofdFile is one file of the package.
type ofdFile struct {
	name string
	data []byte
}

// mm formats a length in millimetres, OFD's unit, to a thousandth.
func mm(v float64) string { return strconv.FormatFloat(math.Round(v*1000)/1000, 'f', -1, 64) }

// renderOFD builds the OFD package. Without withQR the page has no QR
// ImageObject and the package no QR image (the ofd_missing_qr fault); every
// other part is byte for byte the same. unreadable wipes the QR's middle.
func renderOFD(inv *Invoice, withQR, unreadable bool) ([]byte, error) {
	lastID := 0
	id := func() string { lastID++; return strconv.Itoa(lastID) }
	// IDs are allocated the same way with or without the QR.
	pageID, fontText, fontMono, mediaID, imageID, layerID := id(), id(), id(), id(), id(), id()

	var objs []*ofdElem
	text := func(x, y, size float64, font, s string) string {
		oid := id()
		w := 1.0 // a rough advance: a full em for CJK, 0.6 em for the rest
		for _, r := range s {
			if r >= 0x2E80 {
				w += size
			} else {
				w += 0.6 * size
			}
		}
		objs = append(objs, oe("TextObject",
			oleaf("TextCode", s, "X", "0", "Y", mm(size))).
			with("ID", oid, "Boundary", fmt.Sprintf("%s %s %s %s", mm(x), mm(y), mm(w), mm(size*1.4)),
				"Font", font, "Size", mm(size)))
		return oid
	}
	const small, normal = 2.822, 3.175
	label := func(x, y float64, s string) { text(x, y, normal, fontText, s) }
	value := func(x, y float64, s string) string { return text(x, y, normal, fontText, s) }
	money := func(x, y float64, amount string) []string {
		return []string{text(x, y, normal, fontMono, "¥"), text(x+2.5, y, normal, fontText, amount)}
	}
	tag := func(name string, ids ...string) *ofdElem {
		t := oe(name)
		for _, oid := range ids {
			t.kids = append(t.kids, oleaf("ObjectRef", oid, "PageRef", pageID))
		}
		return t
	}

	title := "电子发票（普通发票）"
	if inv.Type == einvoice.TypeDigitalSpecial {
		title = "电子发票（增值税专用发票）"
	}
	text(62, 8, 5.5, fontText, title)
	if inv.Status == StatusVoid {
		text(92, 18, 5.5, fontText, "作废")
	}
	label(145, 10.3, "发票号码：")
	number := value(170, 10.3, inv.Number)
	label(145, 16.4, "开票日期：")
	date := value(170, 16.4, inv.IssuedAt.In(chinaTime).Format("2006年01月02日"))

	label(10, 33.8, "购买方名称：")
	buyerName := value(32, 33.8, inv.Buyer.Name)
	label(10, 43.3, "统一社会信用代码/纳税人识别号：")
	buyerID := text(63, 43.3, normal, fontMono, inv.Buyer.TaxID)
	label(110, 33.8, "销售方名称：")
	sellerName := value(132, 33.8, inv.Seller.Name)
	label(110, 43.3, "统一社会信用代码/纳税人识别号：")
	sellerID := text(163, 43.3, normal, fontMono, inv.Seller.TaxID)

	for _, c := range []struct {
		x float64
		s string
	}{{10, "项目名称"}, {80, "数量"}, {100, "单价"}, {125, "金额"}, {150, "税率/征收率"}, {175, "税额"}} {
		label(c.x, 50, c.s)
	}
	var itemTags []*ofdElem
	y := 56.0
	for _, it := range inv.Items {
		name := text(10, y, small, fontText, it.Name)
		qty := text(80, y, small, fontText, it.Quantity)
		price := text(100, y, small, fontText, it.UnitPrice)
		amount := text(125, y, small, fontText, it.Amount)
		rate := text(150, y, small, fontText, percent(it.TaxRate))
		tax := text(175, y, small, fontText, it.Tax)
		itemTags = append(itemTags, tag("Item", name), tag("TaxScheme", rate), tag("Amount", amount),
			tag("TaxAmount", tax), tag("Price", price), tag("Quantity", qty))
		y += 4.5
	}
	y = max(y+3, 90.5)
	label(10, y, "合计")
	excl := money(125, y, inv.Totals.ExcludingTax)
	tax := money(175, y, inv.Totals.Tax)
	label(110, y+5.5, "价税合计（小写）")
	incl := money(150, y+5.5, inv.Totals.IncludingTax)
	label(10, y+13, "备注：")
	var note []string
	if inv.Remark != "" {
		note = append(note, value(22, y+13, inv.Remark))
	}
	height := max(140, y+30)

	layer := oe("Layer").with("ID", layerID)
	if withQR {
		layer.kids = append(layer.kids, oe("ImageObject").with("ID", imageID, "CTM", "20 0 0 20 0 0",
			"Boundary", "6.5 6 20 20", "ResourceID", mediaID))
	}
	layer.kids = append(layer.kids, objs...)
	box := "0 0 210 " + mm(height)

	tags := oe("root", append([]*ofdElem{
		tag("InvoiceNo", number),
		tag("IssueDate", date),
		oe("Buyer", tag("BuyerName", buyerName), tag("BuyerTaxID", buyerID)),
		oe("Seller", tag("SellerName", sellerName), tag("SellerTaxID", sellerID)),
		tag("TaxExclusiveTotalAmount", excl...),
		tag("TaxTotalAmount", tax...),
		tag("TaxInclusiveTotalAmount", incl...),
		tag("Note", note...),
	}, itemTags...)...).with("version", "1.0")

	custom := func(name, v string) *ofdElem { return oleaf("CustomData", v, "Name", name) }
	issued := inv.IssuedAt.In(chinaTime)
	parts := []ofdFile{
		{"OFD.xml", ofdPart(oe("OFD", oe("DocBody",
			oe("DocInfo",
				oleaf("DocID", fmt.Sprintf("%032s", inv.Number)),
				oleaf("Author", "vigil demo"),
				oleaf("CreationDate", issued.Format("2006-01-02")),
				oleaf("Creator", "vigil demo invoice platform"),
				oe("CustomDatas",
					custom("发票号码", inv.Number),
					custom("销售方纳税人识别号", inv.Seller.TaxID),
					custom("合计金额", inv.Totals.ExcludingTax),
					custom("购买方纳税人识别号", inv.Buyer.TaxID),
					custom("合计税额", inv.Totals.Tax),
					custom("开票日期", issued.Format("2006年01月02日")))),
			oleaf("DocRoot", "Doc_0/Document.xml"))).with("DocType", "OFD", "Version", "1.0"))},
		{"Doc_0/Document.xml", ofdPart(oe("Document",
			oe("CommonData",
				oleaf("MaxUnitID", strconv.Itoa(lastID)),
				oe("PageArea", oleaf("PhysicalBox", box)),
				oleaf("PublicRes", "PublicRes.xml"),
				oleaf("DocumentRes", "DocumentRes.xml")),
			oe("Pages", oe("Page").with("ID", pageID, "BaseLoc", "Pages/Page_0/Content.xml")),
			oleaf("CustomTags", "Tags/CustomTags.xml")))},
		{"Doc_0/PublicRes.xml", ofdPart(oe("Res", oe("Fonts",
			oe("Font").with("ID", fontText, "FontName", "宋体", "FamilyName", "SimSun"),
			oe("Font").with("ID", fontMono, "FontName", "Courier New"))))},
		{"Doc_0/DocumentRes.xml", nil},
		{"Doc_0/Pages/Page_0/Content.xml", ofdPart(oe("Page",
			oe("Area", oleaf("PhysicalBox", box)),
			oe("Content", layer)))},
		{"Doc_0/Tags/CustomTags.xml", ofdPart(oe("CustomTags",
			oe("CustomTag", oleaf("FileLoc", "CustomTag.xml")).with("TypeID", "root")))},
		{"Doc_0/Tags/CustomTag.xml", ofdPart(tags)},
	}
	res := oe("Res").with("BaseLoc", "Res")
	if withQR {
		png, err := qrPNG(inv.QR.Payload, 256, unreadable)
		if err != nil {
			return nil, err
		}
		media := "image_" + mediaID + ".png"
		res.kids = append(res.kids, oe("MultiMedias", oe("MultiMedia", oleaf("MediaFile", media)).
			with("ID", mediaID, "Type", "Image", "Format", "PNG")))
		parts = append(parts, ofdFile{"Doc_0/Res/" + media, png})
	}
	parts[3].data = ofdPart(res)

	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, p := range parts {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: p.name, Method: zip.Deflate, Modified: issued})
		if err != nil {
			return nil, fmt.Errorf("ofd: %w", err)
		}
		if _, err := w.Write(p.data); err != nil {
			return nil, fmt.Errorf("ofd: %w", err)
		}
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("ofd: %w", err)
	}
	return buf.Bytes(), nil
}

var bigHundred = big.NewRat(100, 1)

// percent writes a tax rate fraction ("0.06") as printed invoices do ("6%").
func percent(rate string) string {
	r, err := einvoice.ParseDecimal(rate)
	if err != nil {
		return rate
	}
	s := r.Mul(r, bigHundred).FloatString(2)
	return strings.TrimSuffix(strings.TrimRight(s, "0"), ".") + "%"
}
