package platform

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/vigil-project/vigil/probes/invoice/einvoice"
)

// Upstream plays the tax platform: it receives synced invoices and answers
// verification queries (GET /api/v1/verify?number=…).
type Upstream struct {
	db     *DB
	log    *slog.Logger
	faults faultSet
	now    func() time.Time
}

// VerifyResponse is the answer of GET /api/v1/verify.
type VerifyResponse struct {
	Found              bool   `json:"found"`
	Number             string `json:"number"`
	Status             string `json:"status,omitempty"`
	AmountExcludingTax string `json:"amount_excluding_tax,omitempty"`
	AmountIncludingTax string `json:"amount_including_tax,omitempty"`
	Date               string `json:"date,omitempty"`
	ReceivedAt         string `json:"received_at,omitempty"`
}

// NewUpstream prepares the upstream's schema.
func NewUpstream(ctx context.Context, db *DB, log *slog.Logger) (*Upstream, error) {
	if log == nil {
		log = slog.Default()
	}
	u := &Upstream{db: db, log: log.With("role", "upstream"), now: time.Now}
	err := db.migrate(ctx, `CREATE TABLE IF NOT EXISTS upstream_invoices (
		number TEXT PRIMARY KEY,
		body TEXT NOT NULL,
		received_at TEXT NOT NULL)`)
	if err != nil {
		return nil, err
	}
	return u, nil
}

// Handler serves the upstream's public API.
func (u *Upstream) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/invoices", u.handleReceive)
	mux.HandleFunc("GET /api/v1/verify", u.handleVerify)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	return accessLog(u.log, u.faults.middleware(mux))
}

// AdminHandler serves faults; it belongs on a loopback listener.
func (u *Upstream) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	u.faults.adminRoutes(mux)
	return accessLog(u.log.With("listener", "admin"), mux)
}

func (u *Upstream) handleReceive(w http.ResponseWriter, r *http.Request) {
	var inv UpstreamInvoice
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&inv); err != nil {
		writeError(w, r, http.StatusBadRequest, "BAD_REQUEST", err.Error())
		return
	}
	if len(inv.Number) != 20 || len(inv.Date) != 8 {
		writeError(w, r, http.StatusUnprocessableEntity, "INVALID_INVOICE", "number must have 20 digits and date 8")
		return
	}
	for _, a := range []string{inv.AmountExcludingTax, inv.AmountIncludingTax} {
		if _, err := einvoice.ParseFen(a); err != nil {
			writeError(w, r, http.StatusUnprocessableEntity, "INVALID_INVOICE", err.Error())
			return
		}
	}
	body, _ := json.Marshal(inv)
	// Upsert: re-sent invoices (resync) and void updates replace the record.
	_, err := u.db.exec(r.Context(), `INSERT INTO upstream_invoices (number, body, received_at) VALUES (?, ?, ?)
		ON CONFLICT (number) DO UPDATE SET body = excluded.body, received_at = excluded.received_at`,
		inv.Number, string(body), formatTime(u.now()))
	if err != nil {
		writeError(w, r, http.StatusInternalServerError, "DB_ERROR", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"receipt": inv.Number, "status": "accepted"})
}

func (u *Upstream) handleVerify(w http.ResponseWriter, r *http.Request) {
	number := r.URL.Query().Get("number")
	if number == "" {
		writeError(w, r, http.StatusBadRequest, "BAD_REQUEST", "number is required")
		return
	}
	var body, received string
	err := u.db.queryRow(r.Context(), `SELECT body, received_at FROM upstream_invoices WHERE number = ?`, number).Scan(&body, &received)
	if errors.Is(err, sql.ErrNoRows) {
		writeJSON(w, http.StatusNotFound, VerifyResponse{Number: number})
		return
	}
	if err != nil {
		writeError(w, r, http.StatusInternalServerError, "DB_ERROR", err.Error())
		return
	}
	var inv UpstreamInvoice
	if err := json.Unmarshal([]byte(body), &inv); err != nil {
		writeError(w, r, http.StatusInternalServerError, "DB_ERROR", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, VerifyResponse{Found: true, Number: number, Status: inv.Status,
		AmountExcludingTax: inv.AmountExcludingTax, AmountIncludingTax: inv.AmountIncludingTax,
		Date: inv.Date, ReceivedAt: parseTime(received).Format(time.RFC3339)})
}
