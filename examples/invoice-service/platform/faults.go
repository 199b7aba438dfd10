package platform

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// Faults are injected through POST /admin/faults and cleared with DELETE.
// Each role applies the ones that concern it.
type Faults struct {
	// Latency is added to every public API request.
	Latency Duration `json:"latency,omitempty"`
	// ErrorRate (0–1) answers that fraction of public API requests with 503.
	ErrorRate float64 `json:"error_rate,omitempty"`
	// QR faults: the issuer's QR generator writes a wrong amount, date or
	// number (into the payload, the PNG and the PDF alike), or draws an
	// image no reader can decode.
	QRWrongAmount bool `json:"qr_wrong_amount,omitempty"`
	QRWrongDate   bool `json:"qr_wrong_date,omitempty"`
	QRWrongNumber bool `json:"qr_wrong_number,omitempty"`
	QRUnreadable  bool `json:"qr_unreadable,omitempty"`
	// QRSpaceFilled makes the issuer write a single space instead of the
	// empty invoice code and check code on fully digital invoices
	// (01,31, ,24942000000003727672,684.40,20240129, ,2D77). Not a broken
	// payload: real platforms issue this shape (it is in the fixtures'
	// EXPECTED.tsv), so a checker must accept it; the fault shows whether it
	// does.
	QRSpaceFilled bool `json:"qr_space_filled,omitempty"`
	// PDFWithoutQR renders the PDF without the QR code.
	PDFWithoutQR bool `json:"pdf_without_qr,omitempty"`
	// OFDMissingQR renders the OFD without the QR: no ImageObject on the
	// page and no image under Doc_0/Res/; everything else is unchanged.
	OFDMissingQR bool `json:"ofd_missing_qr,omitempty"`
	// XMLAmountMismatch makes the XML invoice's TotalTax-includedAmount
	// 0.01 more than the invoice's total; nothing else in it changes.
	XMLAmountMismatch bool `json:"xml_amount_mismatch,omitempty"`
	// SyncStalled stops the sync worker from sending anything.
	SyncStalled bool `json:"sync_stalled,omitempty"`
	// SyncDropRate (0–1) marks that fraction of syncs done without sending
	// them: the invoice is issued locally and the upstream never has it.
	SyncDropRate float64 `json:"sync_drop_rate,omitempty"`
}

func (f Faults) validate() error {
	if f.ErrorRate < 0 || f.ErrorRate > 1 || f.SyncDropRate < 0 || f.SyncDropRate > 1 {
		return fmt.Errorf("error_rate and sync_drop_rate must be between 0 and 1")
	}
	if f.Latency < 0 || time.Duration(f.Latency) > 10*time.Minute {
		return fmt.Errorf("latency must be between 0 and 10m")
	}
	return nil
}

// Duration is a time.Duration that reads and writes "250ms" in JSON.
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON accepts "250ms" or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var secs float64
		if err := json.Unmarshal(b, &secs); err != nil {
			return fmt.Errorf("duration must be a string like \"250ms\" or seconds")
		}
		*d = Duration(secs * float64(time.Second))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// faultSet holds the active faults of one role.
type faultSet struct {
	mu sync.RWMutex
	f  Faults
}

func (s *faultSet) get() Faults {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.f
}

func (s *faultSet) set(f Faults) {
	s.mu.Lock()
	s.f = f
	s.mu.Unlock()
}

// chance reports true with probability p.
func chance(p float64) bool { return p > 0 && rand.Float64() < p }

// middleware applies latency and error-rate faults to the public API.
func (s *faultSet) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f := s.get()
		if f.Latency > 0 {
			select {
			case <-time.After(time.Duration(f.Latency)):
			case <-r.Context().Done():
				return
			}
		}
		if chance(f.ErrorRate) {
			writeError(w, r, http.StatusServiceUnavailable, "SERVICE_UNAVAILABLE", "injected fault: error_rate")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// adminRoutes adds GET/POST/DELETE /admin/faults.
func (s *faultSet) adminRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /admin/faults", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.get())
	})
	mux.HandleFunc("POST /admin/faults", func(w http.ResponseWriter, r *http.Request) {
		var f Faults
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			writeError(w, r, http.StatusBadRequest, "BAD_REQUEST", "faults: "+err.Error())
			return
		}
		if err := f.validate(); err != nil {
			writeError(w, r, http.StatusBadRequest, "BAD_REQUEST", "faults: "+err.Error())
			return
		}
		s.set(f)
		logFrom(r).Warn("faults injected", "faults", f)
		writeJSON(w, http.StatusOK, f)
	})
	mux.HandleFunc("DELETE /admin/faults", func(w http.ResponseWriter, r *http.Request) {
		s.set(Faults{})
		logFrom(r).Info("faults cleared")
		writeJSON(w, http.StatusOK, Faults{})
	})
}
