package api

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
	"github.com/vigil-project/vigil/agent/web/httpx"
)

func (api *API) notifyRoutes(rt httpx.Router) {
	rt.Read("GET /api/v1/silences", api.handleSilences)
	rt.Write("POST /api/v1/silences", api.handleAddSilence)
	rt.Write("DELETE /api/v1/silences/{id}", api.handleExpireSilence)
	rt.Read("GET /api/v1/notifications", api.handleNotifications)
	rt.Read("GET /api/v1/time_intervals", api.handleTimeIntervals)
}

// handleTimeIntervals lists the maintenance windows: whether each holds
// now, when that next changes, and the routes that use it.
func (api *API) handleTimeIntervals(w http.ResponseWriter, _ *http.Request) {
	ws := api.pager.Maintenance(time.Now())
	if ws == nil {
		ws = []route.Window{}
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"time_intervals": ws})
}

func (api *API) handleSilences(w http.ResponseWriter, _ *http.Request) {
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"silences": api.pager.Silences().List()})
}

func (api *API) handleAddSilence(w http.ResponseWriter, r *http.Request) {
	var req client.SilenceRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		httpx.WriteError(w, http.StatusBadRequest, "bad silence: "+err.Error())
		return
	}
	req.CreatedBy = withUser(r, req.CreatedBy)
	if req.Duration != "" {
		d, err := time.ParseDuration(req.Duration)
		if err != nil || d <= 0 {
			httpx.WriteError(w, http.StatusBadRequest, "bad duration "+strconv.Quote(req.Duration))
			return
		}
		start := req.StartsAt
		if start.IsZero() {
			start = time.Now()
		}
		req.EndsAt = start.Add(d)
	}
	s, err := api.pager.Silences().Add(r.Context(), route.Silence{Matchers: req.Matchers, StartsAt: req.StartsAt, EndsAt: req.EndsAt,
		CreatedBy: req.CreatedBy, Comment: req.Comment})
	if err != nil {
		httpx.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	api.log.Info("silence added", "id", s.ID, "matchers", s.Matchers, "ends_at", s.EndsAt, "created_by", s.CreatedBy)
	warning := api.SilenceWarning(r.Context(), s)
	if warning != "" {
		api.log.Warn("silence matches nothing known", "id", s.ID, "matchers", s.Matchers, "why", warning)
	}
	httpx.WriteJSON(w, http.StatusOK, client.AddedSilence{Silence: *s, Warning: warning})
}

func (api *API) handleExpireSilence(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	err := api.pager.Silences().Expire(r.Context(), id)
	switch {
	case errors.Is(err, route.ErrNoSilence):
		httpx.WriteError(w, http.StatusNotFound, err.Error())
	case err != nil:
		httpx.WriteError(w, http.StatusInternalServerError, err.Error())
	default:
		api.log.Info("silence expired", "id", id)
		httpx.WriteJSON(w, http.StatusOK, map[string]string{"id": id, "status": "expired"})
	}
}

func (api *API) handleNotifications(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if s := r.URL.Query().Get("limit"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 && n <= 1000 {
			limit = n
		}
	}
	items, err := api.store.OutboxItems(r.Context(), r.URL.Query().Get("state"), limit)
	if err != nil {
		httpx.WriteError(w, http.StatusInternalServerError, err.Error())
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
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"queues": api.pager.Queues(), "notifications": out})
}
