package ofd_test

import (
	"archive/zip"
	"bufio"
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-project/vigil/internal/testenv"
	"github.com/vigil-project/vigil/probes/invoice"
	"github.com/vigil-project/vigil/probes/invoice/einvoice"
	"github.com/vigil-project/vigil/probes/invoice/ofd"
)

// fixtureDir holds the real e-invoices shared by every checkout
// (../shared/fixtures/einvoice beside the repository); VIGIL_FIXTURES
// points elsewhere. Tests read them in place and never copy them.
func fixtureDir(t testing.TB) string {
	t.Helper()
	dir, err := findFixtures()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("e-invoice fixtures missing in CI: %v", err)
		}
		testenv.SkipOptional(t, "the e-invoice fixtures", fmt.Sprintf("not present (%v); VIGIL_FIXTURES points elsewhere", err))
	}
	return dir
}

func findFixtures() (string, error) {
	dir := os.Getenv("VIGIL_FIXTURES")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "..", "shared", "fixtures", "einvoice")
	}
	_, err := os.Stat(filepath.Join(dir, "EXPECTED.tsv"))
	return dir, err
}

// fixture is one OFD of the fixtures with the payload zbarimg read from it.
type fixture struct{ name, payload string }

func ofdFixtures(t testing.TB, dir string) []fixture {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "EXPECTED.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []fixture
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, want, ok := strings.Cut(sc.Text(), "\t")
		if ok && strings.HasSuffix(name, ".ofd") {
			out = append(out, fixture{name, want})
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("EXPECTED.tsv lists no OFD file")
	}
	return out
}

// firstQR decodes the candidates in order and returns the first payload
// and the index of the image it came from.
func firstQR(doc *ofd.Document) (string, int, error) {
	var errs []error
	for i, img := range doc.Images {
		s, err := invoice.DecodeQRBytes(img.Data)
		if err == nil {
			return s, i, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", img.Path, err))
	}
	return "", -1, fmt.Errorf("no image decodes: %w", errors.Join(errs...))
}

// TestRealOFD opens every OFD of the fixtures: the first QR candidate
// decodes to what zbarimg read, it is byte for byte the image in ofd_qr/,
// and the fields the document embeds agree with the payload.
func TestRealOFD(t *testing.T) {
	t.Parallel()
	dir := fixtureDir(t)
	for _, fx := range ofdFixtures(t, dir) {
		t.Run(fx.name, func(t *testing.T) {
			t.Parallel()
			b, err := os.ReadFile(filepath.Join(dir, fx.name))
			if err != nil {
				t.Fatal(err)
			}
			doc, err := ofd.Read(b, ofd.DefaultLimits)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range doc.Warnings {
				t.Errorf("warning: %s", w)
			}
			if len(doc.Images) == 0 || !doc.Images[0].QRLikely {
				t.Fatalf("no QR-likely image first: %+v", doc.Images)
			}
			got, idx, err := firstQR(doc)
			if err != nil {
				t.Fatal(err)
			}
			if idx != 0 {
				t.Errorf("the QR was candidate %d, not the first", idx)
			}
			if got != fx.payload {
				t.Fatalf("decoded %q, zbarimg read %q", got, fx.payload)
			}
			qr := doc.Images[0]
			want, err := os.ReadFile(filepath.Join(dir, "ofd_qr", strings.TrimSuffix(fx.name, ".ofd")+"__"+filepath.Base(qr.Path)))
			if err != nil {
				t.Errorf("ofd_qr has no image for %s: %v", qr.Path, err)
			} else if !bytes.Equal(want, qr.Data) {
				t.Errorf("%s differs from the image in ofd_qr", qr.Path)
			}

			// A single space stands for the empty code and check code on some
			// 数电 invoices (jnb_ofd2); einvoice.ParsePayload does not take it.
			fields := strings.Split(got, ",")
			for i := range fields {
				fields[i] = strings.TrimSpace(fields[i])
			}
			p, err := einvoice.ParsePayload(strings.Join(fields, ","))
			if err != nil {
				t.Fatalf("payload %q: %v", got, err)
			}
			inv := doc.Invoice
			t.Logf("%d page(s), images %s; invoice %s %s issued %s, total %s (excl. tax %s, tax %s), seller %s %s, buyer %s %s; sources %v",
				doc.Pages, describeImages(doc.Images), inv.Code, inv.Number, inv.IssueDate.Format("2006-01-02"), inv.Total, inv.AmountExclTax, inv.Tax,
				inv.Seller.TaxID, inv.Seller.Name, inv.Buyer.TaxID, inv.Buyer.Name, inv.Source)
			t.Logf("tags %v", doc.Tags)
			t.Logf("CustomData %v", doc.CustomData)
			if inv.Source[ofd.FieldNumber] == "" || inv.Number != p.Number {
				t.Errorf("number %q (from %s), payload %q", inv.Number, inv.Source[ofd.FieldNumber], p.Number)
			}
			if p.Code != "" && strings.TrimSpace(p.Code) != "" && inv.Code != p.Code {
				t.Errorf("code %q, payload %q", inv.Code, p.Code)
			}
			if inv.Source[ofd.FieldIssueDate] == "" || !inv.IssueDate.Equal(p.Date) {
				t.Errorf("issue date %s (from %s), payload %s", inv.IssueDate, inv.Source[ofd.FieldIssueDate], p.DateString())
			}
			// The QR amount is the total on 数电 invoices, the amount before
			// tax on the others.
			amount, field := inv.AmountExclTax, ofd.FieldAmountExclTax
			if einvoice.IsDigital(p.Type) {
				amount, field = inv.Total, ofd.FieldTotal
			}
			if inv.Source[field] == "" || amount != p.Amount {
				t.Errorf("%s %s (from %s), payload amount %s", field, amount, inv.Source[field], p.Amount)
			}
			if inv.Source[ofd.FieldTotal] != "" && inv.Source[ofd.FieldTax] != "" && inv.Source[ofd.FieldAmountExclTax] != "" &&
				inv.AmountExclTax+inv.Tax != inv.Total {
				t.Errorf("amount %s + tax %s != total %s", inv.AmountExclTax, inv.Tax, inv.Total)
			}
			for _, a := range doc.Attachments {
				t.Logf("attachment %q (%s) %s", a.Name, a.Format, a.Path)
				if a.Invoice != nil && a.Invoice.QRPayload != "" && a.Invoice.QRPayload != fx.payload {
					t.Errorf("attachment GraphCode %q, QR %q", a.Invoice.QRPayload, fx.payload)
				}
			}
			for _, s := range doc.Signatures {
				t.Logf("signature %s %s by %s (%s, %s) at %s over %d entries; seal %q (%s); signer %q issued by %q",
					s.ID, s.Type, s.Provider, s.Company, s.Method, s.Time, s.References, s.SealName, s.SealID, s.Signer, s.Issuer)
				if s.Verified {
					t.Error("Verified set: vigil cannot verify OFD signatures")
				}
			}
			if !doc.Signed() {
				t.Log("not signed")
			}
		})
	}
}

func describeImages(imgs []ofd.Image) string {
	var s []string
	for _, im := range imgs {
		s = append(s, fmt.Sprintf("%s %s %dx%d drawn %gx%gmm qr=%v", im.Path, im.Format, im.Width, im.Height, im.BoxWidth, im.BoxHeight, im.QRLikely))
	}
	return strings.Join(s, "; ")
}

// TestSignature checks what the one signed fixture (zc310_999.ofd) says about
// its seal, and that it stays unverified.
func TestSignature(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(fixtureDir(t), "zc310_999.ofd"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := ofd.Read(b, ofd.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Signatures) != 1 {
		t.Fatalf("%d signatures, want 1", len(doc.Signatures))
	}
	s := doc.Signatures[0]
	want := ofd.Signature{Path: "Doc_0/Signs/Sign_0/Signature.xml", ID: "1", Type: "Seal", Provider: "KingGrid", Company: "KingGrid",
		Method: "1.2.156.10197.1.501", Time: "20200817111329Z", References: 20,
		SealName: "测试全国统一发票监制章国家税务总局重庆市税务局", SealID: "50011200000323",
		Signer: "CN=全国统一发票监制章国家税务总局重庆市税务局, OU=重庆市国家税务局, ST=重庆, C=CN", Issuer: "CN=税务测试CA2(SM2), C=CN"}
	if s != want {
		t.Errorf("signature\n got %+v\nwant %+v", s, want)
	}
	if len(doc.Attachments) != 1 || doc.Attachments[0].Invoice == nil || doc.Attachments[0].Invoice.Items != 100 {
		t.Errorf("attachments %+v", doc.Attachments)
	}
}

// entry is one file of a zip built by a test.
type entry struct {
	name string
	data []byte
}

func buildZip(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: zip.Deflate})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

const ofdXML = `<?xml version="1.0" encoding="UTF-8"?>
<ofd:OFD xmlns:ofd="http://www.ofdspec.org/2016" DocType="OFD" Version="1.0"><ofd:DocBody>
<ofd:DocInfo><ofd:DocID>test</ofd:DocID></ofd:DocInfo><ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot></ofd:DocBody></ofd:OFD>`

const documentXML = `<?xml version="1.0" encoding="UTF-8"?>
<ofd:Document xmlns:ofd="http://www.ofdspec.org/2016"><ofd:CommonData><ofd:MaxUnitID>1</ofd:MaxUnitID></ofd:CommonData>
<ofd:Pages></ofd:Pages></ofd:Document>`

func minimalOFD(extra ...entry) []entry {
	return append([]entry{{"OFD.xml", []byte(ofdXML)}, {"Doc_0/Document.xml", []byte(documentXML)}}, extra...)
}

// bomb is a Document.xml that inflates to size bytes of zeros, at a ratio
// of about 1000:1.
func bomb(t testing.TB, size int) []byte {
	t.Helper()
	return buildZip(t, entry{"OFD.xml", []byte(ofdXML)}, entry{"Doc_0/Document.xml", make([]byte, size)})
}

// lyingBomb's Document.xml claims 100 bytes in its headers but inflates to
// size bytes.
func lyingBomb(t testing.TB, size int) []byte {
	t.Helper()
	data := make([]byte, size)
	var comp bytes.Buffer
	fw, _ := flate.NewWriter(&comp, flate.BestCompression)
	fw.Write(data)
	fw.Close()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.Create("OFD.xml")
	w.Write([]byte(ofdXML))
	rw, err := zw.CreateRaw(&zip.FileHeader{Name: "Doc_0/Document.xml", Method: zip.Deflate,
		CRC32: crc32.ChecksumIEEE(data[:100]), CompressedSize64: uint64(comp.Len()), UncompressedSize64: 100})
	if err != nil {
		t.Fatal(err)
	}
	rw.Write(comp.Bytes())
	zw.Close()
	return buf.Bytes()
}

func nested(depth int) []byte {
	return []byte(strings.Repeat("<a>", depth) + strings.Repeat("</a>", depth))
}

// TestMalformed: each broken or hostile input fails with an error naming
// what is wrong, and bounds come back as *ofd.LimitError.
func TestMalformed(t *testing.T) {
	t.Parallel()
	many := []entry{{"OFD.xml", []byte(ofdXML)}}
	for i := range ofd.DefaultLimits.MaxEntries {
		many = append(many, entry{fmt.Sprintf("Doc_0/Res/%d.png", i), nil})
	}
	tests := []struct {
		name  string
		input []byte
		lim   ofd.Limits
		limit string // the LimitError.Limit expected, or ""
		want  string // in the message
	}{
		{"not a zip", []byte("%PDF-1.7 not a zip"), ofd.Limits{}, "", "not a zip archive"},
		{"empty", nil, ofd.Limits{}, "", "not a zip archive"},
		{"no OFD.xml", buildZip(t, entry{"Doc_0/Document.xml", []byte(documentXML)}), ofd.Limits{}, "", "no OFD.xml entry"},
		{"OFD.xml not OFD", buildZip(t, entry{"OFD.xml", []byte("<html/>")}), ofd.Limits{}, "", "root element <html>"},
		{"no Document.xml", buildZip(t, entry{"OFD.xml", []byte(ofdXML)}), ofd.Limits{}, "", `ofd: entry "Doc_0/Document.xml": no such entry in the package (the document root OFD.xml names)`},
		{"DocRoot leaves package", buildZip(t, entry{"OFD.xml", []byte(strings.Replace(ofdXML, "Doc_0/Document.xml", "/../../etc/passwd", 1))}),
			ofd.Limits{}, "", `location "/../../etc/passwd" leaves the package`},
		{"traversal entry", buildZip(t, minimalOFD(entry{"../../evil.sh", []byte("x")})...), ofd.Limits{}, "", `entry "../../evil.sh": ".." in entry name`},
		{"traversal inside", buildZip(t, minimalOFD(entry{"Doc_0/../../evil", []byte("x")})...), ofd.Limits{}, "", `".." in entry name`},
		{"absolute entry", buildZip(t, minimalOFD(entry{"/etc/cron.d/x", []byte("x")})...), ofd.Limits{}, "", "absolute entry name"},
		{"drive letter", buildZip(t, minimalOFD(entry{"C:/x", []byte("x")})...), ofd.Limits{}, "", "absolute entry name"},
		{"backslash", buildZip(t, minimalOFD(entry{`Doc_0\..\..\evil`, []byte("x")})...), ofd.Limits{}, "", "backslash in entry name"},
		{"duplicate", buildZip(t, minimalOFD(entry{"OFD.xml", []byte(ofdXML)})...), ofd.Limits{}, "", `entry "OFD.xml" occurs twice`},
		{"zip bomb", bomb(t, 100<<20), ofd.Limits{}, "entry size", `ofd: entry "Doc_0/Document.xml": inflates to more than the 16777216-byte limit per entry`},
		{"zip bomb, lying header", lyingBomb(t, 100<<20), ofd.Limits{}, "", `entry "Doc_0/Document.xml": inflates to more than the 100 bytes its zip header declares`},
		{"total size", buildZip(t, minimalOFD()...), ofd.Limits{MaxTotalBytes: 300}, "total size", "past the 300-byte limit in total"},
		{"too many entries", buildZip(t, many...), ofd.Limits{}, "entries", "more than the limit of 2000 entries"},
		{"file size", buildZip(t, minimalOFD()...), ofd.Limits{MaxFileBytes: 100}, "file size", "file larger than the 100-byte limit"},
		{"deep XML", buildZip(t, entry{"OFD.xml", nested(100_000)}), ofd.Limits{}, "XML depth", `entry "OFD.xml": XML nested deeper than the limit of 64 elements`},
		{"long XML", buildZip(t, entry{"OFD.xml", []byte("<OFD>" + strings.Repeat("<x/>", 1000) + "</OFD>")}), ofd.Limits{MaxXMLTokens: 500},
			"XML tokens", "XML longer than the limit of 500 tokens"},
		{"bad XML", buildZip(t, entry{"OFD.xml", []byte("<OFD><DocBody></OFD>")}), ofd.Limits{}, "", `entry "OFD.xml": XML`},
		{"deep XML in a page", buildZip(t, entry{"OFD.xml", []byte(ofdXML)}, entry{"Doc_0/Document.xml",
			[]byte(`<Document><Pages><Page ID="1" BaseLoc="p.xml"/></Pages></Document>`)}, entry{"Doc_0/p.xml", nested(65)}),
			ofd.Limits{}, "XML depth", `ofd: entry "Doc_0/p.xml": XML nested deeper`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := ofd.Read(tt.input, tt.lim)
			if err == nil {
				t.Fatalf("no error; read %+v", doc)
			}
			t.Log(err)
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			var le *ofd.LimitError
			if isLimit := errors.As(err, &le); isLimit != (tt.limit != "") || isLimit && le.Limit != tt.limit {
				t.Errorf("error %v: LimitError %+v, want limit %q", err, le, tt.limit)
			}
		})
	}
}

// TestMissingParts: a document whose optional parts are missing still
// opens, with a warning for each.
func TestMissingParts(t *testing.T) {
	t.Parallel()
	doc := `<Document><CommonData><DocumentRes>Res.xml</DocumentRes></CommonData><Pages><Page ID="1" BaseLoc="p.xml"/></Pages>
<CustomTags>Tags/CustomTags.xml</CustomTags><Attachments>Attachs/Attachments.xml</Attachments></Document>`
	res := `<Res BaseLoc="Res"><MultiMedias><MultiMedia ID="5" Type="Image"><MediaFile>qr.png</MediaFile></MultiMedia></MultiMedias></Res>`
	page := `<Page><Content><Layer><ImageObject ID="6" ResourceID="5" Boundary="0 0 20 20"/><ImageObject ID="7" ResourceID="9"/></Layer></Content></Page>`
	d, err := ofd.Read(buildZip(t, entry{"OFD.xml", []byte(ofdXML)}, entry{"Doc_0/Document.xml", []byte(doc)},
		entry{"Doc_0/Res.xml", []byte(res)}, entry{"Doc_0/p.xml", []byte(page)}), ofd.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`image resource 5: ofd: entry "Doc_0/Res/qr.png": no such entry`, `resource "9", which no MultiMedia declares`,
		`CustomTags: ofd: entry "Doc_0/Tags/CustomTags.xml": no such entry`, `Attachments: ofd: entry "Doc_0/Attachs/Attachments.xml": no such entry`} {
		if !strings.Contains(strings.Join(d.Warnings, "\n"), w) {
			t.Errorf("no warning %q in %q", w, d.Warnings)
		}
	}
	if d.Pages != 1 || len(d.Images) != 0 || d.Signed() {
		t.Errorf("%+v", d)
	}
}

// FuzzRead: no input panics Read or gets past its bounds. Smaller limits
// than the defaults keep each run of the bomb seed short.
func FuzzRead(f *testing.F) {
	if dir, err := findFixtures(); err == nil {
		for _, fx := range ofdFixtures(f, dir) {
			b, err := os.ReadFile(filepath.Join(dir, fx.name))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add(buildZip(f, minimalOFD()...))
	f.Add(bomb(f, 8<<20))
	f.Add(lyingBomb(f, 1<<20))
	f.Add(buildZip(f, minimalOFD(entry{"../../evil.sh", []byte("x")})...))
	lim := ofd.Limits{MaxEntryBytes: 1 << 20, MaxTotalBytes: 4 << 20, MaxXMLTokens: 50_000}
	f.Fuzz(func(t *testing.T, b []byte) {
		doc, err := ofd.Read(b, lim)
		if err != nil {
			if doc != nil {
				t.Fatal("document and error")
			}
			return
		}
		var total int
		for _, img := range doc.Images {
			total += len(img.Data)
			if len(img.Data) > 1<<20 {
				t.Fatalf("image of %d bytes past the entry limit", len(img.Data))
			}
		}
		if total > 4<<20 {
			t.Fatalf("images of %d bytes past the total limit", total)
		}
		for _, s := range doc.Signatures {
			if s.Verified {
				t.Fatal("Verified set")
			}
		}
	})
}

// BenchmarkReadOFD: open each fixture document, take its QR candidates and
// decode the first that reads — what checking an OFD invoice costs.
func BenchmarkReadOFD(b *testing.B) {
	dir := fixtureDir(b)
	for _, fx := range ofdFixtures(b, dir) {
		data, err := os.ReadFile(filepath.Join(dir, fx.name))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(strings.TrimSuffix(fx.name, ".ofd"), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				doc, err := ofd.Read(data, ofd.DefaultLimits)
				if err != nil {
					b.Fatal(err)
				}
				if got, _, err := firstQR(doc); err != nil || got != fx.payload {
					b.Fatalf("%q, %v", got, err)
				}
			}
		})
	}
}

// BenchmarkRead is ofd.Read alone, without the QR decoding, per fixture.
func BenchmarkRead(b *testing.B) {
	dir := fixtureDir(b)
	for _, fx := range ofdFixtures(b, dir) {
		data, err := os.ReadFile(filepath.Join(dir, fx.name))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(strings.TrimSuffix(fx.name, ".ofd"), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ofd.Read(data, ofd.DefaultLimits); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
