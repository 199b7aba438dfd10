package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/vigil-project/vigil/agent/client"
	"github.com/vigil-project/vigil/agent/incident"
	"github.com/vigil-project/vigil/agent/store"
	"github.com/vigil-project/vigil/agent/web/httpx"
)

// Incidents are the agent's incidents.
type Incidents interface {
	Timeline(ctx context.Context, id int64) (incident.View, error)
}

// IncidentList is what the incident lists read from the store.
type IncidentList interface {
	Incidents(ctx context.Context, since time.Time, limit int) ([]store.Incident, error)
	OpenIncidents(ctx context.Context) ([]store.Incident, error)
}

// IncidentViews lists the open incidents and those that fired in the last
// window, newest first, with their durations.
func (api *API) IncidentViews(ctx context.Context, window time.Duration, limit int) ([]client.Incident, error) {
	if api.incidentList == nil {
		return nil, nil
	}
	ins, err := api.incidentList.Incidents(ctx, time.Now().Add(-window), limit)
	if err != nil {
		return nil, err
	}
	out := make([]client.Incident, 0, len(ins))
	for _, in := range ins {
		out = append(out, incidentView(incident.View{Incident: in, Durations: incident.DurationsOf(in)}))
	}
	return out, nil
}

// IncidentView is one incident with its timeline.
func (api *API) IncidentView(ctx context.Context, id int64) (client.Incident, error) {
	if api.incidents == nil {
		return client.Incident{}, store.ErrNoIncident
	}
	v, err := api.incidents.Timeline(ctx, id)
	if err != nil {
		return client.Incident{}, err
	}
	c := incidentView(v)
	c.Timeline = make([]client.IncidentEvent, 0, len(v.Events))
	for _, e := range v.Events {
		c.Timeline = append(c.Timeline, client.IncidentEvent{At: e.At.UTC(), Kind: e.Kind, Title: e.Title, Detail: e.Detail,
			Status: e.Status, Outcome: e.Outcome, Link: e.Link})
	}
	return c, nil
}

func incidentView(v incident.View) client.Incident {
	in := v.Incident
	utc := func(t time.Time) time.Time {
		if t.IsZero() {
			return t
		}
		return t.UTC()
	}
	return client.Incident{ID: in.ID, Alertname: in.Alertname, Labels: in.Labels, Annotations: in.Annotations,
		Check: in.Check, RootCause: in.RootCause, Open: in.ResolvedAt.IsZero(),
		StartedAt: utc(in.StartedAt), FiringAt: utc(in.FiringAt), FirstFailureAt: utc(in.FirstFailureAt),
		PagedAt: utc(in.PagedAt), ResolvedAt: utc(in.ResolvedAt),
		TimeToDetect: v.Durations.Detect.Seconds(), TimeToPage: v.Durations.Page.Seconds(), TimeToRecover: v.Durations.Recover.Seconds()}
}

// handleIncidents lists incidents: ?days=N (default 7, at most 90) &limit=.
func (api *API) handleIncidents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	days, err1 := intParam(q, "days", 7, 1, 90)
	limit, err2 := intParam(q, "limit", 100, 1, 1000)
	if err := errors.Join(err1, err2); err != nil {
		httpx.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	list, err := api.IncidentViews(r.Context(), time.Duration(days)*24*time.Hour, limit)
	if err != nil {
		httpx.WriteError(w, http.StatusInternalServerError, err.Error())
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"incidents": list})
}

func (api *API) handleIncident(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		httpx.WriteError(w, http.StatusBadRequest, "incident id must be a number")
		return
	}
	v, err := api.IncidentView(r.Context(), id)
	switch {
	case errors.Is(err, store.ErrNoIncident):
		httpx.WriteError(w, http.StatusNotFound, "no incident "+strconv.FormatInt(id, 10))
	case err != nil:
		httpx.WriteError(w, http.StatusInternalServerError, err.Error())
	default:
		httpx.WriteJSON(w, http.StatusOK, v)
	}
}
