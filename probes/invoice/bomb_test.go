package invoice

import (
	"bytes"
	"compress/flate"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/probes"
)

// Decompression bombs, made at run time (nothing large is committed):
// a few hundred kilobytes that declare or inflate to gigabytes.

// zeroZlib returns a zlib stream inflating to n zero bytes, made in
// milliseconds whatever n: one megabyte of zeros is compressed once, and
// the flushed (byte-aligned) blocks that encode the second megabyte are
// repeated, which is valid anywhere after the first since they only refer
// back to zeros. The Adler-32 of n zeros is (n mod 65521)<<16 | 1.
func zeroZlib(t testing.TB, n int64) []byte {
	t.Helper()
	const chunk = 1 << 20
	zeros := make([]byte, chunk)
	if n <= 2*chunk {
		var buf bytes.Buffer
		zw := zlib.NewWriter(&buf)
		zw.Write(zeros[:n])
		zw.Close()
		return buf.Bytes()
	}
	var buf bytes.Buffer
	fw, err := flate.NewWriter(&buf, flate.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	segment := func(k int64) []byte {
		start := buf.Len()
		fw.Write(zeros[:k])
		fw.Flush()
		return bytes.Clone(buf.Bytes()[start:])
	}
	first, steady := segment(chunk), segment(chunk)
	m, rest := (n-chunk)/chunk, (n-chunk)%chunk
	out := make([]byte, 0, 2+len(first)+int(m)*len(steady)+64<<10)
	out = append(out, 0x78, 0x01) // zlib header: deflate, 32 KiB window, fastest
	out = append(out, first...)
	for range m {
		out = append(out, steady...)
	}
	if rest > 0 {
		out = append(out, segment(rest)...)
	}
	out = append(out, 0x03, 0x00) // an empty final block
	return binary.BigEndian.AppendUint32(out, uint32(n%65521)<<16|1)
}

// pngChunk frames data as a PNG chunk with its CRC.
func pngChunk(typ string, data []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	b = append(b, typ...)
	b = append(b, data...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[4:]))
}

// greyPNG is a w×h 8-bit grey PNG around the given IDAT stream.
func greyPNG(w, h int, idat []byte) []byte { return encodedPNG(w, h, 8, 0, idat) }

// encodedPNG is a PNG of the given bit depth and colour type (0 grey, 6
// RGBA) around a ready IDAT stream.
func encodedPNG(w, h int, depth, colorType byte, idat []byte) []byte {
	ihdr := binary.BigEndian.AppendUint32(nil, uint32(w))
	ihdr = binary.BigEndian.AppendUint32(ihdr, uint32(h))
	ihdr = append(ihdr, depth, colorType, 0, 0, 0) // deflate, no filter, no interlace
	b := []byte("\x89PNG\r\n\x1a\n")
	b = append(b, pngChunk("IHDR", ihdr)...)
	b = append(b, pngChunk("IDAT", idat)...)
	return append(b, pngChunk("IEND", nil)...)
}

// pngBomb is a valid, all-black w×h PNG: every row is a filter byte and w
// zero pixels.
func pngBomb(t testing.TB, w, h int) []byte {
	return greyPNG(w, h, zeroZlib(t, int64(h)*int64(w+1)))
}

// pdfObjects writes a PDF whose objects are numbered from 1 in order, with
// a correct cross-reference table; object 1 is the catalog.
func pdfObjects(objs ...string) []byte {
	var b bytes.Buffer
	b.WriteString("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
	offsets := make([]int, len(objs))
	for i, o := range objs {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objs)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, xref)
	return b.Bytes()
}

func pdfStream(dict string, data []byte) string {
	return fmt.Sprintf("<< %s /Length %d >>\nstream\n%s\nendstream", dict, len(data), data)
}

// pdfWithImage is a one-page PDF drawing one Flate image XObject, object 5,
// declared w×h grey; extra objects follow as 6, 7, ….
func pdfWithImage(w, h int, stream []byte, imageDict string, extra ...string) []byte {
	content := []byte("q 100 0 0 100 0 0 cm /Im0 Do Q")
	return pdfObjects(append([]string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Resources << /XObject << /Im0 5 0 R >> >> /Contents 4 0 R >>",
		pdfStream("", content),
		pdfStream(fmt.Sprintf("/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /FlateDecode %s", w, h, imageDict), stream),
	}, extra...)...)
}

// bombCase is an input that must be refused with a limitError whose
// message contains want, before it can grow memory.
type bombCase struct {
	name, kind string // kind: png or pdf
	input      func(t testing.TB) []byte
	want       string
}

func bombCases() []bombCase {
	const mib = 1 << 20
	return []bombCase{
		{"PNG 15000x15000 (225 MP, 270 KB)", "png", func(t testing.TB) []byte { return pngBomb(t, 15000, 15000) },
			"png image 15000x15000 (225 MP) exceeds the 16 MP limit"},
		{"PNG 45000x45000 (2025 MP, 2.4 MB)", "png", func(t testing.TB) []byte { return pngBomb(t, 45000, 45000) },
			"png image 45000x45000 (2025 MP) exceeds the 16 MP limit"},
		// Under the pixel cap, but 8 bytes a pixel: 128 MB decoded.
		{"PNG 4000x4000 16-bit RGBA (16 MP, 128 MB decoded)", "png", func(t testing.TB) []byte {
			return encodedPNG(4000, 4000, 16, 6, zeroZlib(t, 4000*(1+4000*8)))
		}, "png image 4000x4000 at 8 bytes a pixel needs 128 MB, over the 64 MB limit"},
		{"PDF image declaring 45000x45000", "pdf", func(t testing.TB) []byte {
			return pdfWithImage(45000, 45000, zeroZlib(t, 45001), "")
		}, "image 45000x45000 (2025 MP) exceeds the 16 MP limit"},
		// Under pdfcpu's own default of 100 MP, and with all its pixels:
		// 61 MiB of samples in a 75 KB file.
		{"PDF image of 8000x8000", "pdf", func(t testing.TB) []byte {
			return pdfWithImage(8000, 8000, zeroZlib(t, 8000*8000), "")
		}, "image 8000x8000 (64 MP) exceeds the 16 MP limit"},
		{"PDF image of 100x100 inflating to 48 MiB", "pdf", func(t testing.TB) []byte {
			return pdfWithImage(100, 100, zeroZlib(t, 48*mib), "")
		}, "image 100x100: its stream decodes to more than the 10100 bytes that size needs"},
		{"PDF image whose soft mask inflates to 48 MiB", "pdf", func(t testing.TB) []byte {
			mask := pdfStream("/Type /XObject /Subtype /Image /Width 100 /Height 100 /ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /FlateDecode",
				zeroZlib(t, 48*mib))
			return pdfWithImage(100, 100, zeroZlib(t, 100*101), "/SMask 6 0 R", mask)
		}, "soft mask: image 100x100: its stream decodes to more than"},
		{"PDF image of 100x100 inflating to 2 GiB", "pdf", func(t testing.TB) []byte {
			return pdfWithImage(100, 100, zeroZlib(t, 2<<30), "")
		}, "PDF streams inflate to more than the 64 MiB limit"},
		{"PDF with eight 12 MiB streams (96 MiB together)", "pdf", func(t testing.TB) []byte {
			s := pdfStream("/Filter /FlateDecode", zeroZlib(t, 12*mib))
			return pdfWithImage(100, 100, zeroZlib(t, 100*101), "", s, s, s, s, s, s, s, s)
		}, "PDF streams inflate to more than the 64 MiB limit"},
	}
}

// TestBombsRefused checks each bomb's error in this process; the child
// process test in bomb_linux_test.go measures the memory they cost.
func TestBombsRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range bombCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := decodeKind(tc.kind, tc.input(t))
			var le *limitError
			if !errors.As(err, &le) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v; want a limit error containing %q", err, tc.want)
			}
		})
	}
}

func decodeKind(kind string, b []byte) error {
	var err error
	switch kind {
	case "png":
		_, err = DecodeQRBytes(b)
	case "pdf":
		_, _, err = QRFromPDF(b)
	default:
		err = fmt.Errorf("unknown kind %q", kind)
	}
	return err
}

// TestBombGeneratorsAreValid keeps the bombs honest: the same generators
// at a size the decoders accept yield images that decode in full, so the
// big ones are refused for their size, not for being malformed.
func TestBombGeneratorsAreValid(t *testing.T) {
	t.Parallel()
	b := pngBomb(t, 2500, 1700) // 4.25 MB of pixels: the repeated-segment path
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("PNG bomb does not decode: %v", err)
	}
	if r := img.Bounds(); r.Dx() != 2500 || r.Dy() != 1700 {
		t.Fatalf("PNG bomb decodes to %v", r)
	}
	img, err = png.Decode(bytes.NewReader(encodedPNG(300, 200, 16, 6, zeroZlib(t, 200*(1+300*8)))))
	if err != nil || img.Bounds().Dx() != 300 {
		t.Fatalf("16-bit RGBA PNG does not decode: %v", err)
	}
	for _, n := range []int64{1000, 5<<20 + 12345} {
		zr, err := zlib.NewReader(bytes.NewReader(zeroZlib(t, n)))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.Copy(io.Discard, zr)
		if err != nil || got != n {
			t.Fatalf("zeroZlib(%d) inflates to %d bytes, %v", n, got, err)
		}
	}
	// The small image the PDF cases draw is accepted: the limits above are
	// not tripped by the PDF builder itself.
	_, n, err := QRFromPDF(pdfWithImage(100, 100, zeroZlib(t, 100*101), ""))
	var le *limitError
	if n != 1 || err == nil || errors.As(err, &le) || !strings.Contains(err.Error(), "no readable QR code") {
		t.Fatalf("plain 100x100 PDF image: %d images, %v", n, err)
	}
}

// TestInvoiceQRBombs runs the check against a platform whose QR image or
// PDF is replaced by a bomb: the check fails with the usual reasons and
// says why, and the agent survives.
func TestInvoiceQRBombs(t *testing.T) {
	t.Parallel()
	d := startDemo(t)
	pngB := pngBomb(t, 15000, 15000)
	pdfB := pdfWithImage(45000, 45000, zeroZlib(t, 45001), "")
	for _, tc := range []struct {
		name   string
		suffix string // of the path whose answer is replaced
		body   []byte
		reason probes.Reason
		msg    string
	}{
		{"QR image", "/qr.png", pngB, probes.ReasonQRUnreadable, "png image 15000x15000 (225 MP) exceeds the 16 MP limit"},
		{"PDF", "/pdf", pdfB, probes.ReasonPDFMissingQR, "image 45000x45000 (2025 MP) exceeds the 16 MP limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, _ := url.Parse(d.URL["gateway"])
			rp := httputil.NewSingleHostReverseProxy(u)
			rp.ModifyResponse = func(resp *http.Response) error {
				if resp.Request.Method == http.MethodGet && strings.HasSuffix(resp.Request.URL.Path, tc.suffix) {
					resp.Body.Close()
					resp.Body = io.NopCloser(bytes.NewReader(tc.body))
					resp.ContentLength = int64(len(tc.body))
					resp.Header.Del("Content-Length")
				}
				return nil
			}
			srv := httptest.NewServer(rp)
			defer srv.Close()
			r := run(t, qrCheck(t, srv.URL, nil), 10*time.Second)
			if r.Success || r.Reason != tc.reason || !strings.Contains(r.Message, tc.msg) {
				t.Fatalf("got %v %s: %q; want %s containing %q", r.Success, r.Reason, r.Message, tc.reason, tc.msg)
			}
		})
	}
}

// FuzzDecodeQRBytes: any bytes are a payload or an error, never a panic,
// and nothing declaring more than the pixel limit is decoded.
func FuzzDecodeQRBytes(f *testing.F) {
	q := qrImage(f, samplePayload, 128)
	var buf bytes.Buffer
	png.Encode(&buf, q)
	f.Add(buf.Bytes())
	f.Add([]byte("<html>oops</html>"))
	// Bomb headers with the start of their pixel stream: small seeds the
	// fuzzer can grow dimensions from.
	f.Add(greyPNG(15000, 15000, zeroZlib(f, 4096)))
	f.Add(greyPNG(4000, 4000, zeroZlib(f, 4096)))
	f.Add(greyPNG(1, 1, zeroZlib(f, 2)))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := DecodeQRBytes(b)
		var le *limitError
		if errors.As(err, &le) && !strings.Contains(err.Error(), "limit") {
			t.Fatalf("limit error without the limit: %v", err)
		}
	})
}
