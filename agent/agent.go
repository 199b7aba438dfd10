// Package agent is the vigil daemon's composition root: New builds the
// subsystems (checkstate, scheduler, store, ruleeval, alerts, paging,
// runbook, drill, remotewrite, web) from one config and wires them through the small
// interfaces each declares; Run owns their goroutines in one errgroup and
// closes the store only after all of them have stopped; Reload swaps a new
// config in whole or not at all. Nothing else lives here.
package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/common/version"
	toolkit "github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/prometheus/model/labels"
	"golang.org/x/sync/errgroup"

	"github.com/vigil-project/vigil/agent/alerts"
	"github.com/vigil-project/vigil/agent/checkstate"
	"github.com/vigil-project/vigil/agent/config"
	"github.com/vigil-project/vigil/agent/drill"
	"github.com/vigil-project/vigil/agent/incident"
	"github.com/vigil-project/vigil/agent/lastrun"
	"github.com/vigil-project/vigil/agent/metrics"
	"github.com/vigil-project/vigil/agent/notify/route"
	"github.com/vigil-project/vigil/agent/paging"
	"github.com/vigil-project/vigil/agent/remotewrite"
	"github.com/vigil-project/vigil/agent/ruleeval"
	"github.com/vigil-project/vigil/agent/runbook"
	"github.com/vigil-project/vigil/agent/runbook/lock"
	"github.com/vigil-project/vigil/agent/scheduler"
	"github.com/vigil-project/vigil/agent/slo"
	"github.com/vigil-project/vigil/agent/store"
	"github.com/vigil-project/vigil/agent/uptime"
	"github.com/vigil-project/vigil/agent/web"
	"github.com/vigil-project/vigil/agent/web/api"
	"github.com/vigil-project/vigil/internal/memtune"
	"github.com/vigil-project/vigil/internal/redact"
	"github.com/vigil-project/vigil/probes"
	"github.com/vigil-project/vigil/rules"
)

// Options are the agent's dependencies and command-line settings.
type Options struct {
	// ConfigFile is the config path; empty means the embedded default.
	ConfigFile string
	// StoragePath is the SQLite file for history and state.
	StoragePath string
	// Retention is how long check results are kept (default 7 days).
	Retention time.Duration
	// OutboxRetention is how long delivered and dead-lettered
	// notifications are kept (default 7 days); those an incident shows
	// are kept with it.
	OutboxRetention time.Duration
	Logger          *slog.Logger
	// Web holds the listen addresses and the exporter-toolkit web config file.
	Web *toolkit.FlagConfig
	// PublicRead serves read-only pages, the read API and /metrics without
	// a user even when the web config sets basic_auth_users.
	PublicRead bool
	// MaxRequests bounds the pages and API calls served at once.
	MaxRequests int
	// PublicStatus serves the public status page without a user.
	PublicStatus bool
	// KeepCodePages turns off the periodic release of the executable's
	// resident pages (memtune.ReleasePages).
	KeepCodePages bool
	// AllowedHosts are Host names the agent answers to besides localhost,
	// IP literals, its listen addresses and the machine's hostname
	// ("*.example.com" for a whole domain); see web.Options.
	AllowedHosts []string
}

// Agent is a vigil daemon.
type Agent struct {
	opts     Options
	log      *slog.Logger
	exporter *metrics.Exporter
	store    *store.Store
	state    *checkstate.State
	sched    *scheduler.Scheduler
	rules    *ruleeval.Evaluator
	fanout   *alerts.Fanout
	pager    *paging.Pager
	runbooks *runbook.Manager
	drills   *drill.Orchestrator
	locker   interface{ Close() error }
	web      *web.Server
	// secrets masks the config's secret values in what runbook and drill
	// steps print; refreshed on reload.
	secrets   *redact.Redactor
	trim      memtune.HeapTrimmer
	uptime    uptime.Tracker
	slos      *slo.Engine
	incidents *incident.Recorder
	remotes   *remotewrite.Manager
	reloadMu  sync.Mutex
	// jobs are the loaded config's jobs until Run hands them to the
	// scheduler, which then owns them (and their probers).
	jobs []scheduler.Job
}

// loaded is everything one config builds before any of it is applied.
type loaded struct {
	cfg      *config.Config
	jobs     []scheduler.Job
	groups   []*rules.Group
	plan     *paging.Plan
	runbooks []*runbook.Runbook
	drills   []*drill.Drill
}

// load reads the config and builds its parts; a bad part fails it whole.
func (a *Agent) load() (*loaded, error) {
	cfg, jobs, err := checkstate.LoadJobs(a.opts.ConfigFile, filepath.Dir(a.opts.StoragePath), a.log)
	if err != nil {
		return nil, err
	}
	l := &loaded{cfg: cfg, jobs: jobs}
	if l.groups, err = ruleeval.Load(cfg); err != nil {
		return nil, fmt.Errorf("%s: rule_files: %w", cfg.File, err)
	}
	sloGroups, err := slo.Groups(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: slos: %w", cfg.File, err)
	}
	l.groups = append(l.groups, sloGroups...)
	if l.plan, err = paging.BuildPlan(cfg, paging.ExternalURL(cfg, web.ListenAddresses(a.opts.Web))); err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.File, err)
	}
	if l.runbooks, err = runbook.LoadConfigured(cfg); err != nil {
		return nil, err
	}
	if l.drills, err = drill.LoadConfigured(cfg); err != nil {
		return nil, err
	}
	return l, nil
}

// New loads the config, builds every check and opens the store. A config
// error is returned as config.Errors so callers can exit with code 2.
func New(ctx context.Context, opts Options) (*Agent, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Retention == 0 {
		opts.Retention = 7 * 24 * time.Hour
	}
	if opts.OutboxRetention == 0 {
		opts.OutboxRetention = 7 * 24 * time.Hour
	}
	a := &Agent{opts: opts, log: opts.Logger, exporter: metrics.New()}
	l, err := a.load()
	if err != nil {
		return nil, err
	}
	if a.store, err = store.Open(ctx, opts.StoragePath, store.Options{Retention: opts.Retention, OutboxRetention: opts.OutboxRetention, Logger: opts.Logger,
		HourRetention: hourRetention(l.cfg)}); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := a.wire(ctx, l); err != nil {
		a.store.Close()
		return nil, err
	}
	return a, nil
}

// wire builds the subsystems around the open store.
func (a *Agent) wire(ctx context.Context, l *loaded) error {
	a.state = checkstate.New(l.cfg, l.jobs)
	a.jobs = l.jobs
	memtune.TuneGC(len(l.cfg.Checks))
	a.secrets = redact.New(config.SecretValues(l.cfg))
	a.sched = scheduler.New(scheduler.Options{
		MaxConcurrency: l.cfg.Global.MaxConcurrency,
		Granularity:    time.Duration(l.cfg.Global.ScheduleGranularity),
		Logger:         a.log,
		OnResult:       a.onResult,
		Override:       func(j *scheduler.Job) (probes.Result, bool) { return a.drills.Override(j) },
		OnStart:        a.onStart,
		OnStop:         a.onStop,
	})
	var err error
	drillDropped := func() { a.exporter.Inc("vigil_notify_drill_dropped_total") }
	dependency := func(lbls map[string]string) string { return a.state.FailingDependency(lbls["check"]) }
	if a.pager, err = paging.New(ctx, paging.Options{Store: a.store, Logger: a.log, OnDrillDropped: drillDropped,
		ExternalLabels: a.state.ExternalLabels, Dependency: dependency}, l.cfg, l.plan); err != nil {
		return err
	}
	locker, lockState, err := lock.FromConfig(ctx, l.cfg, a.store, a.log)
	if err != nil {
		return err
	}
	a.locker = locker
	a.runbooks = runbook.NewManager(runbook.Options{Journal: a.store, Locker: locker, State: lockState, Logger: a.log,
		Env: runbook.Env{HTTP: &http.Client{}, Checker: runbook.CheckerOf(a.sched), Pager: a.pager, Redactor: a.secrets}})
	a.runbooks.SetRunbooks(l.runbooks)
	acks, _ := lockState.(incident.Acks)
	a.incidents = incident.New(incident.Options{Store: a.store, RootCause: a.state.FailingDependency,
		Silences: func() []route.Silence { return a.pager.Silences().List() }, Acks: acks, Logger: a.log})
	if err := a.incidents.Load(ctx); err != nil {
		a.log.Warn("could not read open incidents", "err", err)
	}
	a.fanout = alerts.New(alerts.Options{ExternalURL: a.pager.ExternalURL, ExternalLabels: a.state.ExternalLabels,
		CheckInfo: a.state.CheckInfo, Logger: a.log},
		alerts.Named{Name: "paging", Consumer: a.pager},
		alerts.Named{Name: "incidents", Consumer: a.incidents},
		alerts.Named{Name: "runbooks", Consumer: alerts.ConsumerFunc(a.runbooks.OnAlerts)})
	a.rules = ruleeval.New(ruleeval.Options{Series: rules.Sources(a.exporter.Samples, rules.TextSource(a.exporter.WriteAgent)), State: a.store, Ready: a.state.Warm, ExternalLabels: a.state.ExternalLabels,
		Notifier: a.fanout, Relabel: func(ls labels.Labels) labels.Labels { return a.drills.Relabel(ls) }, Logger: a.log})
	a.drills = drill.NewOrchestrator(drill.OrchestratorOptions{Checks: a.sched, Alerts: a.rules, Query: a.rules,
		Pages: a.store, Runs: a.store, Reports: a.store, KnownCheck: func(name string) bool { return a.state.Config().HasCheck(name) },
		Steps: runbook.Env{HTTP: &http.Client{}, Redactor: a.secrets}, ReportsDir: a.reportsDir, Logger: a.log}, l.drills)
	a.rules.Apply(l.cfg, l.groups)
	// Remote write sends what /metrics shows, read as the rules read it,
	// and the rules' ALERTS series.
	a.remotes = remotewrite.New(remotewrite.Options{Series: rules.Sources(a.exporter.Samples,
		rules.TextSource(a.exporter.WriteAgent), a.rules.AlertSeries), Ready: a.state.Warm, Logger: a.log})
	a.remotes.Apply(l.cfg)
	a.slos = slo.NewEngine(a.store, a.rules.Sum, a.log)
	a.slos.Set(l.cfg.SLOs)
	for _, w := range []func(io.Writer){a.pager.WritePrometheus, a.store.WritePrometheus, a.runbooks.WritePrometheus,
		a.drills.WritePrometheus, a.fanout.WritePrometheus, a.slos.WritePrometheus, a.remotes.WritePrometheus} {
		a.exporter.AddWriter(w)
	}
	a.exporter.Counter("vigil_notify_drill_dropped_total", "Drill alerts (drill=\"true\") not sent because no notify.drill_receiver is configured.")
	a.exporter.SetUptime(a.uptime.Ratios)
	if a.web, err = web.New(web.Options{Flags: a.opts.Web, PublicRead: a.opts.PublicRead, PublicStatus: a.opts.PublicStatus, MaxRequests: a.opts.MaxRequests, AllowedHosts: a.opts.AllowedHosts,
		Logger: a.log, Metrics: a.exporter, Checks: a.state, Scheduler: a.sched, Rules: a.rules, Paging: a.pager,
		Runbooks: a.runbooks, Drills: a.drills, Store: a.store, Uptime: &a.uptime, SLOs: a.slos, Incidents: a.incidents, Trimmer: &a.trim, Known: api.KnownAll{a.rules, a.state}, Reload: a.Reload}); err != nil {
		return err
	}
	// The API shows each check's last known result until it runs again.
	latest, err := a.store.Latest(ctx)
	if err != nil {
		a.log.Warn("could not read last results from the store", "err", err)
	}
	last := make(map[string]probes.Result, len(latest))
	for name, rec := range latest {
		last[name] = rec.Result
	}
	a.state.Restore(last)
	a.exporter.Gauge("vigil_build_info", "1, labelled with the agent's version, revision and Go version.", 1,
		probes.Label{Name: "version", Value: version.Version},
		probes.Label{Name: "revision", Value: version.GetRevision()},
		probes.Label{Name: "goversion", Value: version.GoVersion})
	a.exporter.Gauge("vigil_start_time_seconds", "Time the agent started, Unix time.", float64(time.Now().Unix()))
	a.recordReload(true)
	return nil
}

// redactResult masks the config's secret values in a result's message and
// diagnostics before they reach the state, /metrics, the store, the API,
// pages and logs: a probe may quote what a target sent back (a log line
// with a token, an error echoing a DSN). Diagnostics are rewritten only
// when they hold a secret; they then become plain JSON values.
func redactResult(sec *redact.Redactor, r probes.Result) probes.Result {
	if sec == nil || (r.Message == "" && len(r.Diagnostics) == 0) {
		return r
	}
	r.Message = sec.Redact(r.Message)
	if len(r.Diagnostics) == 0 {
		return r
	}
	b, err := json.Marshal(r.Diagnostics)
	if err != nil {
		return r
	}
	if masked := sec.Redact(string(b)); masked != string(b) {
		var diag map[string]any
		if err := json.Unmarshal([]byte(masked), &diag); err == nil {
			r.Diagnostics = diag
		} else {
			r.Diagnostics = map[string]any{"redacted": "diagnostics withheld: they held a secret value"}
		}
	}
	return r
}

// dependencyFailed marks a failed result of a check whose dependency dep
// fails: reason dependency_failed, its own reason and message kept in the
// message and in the diagnostics.
func dependencyFailed(r probes.Result, dep string) probes.Result {
	diag := make(map[string]any, len(r.Diagnostics)+2)
	maps.Copy(diag, r.Diagnostics)
	diag["dependency_failed"] = dep
	diag["own_reason"] = string(r.Reason)
	r.Diagnostics = diag
	r.Message = fmt.Sprintf("%s is failing (depends_on); own result: %s: %s", dep, r.Reason, r.Message)
	r.Reason = probes.ReasonDependencyFailed
	return r
}

// hourRetention is how long the store keeps hourly run counts: 35 days,
// or the longest SLO window and a day when that is longer.
func hourRetention(cfg *config.Config) time.Duration {
	return max(store.DefaultHourRetention, cfg.LongestSLOWindow()+24*time.Hour)
}

// reportsDir is where drill reports are written: the config's
// drill_reports_dir, or drill-reports beside the store.
func (a *Agent) reportsDir() string {
	if dir := a.state.Config().DrillReportsDir; dir != "" {
		return dir
	}
	return filepath.Join(filepath.Dir(a.opts.StoragePath), "drill-reports")
}

// Run starts the checks, the subsystems and the HTTP server and blocks
// until ctx is done, then shuts down gracefully: the server drains first,
// then every subsystem stops and is waited for, and only then is the store
// closed. SIGHUP reloads the config.
func (a *Agent) Run(ctx context.Context) error {
	defer a.closeStore()
	subCtx, stopSubs := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSubs()
	g, subCtx := errgroup.WithContext(subCtx)
	g.Go(func() error { a.sched.Run(subCtx); return nil })
	jobs := a.jobs
	a.jobs = nil
	if err := a.sched.Update(subCtx, jobs); err != nil {
		stopSubs()
		g.Wait()
		return fmt.Errorf("start checks: %w", err)
	}
	if err := a.runbooks.Start(subCtx); err != nil {
		stopSubs()
		g.Wait()
		return fmt.Errorf("start runbooks: %w", err)
	}
	g.Go(func() error {
		<-subCtx.Done()
		a.runbooks.Wait()
		// Frees this agent's locks at once (etcd: revokes the session).
		return a.locker.Close()
	})
	g.Go(func() error { return a.pager.Run(subCtx) })
	g.Go(func() error { return a.fanout.Run(subCtx) })
	g.Go(func() error { return a.rules.Run(subCtx) })
	g.Go(func() error { a.uptime.Run(subCtx, a.store, a.log); return nil })
	g.Go(func() error { a.slos.Run(subCtx); return nil })
	g.Go(func() error { return a.remotes.Run(subCtx) })
	// A drill's rollback always runs: at shutdown it is waited for, and a
	// drill a dead agent left running is rolled back now.
	g.Go(func() error { return a.drills.Run(subCtx) })
	if !a.opts.KeepCodePages {
		a.trim.PageOutAfterBursts(a.log)
		g.Go(func() error { memtune.ReleasePages(subCtx, a.log); return nil })
	}
	// Registered before the agent says it is ready: a SIGHUP that arrives
	// before the loop runs reloads instead of killing the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	g.Go(func() error { a.reloadOn(subCtx, hup); return nil })
	g.Go(func() error {
		defer stopSubs()
		return a.web.Serve(ctx, subCtx)
	})
	a.web.SetReady(true)
	a.log.Info("vigil started", "version", version.Version, "config", a.state.Config().File, "checks", len(jobs), "storage", a.opts.StoragePath)
	err := g.Wait()
	a.trim.Stop()
	return err
}

// reloadOn reloads the config on every signal until ctx is done.
func (a *Agent) reloadOn(ctx context.Context, hup <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if err := a.Reload(ctx); err != nil {
				a.log.Error("reload failed; keeping the running config", "err", err)
			}
		}
	}
}

func (a *Agent) closeStore() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.store.Flush(ctx); err != nil {
		a.log.Warn("flush store", "err", err)
	}
	if err := a.store.Close(); err != nil {
		a.log.Warn("close store", "err", err)
	}
}

// Reload re-reads the config file. A bad config is rejected as a whole and
// the running one stays in place; vigil_config_last_reload_successful says which.
func (a *Agent) Reload(ctx context.Context) error {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	l, err := a.load()
	if err != nil {
		a.recordReload(false)
		return err
	}
	if running := a.state.Config().Global.MaxConcurrency; l.cfg.Global.MaxConcurrency != running {
		a.log.Warn("global.max_concurrency changes take effect at restart", "running", running, "configured", l.cfg.Global.MaxConcurrency)
	}
	if running := a.state.Config().Global.ScheduleGranularity; l.cfg.Global.ScheduleGranularity != running {
		a.log.Warn("global.schedule_granularity changes take effect at restart", "running", running, "configured", l.cfg.Global.ScheduleGranularity)
	}
	// Swap first so results of the new jobs find their labels.
	stale := a.state.Set(l.cfg, l.jobs)
	memtune.TuneGC(len(l.cfg.Checks))
	a.rules.Apply(l.cfg, l.groups)
	a.store.SetHourRetention(hourRetention(l.cfg))
	a.slos.Set(l.cfg.SLOs)
	a.pager.Apply(l.plan)
	a.secrets.Set(config.SecretValues(l.cfg))
	a.runbooks.SetRunbooks(l.runbooks)
	a.drills.Set(l.drills)
	a.remotes.Apply(l.cfg)
	if err := a.sched.Update(ctx, l.jobs); err != nil {
		return fmt.Errorf("apply config: %w", err)
	}
	for _, name := range stale {
		a.exporter.Forget(name)
	}
	a.recordReload(true)
	a.log.Info("config reloaded", "config", l.cfg.File, "checks", len(l.jobs))
	return nil
}

const reloadHelp = "1 if the last config (re)load succeeded, 0 after a rejected one (the previous config keeps running)."

func (a *Agent) recordReload(ok bool) {
	if ok {
		a.exporter.Gauge("vigil_config_last_reload_successful", reloadHelp, 1)
		a.exporter.Gauge("vigil_config_last_reload_success_timestamp_seconds", "Time of the last successful config (re)load, Unix time.", float64(time.Now().Unix()))
		return
	}
	a.exporter.Gauge("vigil_config_last_reload_successful", reloadHelp, 0)
}

// onStart exports a streaming check's live values while its runner runs.
func (a *Agent) onStart(job *scheduler.Job) {
	if col, ok := job.Prober.(probes.Collector); ok {
		a.exporter.SetCollector(metrics.Check{Name: job.Name, Type: job.Type, Labels: a.state.Check(job.Name).Labels}, col)
	}
}

func (a *Agent) onStop(job *scheduler.Job) {
	if _, ok := job.Prober.(probes.Collector); ok {
		a.exporter.RemoveCollector(job.Name)
	}
}

func (a *Agent) onResult(job *scheduler.Job, r probes.Result) {
	if !r.Success {
		if dep := a.state.FailingDependency(job.Name); dep != "" {
			r = dependencyFailed(r, dep)
		}
	}
	r = redactResult(a.secrets, r)
	// One compact copy of the result, shared by the state and the exporter.
	last := lastrun.From(r)
	a.state.Record(job.Name, last)
	c := a.state.Check(job.Name)
	changed := a.exporter.Observe(metrics.Check{Name: job.Name, Type: job.Type, Labels: c.Labels, Interval: job.Interval,
		FailureThreshold: c.FailureThreshold}, last)
	a.state.MarkRan(job.Name)
	if changed {
		// A (confirmed) failure starts its alert's `for` now, not at the
		// next evaluation interval.
		a.rules.EvaluateSoon()
	}
	a.drills.OnResult(job.Name, r)
	a.store.Record(store.Record{Check: job.Name, Type: job.Type, Result: r})
	a.slos.Observe(job.Name, r.Success)
	a.uptime.Observe(job.Name)
	a.trim.Kick()
	if !r.Success {
		a.log.Warn("check failed", "check", job.Name, "type", job.Type, "reason", string(r.Reason), "msg", r.Message, "duration", r.Duration)
	} else {
		a.log.Debug("check passed", "check", job.Name, "type", job.Type, "duration", r.Duration)
	}
}
