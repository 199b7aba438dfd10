package agent

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/vigil-project/vigil/agent/drill"
	"github.com/vigil-project/vigil/agent/store"
)

func (a *Agent) drillRoutes(rt *router) {
	rt.read("GET /api/v1/drills", a.handleDrills)
	rt.read("GET /api/v1/drills/runs", a.handleDrillRuns)
	rt.read("GET /api/v1/drills/runs/{id}", a.handleDrillRun)
	rt.read("GET /api/v1/drills/history", a.handleDrillHistory)
	rt.write("POST /api/v1/drills/run", a.handleDrillStart)
	rt.write("POST /api/v1/drills/runs/{id}/abort", a.handleDrillAbort)
}

type drillView struct {
	Name       string                `json:"name"`
	File       string                `json:"file"`
	Hypothesis string                `json:"hypothesis"`
	Checks     []string              `json:"checks"`
	Duration   string                `json:"duration"`
	Objectives drill.Objectives      `json:"objectives"`
	Stop       []drill.StopCondition `json:"stop_conditions,omitempty"`
}

// drillViews lists the loaded drills for the API and the status page.
func (a *Agent) drillViews() []drillView {
	out := []drillView{}
	for _, d := range a.drills.List() {
		out = append(out, drillView{Name: d.Name, File: d.File, Hypothesis: d.Hypothesis, Checks: d.Checks,
			Duration: d.Duration.String(), Objectives: d.Objectives, Stop: d.StopConditions})
	}
	return out
}

func (a *Agent) handleDrills(w http.ResponseWriter, r *http.Request) {
	resp := map[string]any{"drills": a.drillViews()}
	if run := a.drills.Current(); run != nil {
		resp["active"] = map[string]string{"id": run.ID, "drill": run.Drill.Name}
	}
	writeJSON(w, http.StatusOK, resp)
}

// drillReport is a run's report: live while it runs, stored after.
func (a *Agent) drillReport(r *http.Request, row store.DrillRow) drill.Report {
	if run := a.drills.Current(); run != nil && run.ID == row.ID {
		return run.Report()
	}
	var rep drill.Report
	if json.Unmarshal([]byte(row.Report), &rep) != nil {
		rep = drill.Report{ID: row.ID, Drill: row.Drill, State: row.State, StartedAt: row.StartedAt}
	}
	return rep
}

func (a *Agent) handleDrillRuns(w http.ResponseWriter, r *http.Request) {
	limit, _ := strconv.Atoi(r.FormValue("limit"))
	if limit <= 0 || limit > 1000 {
		limit = 50
	}
	rows, err := a.store.DrillRuns(r.Context(), r.FormValue("drill"), limit)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, apiError{err.Error()})
		return
	}
	out := []drill.Report{}
	for _, row := range rows {
		out = append(out, a.drillReport(r, row))
	}
	writeJSON(w, http.StatusOK, map[string]any{"runs": out})
}

func (a *Agent) handleDrillRun(w http.ResponseWriter, r *http.Request) {
	row, err := a.store.DrillRun(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeJSON(w, http.StatusNotFound, apiError{err.Error()})
	case err != nil:
		writeJSON(w, http.StatusInternalServerError, apiError{err.Error()})
	case r.FormValue("format") == "markdown":
		w.Header().Set("Content-Type", "text/markdown; charset=utf-8")
		io.WriteString(w, a.drillReport(r, row).Markdown())
	default:
		writeJSON(w, http.StatusOK, a.drillReport(r, row))
	}
}

func (a *Agent) handleDrillHistory(w http.ResponseWriter, r *http.Request) {
	rows, err := a.store.DrillRuns(r.Context(), r.FormValue("drill"), 1000, drill.StatePassed, drill.StateFailed)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, apiError{err.Error()})
		return
	}
	var reps []drill.Report
	for _, row := range rows {
		reps = append(reps, a.drillReport(r, row))
	}
	stats := drill.History(reps)
	if stats == nil {
		stats = []drill.Stats{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"drill": r.FormValue("drill"), "runs": len(reps), "measures": stats})
}

// drillStartRequest names a loaded drill, or carries a drill file's text.
type drillStartRequest struct {
	By     string `json:"by"`
	Name   string `json:"name"`
	File   string `json:"file"`
	Source string `json:"source"`
}

func (a *Agent) handleDrillStart(w http.ResponseWriter, r *http.Request) {
	var req drillStartRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{"bad request: " + err.Error()})
		return
	}
	req.By = withUser(r, req.By)
	if req.By == "" {
		writeJSON(w, http.StatusBadRequest, apiError{`say who you are: {"by": "name"}`})
		return
	}
	var d *drill.Drill
	switch {
	case req.Source != "":
		file := req.File
		if file == "" {
			file = "drill"
		}
		parsed, err := drill.Parse(file, []byte(req.Source))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, apiError{err.Error()})
			return
		}
		d = parsed
	case req.Name != "":
		if d = a.drills.ByName(req.Name); d == nil {
			writeJSON(w, http.StatusNotFound, apiError{"no drill named " + strconv.Quote(req.Name) + " is loaded"})
			return
		}
	default:
		writeJSON(w, http.StatusBadRequest, apiError{"name a loaded drill or send a drill file's source"})
		return
	}
	id, err := a.drills.Start(d, req.By)
	switch {
	case errors.Is(err, drill.ErrActive):
		writeJSON(w, http.StatusConflict, apiError{err.Error()})
	case err != nil:
		writeJSON(w, http.StatusBadRequest, apiError{err.Error()})
	default:
		writeJSON(w, http.StatusOK, map[string]any{"id": id, "drill": d.Name, "started": time.Now()})
	}
}

func (a *Agent) handleDrillAbort(w http.ResponseWriter, r *http.Request) {
	req, ok := readAction(w, r)
	if !ok {
		return
	}
	if err := a.drills.Abort(r.PathValue("id"), req.By); err != nil {
		writeJSON(w, http.StatusConflict, apiError{err.Error()})
		return
	}
	a.log.Warn("drill aborted", "id", r.PathValue("id"), "by", req.By)
	writeJSON(w, http.StatusOK, map[string]string{"id": r.PathValue("id"), "status": "aborting: the rollback runs"})
}
