package einvoice

import (
	"slices"
	"strings"
)

// Invoice type codes as they appear in the second field of the QR payload.
const (
	TypeSpecialVAT           = "01" // 增值税专用发票 (paper)
	TypeFreightSpecialVAT    = "02" // 货物运输业增值税专用发票
	TypeMotorVehicle         = "03" // 机动车销售统一发票
	TypeOrdinaryVAT          = "04" // 增值税普通发票 (paper)
	TypeElectronicSpecialVAT = "08" // 增值税电子专用发票
	TypeElectronicOrdinary   = "10" // 增值税电子普通发票
	TypeRollVAT              = "11" // 增值税普通发票(卷式)
	TypeElectronicToll       = "14" // 增值税电子普通发票(通行费)
	TypeUsedVehicle          = "15" // 二手车销售统一发票
	TypeElectronicSpecial    = "20" // electronic special VAT invoice as some platforms write 08
	TypeDigitalSpecial       = "31" // 电子发票(增值税专用发票), 数电
	TypeDigitalOrdinary      = "32" // 电子发票(普通发票), 数电
	TypeDigitalMotorVehicle  = "33" // 机动车销售电子统一发票 (unverified, see the table)
	TypeDigitalUsedVehicle   = "34" // 二手车销售电子统一发票 (unverified, see the table)
	TypeRailwayTicket        = "51" // 电子发票(铁路电子客票)
	TypeAirTicket            = "61" // 电子发票(航空运输电子客票行程单)
)

// Basis is which total the QR amount carries.
type Basis int

const (
	// BasisUnknown: no document or public source seen says which total
	// this type's QR amount is; callers must be told.
	BasisUnknown Basis = iota
	// BasisExcludingTax: the amount before tax (合计金额), as on the VAT
	// invoices of the old system (01, 04, 08, 10, 20).
	BasisExcludingTax
	// BasisIncludingTax: the tax-inclusive total (价税合计), as on 数电
	// invoices (31, 32).
	BasisIncludingTax
)

// String returns the name the invoice_qr check's qr_amount_basis setting
// and the demo platform use: "excluding_tax", "including_tax", or
// "unknown".
func (b Basis) String() string {
	switch b {
	case BasisExcludingTax:
		return "excluding_tax"
	case BasisIncludingTax:
		return "including_tax"
	}
	return "unknown"
}

// CheckCodeRule says whether a type's payload carries the 20-digit check
// code (校验码).
type CheckCodeRule int

const (
	// CheckCodeAbsent: the field must be empty (数电 invoices).
	CheckCodeAbsent CheckCodeRule = iota
	// CheckCodeRequired: 20 digits, seen on every real payload of the type.
	CheckCodeRequired
	// CheckCodeOptional: empty or 20 digits. Used where real payloads
	// have it empty (paper special invoices) and where no real payload of
	// the type was seen, so a real shape is not rejected on a guess.
	CheckCodeOptional
)

// String names the rule: "absent", "required" or "optional".
func (r CheckCodeRule) String() string {
	switch r {
	case CheckCodeAbsent:
		return "absent"
	case CheckCodeRequired:
		return "required"
	}
	return "optional"
}

// TypeInfo is what is known about one invoice type code in QR payloads.
type TypeInfo struct {
	Code    string
	NameZH  string
	NameEN  string
	Digital bool // 数电 (fully digitalised) invoice: no invoice code, 20-digit number
	// CheckCode is whether the payload carries a check code.
	CheckCode CheckCodeRule
	// CodeLengths are the allowed lengths of the invoice code (发票代码)
	// in digits; 0 means it may be empty.
	CodeLengths []int
	// NumberLengths are the allowed lengths of the invoice number.
	NumberLengths []int
	// Basis is which total the QR amount carries.
	Basis Basis
	// Verified is true when the rules above were checked against real
	// documents or real payloads (the shared fixtures); false when they
	// come from type tables in public code only and the parser accepts
	// the structural shape.
	Verified bool
}

var (
	paperCode   = []int{10}
	code12      = []int{12}
	code10or12  = []int{10, 12}
	noCode      = []int{0}
	anyCode     = []int{0, 10, 12}
	number8     = []int{8}
	number20    = []int{20}
	number8or20 = []int{8, 20}
)

// typeTable is the type-code table. Names are the invoice type names as
// public invoice-type tables and QR parsers write them.
//
// Sources for the rules: the shared fixtures (EXPECTED.tsv: real PDFs,
// OFDs and images; payloads.tsv: payloads seen in public code) for 01, 04,
// 10, 20, 31, 32; public type tables (e.g. GitHub1he/QrToInvoice's
// InvoiceTypeEnum and QR handlers) for the rest. Where a rule is not
// known it is left loose rather than guessed.
var typeTable = map[string]TypeInfo{
	// Paper special VAT invoice: 10-digit code; real payloads have an
	// empty check code (payloads.tsv, three of them).
	TypeSpecialVAT: {Code: TypeSpecialVAT, NameZH: "增值税专用发票", NameEN: "special VAT invoice",
		CheckCode: CheckCodeOptional, CodeLengths: paperCode, NumberLengths: number8, Basis: BasisExcludingTax, Verified: true},
	// Freight transport special VAT invoice (discontinued 2016). No real
	// payload seen; shape as the paper special invoice, amount basis not
	// known.
	TypeFreightSpecialVAT: {Code: TypeFreightSpecialVAT, NameZH: "货物运输业增值税专用发票", NameEN: "freight transport special VAT invoice",
		CheckCode: CheckCodeOptional, CodeLengths: paperCode, NumberLengths: number8},
	// Motor vehicle sales invoice. No real payload seen; the invoice shows
	// both 不含税价 and 价税合计, and which one the QR carries is not known.
	TypeMotorVehicle: {Code: TypeMotorVehicle, NameZH: "机动车销售统一发票", NameEN: "motor vehicle sales invoice",
		CheckCode: CheckCodeOptional, CodeLengths: code12, NumberLengths: number8},
	// Paper ordinary VAT invoice: 10- and 12-digit codes and a check code
	// seen on real payloads.
	TypeOrdinaryVAT: {Code: TypeOrdinaryVAT, NameZH: "增值税普通发票", NameEN: "ordinary VAT invoice",
		CheckCode: CheckCodeRequired, CodeLengths: code10or12, NumberLengths: number8, Basis: BasisExcludingTax, Verified: true},
	// Electronic special VAT invoice (2020 on). No real payload with 08
	// seen (the one electronic special invoice in the fixtures says 20);
	// the check code is left optional.
	TypeElectronicSpecialVAT: {Code: TypeElectronicSpecialVAT, NameZH: "增值税电子专用发票", NameEN: "electronic special VAT invoice",
		CheckCode: CheckCodeOptional, CodeLengths: code12, NumberLengths: number8, Basis: BasisExcludingTax},
	TypeElectronicOrdinary: {Code: TypeElectronicOrdinary, NameZH: "增值税电子普通发票", NameEN: "electronic ordinary VAT invoice",
		CheckCode: CheckCodeRequired, CodeLengths: code12, NumberLengths: number8, Basis: BasisExcludingTax, Verified: true},
	// Roll invoice. No real payload seen. Probably the amount before tax
	// like the other invoices of the same system, but not confirmed.
	TypeRollVAT: {Code: TypeRollVAT, NameZH: "增值税普通发票(卷式)", NameEN: "ordinary VAT invoice (roll)",
		CheckCode: CheckCodeOptional, CodeLengths: code12, NumberLengths: number8},
	// Toll electronic ordinary invoice. No real payload seen; as for 11,
	// the amount basis is probably before tax but not confirmed.
	TypeElectronicToll: {Code: TypeElectronicToll, NameZH: "增值税电子普通发票(通行费)", NameEN: "electronic ordinary VAT invoice (toll)",
		CheckCode: CheckCodeOptional, CodeLengths: code12, NumberLengths: number8},
	TypeUsedVehicle: {Code: TypeUsedVehicle, NameZH: "二手车销售统一发票", NameEN: "used vehicle sales invoice",
		CheckCode: CheckCodeOptional, CodeLengths: code12, NumberLengths: number8},
	// 20 is in none of the public type tables found; the fixtures hold a
	// real electronic special VAT invoice (vm_04.pdf) whose QR says 20 with
	// a 12-digit code and a 20-digit check code, and a public QR parser
	// (GitHub1he/QrToInvoice, SpecialCode20Handler) maps 20 to 08. Treated
	// as 08.
	TypeElectronicSpecial: {Code: TypeElectronicSpecial, NameZH: "增值税电子专用发票", NameEN: "electronic special VAT invoice",
		CheckCode: CheckCodeOptional, CodeLengths: code12, NumberLengths: number8, Basis: BasisExcludingTax, Verified: true},
	// 数电 invoices: no code, no check code, 20-digit number, amount with
	// tax. Some platforms fill the empty fields with one space.
	TypeDigitalSpecial: {Code: TypeDigitalSpecial, NameZH: "电子发票(增值税专用发票)", NameEN: "fully digital special invoice",
		Digital: true, CheckCode: CheckCodeAbsent, CodeLengths: noCode, NumberLengths: number20, Basis: BasisIncludingTax, Verified: true},
	TypeDigitalOrdinary: {Code: TypeDigitalOrdinary, NameZH: "电子发票(普通发票)", NameEN: "fully digital ordinary invoice",
		Digital: true, CheckCode: CheckCodeAbsent, CodeLengths: noCode, NumberLengths: number20, Basis: BasisIncludingTax, Verified: true},
	// 33 and 34: one public parser (GitHub1he/QrToInvoice) maps these QR
	// types to the 数电-era vehicle invoices, with a code when printed on
	// paper. Not seen in a real payload; shape left loose.
	TypeDigitalMotorVehicle: {Code: TypeDigitalMotorVehicle, NameZH: "机动车销售电子统一发票", NameEN: "electronic motor vehicle sales invoice",
		CheckCode: CheckCodeOptional, CodeLengths: anyCode, NumberLengths: number8or20},
	TypeDigitalUsedVehicle: {Code: TypeDigitalUsedVehicle, NameZH: "二手车销售电子统一发票", NameEN: "electronic used vehicle sales invoice",
		CheckCode: CheckCodeOptional, CodeLengths: anyCode, NumberLengths: number8or20},
	// 51 and 61 are the 数电 railway and air tickets in public type tables
	// (20-digit numbers; not seen on a real document here). The only
	// payload with 51 seen (payloads.tsv, a scanner's debug value from
	// 2017) has the shape of a type-10 invoice instead, so either shape is
	// accepted. Which total the amount carries is not known.
	TypeRailwayTicket: {Code: TypeRailwayTicket, NameZH: "电子发票(铁路电子客票)", NameEN: "fully digital invoice (railway e-ticket)",
		CheckCode: CheckCodeOptional, CodeLengths: anyCode, NumberLengths: number8or20},
	TypeAirTicket: {Code: TypeAirTicket, NameZH: "电子发票(航空运输电子客票行程单)", NameEN: "fully digital invoice (air e-ticket itinerary)",
		CheckCode: CheckCodeOptional, CodeLengths: anyCode, NumberLengths: number8or20},
}

// LookupType returns what is known about a type code.
func LookupType(code string) (TypeInfo, bool) {
	t, ok := typeTable[code]
	return t.clone(), ok
}

// Types returns the type table sorted by code.
func Types() []TypeInfo {
	out := make([]TypeInfo, 0, len(typeTable))
	for _, t := range typeTable {
		out = append(out, t.clone())
	}
	slices.SortFunc(out, func(a, b TypeInfo) int { return strings.Compare(a.Code, b.Code) })
	return out
}

// clone copies the slices so a caller cannot change the table.
func (t TypeInfo) clone() TypeInfo {
	t.CodeLengths = slices.Clone(t.CodeLengths)
	t.NumberLengths = slices.Clone(t.NumberLengths)
	return t
}

// AmountBasis returns which total the QR amount of a type carries:
// BasisExcludingTax for 01, 04, 08, 10 and 20, BasisIncludingTax for the
// 数电 types 31 and 32, BasisUnknown for the others and unknown codes.
func AmountBasis(typeCode string) Basis { return typeTable[typeCode].Basis }

// IsDigital reports whether a type code is a fully digital invoice (数电票),
// which has no invoice code and no check code, and a 20-digit number.
func IsDigital(typeCode string) bool { return typeTable[typeCode].Digital }

// TypeName returns the type's name in Chinese and English, or empty
// strings for an unknown code.
func TypeName(typeCode string) (zh, en string) {
	t := typeTable[typeCode]
	return t.NameZH, t.NameEN
}
