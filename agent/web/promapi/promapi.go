// Package promapi serves the Prometheus HTTP API over the agent's own
// sample store and rules: instant and range queries, series, labels,
// rules and alerts, in Prometheus's response format, so Grafana and
// promtool can query an agent directly.
package promapi

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"

	"github.com/vigil-project/vigil/agent/web/httpx"
	"github.com/vigil-project/vigil/rules"
)

// The Prometheus HTTP API over the agent's own sample store, so Grafana can
// use an agent as a Prometheus data source and alert tools can read it.

type promResponse struct {
	Status    string `json:"status"`
	Data      any    `json:"data,omitempty"`
	ErrorType string `json:"errorType,omitempty"`
	Error     string `json:"error,omitempty"`
}

func promOK(w http.ResponseWriter, data any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(promResponse{Status: "success", Data: data})
}

func promErr(w http.ResponseWriter, status int, typ string, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(promResponse{Status: "error", ErrorType: typ, Error: err.Error()})
}

// Rules is the rule engine the API reads.
type Rules interface {
	Engine() *promql.Engine
	Queryable() storage.Queryable
	Groups() []*rules.Group
}

// API serves the query API.
type API struct{ rules Rules }

// New returns the API over a rule engine.
func New(r Rules) *API { return &API{rules: r} }

// Routes registers the API's routes; all of them only read.
func (api *API) Routes(rt httpx.Router) {
	for _, m := range []string{"GET", "POST"} {
		rt.Read(m+" /api/v1/query", api.handleQuery)
		rt.Read(m+" /api/v1/query_range", api.handleQueryRange)
		rt.Read(m+" /api/v1/series", api.handleSeries)
		rt.Read(m+" /api/v1/labels", api.handleLabels)
	}
	rt.Read("GET /api/v1/label/{name}/values", api.handleLabelValues)
	rt.Read("GET /api/v1/rules", api.handleRules)
	rt.Read("GET /api/v1/alerts", api.handleAlerts)
}

// parseTime accepts RFC 3339 or Unix seconds, as Prometheus does.
func parseTime(s string, def time.Time) (time.Time, error) {
	if s == "" {
		return def, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, errors.New("cannot parse " + strconv.Quote(s) + " to a valid timestamp")
}

func parseStep(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Duration(f * float64(time.Second)), nil
	}
	return time.ParseDuration(s)
}

func (api *API) handleQuery(w http.ResponseWriter, r *http.Request) {
	ts, err := parseTime(r.FormValue("time"), time.Now())
	if err != nil {
		promErr(w, http.StatusBadRequest, "bad_data", err)
		return
	}
	q, err := api.rules.Engine().NewInstantQuery(r.Context(), api.rules.Queryable(), nil, r.FormValue("query"), ts)
	api.runQuery(w, r, q, err)
}

func (api *API) handleQueryRange(w http.ResponseWriter, r *http.Request) {
	start, err1 := parseTime(r.FormValue("start"), time.Time{})
	end, err2 := parseTime(r.FormValue("end"), time.Time{})
	step, err3 := parseStep(r.FormValue("step"))
	if err := errors.Join(err1, err2, err3); err != nil || start.IsZero() || end.IsZero() {
		if err == nil {
			err = errors.New("start and end are required")
		}
		promErr(w, http.StatusBadRequest, "bad_data", err)
		return
	}
	if step <= 0 || end.Before(start) || end.Sub(start)/step > 11000 {
		promErr(w, http.StatusBadRequest, "bad_data", errors.New("invalid step or range (at most 11,000 points)"))
		return
	}
	q, err := api.rules.Engine().NewRangeQuery(r.Context(), api.rules.Queryable(), nil, r.FormValue("query"), start, end, step)
	api.runQuery(w, r, q, err)
}

func (api *API) runQuery(w http.ResponseWriter, r *http.Request, q promql.Query, err error) {
	if err != nil {
		promErr(w, http.StatusBadRequest, "bad_data", err)
		return
	}
	defer q.Close()
	ctx := r.Context()
	if s := r.FormValue("timeout"); s != "" {
		if d, err := parseStep(s); err == nil && d > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d)
			defer cancel()
		}
	}
	res := q.Exec(ctx)
	if res.Err != nil {
		typ, status := "execution", http.StatusUnprocessableEntity
		var cancelled promql.ErrQueryCanceled
		var timeout promql.ErrQueryTimeout
		switch {
		case errors.As(res.Err, &cancelled):
			typ, status = "canceled", http.StatusServiceUnavailable
		case errors.As(res.Err, &timeout):
			typ, status = "timeout", http.StatusServiceUnavailable
		}
		promErr(w, status, typ, res.Err)
		return
	}
	data := map[string]any{"resultType": res.Value.Type()}
	switch v := res.Value.(type) {
	case promql.Matrix:
		out := make([]map[string]any, 0, len(v))
		for _, s := range v {
			out = append(out, map[string]any{"metric": s.Metric, "values": s.Floats})
		}
		data["result"] = out
	case promql.Vector:
		if v == nil {
			v = promql.Vector{}
		}
		data["result"] = v
	default:
		data["result"] = v
	}
	promOK(w, data)
}

func (api *API) matchersAndRange(r *http.Request) ([][]*labels.Matcher, int64, int64, error) {
	r.ParseForm()
	var sets [][]*labels.Matcher
	for _, m := range r.Form["match[]"] {
		ms, err := selectorParser.ParseMetricSelector(m)
		if err != nil {
			return nil, 0, 0, err
		}
		sets = append(sets, ms)
	}
	start, err := parseTime(r.FormValue("start"), time.Unix(0, 0))
	if err != nil {
		return nil, 0, 0, err
	}
	end, err := parseTime(r.FormValue("end"), time.Now().Add(time.Hour))
	if err != nil {
		return nil, 0, 0, err
	}
	return sets, start.UnixMilli(), end.UnixMilli(), nil
}

func (api *API) handleSeries(w http.ResponseWriter, r *http.Request) {
	sets, mint, maxt, err := api.matchersAndRange(r)
	if err == nil && len(sets) == 0 {
		err = errors.New("no match[] parameter provided")
	}
	if err != nil {
		promErr(w, http.StatusBadRequest, "bad_data", err)
		return
	}
	q, _ := api.rules.Queryable().Querier(mint, maxt)
	defer q.Close()
	seen := map[uint64]labels.Labels{}
	for _, ms := range sets {
		ss := q.Select(r.Context(), false, &storage.SelectHints{Start: mint, End: maxt, Func: "series"}, ms...)
		for ss.Next() {
			l := ss.At().Labels()
			seen[l.Hash()] = l
		}
	}
	out := make([]labels.Labels, 0, len(seen))
	for _, l := range seen {
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return labels.Compare(out[i], out[j]) < 0 })
	promOK(w, out)
}

func (api *API) labelQuery(w http.ResponseWriter, r *http.Request, name string) {
	sets, mint, maxt, err := api.matchersAndRange(r)
	if err != nil {
		promErr(w, http.StatusBadRequest, "bad_data", err)
		return
	}
	if len(sets) == 0 {
		sets = [][]*labels.Matcher{nil}
	}
	q, _ := api.rules.Queryable().Querier(mint, maxt)
	defer q.Close()
	seen := map[string]bool{}
	for _, ms := range sets {
		var vals []string
		if name == "" {
			vals, _, err = q.LabelNames(r.Context(), nil, ms...)
		} else {
			vals, _, err = q.LabelValues(r.Context(), name, nil, ms...)
		}
		if err != nil {
			promErr(w, http.StatusUnprocessableEntity, "execution", err)
			return
		}
		for _, v := range vals {
			seen[v] = true
		}
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	sort.Strings(out)
	promOK(w, out)
}

func (api *API) handleLabels(w http.ResponseWriter, r *http.Request) { api.labelQuery(w, r, "") }

func (api *API) handleLabelValues(w http.ResponseWriter, r *http.Request) {
	api.labelQuery(w, r, r.PathValue("name"))
}

type alertJSON struct {
	Labels      labels.Labels `json:"labels"`
	Annotations labels.Labels `json:"annotations"`
	State       string        `json:"state"`
	ActiveAt    *time.Time    `json:"activeAt,omitempty"`
	Value       string        `json:"value"`
}

func toAlertJSON(as []rules.Alert) []alertJSON {
	out := make([]alertJSON, 0, len(as))
	for _, a := range as {
		if a.State == rules.StateInactive {
			continue // resolved alerts are not listed, as in Prometheus
		}
		at := a.ActiveAt
		out = append(out, alertJSON{Labels: a.Labels, Annotations: a.Annotations, State: a.State.String(),
			ActiveAt: &at, Value: strconv.FormatFloat(a.Value, 'e', -1, 64)})
	}
	return out
}

func (api *API) handleAlerts(w http.ResponseWriter, _ *http.Request) {
	var all []alertJSON
	for _, g := range api.rules.Groups() {
		for _, r := range g.Rules {
			if ar, ok := r.(*rules.AlertingRule); ok {
				all = append(all, toAlertJSON(ar.Alerts())...)
			}
		}
	}
	if all == nil {
		all = []alertJSON{}
	}
	promOK(w, map[string]any{"alerts": all})
}

func (api *API) handleRules(w http.ResponseWriter, r *http.Request) {
	typ := r.FormValue("type") // "alert" or "record" filters, as in Prometheus
	var groups []map[string]any
	for _, g := range api.rules.Groups() {
		info := g.Info()
		var rs []map[string]any
		for _, ri := range info.Rules {
			if (typ == "alert" && ri.Type != "alerting") || (typ == "record" && ri.Type != "recording") {
				continue
			}
			m := map[string]any{"name": ri.Name, "query": ri.Query, "labels": ri.Labels, "health": ri.Health,
				"lastError": ri.LastError, "type": ri.Type, "lastEvaluation": ri.LastEvaluation, "evaluationTime": ri.EvaluationTime}
			if ri.Type == "alerting" {
				m["duration"] = ri.For.Seconds()
				m["keepFiringFor"] = ri.KeepFiringFor.Seconds()
				m["annotations"] = ri.Annotations
				m["alerts"] = toAlertJSON(ri.Alerts)
				m["state"] = ri.State
			}
			rs = append(rs, m)
		}
		if rs == nil {
			rs = []map[string]any{}
		}
		groups = append(groups, map[string]any{"name": g.Name, "file": g.File, "interval": g.Interval.Seconds(),
			"rules": rs, "lastEvaluation": info.LastEvaluation, "evaluationTime": info.EvaluationTime})
	}
	if groups == nil {
		groups = []map[string]any{}
	}
	promOK(w, map[string]any{"groups": groups})
}

var selectorParser = parser.NewParser(parser.Options{})
