package einvoice

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestValidateCreditCode(t *testing.T) {
	for _, tc := range []struct {
		code string
		ok   bool
	}{
		// Published codes of real companies.
		{"91350100M000100Y43", true},
		{"91440300708461136T", true},
		{"91110000802100433B", true},
		// One character changed, transposed, wrong check character.
		{"91350100M000100Y44", false},
		{"91350100M000010Y43", false},
		{"91440300708461136U", false},
		{"91110000802100433b", false},
		// Letters outside the alphabet (I, O, S, V, Z), wrong length.
		{"9135010OM000100Y43", false},
		{"91350100M000100Y4", false},
		{"91350100M000100Y431", false},
		{"", false},
	} {
		t.Run(tc.code, func(t *testing.T) {
			err := ValidateCreditCode(tc.code)
			if (err == nil) != tc.ok {
				t.Fatalf("ValidateCreditCode(%q) = %v, want ok=%v", tc.code, err, tc.ok)
			}
		})
	}
}

func TestCreditCodeCheckCharRoundTrip(t *testing.T) {
	c, err := CreditCodeCheckChar("91350100M000100Y4")
	if err != nil || c != '3' {
		t.Fatalf("check char = %q, %v; want '3'", c, err)
	}
}

func TestParseFen(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Fen
		ok   bool
	}{
		{"64.9", 6490, true}, {"0.01", 1, true}, {"1", 100, true}, {"1.13", 113, true},
		{"-2.50", -250, true}, {"1.", 0, false}, {".5", 0, false}, {"1.234", 0, false},
		{"1e3", 0, false}, {"", 0, false}, {"abc", 0, false},
	} {
		got, err := ParseFen(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseFen(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
	if s := Fen(6490).String(); s != "64.90" {
		t.Errorf("String = %q", s)
	}
}

func TestLineAmounts(t *testing.T) {
	for _, tc := range []struct {
		q, p, r     string
		amount, tax Fen
	}{
		{"1", "0.10", "0.13", 10, 1},   // 0.013 rounds to 0.01
		{"1", "1.00", "0.13", 100, 13}, //
		{"3", "33.335", "0.06", 10001, 600},
		{"1.5", "2.05", "0.13", 308, 40}, // 3.075 → 3.08; 0.4004 → 0.40
		{"1", "0.10", "0", 10, 0},
	} {
		l, err := LineAmounts(tc.q, tc.p, tc.r)
		if err != nil || l.Amount != tc.amount || l.Tax != tc.tax {
			t.Errorf("LineAmounts(%s,%s,%s) = %+v, %v; want %v/%v", tc.q, tc.p, tc.r, l, err, tc.amount, tc.tax)
		}
	}
	if _, err := LineAmounts("1", "1", "13"); err == nil {
		t.Error("a tax rate of 13 (instead of 0.13) was accepted")
	}
}

func TestParsePayload(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		bad      []string // fields reported
	}{
		{"design example VAT e-invoice", "01,10,011001605111,80100798,64.9,20161018,85342965681116380258,BE2D", nil},
		{"design example digital", "01,32,,24312000000136634917,0.01,20240514,,1DD6", nil},
		{"trailing comma", "01,32,,24312000000136634917,0.01,20240514,,1DD6,", nil},
		{"lower-case checksum", "01,31,,24312000000136634917,100,20240514,,1dd6", nil},
		{"too few fields", "01,32,,24312000000136634917,0.01,20240514,1DD6", []string{"payload"}},
		{"digital with code", "01,32,011001605111,24312000000136634917,0.01,20240514,,1DD6", []string{"code"}},
		{"short number", "01,32,,2431200000013663491,0.01,20240514,,1DD6", []string{"number"}},
		{"bad amount and date", "01,32,,24312000000136634917,0.001,20241314,,1DD6", []string{"amount", "date"}},
		{"bad version type checksum", "02,99,,24312000000136634917,1,20240514,,XYZ1", []string{"version", "type", "code", "number", "check_code", "checksum"}},
		{"VAT without check code", "01,10,011001605111,80100798,64.9,20161018,,BE2D", []string{"check_code"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePayload(tc.in)
			var got []string
			for _, e := range flatten(err) {
				var fe *FieldError
				if !errors.As(e, &fe) {
					t.Fatalf("error %v is not a FieldError", e)
				}
				got = append(got, fe.Field)
			}
			if strings.Join(got, ",") != strings.Join(tc.bad, ",") {
				t.Fatalf("fields reported %v, want %v (err %v)", got, tc.bad, err)
			}
			if err == nil && p.Number == "" {
				t.Fatal("no number parsed")
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
	if q != p {
		t.Fatalf("round trip: %+v != %+v", q, p)
	}
	if got := p.String(); got != "01,32,,26110100000000000042,1.13,20261123,,"+p.Checksum {
		t.Fatalf("payload %q", got)
	}
	if Checksum("123456789") != "29B1" { // CRC-16/CCITT-FALSE check value
		t.Fatalf("checksum of the standard check input = %s", Checksum("123456789"))
	}
}

func FuzzParsePayload(f *testing.F) {
	f.Add("01,10,011001605111,80100798,64.9,20161018,85342965681116380258,BE2D")
	f.Add("01,32,,24312000000136634917,0.01,20240514,,1DD6")
	f.Add(",,,,,,,")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePayload(s)
		if err != nil {
			return
		}
		// Anything accepted must format back to an equivalent payload.
		q, err := ParsePayload(p.String())
		if err != nil {
			t.Fatalf("re-parse of %q (from %q): %v", p.String(), s, err)
		}
		if q.Number != p.Number || q.Amount != p.Amount || !q.Date.Equal(p.Date) {
			t.Fatalf("round trip changed %+v to %+v", p, q)
		}
	})
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
