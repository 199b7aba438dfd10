package platform

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// pagerInbox stands in for the on-call's pager in the demo: it accepts
// Alertmanager-format webhook notifications (version 4) on
// POST /admin/pages, logs each, and lists the latest on GET /admin/pages,
// so `make run` shows vigil's pages without a real PagerDuty or chat robot.
type pagerInbox struct {
	log *slog.Logger

	mu    sync.Mutex
	pages []receivedPage
}

type receivedPage struct {
	ReceivedAt time.Time       `json:"receivedAt"`
	Payload    json.RawMessage `json:"payload"`
}

const maxPages = 200

func (p *pagerInbox) routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /admin/pages", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		var page struct {
			Status   string `json:"status"`
			Receiver string `json:"receiver"`
			Alerts   []struct {
				Labels map[string]string `json:"labels"`
			} `json:"alerts"`
		}
		if err == nil {
			err = json.Unmarshal(body, &page)
		}
		if err != nil {
			writeError(w, r, http.StatusBadRequest, "BAD_REQUEST", "page: "+err.Error())
			return
		}
		names := make([]string, 0, len(page.Alerts))
		for _, a := range page.Alerts {
			names = append(names, a.Labels["alertname"])
		}
		p.log.Warn("page received", "status", page.Status, "receiver", page.Receiver, "alerts", names)
		p.mu.Lock()
		p.pages = append(p.pages, receivedPage{ReceivedAt: time.Now(), Payload: body})
		if len(p.pages) > maxPages {
			p.pages = p.pages[len(p.pages)-maxPages:]
		}
		p.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("GET /admin/pages", func(w http.ResponseWriter, _ *http.Request) {
		p.mu.Lock()
		out := append([]receivedPage{}, p.pages...)
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"pages": out})
	})
}
