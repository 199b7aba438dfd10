package platform

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"strings"

	"github.com/go-pdf/fpdf"
	qrcode "github.com/skip2/go-qrcode"
)

// qrPNG encodes the payload as a size×size PNG. An independent encoder from
// the checks' decoder (gozxing), so a shared bug cannot hide. Unreadable
// wipes the middle of the symbol, as a broken renderer or a smudge would.
func qrPNG(payload string, size int, unreadable bool) ([]byte, error) {
	q, err := qrcode.New(payload, qrcode.Medium)
	if err != nil {
		return nil, fmt.Errorf("qr: %w", err)
	}
	if !unreadable {
		return q.PNG(size)
	}
	src := q.Image(size)
	img := image.NewRGBA(src.Bounds())
	draw.Draw(img, img.Bounds(), src, image.Point{}, draw.Src)
	b := img.Bounds()
	band := image.Rect(b.Min.X, b.Min.Y+b.Dy()/4, b.Max.X, b.Max.Y-b.Dy()/4)
	draw.Draw(img, band, image.NewUniform(color.White), image.Point{}, draw.Src)
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("qr: %w", err)
	}
	return buf.Bytes(), nil
}

// renderPDF lays the invoice out on an A5 landscape page with the QR in the
// top-left corner, where printed e-invoices carry it. The core PDF fonts
// have no CJK glyphs, so non-Latin-1 text is shown as '?'.
func renderPDF(inv *Invoice, withQR, unreadable bool) ([]byte, error) {
	pdf := fpdf.New("L", "mm", "A5", "")
	pdf.SetTitle("e-invoice "+inv.Number, true)
	pdf.SetCreator("vigil demo invoice platform", true)
	pdf.SetCompression(true)
	tr := pdf.UnicodeTranslatorFromDescriptor("")
	pdf.AddPage()
	if withQR {
		png, err := qrPNG(inv.QR.Payload, 256, unreadable)
		if err != nil {
			return nil, err
		}
		pdf.RegisterImageOptionsReader("qr", fpdf.ImageOptions{ImageType: "PNG"}, bytes.NewReader(png))
		pdf.ImageOptions("qr", 10, 10, 28, 28, false, fpdf.ImageOptions{ImageType: "PNG"}, 0, "")
	}
	pdf.SetFont("Helvetica", "B", 16)
	pdf.SetXY(45, 12)
	pdf.CellFormat(110, 8, "Electronic Invoice (fully digital)", "", 1, "C", false, 0, "")
	pdf.SetFont("Helvetica", "", 9)
	right := func(y float64, s string) {
		pdf.SetXY(140, y)
		pdf.CellFormat(60, 5, tr(s), "", 0, "R", false, 0, "")
	}
	right(12, "Invoice no. "+inv.Number)
	right(17, "Issued "+inv.IssuedAt.In(chinaTime).Format("2006-01-02 15:04"))
	if inv.Status == StatusVoid {
		right(22, "VOID")
	}
	y := 42.0
	party := func(x float64, label string, p Party) {
		pdf.SetXY(x, y)
		pdf.SetFont("Helvetica", "B", 9)
		pdf.CellFormat(90, 5, label, "", 2, "L", false, 0, "")
		pdf.SetFont("Helvetica", "", 9)
		pdf.CellFormat(90, 5, tr(p.Name), "", 2, "L", false, 0, "")
		pdf.CellFormat(90, 5, "Tax ID "+p.TaxID, "", 2, "L", false, 0, "")
	}
	party(10, "Buyer", inv.Buyer)
	party(110, "Seller", inv.Seller)
	y += 20
	pdf.SetXY(10, y)
	pdf.SetFont("Helvetica", "B", 9)
	for _, c := range []struct {
		w float64
		s string
	}{{70, "Item"}, {20, "Qty"}, {30, "Unit price"}, {30, "Amount"}, {15, "Rate"}, {25, "Tax"}} {
		pdf.CellFormat(c.w, 6, c.s, "B", 0, "L", false, 0, "")
	}
	pdf.Ln(-1)
	pdf.SetFont("Helvetica", "", 9)
	for _, it := range inv.Items {
		pdf.SetX(10)
		for _, c := range []struct {
			w float64
			s string
		}{{70, tr(it.Name)}, {20, it.Quantity}, {30, it.UnitPrice}, {30, it.Amount}, {15, it.TaxRate}, {25, it.Tax}} {
			pdf.CellFormat(c.w, 6, c.s, "", 0, "L", false, 0, "")
		}
		pdf.Ln(-1)
	}
	pdf.Ln(2)
	pdf.SetX(10)
	pdf.SetFont("Helvetica", "B", 9)
	pdf.CellFormat(190, 6, strings.Join([]string{
		"Total excluding tax " + inv.Totals.ExcludingTax,
		"Tax " + inv.Totals.Tax,
		"Total including tax CNY " + inv.Totals.IncludingTax}, "    "), "T", 1, "R", false, 0, "")
	if inv.Remark != "" {
		pdf.SetX(10)
		pdf.SetFont("Helvetica", "", 8)
		pdf.MultiCell(190, 4, tr("Remark: "+inv.Remark), "", "L", false)
	}
	var buf bytes.Buffer
	if err := pdf.Output(&buf); err != nil {
		return nil, fmt.Errorf("pdf: %w", err)
	}
	return buf.Bytes(), nil
}
