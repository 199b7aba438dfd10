package einvoice

import (
	"testing"
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
