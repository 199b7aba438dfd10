// Package paging sends alerts to people: every alert to each Alertmanager
// peer, and — for deployments without an Alertmanager — through the route
// tree, grouping, inhibition and silences of the dispatcher to receivers.
// Everything goes out through the durable outbox; the dispatcher's
// notification log is kept with the queued notifications in one
// transaction. A config reload swaps the plan; Run owns the dispatcher
// and outbox goroutines.
package paging

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-project/vigil/agent/config"
	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/agent/notify/alertmanager"
	"github.com/vigil-project/vigil/agent/notify/outbox"
	"github.com/vigil-project/vigil/agent/notify/route"
	"github.com/vigil-project/vigil/agent/runbook"
	"github.com/vigil-project/vigil/agent/store"
)

// Store is the paging side's persistence (agent/store implements it):
// the outbox, silences and the notification log.
type Store interface {
	outbox.Store
	route.SilenceStore
	NotifyLogs(ctx context.Context) (map[string]store.NotifyLogEntry, error)
	EnqueueWithLog(ctx context.Context, rows []store.LoggedItems) error
}

// Options are the pager's dependencies.
type Options struct {
	Store  Store
	Logger *slog.Logger
	// OnDrillDropped counts a drill alert or message that had nowhere to
	// go (no drill receiver).
	OnDrillDropped func()
	// ExternalLabels are added to runbook messages, as to alerts.
	ExternalLabels func() map[string]string
	// Dependency names the failing check an alert's check depends on, ""
	// for none (see route.Options.Dependency).
	Dependency func(lbls map[string]string) string
}

// Pager receives converted alerts (Alerts) and runbook messages
// (NotifyReceiver, NotifyDrill) and pages.
type Pager struct {
	opts     Options
	outbox   *outbox.Outbox
	silences *route.Silences
	sink     *sink
	// changed wakes Run when Apply installed a new dispatcher.
	changed chan struct{}

	mu         sync.RWMutex
	plan       *Plan
	dispatcher *route.Dispatcher
}

// Plan is what one config builds: targets, route tree, inhibitors.
type Plan struct {
	targets     []outbox.Target
	peers       []string // Alertmanager targets
	peerDrills  map[string]bool
	receivers   map[string][]string // receiver → targets
	resolved    map[string]bool
	route       *route.Route
	inhibit     []*route.Inhibitor
	intervals   *route.TimeIntervals
	drill       string
	externalURL string
}

// New loads silences and the notification log and builds the pager for a
// plan; Run starts it.
func New(ctx context.Context, opts Options, cfg *config.Config, plan *Plan) (*Pager, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.OnDrillDropped == nil {
		opts.OnDrillDropped = func() {}
	}
	sil, err := route.NewSilences(ctx, opts.Store, time.Now)
	if err != nil {
		return nil, fmt.Errorf("load silences: %w", err)
	}
	n := cfg.Notify
	p := &Pager{opts: opts, silences: sil, plan: plan, changed: make(chan struct{}, 1), outbox: outbox.New(outbox.Options{
		Store: opts.Store, Logger: opts.Logger, Timeout: time.Duration(n.Timeout), MinBackoff: time.Duration(n.MinBackoff),
		MaxBackoff: time.Duration(n.MaxBackoff), MaxAge: time.Duration(n.MaxAge),
	})}
	if p.sink, err = newSink(ctx, p); err != nil {
		return nil, fmt.Errorf("load notification log: %w", err)
	}
	p.dispatcher = p.newDispatcher(plan)
	return p, nil
}

// BuildPlan builds every integration; a bad template or an unreadable
// secret file fails the (re)load.
func BuildPlan(cfg *config.Config, externalURL string) (*Plan, error) {
	n := cfg.Notify
	plan := &Plan{receivers: map[string][]string{}, resolved: map[string]bool{}, peerDrills: map[string]bool{},
		drill: n.DrillReceiver, externalURL: externalURL}
	client := &http.Client{Timeout: time.Duration(n.Timeout)}
	for i, am := range n.Alertmanagers {
		nt, err := alertmanager.New(am, client)
		if err != nil {
			return nil, fmt.Errorf("notify.alertmanagers[%d]: %w", i, err)
		}
		name := fmt.Sprintf("alertmanager[%d]", i)
		plan.targets = append(plan.targets, outbox.Target{Name: name, Receiver: "alertmanager", Integration: "alertmanager", Notifier: nt})
		plan.peers = append(plan.peers, name)
		plan.peerDrills[name] = am.SendDrills
	}
	for _, r := range n.Receivers {
		plan.resolved[r.Name] = r.WantsResolved()
		for _, in := range r.Integrations() {
			nt, err := buildIntegration(in, client)
			if err != nil {
				return nil, fmt.Errorf("notify.receivers %s %s[%d]: %w", r.Name, in.Key, in.Index, err)
			}
			t := outbox.Target{Name: in.Target(r.Name), Receiver: r.Name, Integration: in.Kind, Notifier: nt,
				Concurrency: r.Concurrency, Rate: r.RateLimit, Burst: r.RateBurst}
			plan.targets = append(plan.targets, t)
			plan.receivers[r.Name] = append(plan.receivers[r.Name], t.Name)
		}
	}
	if n.Route != nil {
		rt, err := n.Route.Compile()
		if err != nil {
			return nil, fmt.Errorf("notify.route: %w", err)
		}
		plan.route = rt
	}
	if len(n.TimeIntervals) > 0 {
		plan.intervals = route.CompileTimeIntervals(n.TimeIntervals)
	}
	for i := range n.InhibitRules {
		in, err := n.InhibitRules[i].Compile()
		if err != nil {
			return nil, fmt.Errorf("notify.inhibit_rules[%d]: %w", i, err)
		}
		plan.inhibit = append(plan.inhibit, in)
	}
	return plan, nil
}

func buildIntegration(in config.Integration, client *http.Client) (notify.Notifier, error) {
	return notify.Build(in.Kind, in.Config, client)
}

// ExternalURL is notify.external_url or http://<host name>:<port of the
// first listen address> (default 9877).
func ExternalURL(cfg *config.Config, listen []string) string {
	if cfg.Notify.ExternalURL != "" {
		return strings.TrimSuffix(cfg.Notify.ExternalURL, "/")
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	port := "9877"
	if len(listen) > 0 {
		if _, p, err := net.SplitHostPort(listen[0]); err == nil {
			port = p
		}
	}
	return "http://" + net.JoinHostPort(host, port)
}

// Check builds every paging integration of a config (templates parsed,
// secret files read) without starting anything, for check-config, and
// summarises it; empty when nothing pages.
func Check(cfg *config.Config) (string, error) {
	plan, err := BuildPlan(cfg, "http://localhost")
	if err != nil {
		return "", err
	}
	if len(plan.targets) == 0 {
		return "", nil
	}
	return fmt.Sprintf("paging: %d Alertmanager peer(s), %d receiver(s) with %d integration(s), %d route(s), %d inhibit rule(s), %d time interval(s)",
		len(plan.peers), len(plan.receivers), len(plan.targets)-len(plan.peers), countRoutes(cfg.Notify.Route), len(plan.inhibit), len(plan.intervals.Names())), nil
}

// countRoutes counts the nodes of a route tree (the root included).
func countRoutes(c *route.Config) int {
	if c == nil {
		return 0
	}
	n := 1
	for i := range c.Routes {
		n += countRoutes(&c.Routes[i])
	}
	return n
}

func (p *Pager) newDispatcher(plan *Plan) *route.Dispatcher {
	if plan.route == nil {
		return nil
	}
	return route.NewDispatcher(route.Options{
		Route: plan.route, Inhibit: plan.inhibit, Silences: p.silences, TimeIntervals: plan.intervals, Sink: p.sink, DrillReceiver: plan.drill,
		ExternalURL: plan.externalURL, Logger: p.opts.Logger,
		SendResolved: func(r string) bool { return plan.resolved[r] },
		OnDrop:       p.opts.OnDrillDropped,
		Dependency:   p.opts.Dependency,
	})
}

// Run loads pending deliveries, starts the outbox workers and the
// dispatcher, and runs until ctx is done. A new plan (Apply) replaces the
// dispatcher: the old one has stopped before the new one starts. Run
// returns once the dispatcher, the workers and their deliveries have
// stopped.
func (p *Pager) Run(ctx context.Context) error {
	p.mu.RLock()
	plan := p.plan
	p.mu.RUnlock()
	if err := p.outbox.Start(ctx, plan.targets); err != nil {
		return fmt.Errorf("start outbox: %w", err)
	}
	defer p.outbox.Wait()
	var running *route.Dispatcher
	stop := func() {}
	for {
		p.mu.RLock()
		d := p.dispatcher
		p.mu.RUnlock()
		if d != running {
			stop()
			running, stop = d, startDispatcher(ctx, d)
		}
		select {
		case <-ctx.Done():
			stop()
			return nil
		case <-p.changed:
		}
	}
}

// startDispatcher runs d until the returned stop is called, which returns
// once d has stopped.
func startDispatcher(ctx context.Context, d *route.Dispatcher) (stop func()) {
	if d == nil {
		return func() {}
	}
	dctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(dctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// Apply switches to a new config's plan. Groups being timed are rebuilt
// from the alerts the rule engine re-sends; the notification log keeps a
// reload from paging again.
func (p *Pager) Apply(plan *Plan) {
	d := p.newDispatcher(plan)
	p.mu.Lock()
	p.plan, p.dispatcher = plan, d
	p.mu.Unlock()
	p.outbox.SetTargets(plan.targets)
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

// Alerts routes alerts through the dispatcher and queues them for every
// Alertmanager peer (drill alerts only for peers that take them).
func (p *Pager) Alerts(ctx context.Context, alerts []notify.Alert) {
	p.mu.RLock()
	plan, d := p.plan, p.dispatcher
	p.mu.RUnlock()
	if d != nil {
		d.Put(alerts)
	}
	now := time.Now()
	for _, peer := range plan.peers {
		var batch []notify.Alert
		for _, a := range alerts {
			if a.Labels["drill"] != "true" || plan.peerDrills[peer] {
				batch = append(batch, a)
			}
		}
		if len(batch) == 0 {
			continue
		}
		m := &notify.Message{Receiver: "alertmanager", GroupKey: peer, Alerts: batch, ExternalURL: plan.externalURL, Created: now}
		if err := p.outbox.Enqueue(ctx, m, peer, []string{peer}); err != nil {
			p.opts.Logger.Error("queue alerts for Alertmanager", "target", peer, "err", err)
		}
	}
}

// ExternalURL is the running plan's external URL.
func (p *Pager) ExternalURL() string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.plan.externalURL
}

// Silences are the pager's silences.
func (p *Pager) Silences() *route.Silences { return p.silences }

// Queues describes the outbox queues per target.
func (p *Pager) Queues() []outbox.Stats { return p.outbox.Queues() }

// WritePrometheus writes the outbox's metrics and whether each
// maintenance window holds.
func (p *Pager) WritePrometheus(w io.Writer) {
	p.outbox.WritePrometheus(w)
	p.mu.RLock()
	tis := p.plan.intervals
	p.mu.RUnlock()
	names := tis.Names()
	if len(names) == 0 {
		return
	}
	// Only whether each holds: the next change (a scan of the coming
	// year) is for the API and the pages, not for every scrape.
	now := time.Now()
	fmt.Fprintln(w, "# HELP vigil_notify_time_interval_active 1 while the named time interval (notify.time_intervals) holds: routes that mute with it send nothing, routes active only within it page.")
	fmt.Fprintln(w, "# TYPE vigil_notify_time_interval_active gauge")
	for _, name := range names {
		v := 0
		if tis.Contains(name, now) {
			v = 1
		}
		fmt.Fprintf(w, "vigil_notify_time_interval_active{time_interval=%q} %d\n", name, v)
	}
}

// Maintenance lists the configured time intervals at now, by name.
func (p *Pager) Maintenance(now time.Time) []route.Window {
	p.mu.RLock()
	plan := p.plan
	p.mu.RUnlock()
	return route.Maintenance(plan.route, plan.intervals, now)
}

// Muted says why an alert with these labels is not paged now: silences,
// inhibition, maintenance windows.
func (p *Pager) Muted(lbls map[string]string) route.Mute {
	p.mu.RLock()
	d := p.dispatcher
	p.mu.RUnlock()
	if d == nil {
		return route.Mute{SilencedBy: p.silences.Silenced(lbls, time.Now())}
	}
	return d.Muted(lbls)
}

// NotifyReceiver sends a runbook's notify step to a receiver through the
// outbox, as an alert named RunbookNotification.
func (p *Pager) NotifyReceiver(ctx context.Context, receiver, title, message string) error {
	return p.send(ctx, receiver, receiver, title, message, nil)
}

// NotifyDrill sends a drill's runbook message to the drill receiver, never
// to the receiver the step names; without a drill receiver it is dropped
// and counted, as drill alerts are.
func (p *Pager) NotifyDrill(ctx context.Context, drillID, receiver, title, message string) error {
	p.mu.RLock()
	to := p.plan.drill
	p.mu.RUnlock()
	if to == "" {
		p.opts.OnDrillDropped()
		return nil
	}
	return p.send(ctx, to, receiver, title, message, map[string]string{"drill": "true", "drill_id": drillID})
}

func (p *Pager) send(ctx context.Context, to, receiver, title, message string, extra map[string]string) error {
	p.mu.RLock()
	plan := p.plan
	p.mu.RUnlock()
	targets := plan.receivers[to]
	if len(targets) == 0 {
		return fmt.Errorf("receiver %q is not configured", to)
	}
	now := time.Now()
	lbls := map[string]string{labels.AlertName: "RunbookNotification", "receiver": receiver}
	if p.opts.ExternalLabels != nil {
		for k, v := range p.opts.ExternalLabels() {
			lbls[k] = v
		}
	}
	for k, v := range extra {
		lbls[k] = v
	}
	ann := map[string]string{"summary": title, "description": message}
	// The run the message comes from, and where to see it.
	if id := runbook.RunIDFrom(ctx); id != "" {
		lbls["run_id"] = id
		ann["run_url"] = plan.externalURL + "/runbooks/runs/" + url.PathEscape(id)
	}
	a := notify.Alert{Labels: lbls, Annotations: ann, StartsAt: now, EndsAt: now.Add(time.Minute), Fingerprint: notify.Fingerprint(lbls),
		GeneratorURL: ann["run_url"]}
	m := &notify.Message{Receiver: to, GroupKey: "{runbook}:" + title, Alerts: []notify.Alert{a}, ExternalURL: plan.externalURL, Created: now}
	return p.outbox.Enqueue(ctx, m, to+"\x00"+m.GroupKey, targets)
}

// TestAlertName names the alert of `vigil notify test`.
const TestAlertName = "VigilTestNotification"

// SendTest sends a labelled test page (alertname VigilTestNotification,
// test="true") to a receiver's integrations, or with receiver
// "alertmanager" to the Alertmanager peers, through the outbox as any
// page: the same templates, retries and outcome. It returns the queued
// items; their outcome is in the store.
func (p *Pager) SendTest(ctx context.Context, receiver, by string) ([]*store.OutboxItem, error) {
	p.mu.RLock()
	plan := p.plan
	p.mu.RUnlock()
	targets := plan.receivers[receiver]
	if receiver == "alertmanager" {
		targets = plan.peers
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("%w %q", ErrUnknownReceiver, receiver)
	}
	now := time.Now()
	lbls := map[string]string{labels.AlertName: TestAlertName, "receiver": receiver, "severity": "none", "test": "true"}
	if p.opts.ExternalLabels != nil {
		for k, v := range p.opts.ExternalLabels() {
			if _, own := lbls[k]; !own {
				lbls[k] = v
			}
		}
	}
	ann := map[string]string{
		"summary":     "Test page from vigil: no action needed",
		"description": fmt.Sprintf("Sent by `vigil notify test %s` (by %s) to check that pages reach this receiver.", receiver, by),
	}
	a := notify.Alert{Labels: lbls, Annotations: ann, StartsAt: now, EndsAt: now.Add(5 * time.Minute), Fingerprint: notify.Fingerprint(lbls),
		GeneratorURL: plan.externalURL + "/alerts"}
	m := &notify.Message{Receiver: receiver, GroupKey: "{test}:" + receiver, Alerts: []notify.Alert{a}, ExternalURL: plan.externalURL, Created: now}
	return p.outbox.EnqueueItems(ctx, m, receiver+"\x00"+m.GroupKey, targets)
}

// ErrUnknownReceiver is a receiver the config does not have.
var ErrUnknownReceiver = errors.New("no such receiver (nor Alertmanager peers for \"alertmanager\")")

// sink queues the dispatcher's notifications with their log entries in
// one transaction, and serves the notification log from memory (loaded at
// start, written through).
type sink struct {
	p *Pager

	mu  sync.Mutex
	log map[string]store.NotifyLogEntry
}

func newSink(ctx context.Context, p *Pager) (*sink, error) {
	log, err := p.opts.Store.NotifyLogs(ctx)
	if err != nil {
		return nil, err
	}
	return &sink{p: p, log: log}, nil
}

func (s *sink) Deliver(ctx context.Context, batch []route.Notification) error {
	s.p.mu.RLock()
	receivers := s.p.plan.receivers
	s.p.mu.RUnlock()
	rows := make([]store.LoggedItems, 0, len(batch))
	var all []*store.OutboxItem
	for _, n := range batch {
		m := n.Message
		var items []*store.OutboxItem
		if len(m.Alerts) > 0 { // none: the log entry only (route.Notification)
			var err error
			if items, err = s.p.outbox.Items(m, m.Receiver+"\x00"+m.GroupKey, receivers[m.Receiver]); err != nil {
				return err
			}
		}
		rows = append(rows, store.LoggedItems{Items: items, Receiver: m.Receiver, GroupKey: m.GroupKey,
			Entry: store.NotifyLogEntry{FiringHash: n.Entry.FiringHash, ResolvedHash: n.Entry.ResolvedHash, SentAt: n.Entry.SentAt}})
		all = append(all, items...)
	}
	// A store that cannot be written (full disk, damaged file) must not
	// stop paging: the notifications and their log entries are kept in
	// memory and delivered from there (AcceptUnsaved).
	saveErr := s.p.opts.Store.EnqueueWithLog(ctx, rows)
	s.mu.Lock()
	for _, r := range rows {
		s.log[r.Receiver+"\x00"+r.GroupKey] = r.Entry
	}
	s.mu.Unlock()
	if saveErr != nil {
		s.p.outbox.AcceptUnsaved(all, saveErr)
		return nil
	}
	s.p.outbox.Accept(all)
	return nil
}

func (s *sink) LastSent(_ context.Context, receiver, groupKey string) (route.LogEntry, bool, error) {
	s.mu.Lock()
	e, ok := s.log[receiver+"\x00"+groupKey]
	s.mu.Unlock()
	return route.LogEntry{FiringHash: e.FiringHash, ResolvedHash: e.ResolvedHash, SentAt: e.SentAt}, ok, nil
}
