// Package api serves the agent's REST API under /api/v1 and /-/reload:
// checks and their history, run-now, silences and notifications, runbooks
// and their runs, drills and their reports. The answers are the types of
// package client. It also builds the views the status pages show (checks,
// runs, drill reports), so both read the agent the same way.
package api

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/vigil-project/vigil/agent/config"
	"github.com/vigil-project/vigil/agent/drill"
	"github.com/vigil-project/vigil/agent/notify/outbox"
	"github.com/vigil-project/vigil/agent/notify/route"
	"github.com/vigil-project/vigil/agent/runbook"
	"github.com/vigil-project/vigil/agent/slo"
	"github.com/vigil-project/vigil/agent/store"
	"github.com/vigil-project/vigil/agent/web/httpx"
	"github.com/vigil-project/vigil/probes"
	"github.com/vigil-project/vigil/rules"
)

// Checks are the configured checks and their last results.
type Checks interface {
	Checks() []config.Check
	// Check is the named check (the zero Check when there is none).
	Check(name string) config.Check
	Last(name string) (probes.Result, bool)
	// Outcome is whether the check has a last result and whether it
	// passed: what filters and counts need, without copying the result.
	Outcome(name string) (ran, success bool)
}

// Scheduler runs a check now.
type Scheduler interface {
	RunNow(ctx context.Context, name string) (probes.Result, error)
}

// NextRuns is a scheduler that knows when each check runs next (the
// agent's does); the check views show it.
type NextRuns interface {
	NextRun(name string) (time.Time, bool)
}

// Configured is a Checks that knows the loaded config (the agent's
// checkstate does), for global.timezone.
type Configured interface {
	Config() *config.Config
}

// Paging holds the silences and the delivery queues.
type Paging interface {
	Silences() *route.Silences
	Queues() []outbox.Stats
	// Maintenance lists the configured time intervals at now.
	Maintenance(now time.Time) []route.Window
	// Muted says why an alert is not paged now.
	Muted(lbls map[string]string) route.Mute
	// SendTest queues a test page to a receiver's integrations.
	SendTest(ctx context.Context, receiver, by string) ([]*store.OutboxItem, error)
}

// Runbooks are the runbook manager's actions.
type Runbooks interface {
	Runbooks() []*runbook.Runbook
	State() runbook.State
	Trigger(ctx context.Context, name string, lbls, annotations map[string]string, by string, mode runbook.Mode) (string, error)
	Ack(ctx context.Context, name, target, by string) error
	Approve(id, by string, ok bool) error
	Abort(ctx context.Context, id, by string) error
	Pause(ctx context.Context, paused bool, by string) error
}

// Drills is the drill orchestrator.
type Drills interface {
	List() []*drill.Drill
	ByName(name string) *drill.Drill
	Current() *drill.Run
	Start(dr *drill.Drill, by string) (string, error)
	Abort(id, by string) error
}

// Store is what the API reads from the agent's store.
type Store interface {
	SummariesOf(ctx context.Context, checks []string, limit int) (map[string][]store.Summary, error)
	OutboxItems(ctx context.Context, state string, limit int) ([]*store.OutboxItem, error)
	OutboxByIDs(ctx context.Context, ids []int64) ([]*store.OutboxItem, error)
	Runs(ctx context.Context, limit int, states ...string) ([]store.RunRow, error)
	Run(ctx context.Context, id string) (store.RunRow, []store.RunEvent, error)
	DrillRuns(ctx context.Context, drill string, limit int, states ...string) ([]store.DrillRow, error)
	DrillRun(ctx context.Context, id string) (store.DrillRow, error)
	CheckUptime(ctx context.Context, check string, now time.Time, windows []time.Duration) ([]store.Counts, error)
}

// SLOs are the configured SLOs as last computed.
type SLOs interface {
	Statuses() []slo.Status
}

// RuleGroups are the rule engine's loaded groups (the SLO page reads the
// state of the SLOs' burn-rate alerts).
type RuleGroups interface {
	Groups() []*rules.Group
}

// Uptime is every check's cached uptime per window (uptime.Windows).
type Uptime interface {
	Get(check string) [3]store.Counts
}

// Options are the subsystems the API serves.
type Options struct {
	Checks    Checks
	Scheduler Scheduler
	Paging    Paging
	Runbooks  Runbooks
	Drills    Drills
	Store     Store
	// Uptime is the cached uptime the check lists show (nil: none); a
	// single check's view reads the store instead.
	Uptime Uptime
	// SLOs are the configured SLOs (nil: none).
	SLOs SLOs
	// Rules are the rule engine's groups (nil: no rules loaded).
	Rules RuleGroups
	// PublicStatus serves GET /api/v1/status without a user.
	PublicStatus bool
	// Incidents build incident timelines; IncidentList lists them.
	Incidents    Incidents
	IncidentList IncidentList
	// Known are the label sets alerts and silences can be about; a
	// silence matching none of them is kept, with a warning.
	Known Known
	// Reload re-reads the agent's config.
	Reload func(ctx context.Context) error
	Logger *slog.Logger
}

// Known lists the label sets of the series and alerting rules.
type Known interface {
	LabelSets(ctx context.Context) []map[string]string
}

// KnownAll is every label set its members know.
type KnownAll []Known

// LabelSets concatenates the members' label sets.
func (ks KnownAll) LabelSets(ctx context.Context) []map[string]string {
	var out []map[string]string
	for _, k := range ks {
		out = append(out, k.LabelSets(ctx)...)
	}
	return out
}

// API serves the REST API.
type API struct {
	state        Checks
	sched        Scheduler
	pager        Paging
	runbooks     Runbooks
	drills       Drills
	store        Store
	uptime       Uptime
	slos         SLOs
	rules        RuleGroups
	incidents    Incidents
	incidentList IncidentList
	publicStatus bool
	known        Known
	reload       func(ctx context.Context) error
	log          *slog.Logger

	// specs caches each check's rendered config section (a YAML round
	// trip, most of a page's time), by the config it renders.
	specMu sync.Mutex
	specs  map[probes.Config]map[string]any
}

// New returns the API over the agent's subsystems.
func New(opts Options) *API {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &API{state: opts.Checks, sched: opts.Scheduler, pager: opts.Paging, runbooks: opts.Runbooks,
		drills: opts.Drills, store: opts.Store, uptime: opts.Uptime, slos: opts.SLOs, rules: opts.Rules, incidents: opts.Incidents, incidentList: opts.IncidentList, publicStatus: opts.PublicStatus, known: opts.Known, reload: opts.Reload, log: opts.Logger}
}

// Zone is the time zone the status page shows times in: the config's
// global.timezone, or the host's zone. It follows reloads.
func (api *API) Zone() *time.Location {
	if c, ok := api.state.(Configured); ok {
		if cfg := c.Config(); cfg != nil {
			return cfg.Global.Zone()
		}
	}
	return time.Local
}

// Routes registers the API's routes with their access levels.
func (api *API) Routes(rt httpx.Router) {
	rt.Write("POST /-/reload", api.handleReload)
	rt.Read("GET /api/v1/checks", api.handleChecks)
	rt.Read("GET /api/v1/checks/{name}", api.handleCheck)
	rt.Write("POST /api/v1/checks/{name}/run", api.handleRun)
	rt.Read("GET /api/v1/slos", api.handleSLOs)
	rt.Read("GET /api/v1/slos/{name}", api.handleSLO)
	if api.publicStatus {
		rt.Open("GET /api/v1/status", api.handleStatus)
	} else {
		rt.Read("GET /api/v1/status", api.handleStatus)
	}
	rt.Read("GET /api/v1/incidents", api.handleIncidents)
	rt.Read("GET /api/v1/incidents/{id}", api.handleIncident)
	api.notifyRoutes(rt)
	api.runbookRoutes(rt)
	api.drillRoutes(rt)
}

// SilenceWarning says why a silence probably mutes nothing ("" when it
// matches a known alert or series), with the closest label values.
func (api *API) SilenceWarning(ctx context.Context, s *route.Silence) string {
	if api.known == nil {
		return ""
	}
	ms, err := s.Matchers.Parse()
	if err != nil {
		return ""
	}
	nothing, hints := route.MatchesNothing(ms, api.known.LabelSets(ctx))
	if !nothing {
		return ""
	}
	return strings.Join(append([]string{"the silence matches no alert rule or series this agent knows"}, hints...), "; ")
}
