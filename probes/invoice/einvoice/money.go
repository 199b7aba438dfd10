package einvoice

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// Fen is an amount in fen (0.01 yuan). Invoices carry two decimals, so
// integers keep totals exact.
type Fen int64

// String formats the amount with two decimals ("1.13").
func (f Fen) String() string {
	sign := ""
	if f < 0 {
		sign, f = "-", -f
	}
	return fmt.Sprintf("%s%d.%02d", sign, f/100, f%100)
}

// ParseFen parses a yuan amount with at most two decimals ("64.9", "0.01").
func ParseFen(s string) (Fen, error) {
	if s == "" {
		return 0, fmt.Errorf("empty amount")
	}
	neg := strings.HasPrefix(s, "-")
	digits := strings.TrimPrefix(s, "-")
	whole, frac, hasDot := strings.Cut(digits, ".")
	if whole == "" || (hasDot && (frac == "" || len(frac) > 2)) || !allDigits(whole) || !allDigits(frac) {
		return 0, fmt.Errorf("amount %q is not a decimal with at most two places", s)
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w > 1e15 {
		return 0, fmt.Errorf("amount %q out of range", s)
	}
	for len(frac) < 2 {
		frac += "0"
	}
	f, _ := strconv.ParseInt(frac, 10, 64)
	v := Fen(w*100 + f)
	if neg {
		v = -v
	}
	return v, nil
}

// ParseDecimal parses a non-negative decimal such as a quantity ("1.5"),
// unit price ("0.10") or tax rate ("0.13") exactly.
func ParseDecimal(s string) (*big.Rat, error) {
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" || (hasDot && frac == "") || !allDigits(whole) || !allDigits(frac) || len(s) > 32 {
		return nil, fmt.Errorf("%q is not a non-negative decimal", s)
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return nil, fmt.Errorf("%q is not a non-negative decimal", s)
	}
	return r, nil
}

// RoundFen rounds a yuan amount half away from zero to whole fen.
func RoundFen(yuan *big.Rat) Fen {
	f := new(big.Rat).Mul(yuan, big.NewRat(100, 1))
	num, den := f.Num(), f.Denom()
	q, m := new(big.Int).QuoRem(num, den, new(big.Int))
	// |m|*2 >= den rounds away from zero.
	if new(big.Int).Mul(new(big.Int).Abs(m), big.NewInt(2)).Cmp(den) >= 0 {
		if num.Sign() < 0 {
			q.Sub(q, big.NewInt(1))
		} else {
			q.Add(q, big.NewInt(1))
		}
	}
	return Fen(q.Int64())
}

// Line is one line item's amounts.
type Line struct {
	Amount Fen // quantity × unit price, excluding tax
	Tax    Fen // amount × rate
}

// LineAmounts computes a line's amount and tax the way invoicing systems do:
// each rounded to fen separately, totals summed from the rounded lines.
func LineAmounts(quantity, unitPrice, taxRate string) (Line, error) {
	q, err := ParseDecimal(quantity)
	if err != nil {
		return Line{}, fmt.Errorf("quantity: %w", err)
	}
	p, err := ParseDecimal(unitPrice)
	if err != nil {
		return Line{}, fmt.Errorf("unit price: %w", err)
	}
	r, err := ParseDecimal(taxRate)
	if err != nil {
		return Line{}, fmt.Errorf("tax rate: %w", err)
	}
	if r.Cmp(big.NewRat(1, 1)) >= 0 {
		return Line{}, fmt.Errorf("tax rate %s must be a fraction below 1 (0.13 for 13%%)", taxRate)
	}
	amount := RoundFen(new(big.Rat).Mul(q, p))
	tax := RoundFen(new(big.Rat).Mul(new(big.Rat).SetInt64(int64(amount)), new(big.Rat).Quo(r, big.NewRat(100, 1))))
	return Line{Amount: amount, Tax: tax}, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
