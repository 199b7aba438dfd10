package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/vigil-project/vigil/agent/runbook"
	"github.com/vigil-project/vigil/agent/store"
)

func (a *Agent) runbookRoutes(rt *router) {
	rt.read("GET /api/v1/runbooks", a.handleRunbooks)
	rt.read("GET /api/v1/runbooks/runs", a.handleRuns)
	rt.read("GET /api/v1/runbooks/runs/{id}", a.handleRun1)
	rt.write("POST /api/v1/runbooks/{name}/trigger", a.handleTrigger)
	rt.write("POST /api/v1/runbooks/{name}/ack", a.handleAck)
	rt.write("POST /api/v1/runbooks/runs/{id}/approve", a.handleApprove(true))
	rt.write("POST /api/v1/runbooks/runs/{id}/reject", a.handleApprove(false))
	rt.write("POST /api/v1/runbooks/runs/{id}/abort", a.handleAbort)
	rt.write("POST /api/v1/runbooks/pause", a.handlePause(true))
	rt.write("POST /api/v1/runbooks/resume", a.handlePause(false))
}

type runView struct {
	ID         string            `json:"id"`
	Runbook    string            `json:"runbook"`
	Target     string            `json:"target"`
	Trigger    string            `json:"trigger"`
	Labels     map[string]string `json:"labels"`
	Mode       string            `json:"mode"`
	State      string            `json:"state"`
	Error      string            `json:"error,omitempty"`
	Fencing    int64             `json:"fencingToken,omitempty"`
	CreatedAt  time.Time         `json:"createdAt"`
	FinishedAt time.Time         `json:"finishedAt,omitzero"`
	Timeline   []eventView       `json:"timeline,omitempty"`
}

type eventView struct {
	At      time.Time       `json:"at"`
	Kind    string          `json:"kind"`
	Phase   string          `json:"phase,omitempty"`
	Step    *int            `json:"step,omitempty"`
	Name    string          `json:"name,omitempty"`
	Attempt int             `json:"attempt,omitempty"`
	Detail  json.RawMessage `json:"detail,omitempty"`
	Error   string          `json:"error,omitempty"`
	TookMS  int64           `json:"tookMs,omitempty"`
}

func viewRun(r store.RunRow, evs []store.RunEvent) runView {
	v := runView{ID: r.ID, Runbook: r.Runbook, Target: r.Target, Trigger: r.Trigger, Mode: r.Mode, State: r.State, Error: r.Error,
		Fencing: r.Fencing, CreatedAt: r.CreatedAt, FinishedAt: r.FinishedAt}
	json.Unmarshal([]byte(r.Labels), &v.Labels)
	for _, e := range evs {
		ev := eventView{At: e.At, Kind: e.Kind, Phase: e.Phase, Name: e.Name, Attempt: e.Attempt, Error: e.Error, TookMS: e.Took.Milliseconds()}
		if e.Step >= 0 && e.Phase != "" {
			s := e.Step
			ev.Step = &s
		}
		if json.Valid([]byte(e.Detail)) {
			ev.Detail = json.RawMessage(e.Detail)
		} else if e.Detail != "" {
			ev.Detail, _ = json.Marshal(e.Detail)
		}
		v.Timeline = append(v.Timeline, ev)
	}
	return v
}

func (a *Agent) handleRunbooks(w http.ResponseWriter, r *http.Request) {
	paused, by, err := a.runbooks.State().Paused(r.Context())
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, apiError{err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"paused": paused, "pausedBy": by, "runbooks": a.runbooks.Runbooks()})
}

func (a *Agent) handleRuns(w http.ResponseWriter, r *http.Request) {
	limit := 50
	if n, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && n > 0 && n <= 1000 {
		limit = n
	}
	var states []string
	if s := r.URL.Query().Get("state"); s != "" {
		states = []string{s}
	}
	runs, err := a.store.Runs(r.Context(), limit, states...)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, apiError{err.Error()})
		return
	}
	out := make([]runView, 0, len(runs))
	for _, run := range runs {
		out = append(out, viewRun(run, nil))
	}
	writeJSON(w, http.StatusOK, map[string]any{"runs": out})
}

func (a *Agent) handleRun1(w http.ResponseWriter, r *http.Request) {
	run, evs, err := a.store.Run(r.Context(), r.PathValue("id"))
	switch {
	case errors.Is(err, store.ErrNoRun):
		writeJSON(w, http.StatusNotFound, apiError{err.Error()})
	case err != nil:
		writeJSON(w, http.StatusInternalServerError, apiError{err.Error()})
	default:
		writeJSON(w, http.StatusOK, viewRun(run, evs))
	}
}

// actionRequest is the body of state-changing runbook calls.
type actionRequest struct {
	By     string            `json:"by"`
	Labels map[string]string `json:"labels"`
	Target string            `json:"target"`
	Mode   string            `json:"mode"`
}

func readAction(w http.ResponseWriter, r *http.Request) (actionRequest, bool) {
	var req actionRequest
	body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if len(body) > 0 {
		dec := json.NewDecoder(bytesReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeJSON(w, http.StatusBadRequest, apiError{"bad request: " + err.Error()})
			return req, false
		}
	}
	req.By = withUser(r, req.By)
	if req.By == "" {
		writeJSON(w, http.StatusBadRequest, apiError{`say who you are: {"by": "name"}`})
		return req, false
	}
	return req, true
}

// withUser is the "by" recorded for a call: the authenticated user wins
// over the name in the body, which is kept beside it when it differs.
func withUser(r *http.Request, by string) string {
	user := requestUser(r.Context())
	switch {
	case user == "" || by == user:
		return by
	case by == "":
		return user
	default:
		return user + " (as " + by + ")"
	}
}

func (a *Agent) handleTrigger(w http.ResponseWriter, r *http.Request) {
	req, ok := readAction(w, r)
	if !ok {
		return
	}
	mode := runbook.Mode(req.Mode)
	switch mode {
	case "", runbook.Enforce, runbook.Approve, runbook.DryRun:
	default:
		writeJSON(w, http.StatusBadRequest, apiError{"mode must be enforce, approve or dry_run"})
		return
	}
	id, err := a.runbooks.Trigger(r.Context(), r.PathValue("name"), req.Labels, nil, "manual by "+req.By, mode)
	switch {
	case errors.Is(err, runbook.ErrUnknownRunbook):
		writeJSON(w, http.StatusNotFound, apiError{err.Error()})
	case err != nil:
		writeJSON(w, http.StatusInternalServerError, apiError{err.Error()})
	default:
		run, _, _ := a.store.Run(r.Context(), id)
		writeJSON(w, http.StatusOK, viewRun(run, nil))
	}
}

func (a *Agent) handleAck(w http.ResponseWriter, r *http.Request) {
	req, ok := readAction(w, r)
	if !ok {
		return
	}
	err := a.runbooks.Ack(r.Context(), r.PathValue("name"), req.Target, req.By)
	switch {
	case errors.Is(err, runbook.ErrUnknownRunbook):
		writeJSON(w, http.StatusNotFound, apiError{err.Error()})
	case err != nil:
		writeJSON(w, http.StatusInternalServerError, apiError{err.Error()})
	default:
		a.log.Info("runbook cooldown acknowledged", "runbook", r.PathValue("name"), "target", req.Target, "by", req.By)
		writeJSON(w, http.StatusOK, map[string]string{"status": "acknowledged"})
	}
}

func (a *Agent) handleApprove(ok bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req, valid := readAction(w, r)
		if !valid {
			return
		}
		if err := a.runbooks.Approve(r.PathValue("id"), req.By, ok); err != nil {
			writeJSON(w, http.StatusConflict, apiError{err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"id": r.PathValue("id"), "approved": ok})
	}
}

func (a *Agent) handleAbort(w http.ResponseWriter, r *http.Request) {
	req, ok := readAction(w, r)
	if !ok {
		return
	}
	if err := a.runbooks.Abort(r.Context(), r.PathValue("id"), req.By); err != nil {
		writeJSON(w, http.StatusConflict, apiError{err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": r.PathValue("id"), "status": "aborting"})
}

func (a *Agent) handlePause(paused bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req, ok := readAction(w, r)
		if !ok {
			return
		}
		if err := a.runbooks.Pause(r.Context(), paused, req.By); err != nil {
			writeJSON(w, http.StatusInternalServerError, apiError{err.Error()})
			return
		}
		a.log.Warn("runbooks paused state changed", "paused", paused, "by", req.By)
		writeJSON(w, http.StatusOK, map[string]any{"paused": paused, "by": req.By})
	}
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
