package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/vigil-project/vigil/agent/client"
	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/agent/notify/route"
	"github.com/vigil-project/vigil/agent/store"
	"github.com/vigil-project/vigil/agent/web/httpx"
)

func (api *API) notifyRoutes(rt httpx.Router) {
	rt.Read("GET /api/v1/silences", api.handleSilences)
	rt.Write("POST /api/v1/silences", api.handleAddSilence)
	rt.Write("DELETE /api/v1/silences/{id}", api.handleExpireSilence)
	rt.Read("GET /api/v1/notifications", api.handleNotifications)
	rt.Write("POST /api/v1/notify/test", api.handleNotifyTest)
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

// handleNotifyTest sends a test page to a receiver through the outbox and
// answers once every target has an outcome (sent or dead) or the wait is
// over, with what each target answered.
func (api *API) handleNotifyTest(w http.ResponseWriter, r *http.Request) {
	var req client.NotifyTestRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 4<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.Receiver == "" {
		httpx.WriteError(w, http.StatusBadRequest, "bad request: want {\"receiver\": NAME}")
		return
	}
	wait := 20 * time.Second
	if req.Wait != "" {
		d, err := time.ParseDuration(req.Wait)
		if err != nil || d < 0 || d > 2*time.Minute {
			httpx.WriteError(w, http.StatusBadRequest, "bad wait "+strconv.Quote(req.Wait)+" (0 to 2m)")
			return
		}
		wait = d
	}
	by := withUser(r, req.By)
	items, err := api.pager.SendTest(r.Context(), req.Receiver, by)
	if err != nil {
		httpx.WriteError(w, http.StatusNotFound, err.Error())
		return
	}
	api.log.Info("test page queued", "receiver", req.Receiver, "by", by, "targets", len(items))
	ids := make([]int64, 0, len(items))
	for _, it := range items {
		ids = append(ids, it.ID)
	}
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		got, err := api.store.OutboxByIDs(r.Context(), ids)
		if err != nil {
			httpx.WriteError(w, http.StatusInternalServerError, err.Error())
			return
		}
		done := len(got) == len(ids)
		for _, it := range got {
			done = done && it.State != store.OutboxPending
		}
		if done || ctx.Err() != nil {
			if len(got) < len(ids) {
				// Unsaved items (the store refused them) are delivered from
				// memory; their outcome is only in the log.
				got = items
			}
			out := client.NotifyTestResult{Receiver: req.Receiver, Notifications: make([]client.Notification, 0, len(got))}
			for _, it := range got {
				out.Notifications = append(out.Notifications, notification(it))
			}
			httpx.WriteJSON(w, http.StatusOK, out)
			return
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}

// notification is an outbox item as the API shows it.
func notification(it *store.OutboxItem) client.Notification {
	v := client.Notification{ID: it.ID, Target: it.Target, State: it.State, Attempts: it.Attempts, CreatedAt: it.CreatedAt,
		DoneAt: it.DoneAt, LastError: it.LastError}
	if it.State == store.OutboxPending {
		v.NextAt = it.NextAt
	}
	var m notify.Message
	if json.Unmarshal(it.Payload, &m) == nil {
		v.Status = m.Status()
		for _, al := range m.Alerts {
			v.Alerts = append(v.Alerts, al.Labels["alertname"]+" "+al.Status(m.Created))
		}
	}
	return v
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
		out = append(out, notification(it))
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"queues": api.pager.Queues(), "notifications": out})
}
