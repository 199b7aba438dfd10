package invoice

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"testing"

	"github.com/go-pdf/fpdf"
	qrcode "github.com/skip2/go-qrcode"
	"golang.org/x/image/draw"
	"golang.org/x/image/math/f64"
)

// A fully digital invoice payload: long numeric runs, the segments other
// decoders get wrong.
const samplePayload = "01,32,,24312000000136634917,1234.56,20240514,,1DD6"

func qrImage(t testing.TB, payload string, size int) image.Image {
	t.Helper()
	q, err := qrcode.New(payload, qrcode.Medium)
	if err != nil {
		t.Fatal(err)
	}
	return q.Image(size)
}

func scale(src image.Image, f float64) image.Image {
	b := src.Bounds()
	dst := image.NewRGBA(image.Rect(0, 0, int(float64(b.Dx())*f), int(float64(b.Dy())*f)))
	draw.BiLinear.Scale(dst, dst.Bounds(), src, b, draw.Src, nil)
	return dst
}

// rotate turns src by deg degrees about its centre onto a white canvas
// large enough to hold it.
func rotate(src image.Image, deg float64) image.Image {
	b := src.Bounds()
	side := int(math.Ceil(math.Hypot(float64(b.Dx()), float64(b.Dy())))) + 20
	dst := image.NewRGBA(image.Rect(0, 0, side, side))
	draw.Draw(dst, dst.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	rad := deg * math.Pi / 180
	sin, cos := math.Sin(rad), math.Cos(rad)
	cx, cy := float64(b.Dx())/2, float64(b.Dy())/2
	ox, oy := float64(side)/2, float64(side)/2
	// dst = R·(src − c) + o
	m := f64.Aff3{cos, -sin, ox - cos*cx + sin*cy, sin, cos, oy - sin*cx - cos*cy}
	draw.BiLinear.Transform(dst, m, src, b, draw.Over, nil)
	return dst
}

func jpegRoundTrip(t testing.TB, img image.Image, quality int) image.Image {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: quality}); err != nil {
		t.Fatal(err)
	}
	out, err := jpeg.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// onPage puts img on an A4-sized page at 150 dpi among grey text-like bars.
func onPage(img image.Image, x, y int) image.Image {
	page := image.NewRGBA(image.Rect(0, 0, 1240, 1754))
	draw.Draw(page, page.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	for row := 300; row < 1600; row += 40 {
		draw.Draw(page, image.Rect(120, row, 1100, row+14), image.NewUniform(color.Gray{Y: 90}), image.Point{}, draw.Src)
	}
	r := img.Bounds()
	draw.Draw(page, image.Rect(x, y, x+r.Dx(), y+r.Dy()), img, r.Min, draw.Src)
	return page
}

func TestDecodeQRRobustness(t *testing.T) {
	t.Parallel()
	base := qrImage(t, samplePayload, 256)
	for _, tc := range []struct {
		name string
		img  func() image.Image
	}{
		{"256 px PNG", func() image.Image { return base }},
		{"scaled down to 100 px", func() image.Image { return scale(base, 100.0/256) }},
		{"scaled up 3x", func() image.Image { return scale(base, 3) }},
		{"rotated 90", func() image.Image { return rotate(base, 90) }},
		{"rotated 180", func() image.Image { return rotate(base, 180) }},
		{"rotated 17", func() image.Image { return rotate(base, 17) }},
		{"rotated -30", func() image.Image { return rotate(base, -30) }},
		{"JPEG quality 25", func() image.Image { return jpegRoundTrip(t, base, 25) }},
		{"on a scanned page", func() image.Image { return onPage(base, 80, 60) }},
		{"small, rotated, JPEG, on a page", func() image.Image {
			return jpegRoundTrip(t, onPage(rotate(scale(base, 0.6), 8), 900, 1400), 40)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeQR(tc.img())
			if err != nil {
				t.Fatal(err)
			}
			if got != samplePayload {
				t.Fatalf("decoded %q, want %q", got, samplePayload)
			}
		})
	}
	t.Run("no QR at all", func(t *testing.T) {
		if _, err := DecodeQR(onPage(image.NewRGBA(image.Rect(0, 0, 10, 10)), 0, 0)); err == nil {
			t.Fatal("decoded a QR from a page without one")
		}
	})
	t.Run("not an image", func(t *testing.T) {
		if _, err := DecodeQRBytes([]byte("<html>oops</html>")); err == nil {
			t.Fatal("decoded HTML")
		}
	})
}

// pdfWith builds a one-page PDF the way a third-party issuer might: the QR
// placed among other images, as PNG (Flate) or, for *jpegImage, as JPEG (DCT).
func pdfWith(t testing.TB, images ...image.Image) []byte {
	t.Helper()
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.AddPage()
	pdf.SetFont("Helvetica", "", 12)
	pdf.Text(20, 20, "Invoice")
	for i, img := range images {
		var buf bytes.Buffer
		typ := "PNG"
		if j, ok := img.(jpegImage); ok {
			typ = "JPG"
			jpeg.Encode(&buf, j.Image, &jpeg.Options{Quality: j.quality})
		} else {
			png.Encode(&buf, img)
		}
		name := string(rune('a' + i))
		pdf.RegisterImageOptionsReader(name, fpdf.ImageOptions{ImageType: typ}, &buf)
		pdf.ImageOptions(name, 20+float64(i)*50, 40, 40, 40, false, fpdf.ImageOptions{ImageType: typ}, 0, "")
	}
	var out bytes.Buffer
	if err := pdf.Output(&out); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

type jpegImage struct {
	image.Image
	quality int
}

func TestQRFromPDF(t *testing.T) {
	t.Parallel()
	logo := image.NewRGBA(image.Rect(0, 0, 64, 64))
	draw.Draw(logo, logo.Bounds(), image.NewUniform(color.RGBA{200, 30, 30, 255}), image.Point{}, draw.Src)

	rgb := image.NewRGBA(image.Rect(0, 0, 300, 300))
	draw.Draw(rgb, rgb.Bounds(), qrImage(t, samplePayload, 300), image.Point{}, draw.Src)
	for name, qr := range map[string]image.Image{
		"grey PNG": qrImage(t, samplePayload, 200),
		"RGB PNG":  rgb,
		"JPEG":     jpegImage{qrImage(t, samplePayload, 300), 50},
	} {
		got, n, err := QRFromPDF(pdfWith(t, logo, qr))
		if err != nil || got != samplePayload || n != 2 {
			t.Errorf("%s: QRFromPDF = %q, %d images, %v", name, got, n, err)
		}
	}
	if _, n, err := QRFromPDF(pdfWith(t)); err != errNoImages || n != 0 {
		t.Fatalf("PDF without images: %d, %v", n, err)
	}
	if _, n, err := QRFromPDF(pdfWith(t, logo)); err == nil || n != 1 {
		t.Fatalf("PDF with only a logo: %d, %v", n, err)
	}
	if _, _, err := QRFromPDF([]byte("%PDF-1.4 garbage")); err == nil {
		t.Fatal("garbage accepted")
	}
}

func BenchmarkDecodeQR256(b *testing.B) {
	q, _ := qrcode.New(samplePayload, qrcode.Medium)
	pngBytes, _ := q.PNG(256)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeQRBytes(pngBytes); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzQRFromPDF: malformed PDFs are errors, never panics.
func FuzzQRFromPDF(f *testing.F) {
	f.Add([]byte("%PDF-1.4 garbage"))
	f.Add(pdfWith(f, qrImage(f, samplePayload, 64)))
	// Size bombs, small as seeds: a huge declared image, a small image and
	// a soft mask that inflate past their size (see bomb_test.go).
	f.Add(pdfWithImage(45000, 45000, zeroZlib(f, 45001), ""))
	f.Add(pdfWithImage(100, 100, zeroZlib(f, 1<<20), ""))
	f.Add(pdfWithImage(100, 100, zeroZlib(f, 100*101), "/SMask 6 0 R",
		pdfStream("/Subtype /Image /Width 100 /Height 100 /ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /FlateDecode", zeroZlib(f, 1<<20))))
	f.Fuzz(func(t *testing.T, b []byte) {
		QRFromPDF(b)
	})
}
