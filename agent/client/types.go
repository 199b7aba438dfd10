// Package client is the typed client of a running agent's REST API and
// the one definition of the API's types: the server encodes them, the CLI
// decodes them.
package client

import (
	"encoding/json"
	"time"

	"github.com/vigil-project/vigil/agent/drill"
	"github.com/vigil-project/vigil/agent/notify/route"
	"github.com/vigil-project/vigil/probes"
)

// ResultView is the JSON form of a result, shared by the API and `vigil once -o json`.
type ResultView struct {
	Success         bool      `json:"success"`
	Reason          string    `json:"reason,omitempty"`
	Message         string    `json:"message,omitempty"`
	Start           time.Time `json:"start"`
	DurationSeconds float64   `json:"duration_seconds"`
	// Phases are the phase durations by name; PhaseList is the same in
	// the order the phases ran (a JSON object's keys have no order).
	Phases      map[string]float64 `json:"phases_seconds,omitempty"`
	PhaseList   []PhaseView        `json:"phases,omitempty"`
	Values      []ValueView        `json:"values,omitempty"`
	Diagnostics map[string]any     `json:"diagnostics,omitempty"`
}

// PhaseView is one phase of a run.
type PhaseView struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

// ValueView is one exported value.
type ValueView struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
	Value  float64           `json:"value"`
}

// NewResultView converts a result for JSON output.
func NewResultView(r probes.Result) ResultView {
	v := ResultView{
		Success:         r.Success,
		Reason:          string(r.Reason),
		Message:         r.Message,
		Start:           r.Start.UTC(),
		DurationSeconds: r.Duration.Seconds(),
		Diagnostics:     r.Diagnostics,
	}
	if len(r.Phases) > 0 {
		v.Phases = make(map[string]float64, len(r.Phases))
		v.PhaseList = make([]PhaseView, len(r.Phases))
		for i, p := range r.Phases {
			v.Phases[p.Name] = p.Duration.Seconds()
			v.PhaseList[i] = PhaseView{Name: p.Name, Seconds: p.Duration.Seconds()}
		}
	}
	for _, val := range r.Values {
		vv := ValueView{Name: val.Name, Value: val.Value}
		if len(val.Labels) > 0 {
			vv.Labels = make(map[string]string, len(val.Labels))
			for _, l := range val.Labels {
				vv.Labels[l.Name] = l.Value
			}
		}
		v.Values = append(v.Values, vv)
	}
	return v
}

// HistoryEntry is one past run in a check's history.
type HistoryEntry struct {
	Start           time.Time `json:"start"`
	Success         bool      `json:"success"`
	Reason          string    `json:"reason,omitempty"`
	Message         string    `json:"message,omitempty"`
	DurationSeconds float64   `json:"duration_seconds"`
}

// CheckView is the API's view of one check.
type CheckView struct {
	Name            string            `json:"name"`
	Type            string            `json:"type"`
	Interval        string            `json:"interval"`
	Timeout         string            `json:"timeout"`
	RecheckInterval string            `json:"recheck_interval"`
	Labels          map[string]string `json:"labels,omitempty"`
	// Config is the type's section with defaults applied. It is rendered
	// through the YAML tags, so secret fields show their redacted form.
	Config     map[string]any `json:"config"`
	LastResult *ResultView    `json:"last_result"`
	History    []HistoryEntry `json:"history"`
	// Uptime is the share of passing runs over 24h, 7d and 30d.
	Uptime []Uptime `json:"uptime"`
	// NextRun is when the check's next run is due; absent while a run is
	// in flight or the check is not scheduled.
	NextRun time.Time `json:"next_run,omitzero"`
}

// Uptime is the share of a check's runs that passed over one window,
// counted in whole hours (the oldest hour may start before the window).
type Uptime struct {
	Window string `json:"window"` // 24h, 7d or 30d
	// Ratio is OK/Runs, null when the window has no runs.
	Ratio *float64 `json:"ratio"`
	Runs  int64    `json:"runs"`
	OK    int64    `json:"ok"`
}

// Run is a runbook run with its timeline (GET /api/v1/runbooks/runs/{id});
// the list of runs leaves the timeline out.
type Run struct {
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
	Timeline   []Event           `json:"timeline,omitempty"`
}

// Event is one entry of a run's journal.
type Event struct {
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

// ActionRequest is the body of state-changing runbook and drill calls.
type ActionRequest struct {
	By     string            `json:"by"`
	Labels map[string]string `json:"labels"`
	Target string            `json:"target"`
	Mode   string            `json:"mode"`
}

// SilenceRequest is the body of POST /api/v1/silences: either endsAt or a
// duration ("2h").
type SilenceRequest struct {
	Matchers  []string  `json:"matchers"`
	StartsAt  time.Time `json:"startsAt"`
	EndsAt    time.Time `json:"endsAt"`
	Duration  string    `json:"duration"`
	CreatedBy string    `json:"createdBy"`
	Comment   string    `json:"comment"`
}

// Notification is one outbox item: what was sent where and how it went,
// without the payload (GET /api/v1/notifications).
type Notification struct {
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

// NotifyTestRequest is the body of POST /api/v1/notify/test.
type NotifyTestRequest struct {
	Receiver string `json:"receiver"`
	By       string `json:"by"`
	// Wait is how long the agent waits for the outcome ("20s", at most 2m).
	Wait string `json:"wait"`
}

// NotifyTestResult is the outcome of a test page per target: state sent
// (the receiver acknowledged it), dead (given up) or pending (still being
// retried when the wait ended; LastError says why).
type NotifyTestResult struct {
	Receiver      string         `json:"receiver"`
	Notifications []Notification `json:"notifications"`
}

// Drill is a loaded drill (GET /api/v1/drills).
type Drill struct {
	Name       string                `json:"name"`
	File       string                `json:"file"`
	Hypothesis string                `json:"hypothesis"`
	Checks     []string              `json:"checks"`
	Duration   string                `json:"duration"`
	Objectives drill.Objectives      `json:"objectives"`
	Stop       []drill.StopCondition `json:"stop_conditions,omitempty"`
}

// ActiveDrill names the drill running on the agent.
type ActiveDrill struct {
	ID    string `json:"id"`
	Drill string `json:"drill"`
}

// Drills is GET /api/v1/drills.
type Drills struct {
	Drills []Drill      `json:"drills"`
	Active *ActiveDrill `json:"active,omitempty"`
}

// DrillStartRequest names a loaded drill, or carries a drill file's text.
type DrillStartRequest struct {
	By     string `json:"by"`
	Name   string `json:"name"`
	File   string `json:"file"`
	Source string `json:"source"`
}

// DrillStarted answers POST /api/v1/drills/run.
type DrillStarted struct {
	ID      string    `json:"id"`
	Drill   string    `json:"drill"`
	Started time.Time `json:"started"`
}

// DrillHistory is GET /api/v1/drills/history.
type DrillHistory struct {
	Drill    string        `json:"drill"`
	Runs     int           `json:"runs"`
	Measures []drill.Stats `json:"measures"`
}

// Error is the body of every API error.
type Error struct {
	Error string `json:"error"`
}

// AddedSilence answers POST /api/v1/silences: the silence, and a warning
// when it matches no alert rule or series the agent knows (a likely typo).
type AddedSilence struct {
	route.Silence
	Warning string `json:"warning,omitempty"`
}

// SLO is a service level objective with its attainment and error budget
// over its window (GET /api/v1/slos).
type SLO struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Objective   float64  `json:"objective"`
	Window      string   `json:"window"`
	Checks      []string `json:"checks"`
	// Runs and Failed are the checks' runs over the window (whole hours).
	Runs   int64 `json:"runs"`
	Failed int64 `json:"failed"`
	// Attainment is the share of runs that passed, null without runs.
	Attainment *float64 `json:"attainment"`
	// BudgetRemaining is the share of the error budget left (negative when
	// overspent), null without runs.
	BudgetRemaining *float64 `json:"budget_remaining"`
	// Burn is the budget remaining at the end of each hour with runs.
	Burn       []BurnPoint `json:"burn"`
	ComputedAt time.Time   `json:"computed_at,omitzero"`
}

// SLODetail is one SLO with what its operator page shows (GET
// /api/v1/slos/{name}): its SLI, the current burn rates over its alert's
// windows and the state of that alert.
type SLODetail struct {
	SLO
	// SLI is its PromQL SLI as configured (with {{.window}}); nil for an
	// SLO over checks.
	SLI    *SLIQueries       `json:"sli,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
	// BurnRates are the burn rates over the SRE workbook's window pairs,
	// as multiples of the rate that spends the budget over the window.
	BurnRates []BurnRate `json:"burn_rates"`
	Alert     SLOAlert   `json:"alert"`
}

// SLIQueries are a PromQL SLI: bad and all events per second.
type SLIQueries struct {
	ErrorQuery string `json:"error_query"`
	TotalQuery string `json:"total_query"`
}

// BurnRate is one multiwindow burn-rate condition of an SLO's alert.
type BurnRate struct {
	LongWindow  string `json:"long_window"`
	ShortWindow string `json:"short_window"`
	// BudgetShare is the share of the window's budget spent in the long
	// window at the threshold (0.02, 0.05).
	BudgetShare float64 `json:"budget_share"`
	Threshold   float64 `json:"threshold"`
	// Long and Short are the current burn rates, null without data.
	Long     *float64 `json:"long"`
	Short    *float64 `json:"short"`
	Exceeded bool     `json:"exceeded"`
}

// SLOAlert is the state of an SLO's burn-rate alert: firing, pending,
// inactive, or not_loaded when the rule engine has no rules for the SLO.
type SLOAlert struct {
	Alertname      string    `json:"alertname"`
	State          string    `json:"state"`
	ActiveAt       time.Time `json:"active_at,omitzero"`
	Health         string    `json:"health,omitempty"`
	LastError      string    `json:"last_error,omitempty"`
	LastEvaluation time.Time `json:"last_evaluation,omitzero"`
}

// BurnPoint is the error budget remaining at a time.
type BurnPoint struct {
	At        time.Time `json:"at"`
	Remaining float64   `json:"remaining"`
}

// Incident is a firing episode of an alert (GET /api/v1/incidents, and
// with its timeline GET /api/v1/incidents/{id}).
type Incident struct {
	ID          int64             `json:"id"`
	Alertname   string            `json:"alertname"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Check       string            `json:"check,omitempty"`
	// RootCause is the failing dependency of the check when it fired.
	RootCause      string    `json:"root_cause,omitempty"`
	Open           bool      `json:"open"`
	StartedAt      time.Time `json:"started_at"`
	FiringAt       time.Time `json:"firing_at"`
	FirstFailureAt time.Time `json:"first_failure_at,omitzero"`
	PagedAt        time.Time `json:"paged_at,omitzero"`
	ResolvedAt     time.Time `json:"resolved_at,omitzero"`
	// Seconds from the check's first failed run to the alert firing, the
	// first page delivered and the alert resolving (0: not known or not yet).
	TimeToDetect  float64         `json:"time_to_detect_seconds"`
	TimeToPage    float64         `json:"time_to_page_seconds"`
	TimeToRecover float64         `json:"time_to_recover_seconds"`
	Timeline      []IncidentEvent `json:"timeline,omitempty"`
}

// IncidentEvent is one entry of an incident's timeline.
type IncidentEvent struct {
	At      time.Time `json:"at"`
	Kind    string    `json:"kind"` // failure, recovery, alert, page, runbook, silence
	Title   string    `json:"title"`
	Detail  []string  `json:"detail,omitempty"`
	Status  string    `json:"status,omitempty"`  // of a page: firing, resolved
	Outcome string    `json:"outcome,omitempty"` // of a page: sent, pending, dead
	Link    string    `json:"link,omitempty"`
}

// PublicStatus is the read-only status for internal customers (GET
// /api/v1/status, the /status page): per checklist step its state and
// uptime, the SLOs, and the open incidents' public text — no check names,
// hosts, addresses, DSNs, messages or diagnostics.
type PublicStatus struct {
	// Title and Description are the config's public_status text (English;
	// empty: the page's default title, no description).
	Title       string `json:"title,omitempty"`
	Description string `json:"description,omitempty"`
	// Status is the worst step's: operational, degraded, down or unknown.
	Status    string           `json:"status"`
	Steps     []PublicStep     `json:"steps"`
	SLOs      []PublicSLO      `json:"slos"`
	Incidents []PublicIncident `json:"incidents"`
	UpdatedAt time.Time        `json:"updated_at"`
}

// PublicStep is one checklist step: operational (every check passes),
// degraded (some fail), down (all fail) or unknown (none has run).
type PublicStep struct {
	Step   string   `json:"step"`
	Status string   `json:"status"`
	Uptime []Uptime `json:"uptime"` // its checks' runs pooled
}

// PublicSLO is an SLO without its checks.
type PublicSLO struct {
	Name            string   `json:"name"`
	Description     string   `json:"description,omitempty"`
	Objective       float64  `json:"objective"`
	Window          string   `json:"window"`
	Attainment      *float64 `json:"attainment"`
	BudgetRemaining *float64 `json:"budget_remaining"`
}

// PublicIncident is an open incident as customers see it: the step it
// touches, since when, and the alert's public_summary annotation (empty
// when the rule has none; the page then says the step is disrupted).
type PublicIncident struct {
	Step    string    `json:"step,omitempty"`
	Since   time.Time `json:"since"`
	Summary string    `json:"summary,omitempty"`
}
