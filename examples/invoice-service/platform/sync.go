package platform

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// UpstreamInvoice is what the issuer pushes to the tax platform.
type UpstreamInvoice struct {
	Number             string `json:"number"`
	Type               string `json:"type"`
	Issuer             string `json:"issuer"`
	SellerTaxID        string `json:"seller_tax_id"`
	BuyerTaxID         string `json:"buyer_tax_id"`
	AmountExcludingTax string `json:"amount_excluding_tax"`
	Tax                string `json:"tax"`
	AmountIncludingTax string `json:"amount_including_tax"`
	Date               string `json:"date"` // YYYYMMDD, China time
	IssuedAt           string `json:"issued_at"`
	Status             string `json:"status"`
}

func toUpstream(inv *Invoice) UpstreamInvoice {
	return UpstreamInvoice{Number: inv.Number, Type: inv.Type, Issuer: inv.Issuer,
		SellerTaxID: inv.Seller.TaxID, BuyerTaxID: inv.Buyer.TaxID,
		AmountExcludingTax: inv.Totals.ExcludingTax, Tax: inv.Totals.Tax, AmountIncludingTax: inv.Totals.IncludingTax,
		Date: inv.IssuedAt.In(chinaTime).Format("20060102"), IssuedAt: inv.IssuedAt.Format(time.RFC3339Nano),
		Status: inv.Status}
}

func (i *Issuer) kickSync() {
	select {
	case i.kick <- struct{}{}:
	default:
	}
}

// RunSync pushes pending invoices upstream until ctx ends: on every tick,
// and right after an invoice is issued or voided.
func (i *Issuer) RunSync(ctx context.Context) {
	t := time.NewTicker(i.opts.SyncInterval)
	defer t.Stop()
	stalledLogged := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-i.kick:
		}
		if i.faults.get().SyncStalled {
			// A stalled worker says nothing; only the backlog grows.
			if !stalledLogged {
				i.log.Debug("sync stalled by fault")
				stalledLogged = true
			}
			continue
		}
		stalledLogged = false
		i.syncPending(ctx)
	}
}

// syncPending sends up to 100 of this issuer's pending invoices (issuers
// sharing a database each sync their own), stopping at the first upstream
// failure so an outage is not hammered.
func (i *Issuer) syncPending(ctx context.Context) {
	batch, err := i.selectInvoices(ctx, `sync_pending = 1 AND issuer = ? ORDER BY issued_at LIMIT 100`, i.opts.Name)
	if err != nil {
		i.log.Error("sync failed", "error_code", "DB_ERROR", "error", err.Error())
		return
	}
	for _, inv := range batch {
		if ctx.Err() != nil {
			return
		}
		if chance(i.faults.get().SyncDropRate) {
			// The bug behind "issued, but the tax system does not have it":
			// recorded as synced, never sent, logged as a success.
			i.markSynced(ctx, inv.Number)
			i.log.Info("invoice synced", "number", inv.Number)
			continue
		}
		if err := i.push(ctx, inv); err != nil {
			var ue *upstreamError
			code := "UPSTREAM_UNAVAILABLE"
			if errors.As(err, &ue) {
				code = ue.code
			}
			i.db.exec(ctx, `UPDATE invoices SET sync_attempts = sync_attempts + 1 WHERE number = ?`, inv.Number)
			i.log.Error("sync failed", "number", inv.Number, "error_code", code, "error", err.Error(), "attempts", inv.Sync.Attempts+1)
			return
		}
		i.markSynced(ctx, inv.Number)
		i.log.Info("invoice synced", "number", inv.Number)
	}
}

func (i *Issuer) markSynced(ctx context.Context, number string) {
	if _, err := i.db.exec(ctx, `UPDATE invoices SET sync_pending = 0, synced_at = ? WHERE number = ?`, formatTime(i.opts.Now()), number); err != nil {
		i.log.Error("sync failed", "number", number, "error_code", "DB_ERROR", "error", err.Error())
	}
}

type upstreamError struct {
	code string
	msg  string
}

func (e *upstreamError) Error() string { return e.msg }

// push sends one invoice; the upstream stores it idempotently by number.
func (i *Issuer) push(ctx context.Context, inv *Invoice) error {
	body, _ := json.Marshal(toUpstream(inv))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, i.opts.UpstreamURL+"/api/v1/invoices", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := i.opts.Client.Do(req)
	if err != nil {
		code := "UPSTREAM_UNAVAILABLE"
		if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			code = "UPSTREAM_TIMEOUT"
		}
		return &upstreamError{code: code, msg: fmt.Sprintf("push %s: %v", inv.Number, err)}
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		code := "UPSTREAM_REJECTED"
		if resp.StatusCode >= 500 {
			code = "UPSTREAM_5XX"
		}
		return &upstreamError{code: code, msg: fmt.Sprintf("push %s: upstream answered %d: %s", inv.Number, resp.StatusCode, bytes.TrimSpace(msg))}
	}
	return nil
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// handleResync re-sends every invoice issued within the window (default
// 24h), not only the pending ones: a dropped sync looks done locally, so
// the documents' first remedy re-pushes them all; the upstream dedups.
func (i *Issuer) handleResync(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Window Duration `json:"window"`
	}
	if r.ContentLength != 0 {
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<12)).Decode(&body); err != nil && !errors.Is(err, io.EOF) {
			writeError(w, r, http.StatusBadRequest, "BAD_REQUEST", "resync: "+err.Error())
			return
		}
	}
	window := time.Duration(body.Window)
	if window <= 0 {
		window = 24 * time.Hour
	}
	ctx := r.Context()
	batch, err := i.selectInvoices(ctx, `issued_at > ? AND issuer = ? ORDER BY issued_at`, formatTime(i.opts.Now().Add(-window)), i.opts.Name)
	if err != nil {
		writeError(w, r, http.StatusInternalServerError, "DB_ERROR", err.Error())
		return
	}
	var resent, failed int
	var lastErr string
	for _, inv := range batch {
		if err := i.push(ctx, inv); err != nil {
			failed++
			lastErr = err.Error()
			continue
		}
		i.markSynced(ctx, inv.Number)
		resent++
	}
	status := http.StatusOK
	if failed > 0 {
		i.log.Error("resync finished with failures", "resent", resent, "failed", failed, "error", lastErr)
		status = http.StatusBadGateway
	} else {
		i.log.Info("resync finished", "resent", resent)
	}
	writeJSON(w, status, map[string]any{"resent": resent, "failed": failed, "window": window.String(), "last_error": lastErr})
}

// handleSyncStatus reports the local backlog (which cannot see dropped syncs).
func (i *Issuer) handleSyncStatus(w http.ResponseWriter, r *http.Request) {
	var pending int
	var oldest *string
	err := i.db.queryRow(r.Context(), `SELECT COUNT(*), MIN(issued_at) FROM invoices WHERE sync_pending = 1 AND issuer = ?`, i.opts.Name).Scan(&pending, &oldest)
	if err != nil {
		writeError(w, r, http.StatusInternalServerError, "DB_ERROR", err.Error())
		return
	}
	out := map[string]any{"pending": pending, "stalled": i.faults.get().SyncStalled}
	if oldest != nil {
		out["oldest_pending_issued_at"] = parseTime(*oldest)
	}
	writeJSON(w, http.StatusOK, out)
}
