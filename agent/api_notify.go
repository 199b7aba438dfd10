package agent

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/agent/notify/route"
)

func (a *Agent) notifyRoutes(rt *router) {
	rt.read("GET /api/v1/silences", a.handleSilences)
	rt.write("POST /api/v1/silences", a.handleAddSilence)
	rt.write("DELETE /api/v1/silences/{id}", a.handleExpireSilence)
	rt.read("GET /api/v1/notifications", a.handleNotifications)
}

func (a *Agent) handleSilences(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"silences": a.pager.Silences().List()})
}

// silenceRequest is the body of POST /api/v1/silences: either endsAt or a
// duration ("2h").
type silenceRequest struct {
	Matchers  []string  `json:"matchers"`
	StartsAt  time.Time `json:"startsAt"`
	EndsAt    time.Time `json:"endsAt"`
	Duration  string    `json:"duration"`
	CreatedBy string    `json:"createdBy"`
	Comment   string    `json:"comment"`
}

func (a *Agent) handleAddSilence(w http.ResponseWriter, r *http.Request) {
	var req silenceRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{"bad silence: " + err.Error()})
		return
	}
	req.CreatedBy = withUser(r, req.CreatedBy)
	if req.Duration != "" {
		d, err := time.ParseDuration(req.Duration)
		if err != nil || d <= 0 {
			writeJSON(w, http.StatusBadRequest, apiError{"bad duration " + strconv.Quote(req.Duration)})
			return
		}
		start := req.StartsAt
		if start.IsZero() {
			start = time.Now()
		}
		req.EndsAt = start.Add(d)
	}
	s, err := a.pager.Silences().Add(r.Context(), route.Silence{Matchers: req.Matchers, StartsAt: req.StartsAt, EndsAt: req.EndsAt,
		CreatedBy: req.CreatedBy, Comment: req.Comment})
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{err.Error()})
		return
	}
	a.log.Info("silence added", "id", s.ID, "matchers", s.Matchers, "ends_at", s.EndsAt, "created_by", s.CreatedBy)
	writeJSON(w, http.StatusOK, s)
}

func (a *Agent) handleExpireSilence(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	err := a.pager.Silences().Expire(r.Context(), id)
	switch {
	case errors.Is(err, route.ErrNoSilence):
		writeJSON(w, http.StatusNotFound, apiError{err.Error()})
	case err != nil:
		writeJSON(w, http.StatusInternalServerError, apiError{err.Error()})
	default:
		a.log.Info("silence expired", "id", id)
		writeJSON(w, http.StatusOK, map[string]string{"id": id, "status": "expired"})
	}
}

// notificationView is one outbox item for the API: what was sent where and
// how it went, without the payload's secrets (payloads hold none; the
// targets' URLs are not part of it).
type notificationView struct {
	ID        int64     `json:"id"`
	Target    string    `json:"target"`
	State     string    `json:"state"`
	Status    string    `json:"status"`
	Alerts    []string  `json:"alerts"`
	Attempts  int       `json:"attempts"`
	CreatedAt time.Time `json:"createdAt"`
	NextAt    time.Time `json:"nextAttemptAt,omitzero"`
	DoneAt    time.Time `json:"doneAt,omitzero"`
	LastError string    `json:"lastError,omitempty"`
}

func (a *Agent) handleNotifications(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if s := r.URL.Query().Get("limit"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 && n <= 1000 {
			limit = n
		}
	}
	items, err := a.store.OutboxItems(r.Context(), r.URL.Query().Get("state"), limit)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, apiError{err.Error()})
		return
	}
	out := make([]notificationView, 0, len(items))
	for _, it := range items {
		v := notificationView{ID: it.ID, Target: it.Target, State: it.State, Attempts: it.Attempts, CreatedAt: it.CreatedAt,
			DoneAt: it.DoneAt, LastError: it.LastError}
		if it.State == "pending" {
			v.NextAt = it.NextAt
		}
		var m notify.Message
		if json.Unmarshal(it.Payload, &m) == nil {
			v.Status = m.Status()
			for _, al := range m.Alerts {
				v.Alerts = append(v.Alerts, al.Labels["alertname"]+" "+al.Status(m.Created))
			}
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"queues": a.pager.Queues(), "notifications": out})
}
