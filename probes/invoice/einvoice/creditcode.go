package einvoice

import (
	"errors"
	"fmt"
	"strings"
)

// creditCodeChars is the GB 32100-2015 alphabet: digits and the capital
// letters without I, O, Z, S and V. A character's index is its value.
const creditCodeChars = "0123456789ABCDEFGHJKLMNPQRTUWXY"

// creditCodeWeights are 3^i mod 31 for the first 17 positions.
var creditCodeWeights = [17]int{1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28}

// CreditCodeCheckChar returns the check character for the first 17
// characters of a unified social credit code.
func CreditCodeCheckChar(first17 string) (byte, error) {
	if len(first17) != 17 {
		return 0, fmt.Errorf("need 17 characters, got %d", len(first17))
	}
	sum := 0
	for i := 0; i < 17; i++ {
		v := strings.IndexByte(creditCodeChars, first17[i])
		if v < 0 {
			return 0, fmt.Errorf("character %d (%q) is not in the code alphabet", i+1, first17[i])
		}
		sum += v * creditCodeWeights[i]
	}
	c := (31 - sum%31) % 31
	return creditCodeChars[c], nil
}

// ValidateCreditCode checks an 18-character unified social credit code
// (统一社会信用代码): length, alphabet and the mod-31 check character.
func ValidateCreditCode(code string) error {
	if len(code) != 18 {
		return fmt.Errorf("unified social credit code must have 18 characters, got %d", len(code))
	}
	want, err := CreditCodeCheckChar(code[:17])
	if err != nil {
		return fmt.Errorf("unified social credit code: %w", err)
	}
	if strings.IndexByte(creditCodeChars, code[17]) < 0 {
		return errors.New("unified social credit code: check character is not in the code alphabet")
	}
	if code[17] != want {
		return fmt.Errorf("unified social credit code: check character is %q, expected %q", code[17], want)
	}
	return nil
}
