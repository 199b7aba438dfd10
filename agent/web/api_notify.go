package web

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/vigil-project/vigil/agent/client"
	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/agent/notify/route"
)

func (srv *Server) notifyRoutes(rt *router) {
	rt.read("GET /api/v1/silences", srv.handleSilences)
	rt.write("POST /api/v1/silences", srv.handleAddSilence)
	rt.write("DELETE /api/v1/silences/{id}", srv.handleExpireSilence)
	rt.read("GET /api/v1/notifications", srv.handleNotifications)
}

func (srv *Server) handleSilences(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"silences": srv.pager.Silences().List()})
}

func (srv *Server) handleAddSilence(w http.ResponseWriter, r *http.Request) {
	var req client.SilenceRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, client.Error{Error: "bad silence: " + err.Error()})
		return
	}
	req.CreatedBy = withUser(r, req.CreatedBy)
	if req.Duration != "" {
		d, err := time.ParseDuration(req.Duration)
		if err != nil || d <= 0 {
			writeJSON(w, http.StatusBadRequest, client.Error{Error: "bad duration " + strconv.Quote(req.Duration)})
			return
		}
		start := req.StartsAt
		if start.IsZero() {
			start = time.Now()
		}
		req.EndsAt = start.Add(d)
	}
	s, err := srv.pager.Silences().Add(r.Context(), route.Silence{Matchers: req.Matchers, StartsAt: req.StartsAt, EndsAt: req.EndsAt,
		CreatedBy: req.CreatedBy, Comment: req.Comment})
	if err != nil {
		writeJSON(w, http.StatusBadRequest, client.Error{Error: err.Error()})
		return
	}
	srv.log.Info("silence added", "id", s.ID, "matchers", s.Matchers, "ends_at", s.EndsAt, "created_by", s.CreatedBy)
	writeJSON(w, http.StatusOK, s)
}

func (srv *Server) handleExpireSilence(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	err := srv.pager.Silences().Expire(r.Context(), id)
	switch {
	case errors.Is(err, route.ErrNoSilence):
		writeJSON(w, http.StatusNotFound, client.Error{Error: err.Error()})
	case err != nil:
		writeJSON(w, http.StatusInternalServerError, client.Error{Error: err.Error()})
	default:
		srv.log.Info("silence expired", "id", id)
		writeJSON(w, http.StatusOK, map[string]string{"id": id, "status": "expired"})
	}
}

func (srv *Server) handleNotifications(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if s := r.URL.Query().Get("limit"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 && n <= 1000 {
			limit = n
		}
	}
	items, err := srv.store.OutboxItems(r.Context(), r.URL.Query().Get("state"), limit)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, client.Error{Error: err.Error()})
		return
	}
	out := make([]client.Notification, 0, len(items))
	for _, it := range items {
		v := client.Notification{ID: it.ID, Target: it.Target, State: it.State, Attempts: it.Attempts, CreatedAt: it.CreatedAt,
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
	writeJSON(w, http.StatusOK, map[string]any{"queues": srv.pager.Queues(), "notifications": out})
}
