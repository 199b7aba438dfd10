package einvoice

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	payloadVersion = "01"
	payloadFields  = 8
	dateLayout     = "20060102"
)

// Normalisations ParsePayload applies to shapes real platforms emit; each
// one applied is listed in Payload.Normalized so a CLI can show them.
const (
	NormWhitespace     = "surrounding whitespace"  // spaces or a line end around the payload
	NormTrailingComma  = "trailing comma"          // a ninth, empty field
	NormSevenFields    = "7 fields"                // no checksum field at all
	NormEmptyChecksum  = "empty checksum"          // the checksum field is there but empty
	NormSpaceCode      = "space-filled code"       // " " for an empty invoice code (数电)
	NormSpaceCheckCode = "space-filled check code" // " " for an empty check code (数电)
	NormSpaceChecksum  = "space-filled checksum"   // spaces for an empty checksum
	NormLowerChecksum  = "lower-case checksum"     // hex letters in lower case
)

// Payload is the parsed QR content of an e-invoice:
// version,type,code,number,amount,date,check_code,checksum.
//
// The checksum (the last field) is opaque: tax platforms publish no
// algorithm for it, so only its form is checked (4 hex characters, kept
// in upper case). Real payloads also come without one (7 fields, or an
// empty last field); those parse with Checksum empty and the shape named
// in Normalized.
type Payload struct {
	Version   string
	Type      string
	Code      string // invoice code; empty for fully digital invoices
	Number    string
	Amount    Fen       // which total: AmountBasis
	Date      time.Time // calendar date, UTC midnight
	CheckCode string    // empty for fully digital invoices and paper special invoices
	Checksum  string    // 4 hex characters in upper case, or empty when the payload has none
	// Normalized lists the Norm* normalisations applied, in the order
	// applied; nil for a payload in the canonical shape.
	Normalized []string
}

// AmountBasis is which total the payload's amount carries, from its type.
func (p Payload) AmountBasis() Basis { return AmountBasis(p.Type) }

// FieldError names the payload field that is wrong.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// looseType is the shape accepted for a type code not in the table, so
// that the code, number and check code are still checked for form.
var looseType = TypeInfo{CheckCode: CheckCodeOptional, CodeLengths: anyCode, NumberLengths: number8or20}

// ParsePayload parses and validates a QR payload. Every problem found is
// returned, joined, as *FieldError values naming the field (payload,
// version, type, code, number, amount, date, check_code, checksum).
//
// Shapes real platforms emit are accepted and recorded in Normalized: a
// trailing comma, 7 fields, an empty checksum, fields filled with spaces
// where they are empty, a lower-case checksum, whitespace around it all.
// The rules for code, number and check code come from the type table
// (LookupType).
func ParsePayload(s string) (Payload, error) {
	var p Payload
	if t := strings.TrimSpace(s); t != s {
		p.note(NormWhitespace)
		s = t
	}
	parts := strings.Split(s, ",")
	if len(parts) == payloadFields+1 && parts[payloadFields] == "" {
		p.note(NormTrailingComma)
		parts = parts[:payloadFields]
	}
	switch len(parts) {
	case payloadFields:
		if parts[7] == "" {
			p.note(NormEmptyChecksum)
		}
	case payloadFields - 1:
		// A 7-field payload whose last field has the form of a checksum
		// has lost a field (usually the empty check code): the check code
		// is 20 digits or empty, never 4 hex characters.
		if isHex4(parts[6]) {
			return Payload{}, fieldErr("payload", "7 comma-separated fields and the last, %q, looks like the checksum: a field is missing (expected version,type,code,number,amount,date,check_code[,checksum])", parts[6])
		}
		p.note(NormSevenFields)
		parts = append(parts, "")
	default:
		return Payload{}, fieldErr("payload", "expected %d comma-separated fields (7 without the checksum), got %d", payloadFields, len(parts))
	}
	p.Version, p.Type, p.Number = parts[0], parts[1], parts[3]
	p.Code = p.spaceFilled(parts[2], NormSpaceCode)
	p.CheckCode = p.spaceFilled(parts[6], NormSpaceCheckCode)
	p.Checksum = p.spaceFilled(parts[7], NormSpaceChecksum)
	if up := strings.ToUpper(p.Checksum); up != p.Checksum && isHex4(p.Checksum) {
		p.note(NormLowerChecksum)
		p.Checksum = up
	}

	var errs []error
	if p.Version != payloadVersion {
		errs = append(errs, fieldErr("version", "%q, expected %q", p.Version, payloadVersion))
	}
	t, known := typeTable[p.Type]
	if !known {
		errs = append(errs, fieldErr("type", "unknown type code %q", p.Type))
		t = looseType
	}
	codeOK := true
	switch {
	case t.Digital && p.Code != "":
		codeOK = false
		errs = append(errs, fieldErr("code", "must be empty for a fully digital invoice, got %q", p.Code))
	case p.Code == "" && !slices.Contains(t.CodeLengths, 0):
		codeOK = false
		errs = append(errs, fieldErr("code", "empty, a type %s invoice has a %s-digit invoice code", p.Type, lengths(t.CodeLengths)))
	case p.Code != "" && (!allDigits(p.Code) || !slices.Contains(t.CodeLengths, len(p.Code))):
		codeOK = false
		errs = append(errs, fieldErr("code", "%q is not a %s-digit invoice code", p.Code, lengths(t.CodeLengths)))
	}
	switch {
	case !allDigits(p.Number) || !slices.Contains(t.NumberLengths, len(p.Number)):
		errs = append(errs, fieldErr("number", "%q is not a %s-digit invoice number", p.Number, lengths(t.NumberLengths)))
	case codeOK && (p.Code == "") != (len(p.Number) == 20):
		// Only the types whose shape is not known allow both; a 20-digit
		// (数电) number never comes with an invoice code, an 8-digit one
		// always does.
		if p.Code == "" {
			errs = append(errs, fieldErr("number", "%q: an %d-digit invoice number comes with an invoice code, which is empty", p.Number, len(p.Number)))
		} else {
			errs = append(errs, fieldErr("number", "%q: a 20-digit (fully digital) invoice number comes without an invoice code, got %q", p.Number, p.Code))
		}
	}
	if amt, err := ParseFen(parts[4]); err != nil || amt < 0 {
		errs = append(errs, fieldErr("amount", "%q is not a non-negative amount with at most two decimals", parts[4]))
	} else {
		p.Amount = amt
	}
	if d, err := time.Parse(dateLayout, parts[5]); err != nil || len(parts[5]) != 8 {
		errs = append(errs, fieldErr("date", "%q is not a YYYYMMDD date", parts[5]))
	} else {
		p.Date = d
	}
	checkCodeOK := p.CheckCode == "" || len(p.CheckCode) == 20 && allDigits(p.CheckCode)
	switch {
	case t.CheckCode == CheckCodeAbsent && p.CheckCode != "":
		what := "a fully digital invoice"
		if !t.Digital {
			what = "type " + p.Type
		}
		errs = append(errs, fieldErr("check_code", "must be empty for %s, got %q", what, p.CheckCode))
	case t.CheckCode == CheckCodeRequired && p.CheckCode == "":
		errs = append(errs, fieldErr("check_code", "empty, a type %s invoice has a 20-digit check code", p.Type))
	case !checkCodeOK:
		errs = append(errs, fieldErr("check_code", "%q is not a 20-digit check code", p.CheckCode))
	}
	if p.Checksum != "" && !isHex4(p.Checksum) {
		errs = append(errs, fieldErr("checksum", "%q is not 4 hexadecimal characters", p.Checksum))
	}
	return p, errors.Join(errs...)
}

func (p *Payload) note(n string) { p.Normalized = append(p.Normalized, n) }

// spaceFilled returns "" for a field of only spaces, noting n.
func (p *Payload) spaceFilled(f, n string) string {
	if f != "" && strings.Trim(f, " ") == "" {
		p.note(n)
		return ""
	}
	return f
}

// lengths formats allowed lengths as "10- or 12", leaving out 0 (empty).
func lengths(ls []int) string {
	var s []string
	for _, l := range ls {
		if l != 0 {
			s = append(s, strconv.Itoa(l))
		}
	}
	if len(s) > 1 {
		return strings.Join(s[:len(s)-1], "-, ") + "- or " + s[len(s)-1]
	}
	return strings.Join(s, "")
}

// String formats the payload as it is encoded in the QR code, in the
// canonical shape: 8 fields, empty fields empty, the checksum in upper
// case (an empty last field when there is none).
func (p Payload) String() string {
	return strings.Join([]string{p.Version, p.Type, p.Code, p.Number, p.Amount.String(),
		p.Date.Format(dateLayout), p.CheckCode, p.Checksum}, ",")
}

// DateString is the payload's date as YYYYMMDD.
func (p Payload) DateString() string { return p.Date.Format(dateLayout) }

// Checksum computes the 4-hex trailer the demo platform writes: CRC-16/CCITT
// (poly 0x1021, init 0xFFFF) over the first seven fields and their commas.
// Real tax platforms do not publish theirs, so checks verify only its form.
func Checksum(first7 string) string {
	crc := uint16(0xFFFF)
	for i := 0; i < len(first7); i++ {
		crc ^= uint16(first7[i]) << 8
		for b := 0; b < 8; b++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return fmt.Sprintf("%04X", crc)
}

// NewDigitalPayload builds the payload of a fully digital invoice with the
// demo platform's checksum.
func NewDigitalPayload(typeCode, number string, amount Fen, date time.Time) Payload {
	p := Payload{Version: payloadVersion, Type: typeCode, Number: number, Amount: amount,
		Date: time.Date(date.Year(), date.Month(), date.Day(), 0, 0, 0, 0, time.UTC)}
	s := p.String()
	p.Checksum = Checksum(s[:strings.LastIndexByte(s, ',')+1])
	return p
}

func isHex4(s string) bool {
	if len(s) != 4 {
		return false
	}
	for i := 0; i < 4; i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
