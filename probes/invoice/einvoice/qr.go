package einvoice

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Invoice type codes as they appear in the QR payload.
const (
	TypeSpecialVAT         = "01"
	TypeOrdinaryVAT        = "04"
	TypeElectronicOrdinary = "10"
	TypeElectronicSpecial  = "20"
	TypeDigitalSpecial     = "31"
	TypeDigitalOrdinary    = "32"
	payloadVersion         = "01"
	payloadFields          = 8
	dateLayout             = "20060102"
)

var typeNames = map[string]string{
	TypeSpecialVAT:         "special VAT invoice",
	TypeOrdinaryVAT:        "ordinary VAT invoice",
	TypeElectronicOrdinary: "electronic ordinary VAT invoice",
	TypeElectronicSpecial:  "electronic special VAT invoice",
	TypeDigitalSpecial:     "fully digital special invoice",
	TypeDigitalOrdinary:    "fully digital ordinary invoice",
}

// IsDigital reports whether a type code is a fully digital invoice (数电票),
// which has no invoice code and no check code, and a 20-digit number.
func IsDigital(typeCode string) bool {
	return typeCode == TypeDigitalSpecial || typeCode == TypeDigitalOrdinary
}

// Payload is the parsed QR content of an e-invoice:
// version,type,code,number,amount,date,check_code,checksum.
type Payload struct {
	Version   string
	Type      string
	Code      string // invoice code; empty for fully digital invoices
	Number    string
	Amount    Fen
	Date      time.Time // calendar date, UTC midnight
	CheckCode string    // empty for fully digital invoices
	Checksum  string    // 4 hex characters
}

// FieldError names the payload field that is wrong.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// ParsePayload parses and validates a QR payload. Every problem found is
// returned, joined, as *FieldError values.
func ParsePayload(s string) (Payload, error) {
	s = strings.TrimSpace(s)
	parts := strings.Split(s, ",")
	// Some issuers end the line with a comma.
	if len(parts) == payloadFields+1 && parts[payloadFields] == "" {
		parts = parts[:payloadFields]
	}
	if len(parts) != payloadFields {
		return Payload{}, fieldErr("payload", "expected %d comma-separated fields, got %d", payloadFields, len(parts))
	}
	p := Payload{Version: parts[0], Type: parts[1], Code: parts[2], Number: parts[3],
		CheckCode: parts[6], Checksum: parts[7]}
	var errs []error
	if p.Version != payloadVersion {
		errs = append(errs, fieldErr("version", "%q, expected %q", p.Version, payloadVersion))
	}
	if _, ok := typeNames[p.Type]; !ok {
		errs = append(errs, fieldErr("type", "unknown type code %q", p.Type))
	}
	digital := IsDigital(p.Type)
	switch {
	case digital && p.Code != "":
		errs = append(errs, fieldErr("code", "must be empty for a fully digital invoice, got %q", p.Code))
	case !digital && !(allDigits(p.Code) && (len(p.Code) == 10 || len(p.Code) == 12)):
		errs = append(errs, fieldErr("code", "%q is not a 10- or 12-digit invoice code", p.Code))
	}
	wantLen := 8
	if digital {
		wantLen = 20
	}
	if len(p.Number) != wantLen || !allDigits(p.Number) {
		errs = append(errs, fieldErr("number", "%q is not a %d-digit invoice number", p.Number, wantLen))
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
	switch {
	case digital && p.CheckCode != "":
		errs = append(errs, fieldErr("check_code", "must be empty for a fully digital invoice, got %q", p.CheckCode))
	case !digital && (len(p.CheckCode) != 20 || !allDigits(p.CheckCode)):
		errs = append(errs, fieldErr("check_code", "%q is not a 20-digit check code", p.CheckCode))
	}
	if !isHex4(p.Checksum) {
		errs = append(errs, fieldErr("checksum", "%q is not 4 hexadecimal characters", p.Checksum))
	}
	return p, errors.Join(errs...)
}

// String formats the payload as it is encoded in the QR code.
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
