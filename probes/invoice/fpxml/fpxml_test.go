package fpxml_test

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/vigil-project/vigil/internal/testenv"
	"github.com/vigil-project/vigil/probes/invoice/einvoice"
	"github.com/vigil-project/vigil/probes/invoice/fpxml"
)

func date(y, m, d int) time.Time { return time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC) }

func TestParseTestdata(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file string
		want fpxml.Invoice
	}{
		{"digital_special.xml", fpxml.Invoice{Format: fpxml.Digital, Number: "24322000000489101796", IssueDate: date(2024, 12, 5), IssueTime: "2024-12-05",
			AmountExclTax: 1769912, Tax: 230088, Total: 2000000,
			Buyer:  fpxml.Party{Name: "无锡天鹏菜篮子工程有限公司", TaxID: "91320200796148368W"},
			Seller: fpxml.Party{Name: "无锡爱尔拓燃气技术设备有限公司", TaxID: "91320211739560225X"},
			Type:   "01", TypeName: "增值税专用发票", TaxBureau: "13200000000", Items: 1}},
		{"digital_ordinary_ns.xml", fpxml.Invoice{Format: fpxml.Digital, Number: "23312000000022697648", IssueDate: date(2023, 5, 31), IssueTime: "2023-05-31 16:18:05",
			AmountExclTax: 9875964, Tax: 1283875, Total: 11159839,
			Buyer:  fpxml.Party{Name: "重庆海康威视科技有限公司", TaxID: "91500104569932806X"},
			Seller: fpxml.Party{Name: "上海慧梓电子科技有限公司", TaxID: "91310118759561794M"},
			Type:   "02", TypeName: "普通发票", Items: 2}},
	}
	for _, tt := range tests {
		b, err := os.ReadFile(filepath.Join("testdata", tt.file))
		if err != nil {
			t.Fatal(err)
		}
		got, err := fpxml.Parse(b)
		if err != nil {
			t.Fatalf("%s: %v", tt.file, err)
		}
		if *got != tt.want {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.file, *got, tt.want)
		}
	}
}

// TestOFDAttachment reads the invoice XML embedded in the signed OFD of the
// fixtures, in place, and checks it against the QR payload it carries.
func TestOFDAttachment(t *testing.T) {
	t.Parallel()
	dir := os.Getenv("VIGIL_FIXTURES")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "..", "shared", "fixtures", "einvoice")
	}
	if _, err := os.Stat(filepath.Join(dir, "EXPECTED.tsv")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("e-invoice fixtures missing in CI: %v", err)
		}
		testenv.SkipOptional(t, "the e-invoice fixtures", fmt.Sprintf("not present (%v); VIGIL_FIXTURES points elsewhere", err))
	}
	zr, err := zip.OpenReader(filepath.Join(dir, "zc310_999.ofd"))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	rc, err := zr.Open("Doc_0/Attachs/original_invoice.xml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(io.LimitReader(rc, fpxml.MaxSize+1))
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	inv, err := fpxml.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", *inv)
	p, err := einvoice.ParsePayload(inv.QRPayload)
	if err != nil {
		t.Fatalf("GraphCode %q: %v", inv.QRPayload, err)
	}
	if inv.Format != fpxml.OFDAttachment || inv.Number != p.Number || inv.Code != p.Code || !inv.IssueDate.Equal(p.Date) ||
		inv.AmountExclTax != p.Amount || inv.CheckCode != p.CheckCode || inv.Total != 1060000 || inv.Tax != 60000 ||
		inv.Seller.TaxID != "91500102563638729E" || inv.Buyer.Name != "个人" || inv.Items != 100 {
		t.Errorf("attachment %+v does not match its GraphCode %q", *inv, inv.QRPayload)
	}
}

func TestParseGBK(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("testdata", "digital_special.xml"))
	if err != nil {
		t.Fatal(err)
	}
	gbk, err := simplifiedchinese.GBK.NewEncoder().Bytes(bytes.Replace(b, []byte(`encoding="UTF-8"`), []byte(`encoding="GBK"`), 1))
	if err != nil {
		t.Fatal(err)
	}
	inv, err := fpxml.Parse(gbk)
	if err != nil {
		t.Fatal(err)
	}
	if inv.Seller.Name != "无锡爱尔拓燃气技术设备有限公司" {
		t.Errorf("seller %q", inv.Seller.Name)
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	good, err := os.ReadFile(filepath.Join("testdata", "digital_special.xml"))
	if err != nil {
		t.Fatal(err)
	}
	edit := func(old, new string) []byte { return bytes.Replace(good, []byte(old), []byte(new), 1) }
	tests := []struct {
		name  string
		input []byte
		limit string
		want  string
	}{
		{"empty", nil, "", "no root element"},
		{"not XML", []byte("%PDF-1.7"), "", "no root element"},
		{"HTML", []byte("<html><body/></html>"), "", "root element <html> is neither EInvoice"},
		{"unclosed", good[:len(good)-20], "", "XML"},
		// EIid is the fallback for InvoiceNumber.
		{"no number", bs(good).replaceAll("24322000000489101796", ""), "", "no invoice number (TaxSupervisionInfo/InvoiceNumber)"},
		{"no total", edit("<TotalTax-includedAmount>20000.00</TotalTax-includedAmount>", ""), "", "no BasicInformation/TotalTax-includedAmount"},
		{"bad amount", edit("<TotalTaxAm>2300.88</TotalTaxAm>", "<TotalTaxAm>2,300.888</TotalTaxAm>"), "", `BasicInformation/TotalTaxAm: amount "2300.888"`},
		{"bad date", edit("<IssueTime>2024-12-05</IssueTime>", "<IssueTime>2024-02-30</IssueTime>"), "", `TaxSupervisionInfo/IssueTime: "2024-02-30" is not a calendar date`},
		{"unknown charset", edit(`encoding="UTF-8"`, `encoding="EBCDIC"`), "", `unsupported encoding "EBCDIC"`},
		{"too large", bytes.Repeat([]byte(" "), fpxml.MaxSize+1), "size", "larger than the 4194304-byte limit"},
		{"too deep", []byte(strings.Repeat("<a>", 10_000) + strings.Repeat("</a>", 10_000)), "depth", "nested deeper than the limit of 32"},
		{"too long", []byte("<EInvoice>" + strings.Repeat("<x/>", fpxml.MaxTokens) + "</EInvoice>"), "tokens", "longer than the limit of 400000 tokens"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv, err := fpxml.Parse(tt.input)
			if err == nil {
				t.Fatalf("no error: %+v", inv)
			}
			t.Log(err)
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			var le *fpxml.LimitError
			if isLimit := errors.As(err, &le); isLimit != (tt.limit != "") || isLimit && le.Limit != tt.limit {
				t.Errorf("LimitError %+v, want %q", le, tt.limit)
			}
		})
	}
}

type bs []byte

func (b bs) replaceAll(old, new string) []byte { return bytes.ReplaceAll(b, []byte(old), []byte(new)) }

func TestParseDate(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Time{
		"2024-04-22": date(2024, 4, 22), "2024-04-22 10:11:12": date(2024, 4, 22), "2024-04-22T10:11:12": date(2024, 4, 22),
		"2024年04月22日": date(2024, 4, 22), "20240422": date(2024, 4, 22), "20240422101112": date(2024, 4, 22), " 2024/4/2 ": date(2024, 4, 2),
	} {
		if got, err := fpxml.ParseDate(in); err != nil || !got.Equal(want) {
			t.Errorf("ParseDate(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "2024", "2024-13-01", "20241301", "2024-02-30", "202404221", "22/04/2024", "2024-04-22x"} {
		if got, err := fpxml.ParseDate(in); err == nil {
			t.Errorf("ParseDate(%q) = %v, want an error", in, got)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"digital_special.xml", "digital_ordinary_ns.xml"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`<eInvoice><InvoiceNo>1</InvoiceNo><IssueDate>2020年08月05日</IssueDate><TaxInclusiveTotalAmount>¥1.00</TaxInclusiveTotalAmount></eInvoice>`))
	f.Add([]byte(strings.Repeat("<a>", 100)))
	f.Fuzz(func(t *testing.T, b []byte) {
		inv, err := fpxml.Parse(b)
		if err != nil {
			return
		}
		if inv.Number == "" || inv.IssueDate.IsZero() || inv.IssueDate.Location() != time.UTC {
			t.Fatalf("accepted without number or date: %+v", *inv)
		}
		if _, err := einvoice.ParseFen(inv.Total.String()); err != nil {
			t.Fatalf("total %s does not print back: %v", inv.Total, err)
		}
	})
}
