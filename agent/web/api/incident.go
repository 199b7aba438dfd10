package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
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
	FindIncidents(ctx context.Context, f store.IncidentFilter) ([]store.Incident, int, error)
	OpenIncidents(ctx context.Context) ([]store.Incident, error)
}

// IncidentViews lists the open incidents and those firing at some time
// in the last window, newest first, with their durations.
func (api *API) IncidentViews(ctx context.Context, window time.Duration, limit int) ([]client.Incident, error) {
	p, err := api.IncidentPage(ctx, store.IncidentFilter{From: time.Now().Add(-window), Limit: limit})
	return p.Incidents, err
}

// IncidentPage is one page of an incident list.
type IncidentPage struct {
	Incidents []client.Incident `json:"incidents"`
	// Total is how many incidents the filter selects; NextOffset the
	// offset of the next page (0: this is the last).
	Total      int `json:"total"`
	Offset     int `json:"offset"`
	NextOffset int `json:"next_offset,omitempty"`
}

// IncidentPage lists the incidents f selects, newest first.
func (api *API) IncidentPage(ctx context.Context, f store.IncidentFilter) (IncidentPage, error) {
	p := IncidentPage{Incidents: []client.Incident{}, Offset: f.Offset}
	if api.incidentList == nil {
		return p, nil
	}
	ins, total, err := api.incidentList.FindIncidents(ctx, f)
	if err != nil {
		return p, err
	}
	p.Total = total
	for _, in := range ins {
		p.Incidents = append(p.Incidents, incidentView(incident.View{Incident: in, Durations: incident.DurationsOf(in)}))
	}
	if next := f.Offset + len(ins); len(ins) > 0 && next < total {
		p.NextOffset = next
	}
	return p, nil
}

// ParseIncidentFilter reads an incident list's query: state=open|resolved,
// check=, alertname=, from= and to= (RFC 3339, Unix seconds, or a date,
// 2006-01-02, in loc: from its start, to its end), days= (without from:
// the last N days, default 7, at most 90), limit= (default def, at most
// 1000) and offset=.
func ParseIncidentFilter(q url.Values, loc *time.Location, now time.Time, def int) (store.IncidentFilter, error) {
	f := store.IncidentFilter{State: q.Get("state"), Check: q.Get("check"), Alertname: q.Get("alertname")}
	var errs []error
	if f.State != "" && f.State != "open" && f.State != "resolved" {
		errs = append(errs, errors.New("state must be open or resolved"))
	}
	days, err := intParam(q, "days", 7, 1, 90)
	errs = append(errs, err)
	f.Limit, err = intParam(q, "limit", def, 1, 1000)
	errs = append(errs, err)
	f.Offset, err = intParam(q, "offset", 0, 0, 1<<31)
	errs = append(errs, err)
	f.From, err = timeParam(q, "from", loc, false)
	errs = append(errs, err)
	f.To, err = timeParam(q, "to", loc, true)
	errs = append(errs, err)
	if f.From.IsZero() {
		f.From = now.Add(-time.Duration(days) * 24 * time.Hour)
		if !f.To.IsZero() && f.To.Before(f.From) {
			f.From = f.To.Add(-time.Duration(days) * 24 * time.Hour)
		}
	}
	if !f.To.IsZero() && f.To.Before(f.From) {
		errs = append(errs, errors.New("to is before from"))
	}
	return f, errors.Join(errs...)
}

// timeParam reads a time: RFC 3339, Unix seconds, or a date in loc (its
// first millisecond, or with end its last). Empty is the zero time.
func timeParam(q url.Values, name string, loc *time.Location, end bool) (time.Time, error) {
	s := q.Get(name)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02", s, loc); err == nil {
		if end {
			t = t.AddDate(0, 0, 1).Add(-time.Millisecond)
		}
		return t, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && f >= 0 && f < 1e11 {
		return time.UnixMilli(int64(f * 1000)), nil
	}
	return time.Time{}, fmt.Errorf("%s must be an RFC 3339 time, Unix seconds or a date (2006-01-02)", name)
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

// handleIncidents lists incidents a page at a time (ParseIncidentFilter).
func (api *API) handleIncidents(w http.ResponseWriter, r *http.Request) {
	f, err := ParseIncidentFilter(r.URL.Query(), api.Zone(), time.Now(), 100)
	if err != nil {
		httpx.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	p, err := api.IncidentPage(r.Context(), f)
	if err != nil {
		httpx.WriteError(w, http.StatusInternalServerError, err.Error())
		return
	}
	httpx.WriteJSON(w, http.StatusOK, p)
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
