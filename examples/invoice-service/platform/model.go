package platform

import (
	"fmt"
	"time"

	"github.com/vigil-project/vigil/probes/invoice/einvoice"
)

// Party is a seller or buyer.
type Party struct {
	Name  string `json:"name"`
	TaxID string `json:"tax_id"` // 18-character unified social credit code
}

// Item is one line item. Amount and Tax are filled in by the issuer.
type Item struct {
	Name      string `json:"name"`
	Quantity  string `json:"quantity"`
	UnitPrice string `json:"unit_price"`
	TaxRate   string `json:"tax_rate"`
	Amount    string `json:"amount,omitempty"`
	Tax       string `json:"tax,omitempty"`
}

// IssueRequest is the body of POST /api/v1/invoices.
type IssueRequest struct {
	// Type is the QR type code, 31 (digital special) or 32 (digital
	// ordinary, the default).
	Type   string `json:"type,omitempty"`
	Seller Party  `json:"seller"`
	Buyer  Party  `json:"buyer"`
	Items  []Item `json:"items"`
	Remark string `json:"remark,omitempty"`
}

// Totals are an invoice's sums in yuan with two decimals.
type Totals struct {
	ExcludingTax string `json:"excluding_tax"`
	Tax          string `json:"tax"`
	IncludingTax string `json:"including_tax"`
}

// QR describes the invoice's QR code.
type QR struct {
	Payload string `json:"payload"`
	// AmountBasis says which total the payload's amount field carries:
	// excluding_tax or including_tax (auto resolved for the invoice's type
	// when it was issued).
	AmountBasis string `json:"amount_basis"`
}

// SyncState is the issuer's view of the upstream sync.
type SyncState struct {
	Pending  bool       `json:"pending"`
	SyncedAt *time.Time `json:"synced_at,omitempty"`
	Attempts int        `json:"attempts"`
}

// Invoice is what the issuing API returns.
type Invoice struct {
	Number   string            `json:"number"`
	Type     string            `json:"type"`
	Status   string            `json:"status"` // issued | void
	Issuer   string            `json:"issuer"`
	IssuedAt time.Time         `json:"issued_at"`
	VoidedAt *time.Time        `json:"voided_at,omitempty"`
	Seller   Party             `json:"seller"`
	Buyer    Party             `json:"buyer"`
	Items    []Item            `json:"items"`
	Totals   Totals            `json:"totals"`
	Remark   string            `json:"remark,omitempty"`
	QR       QR                `json:"qr"`
	Sync     SyncState         `json:"sync"`
	Links    map[string]string `json:"links"`
}

// Invoice statuses.
const (
	StatusIssued = "issued"
	StatusVoid   = "void"
)

// validate checks a request and computes the line and total amounts.
func (req *IssueRequest) validate() (einvoice.Fen, einvoice.Fen, error) {
	if req.Type == "" {
		req.Type = einvoice.TypeDigitalOrdinary
	}
	if !einvoice.IsDigital(req.Type) {
		return 0, 0, fmt.Errorf("type %q: this platform issues fully digital invoices (31 or 32)", req.Type)
	}
	for _, p := range []struct {
		role string
		p    Party
	}{{"seller", req.Seller}, {"buyer", req.Buyer}} {
		if p.p.Name == "" || len(p.p.Name) > 200 {
			return 0, 0, fmt.Errorf("%s.name: required, at most 200 bytes", p.role)
		}
		if err := einvoice.ValidateCreditCode(p.p.TaxID); err != nil {
			return 0, 0, fmt.Errorf("%s.tax_id: %w", p.role, err)
		}
	}
	if len(req.Items) == 0 || len(req.Items) > 100 {
		return 0, 0, fmt.Errorf("items: between 1 and 100 line items")
	}
	var amount, tax einvoice.Fen
	for i := range req.Items {
		it := &req.Items[i]
		if it.Name == "" {
			return 0, 0, fmt.Errorf("items[%d].name: required", i)
		}
		l, err := einvoice.LineAmounts(it.Quantity, it.UnitPrice, it.TaxRate)
		if err != nil {
			return 0, 0, fmt.Errorf("items[%d]: %w", i, err)
		}
		it.Amount, it.Tax = l.Amount.String(), l.Tax.String()
		amount += l.Amount
		tax += l.Tax
	}
	if amount <= 0 {
		return 0, 0, fmt.Errorf("items: the invoice total must be positive")
	}
	return amount, tax, nil
}
