package einvoice

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParsePayloadAccepts(t *testing.T) {
	date := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
	for _, tc := range []struct {
		name, in string
		want     Payload
	}{
		{"VAT e-invoice", "01,10,011001605111,80100798,64.9,20161018,85342965681116380258,BE2D",
			Payload{"01", "10", "011001605111", "80100798", 6490, date(2016, 10, 18), "85342965681116380258", "BE2D", nil}},
		{"digital", "01,32,,24312000000136634917,0.01,20240514,,1DD6",
			Payload{"01", "32", "", "24312000000136634917", 1, date(2024, 5, 14), "", "1DD6", nil}},
		{"trailing comma", "01,32,,24312000000136634917,0.01,20240514,,1DD6,",
			Payload{"01", "32", "", "24312000000136634917", 1, date(2024, 5, 14), "", "1DD6", []string{NormTrailingComma}}},
		{"lower-case checksum", "01,31,,24312000000136634917,100,20240514,,1dd6",
			Payload{"01", "31", "", "24312000000136634917", 10000, date(2024, 5, 14), "", "1DD6", []string{NormLowerChecksum}}},
		{"space-filled digital", "01,31, ,24942000000003727672,684.40,20240129, ,2D77",
			Payload{"01", "31", "", "24942000000003727672", 68440, date(2024, 1, 29), "", "2D77", []string{NormSpaceCode, NormSpaceCheckCode}}},
		{"7 fields", "01,10,011001705111,65597439,213.00,20170814,51925190212441436757",
			Payload{"01", "10", "011001705111", "65597439", 21300, date(2017, 8, 14), "51925190212441436757", "", []string{NormSevenFields}}},
		{"7 fields digital", "01,32,,24312000000136634917,0.01,20240514,",
			Payload{"01", "32", "", "24312000000136634917", 1, date(2024, 5, 14), "", "", []string{NormSevenFields}}},
		{"empty checksum", "01,31,,26442000005310626521,31605.00,20260514,,",
			Payload{"01", "31", "", "26442000005310626521", 3160500, date(2026, 5, 14), "", "", []string{NormEmptyChecksum}}},
		{"everything at once", " 01,32, ,24312000000136634917,1.00,20240101,  ,ab12,\r\n",
			Payload{"01", "32", "", "24312000000136634917", 100, date(2024, 1, 1), "", "AB12",
				[]string{NormWhitespace, NormTrailingComma, NormSpaceCode, NormSpaceCheckCode, NormLowerChecksum}}},
		{"space-filled checksum", "01,32,,24312000000136634917,0.01,20240514,,    ,",
			Payload{"01", "32", "", "24312000000136634917", 1, date(2024, 5, 14), "", "", []string{NormTrailingComma, NormSpaceChecksum}}},
		{"trailing spaces", "01,32,,24312000000136634917,0.01,20240514,,    ",
			Payload{"01", "32", "", "24312000000136634917", 1, date(2024, 5, 14), "", "", []string{NormWhitespace, NormEmptyChecksum}}},
		{"paper special, no check code", "01,01,4403183130,05370195,5009.43,20190301,,2301,",
			Payload{"01", "01", "4403183130", "05370195", 500943, date(2019, 3, 1), "", "2301", []string{NormTrailingComma}}},
		{"paper ordinary, 10-digit code", "01,04,1100174320,40184419,329.25,20180512,82190984023325258452,8E15,",
			Payload{"01", "04", "1100174320", "40184419", 32925, date(2018, 5, 12), "82190984023325258452", "8E15", []string{NormTrailingComma}}},
		{"electronic special as 20", "01,20,144002309010,01956673,800.99,20240318,00000000008590046300,360F",
			Payload{"01", "20", "144002309010", "01956673", 80099, date(2024, 3, 18), "00000000008590046300", "360F", nil}},
		{"electronic special 08 without check code", "01,08,044002000111,12345678,10.00,20210101,,0A0B",
			Payload{"01", "08", "044002000111", "12345678", 1000, date(2021, 1, 1), "", "0A0B", nil}},
		{"51 in the shape of a type-10 invoice", "01,51,011001600111,32212718,39.62,20170227,80277307171217590604,F386",
			Payload{"01", "51", "011001600111", "32212718", 3962, date(2017, 2, 27), "80277307171217590604", "F386", nil}},
		{"51 in the 数电 shape", "01,51,,24119000000012345678,120.50,20250105,,C0DE",
			Payload{"01", "51", "", "24119000000012345678", 12050, date(2025, 1, 5), "", "C0DE", nil}},
		{"roll invoice", "01,11,044001900112,00012345,5.00,20200101,12345678901234567890,0000",
			Payload{"01", "11", "044001900112", "00012345", 500, date(2020, 1, 1), "12345678901234567890", "0000", nil}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePayload(tc.in)
			if err != nil {
				t.Fatalf("ParsePayload(%q): %v", tc.in, err)
			}
			if !reflect.DeepEqual(p, tc.want) {
				t.Fatalf("ParsePayload(%q)\n got %#v\nwant %#v", tc.in, p, tc.want)
			}
		})
	}
}

func TestParsePayloadRejects(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		fields   []string // fields reported, in order
	}{
		{"empty", "", []string{"payload"}},
		{"six fields", "01,32,,24312000000136634917,0.01,20240514", []string{"payload"}},
		{"ten fields", "01,32,,24312000000136634917,0.01,20240514,,1DD6,,", []string{"payload"}},
		{"nine fields, last not empty", "01,32,,24312000000136634917,0.01,20240514,,1DD6,X", []string{"payload"}},
		{"check code field lost", "01,32,,24312000000136634917,0.01,20240514,1DD6", []string{"payload"}},
		{"version", "02,32,,24312000000136634917,0.01,20240514,,1DD6", []string{"version"}},
		{"unknown type", "01,99,,24312000000136634917,0.01,20240514,,1DD6", []string{"type"}},
		{"empty type", "01,,011001605111,80100798,64.9,20161018,85342965681116380258,BE2D", []string{"type"}},
		{"unknown type, bad code", "01,99,ABC,80100798,64.9,20161018,85342965681116380258,BE2D", []string{"type", "code"}},
		{"digital with code", "01,32,011001605111,24312000000136634917,0.01,20240514,,1DD6", []string{"code"}},
		{"digital with a code of letters", "01,31,X,24312000000136634917,0.01,20240514,,1DD6", []string{"code"}},
		{"e-invoice without code", "01,10,,80100798,64.9,20161018,85342965681116380258,BE2D", []string{"code"}},
		{"e-invoice, 11-digit code", "01,10,01100160511,80100798,64.9,20161018,85342965681116380258,BE2D", []string{"code"}},
		{"paper special, 12-digit code", "01,01,440318313012,05370195,5009.43,20190301,,2301", []string{"code"}},
		{"code with a letter", "01,04,11001743A0,40184419,329.25,20180512,82190984023325258452,8E15", []string{"code"}},
		{"short digital number", "01,32,,2431200000013663491,0.01,20240514,,1DD6", []string{"number"}},
		{"digital number with a letter", "01,32,,2431200000013663491X,0.01,20240514,,1DD6", []string{"number"}},
		{"e-invoice with a 20-digit number", "01,10,011001605111,24312000000136634917,64.9,20161018,85342965681116380258,BE2D", []string{"number"}},
		{"51: 8-digit number without code", "01,51,,32212718,39.62,20170227,,F386", []string{"number"}},
		{"51: 20-digit number with code", "01,51,011001600111,24119000000012345678,39.62,20170227,,F386", []string{"number"}},
		{"three decimals", "01,32,,24312000000136634917,0.001,20240514,,1DD6", []string{"amount"}},
		{"negative amount", "01,32,,24312000000136634917,-1.00,20240514,,1DD6", []string{"amount"}},
		{"exponent amount", "01,32,,24312000000136634917,1e3,20240514,,1DD6", []string{"amount"}},
		{"empty amount", "01,32,,24312000000136634917,,20240514,,1DD6", []string{"amount"}},
		{"month 13", "01,32,,24312000000136634917,1.00,20241314,,1DD6", []string{"date"}},
		{"dashed date", "01,32,,24312000000136634917,1.00,2024-05-14,,1DD6", []string{"date"}},
		{"two-digit year", "01,32,,24312000000136634917,1.00,240514,,1DD6", []string{"date"}},
		{"digital with check code", "01,31,,24312000000136634917,1.00,20240514,85342965681116380258,1DD6", []string{"check_code"}},
		{"e-invoice without check code", "01,10,011001605111,80100798,64.9,20161018,,BE2D", []string{"check_code"}},
		{"paper ordinary, 19-digit check code", "01,04,1100174320,40184419,329.25,20180512,8219098402332525845,8E15", []string{"check_code"}},
		{"paper special, check code of letters", "01,01,4403183130,05370195,5009.43,20190301,abc,2301", []string{"check_code"}},
		{"checksum not hex", "01,32,,24312000000136634917,0.01,20240514,,XYZ1", []string{"checksum"}},
		{"checksum of 3", "01,32,,24312000000136634917,0.01,20240514,,1DD", []string{"checksum"}},
		{"checksum of 5", "01,32,,24312000000136634917,0.01,20240514,,1DD6A", []string{"checksum"}},
		{"checksum with a space", "01,32,,24312000000136634917,0.01,20240514,, 1DD6", []string{"checksum"}},
		{"space inside the amount", "01,32,,24312000000136634917, 0.01,20240514,,1DD6", []string{"amount"}},
		{"many at once", "02,32,,2431200000013663491,0.001,20241314,1,XYZ1",
			[]string{"version", "number", "amount", "date", "check_code", "checksum"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePayload(tc.in)
			if err == nil {
				t.Fatalf("ParsePayload(%q) accepted it", tc.in)
			}
			got := errorFields(t, err)
			if !slices.Equal(got, tc.fields) {
				t.Fatalf("ParsePayload(%q) named %v, want %v (%v)", tc.in, got, tc.fields, err)
			}
			for _, e := range flatten(err) {
				if !strings.HasPrefix(e.Error(), e.(*FieldError).Field+": ") {
					t.Errorf("message %q does not start with its field", e)
				}
			}
		})
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	p := NewDigitalPayload(TypeDigitalOrdinary, "26110100000000000042", 113, time.Date(2026, 11, 23, 15, 4, 0, 0, time.Local))
	q, err := ParsePayload(p.String())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(q, p) {
		t.Fatalf("round trip: %+v != %+v", q, p)
	}
	if got := p.String(); got != "01,32,,26110100000000000042,1.13,20261123,,"+p.Checksum {
		t.Fatalf("payload %q", got)
	}
	if Checksum("123456789") != "29B1" { // CRC-16/CCITT-FALSE check value
		t.Fatalf("checksum of the standard check input = %s", Checksum("123456789"))
	}
	// Normalised payloads format in the canonical shape.
	for in, want := range map[string]string{
		"01,31, ,24942000000003727672,684.40,20240129, ,2d77,":           "01,31,,24942000000003727672,684.40,20240129,,2D77",
		"01,10,011001605111,80100798,64.9,20161018,85342965681116380258": "01,10,011001605111,80100798,64.90,20161018,85342965681116380258,",
	} {
		p, err := ParsePayload(in)
		if err != nil || p.String() != want {
			t.Errorf("ParsePayload(%q).String() = %q, %v; want %q", in, p.String(), err, want)
		}
	}
}

func TestTypeTable(t *testing.T) {
	types := Types()
	if len(types) != len(typeTable) || !slices.IsSortedFunc(types, func(a, b TypeInfo) int { return strings.Compare(a.Code, b.Code) }) {
		t.Fatalf("Types() = %d entries (table %d), sorted %v", len(types), len(typeTable), types)
	}
	for _, ti := range types {
		if len(ti.Code) != 2 || !allDigits(ti.Code) || ti.NameZH == "" || ti.NameEN == "" {
			t.Errorf("entry %+v: code or names missing", ti)
		}
		if zh, en := TypeName(ti.Code); zh != ti.NameZH || en != ti.NameEN {
			t.Errorf("TypeName(%s) = %q, %q", ti.Code, zh, en)
		}
		if ti.Digital != (slices.Equal(ti.CodeLengths, []int{0}) && slices.Equal(ti.NumberLengths, []int{20}) && ti.CheckCode == CheckCodeAbsent) {
			t.Errorf("entry %s: Digital=%v does not match its shape %+v", ti.Code, ti.Digital, ti)
		}
		if IsDigital(ti.Code) != ti.Digital {
			t.Errorf("IsDigital(%s) = %v", ti.Code, IsDigital(ti.Code))
		}
		if len(ti.CodeLengths) == 0 || len(ti.NumberLengths) == 0 {
			t.Errorf("entry %s: no lengths", ti.Code)
		}
	}
	// The issue: the QR amount is before tax on 01/04/08/10/20 and the
	// tax-inclusive total on 31/32.
	for code, want := range map[string]Basis{"01": BasisExcludingTax, "04": BasisExcludingTax, "08": BasisExcludingTax,
		"10": BasisExcludingTax, "20": BasisExcludingTax, "31": BasisIncludingTax, "32": BasisIncludingTax,
		"51": BasisUnknown, "99": BasisUnknown, "": BasisUnknown} {
		if got := AmountBasis(code); got != want {
			t.Errorf("AmountBasis(%q) = %v, want %v", code, got, want)
		}
	}
	// The strings are the invoice_qr check's qr_amount_basis values.
	for b, want := range map[Basis]string{BasisExcludingTax: "excluding_tax", BasisIncludingTax: "including_tax", BasisUnknown: "unknown"} {
		if b.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(b), b.String(), want)
		}
	}
	p, _ := ParsePayload("01,31,,24312000000136634917,1.00,20240514,,1DD6")
	if p.AmountBasis() != BasisIncludingTax {
		t.Errorf("Payload.AmountBasis = %v", p.AmountBasis())
	}
	// What LookupType returns is a copy.
	a, ok := LookupType("04")
	a.CodeLengths[0] = 99
	if b, _ := LookupType("04"); !ok || b.CodeLengths[0] != 10 {
		t.Fatalf("LookupType shares the table's slices: %v", b.CodeLengths)
	}
	if _, ok := LookupType("99"); ok {
		t.Fatal("LookupType(99) found an entry")
	}
}

var payloadFieldNames = []string{"payload", "version", "type", "code", "number", "amount", "date", "check_code", "checksum"}

func FuzzParsePayload(f *testing.F) {
	for _, s := range []string{
		"01,10,011001605111,80100798,64.9,20161018,85342965681116380258,BE2D",
		"01,32,,24312000000136634917,0.01,20240514,,1DD6",
		"01,31, ,24942000000003727672,684.40,20240129, ,2D77",
		"01,10,036001900111,09781653,17.70,20211017,81045826961248021535,134F,",
		"01,10,011001705111,65597439,213.00,20170814,51925190212441436757",
		"01,32,,26327000001034015576,300.00,20260717,,f8be",
		"01,31,,26442000005310626521,31605.00,20260514,,",
		"01,01,4403183130,05370195,5009.43,20190301,,2301,",
		"01,51,011001600111,32212718,39.62,20170227,80277307171217590604,F386",
		",,,,,,,",
		" \n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePayload(s)
		if err != nil {
			for _, field := range errorFields(t, err) {
				if !slices.Contains(payloadFieldNames, field) {
					t.Fatalf("ParsePayload(%q) names field %q", s, field)
				}
			}
			return
		}
		// Anything accepted formats to the canonical shape, which parses
		// to the same fields with nothing to normalise but a missing
		// checksum.
		c := p.String()
		q, err := ParsePayload(c)
		if err != nil {
			t.Fatalf("re-parse of %q (from %q): %v", c, s, err)
		}
		wantNorm := []string(nil)
		if p.Checksum == "" {
			wantNorm = []string{NormEmptyChecksum}
		}
		if !slices.Equal(q.Normalized, wantNorm) {
			t.Fatalf("canonical %q (from %q) normalised %v", c, s, q.Normalized)
		}
		q.Normalized = p.Normalized
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("round trip of %q changed\n%#v\nto\n%#v", s, p, q)
		}
		if q.String() != c {
			t.Fatalf("String of %q is not stable: %q then %q", s, c, q.String())
		}
	})
}

func errorFields(t testing.TB, err error) []string {
	t.Helper()
	var got []string
	for _, e := range flatten(err) {
		var fe *FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("error %v is not a FieldError", e)
		}
		got = append(got, fe.Field)
	}
	return got
}

func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
