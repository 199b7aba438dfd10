// Package agent is the vigil daemon: it loads the config, runs the checks
// through the scheduler, records results in the store, exports them on
// /metrics and serves the HTTP API. Subpackages hold the parts; this package
// wires them together and owns reloads and shutdown.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/vigil-project/vigil/agent/config"
	"github.com/vigil-project/vigil/agent/metrics"
	"github.com/vigil-project/vigil/agent/runbook"
	"github.com/vigil-project/vigil/agent/scheduler"
	"github.com/vigil-project/vigil/agent/store"
	"github.com/vigil-project/vigil/agent/ui"
	"github.com/vigil-project/vigil/internal/redact"
	"github.com/vigil-project/vigil/probes"
)

// Options are the agent's dependencies and command-line settings.
type Options struct {
	// ConfigFile is the config path; empty means the embedded default.
	ConfigFile string
	// StoragePath is the SQLite file for history and state.
	StoragePath string
	// Retention is how long check results are kept (default 7 days).
	Retention time.Duration
	Logger    *slog.Logger
	// Web holds the listen addresses and the exporter-toolkit web config file.
	Web *web.FlagConfig
	// PublicRead serves read-only pages, the read API and /metrics without
	// a user even when the web config sets basic_auth_users.
	PublicRead bool
	// AllowedHosts are Host names the agent answers to besides localhost,
	// IP literals, its listen addresses and the machine's hostname
	// ("*.example.com" for a whole domain); see hostAllowList.
	AllowedHosts []string
}

// Agent is a vigil daemon.
type Agent struct {
	opts     Options
	log      *slog.Logger
	exporter *metrics.Exporter
	sched    *scheduler.Scheduler
	store    *store.Store
	rules    *ruleEngine
	pager    *pager
	runbooks *runbook.Manager
	drills   *drills
	locker   interface{ Close() error }
	web      *webConfig
	hosts    *hostAllowList
	// secrets masks the config's secret values in what runbook and drill
	// steps print; refreshed on reload.
	secrets  *redact.Redactor
	csrf     csrfKey
	ui       *ui.Pages
	ready    atomic.Bool
	trim     heapTrimmer
	reloadMu sync.Mutex

	mu sync.RWMutex
	// started, ranSinceStart and warm tell the rule engine when the checks
	// have produced data since start (checksWarm).
	started       time.Time
	ranSinceStart map[string]bool
	warm          atomic.Bool
	cfg           *config.Config
	checks        map[string]config.Check
	jobs          []scheduler.Job
	last          map[string]probes.Result
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
	cfg, jobs, err := LoadJobs(opts.ConfigFile, filepath.Dir(opts.StoragePath), opts.Logger)
	if err != nil {
		return nil, err
	}
	groups, err := LoadRules(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: rule_files: %w", cfg.File, err)
	}
	webFile := ""
	if opts.Web != nil && opts.Web.WebConfigFile != nil {
		webFile = *opts.Web.WebConfigFile
	}
	wc, err := loadWebConfig(webFile, opts.Logger)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, opts.StoragePath, store.Options{Retention: opts.Retention, Logger: opts.Logger})
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	a := &Agent{
		opts:     opts,
		log:      opts.Logger,
		exporter: metrics.New(),
		store:    st,
		web:      wc,
		hosts:    newHostAllowList(listenAddresses(opts.Web), opts.AllowedHosts),
		secrets:  redact.New(config.SecretValues(cfg)),
		csrf:     newCSRFKey(),
		ui:       ui.New(),
		last:     map[string]probes.Result{},

		started:       time.Now(),
		ranSinceStart: map[string]bool{},
	}
	a.setConfig(cfg, jobs)
	if a.pager, err = newPager(ctx, a, cfg); err != nil {
		st.Close()
		return nil, err
	}
	a.exporter.AddWriter(a.pager.outbox.WritePrometheus)
	a.exporter.AddWriter(st.WritePrometheus)
	a.exporter.Counter("vigil_notify_drill_dropped_total")
	a.exportRefused()
	rbs, err := LoadRunbooks(cfg)
	if err != nil {
		st.Close()
		return nil, err
	}
	locker, state, err := newRunbookBackend(ctx, cfg, st, a.log)
	if err != nil {
		st.Close()
		return nil, err
	}
	a.locker = locker
	a.runbooks = runbook.NewManager(runbook.Options{Journal: st, Locker: locker, State: state, Env: runbookEnv(a), Logger: a.log})
	a.runbooks.SetRunbooks(rbs)
	a.exporter.AddWriter(a.runbooks.WritePrometheus)
	a.pager.onAlerts = a.runbooks.OnAlerts
	drs, err := LoadDrills(cfg)
	if err != nil {
		st.Close()
		return nil, err
	}
	a.drills = newDrills(a, drs)
	a.exporter.AddWriter(a.drills.metrics.WritePrometheus)
	a.rules = newRuleEngine(a)
	a.rules.apply(cfg, groups)
	a.sched = scheduler.New(scheduler.Options{
		MaxConcurrency: cfg.Global.MaxConcurrency,
		Logger:         opts.Logger,
		OnResult:       a.onResult,
		Override:       a.drills.override,
		OnStart:        a.onStart,
		OnStop:         a.onStop,
	})
	// The API shows each check's last known result until it runs again.
	latest, err := st.Latest(ctx)
	if err != nil {
		a.log.Warn("could not read last results from the store", "err", err)
	}
	for name, rec := range latest {
		a.last[name] = rec.Result
	}
	a.exporter.Gauge("vigil_build_info", 1,
		probes.Label{Name: "version", Value: version.Version},
		probes.Label{Name: "revision", Value: version.GetRevision()},
		probes.Label{Name: "goversion", Value: version.GoVersion})
	a.exporter.Gauge("vigil_start_time_seconds", float64(time.Now().Unix()))
	a.recordReload(true)
	return a, nil
}

// Run starts the checks and the HTTP server and blocks until ctx is done,
// then shuts down gracefully. SIGHUP reloads the config.
func (a *Agent) Run(ctx context.Context) error {
	defer a.closeStore()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	schedDone := make(chan struct{})
	go func() { a.sched.Run(ctx); close(schedDone) }()
	a.mu.RLock()
	jobs := a.jobs
	a.mu.RUnlock()
	if err := a.sched.Update(ctx, jobs); err != nil {
		return fmt.Errorf("start checks: %w", err)
	}

	if err := a.pager.start(ctx); err != nil {
		return err
	}
	if err := a.runbooks.Start(ctx); err != nil {
		return fmt.Errorf("start runbooks: %w", err)
	}
	defer func() {
		cancel()
		a.runbooks.Wait()
		// Frees this agent's locks at once (etcd: revokes the session).
		a.locker.Close()
	}()
	defer func() { cancel(); a.pager.outbox.Wait() }()
	// A drill's rollback always runs: at shutdown it is waited for, and a
	// drill a dead agent left running is rolled back now.
	defer func() { cancel(); a.drills.wg.Wait() }()
	a.drills.mu.Lock()
	a.drills.ctx = ctx
	a.drills.mu.Unlock()
	a.drills.wg.Go(func() { a.drills.recover(ctx) })
	go a.rules.run(ctx)
	var hostNames sync.WaitGroup
	defer hostNames.Wait()
	hostNames.Go(func() { a.hosts.learnDNSNames(ctx, a.log) })

	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second}
	srvErr := make(chan error, 1)
	go func() { srvErr <- serveWeb(ctx, srv, a.opts.Web, a.web, a.log) }()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	a.ready.Store(true)
	go a.releaseAfterStartup(ctx)
	a.log.Info("vigil started", "version", version.Version, "config", a.cfg.File, "checks", len(jobs), "storage", a.opts.StoragePath)
	var err error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-hup:
			if rerr := a.Reload(ctx); rerr != nil {
				a.log.Error("reload failed; keeping the running config", "err", rerr)
			}
		case serr := <-srvErr:
			if !errors.Is(serr, http.ErrServerClosed) {
				err = fmt.Errorf("http server: %w", serr)
			}
			break loop
		}
	}
	a.ready.Store(false)
	a.log.Info("shutting down")
	shutdownCtx, stop := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer stop()
	if serr := srv.Shutdown(shutdownCtx); serr != nil {
		a.log.Warn("http shutdown", "err", serr)
	}
	cancel()
	<-schedDone
	return err
}

// startupSettle is how long after start-up the agent lets go of the code
// pages only start-up needed: long enough for the first runs of the checks
// (start-up splay defaults to 10s).
const startupSettle = 30 * time.Second

// pageReleaseInterval is how often the agent hands back code pages again
// after the start-up release. Checks that run hourly fault their code in
// once an hour; without a periodic release it would stay resident for the
// rest of the hour. Pages in steady use fault back in at once, which costs
// a few milliseconds of minor faults per release.
const pageReleaseInterval = 5 * time.Minute

func (a *Agent) releaseAfterStartup(ctx context.Context) {
	wait := startupSettle
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		before, after, err := releaseStartupPages()
		if err != nil {
			a.log.Debug("could not release code pages", "err", err)
			return
		}
		a.log.Debug("released code pages", "rss_before_bytes", before, "rss_after_bytes", after)
		wait = pageReleaseInterval
	}
}

// heapTrimDelay is how long after the last check result the agent hands
// the heap those runs left free back to the OS; heapTrimMinInterval bounds
// how often it does (each trim is a forced GC).
const (
	heapTrimDelay       = time.Second
	heapTrimMinInterval = 30 * time.Second
)

// heapTrimmer returns free heap to the OS once a burst of check runs is
// over. A run of invoice_qr decodes a PNG and a PDF (several MB of
// short-lived images); after the next GC those pages are free but stay
// resident: the background scavenger only releases what exceeds 110% of the
// heap goal, so an idle agent keeps them until the next burst.
type heapTrimmer struct {
	mu    sync.Mutex
	timer *time.Timer
	last  time.Time
}

func (t *heapTrimmer) kick() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.timer == nil {
		t.timer = time.AfterFunc(heapTrimDelay, t.fire)
		return
	}
	t.timer.Reset(heapTrimDelay)
}

func (t *heapTrimmer) fire() {
	t.mu.Lock()
	if wait := heapTrimMinInterval - time.Since(t.last); wait > 0 {
		t.timer.Reset(wait)
		t.mu.Unlock()
		return
	}
	t.last = time.Now()
	t.mu.Unlock()
	debug.FreeOSMemory()
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
	cfg, jobs, err := LoadJobs(a.opts.ConfigFile, filepath.Dir(a.opts.StoragePath), a.log)
	if err != nil {
		a.recordReload(false)
		return err
	}
	groups, err := LoadRules(cfg)
	if err != nil {
		a.recordReload(false)
		return fmt.Errorf("%s: rule_files: %w", cfg.File, err)
	}
	plan, err := buildPagerPlan(cfg, a.externalURL(cfg))
	if err != nil {
		a.recordReload(false)
		return fmt.Errorf("%s: %w", cfg.File, err)
	}
	rbs, err := LoadRunbooks(cfg)
	if err != nil {
		a.recordReload(false)
		return err
	}
	drs, err := LoadDrills(cfg)
	if err != nil {
		a.recordReload(false)
		return err
	}
	a.mu.RLock()
	old, oldConcurrency := a.jobs, a.cfg.Global.MaxConcurrency
	a.mu.RUnlock()
	if cfg.Global.MaxConcurrency != oldConcurrency {
		a.log.Warn("global.max_concurrency changes take effect at restart", "running", oldConcurrency, "configured", cfg.Global.MaxConcurrency)
	}
	// Swap first so results of the new jobs find their labels.
	a.setConfig(cfg, jobs)
	a.rules.apply(cfg, groups)
	a.pager.apply(plan)
	a.secrets.Set(config.SecretValues(cfg))
	a.runbooks.SetRunbooks(rbs)
	a.drills.set(drs)
	if err := a.sched.Update(ctx, jobs); err != nil {
		return fmt.Errorf("apply config: %w", err)
	}
	// Removed and changed checks lose their series (a changed type or label
	// set would otherwise leave the old series behind); changed ones
	// re-create theirs on their next run.
	kept := map[string]string{}
	for _, j := range jobs {
		kept[j.Name] = j.Fingerprint
	}
	a.mu.Lock()
	for _, j := range old {
		if fp, ok := kept[j.Name]; !ok || fp != j.Fingerprint {
			a.exporter.Forget(j.Name)
		}
		if _, ok := kept[j.Name]; !ok {
			delete(a.last, j.Name)
		}
	}
	a.mu.Unlock()
	a.recordReload(true)
	a.log.Info("config reloaded", "config", cfg.File, "checks", len(jobs))
	return nil
}

func (a *Agent) setConfig(cfg *config.Config, jobs []scheduler.Job) {
	checks := make(map[string]config.Check, len(cfg.Checks))
	for _, c := range cfg.Checks {
		checks[c.Name] = c
	}
	a.mu.Lock()
	a.cfg, a.checks, a.jobs = cfg, checks, jobs
	a.mu.Unlock()
}

func (a *Agent) recordReload(ok bool) {
	if ok {
		a.exporter.Gauge("vigil_config_last_reload_successful", 1)
		a.exporter.Gauge("vigil_config_last_reload_success_timestamp_seconds", float64(time.Now().Unix()))
		return
	}
	a.exporter.Gauge("vigil_config_last_reload_successful", 0)
}

// onStart exports a streaming check's live values while its runner runs.
func (a *Agent) onStart(job *scheduler.Job) {
	col, ok := job.Prober.(probes.Collector)
	if !ok {
		return
	}
	a.mu.RLock()
	labels := a.checks[job.Name].Labels
	a.mu.RUnlock()
	a.exporter.SetCollector(metrics.Check{Name: job.Name, Type: job.Type, Labels: labels}, col)
}

func (a *Agent) onStop(job *scheduler.Job) {
	if _, ok := job.Prober.(probes.Collector); ok {
		a.exporter.RemoveCollector(job.Name)
	}
}

func (a *Agent) onResult(job *scheduler.Job, r probes.Result) {
	a.mu.Lock()
	labels := a.checks[job.Name].Labels
	a.last[job.Name] = r
	a.mu.Unlock()
	a.exporter.Observe(metrics.Check{Name: job.Name, Type: job.Type, Labels: labels, Interval: job.Interval}, r)
	// Only now may the rules treat the check as warm: marking it before the
	// exporter has the result lets a restarted agent evaluate an empty
	// series, resolve a restored firing alert and page it again.
	a.mu.Lock()
	a.ranSinceStart[job.Name] = true
	a.mu.Unlock()
	a.drills.onResult(job.Name, r)
	a.store.Record(store.Record{Check: job.Name, Type: job.Type, Result: r})
	a.trim.kick()
	if !r.Success {
		a.log.Warn("check failed", "check", job.Name, "type", job.Type, "reason", string(r.Reason), "msg", r.Message, "duration", r.Duration)
	} else {
		a.log.Debug("check passed", "check", job.Name, "type", job.Type, "duration", r.Duration)
	}
}
