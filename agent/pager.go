package agent

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-project/vigil/agent/config"
	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/agent/notify/alertmanager"
	"github.com/vigil-project/vigil/agent/notify/outbox"
	"github.com/vigil-project/vigil/agent/notify/route"
	"github.com/vigil-project/vigil/agent/store"
	"github.com/vigil-project/vigil/rules"
)

// pager is the agent's paging side: it receives firing and resolved
// alerts from the rule engine (rules.Notifier), pushes them to every
// Alertmanager peer, and routes them to receivers through the dispatcher;
// everything goes out through the durable outbox.
type pager struct {
	a        *Agent
	outbox   *outbox.Outbox
	silences *route.Silences
	sink     *sink
	// onAlerts also receives every alert (runbook triggers).
	onAlerts func([]notify.Alert)

	mu         sync.RWMutex
	plan       *pagerPlan
	dispatcher *route.Dispatcher
	cancel     context.CancelFunc
	ctx        context.Context
}

// pagerPlan is what one config builds: targets, route tree, inhibitors.
type pagerPlan struct {
	targets     []outbox.Target
	peers       []string // Alertmanager targets
	peerDrills  map[string]bool
	receivers   map[string][]string // receiver → targets
	resolved    map[string]bool
	route       *route.Route
	inhibit     []*route.Inhibitor
	drill       string
	externalURL string
}

var _ rules.Notifier = (*pager)(nil)

func newPager(ctx context.Context, a *Agent, cfg *config.Config) (*pager, error) {
	plan, err := buildPagerPlan(cfg, a.externalURL(cfg))
	if err != nil {
		return nil, err
	}
	sil, err := route.NewSilences(ctx, a.store, time.Now)
	if err != nil {
		return nil, fmt.Errorf("load silences: %w", err)
	}
	n := cfg.Notify
	p := &pager{a: a, silences: sil, plan: plan, outbox: outbox.New(outbox.Options{
		Store: a.store, Logger: a.log, Timeout: time.Duration(n.Timeout), MinBackoff: time.Duration(n.MinBackoff),
		MaxBackoff: time.Duration(n.MaxBackoff), MaxAge: time.Duration(n.MaxAge),
	})}
	if p.sink, err = newSink(ctx, p); err != nil {
		return nil, fmt.Errorf("load notification log: %w", err)
	}
	p.dispatcher = p.newDispatcher(plan)
	return p, nil
}

// externalURL is notify.external_url or http://<host>:<listen port>.
func (a *Agent) externalURL(cfg *config.Config) string {
	if cfg.Notify.ExternalURL != "" {
		return strings.TrimSuffix(cfg.Notify.ExternalURL, "/")
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	port := "9877"
	if a.opts.Web != nil && a.opts.Web.WebListenAddresses != nil && len(*a.opts.Web.WebListenAddresses) > 0 {
		if _, p, err := net.SplitHostPort((*a.opts.Web.WebListenAddresses)[0]); err == nil {
			port = p
		}
	}
	return "http://" + net.JoinHostPort(host, port)
}

// buildPagerPlan builds every integration; a bad template or an unreadable
// secret file fails the (re)load.
func buildPagerPlan(cfg *config.Config, externalURL string) (*pagerPlan, error) {
	n := cfg.Notify
	plan := &pagerPlan{receivers: map[string][]string{}, resolved: map[string]bool{}, peerDrills: map[string]bool{},
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
	for i := range n.InhibitRules {
		in, err := n.InhibitRules[i].Compile()
		if err != nil {
			return nil, fmt.Errorf("notify.inhibit_rules[%d]: %w", i, err)
		}
		plan.inhibit = append(plan.inhibit, in)
	}
	return plan, nil
}

// buildIntegration makes the notifier of one configured integration
// through the kind's registration.
func buildIntegration(in config.Integration, client *http.Client) (notify.Notifier, error) {
	return notify.Build(in.Kind, in.Config, client)
}

func (p *pager) newDispatcher(plan *pagerPlan) *route.Dispatcher {
	if plan.route == nil {
		return nil
	}
	return route.NewDispatcher(route.Options{
		Route: plan.route, Inhibit: plan.inhibit, Silences: p.silences, Sink: p.sink, DrillReceiver: plan.drill,
		ExternalURL: plan.externalURL, Logger: p.a.log,
		SendResolved: func(r string) bool { return plan.resolved[r] },
		OnDrop:       func() { p.a.exporter.Inc("vigil_notify_drill_dropped_total") },
	})
}

// start loads pending deliveries and starts the workers and the dispatcher.
func (p *pager) start(ctx context.Context) error {
	p.mu.Lock()
	p.ctx = ctx
	plan, d := p.plan, p.dispatcher
	p.mu.Unlock()
	if err := p.outbox.Start(ctx, plan.targets); err != nil {
		return fmt.Errorf("start outbox: %w", err)
	}
	p.runDispatcher(d)
	return nil
}

func (p *pager) runDispatcher(d *route.Dispatcher) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cancel != nil {
		p.cancel()
		p.cancel = nil
	}
	if d == nil || p.ctx == nil {
		return
	}
	ctx, cancel := context.WithCancel(p.ctx)
	p.cancel = cancel
	go d.Run(ctx)
}

// apply switches to a new config's plan. Groups being timed are rebuilt
// from the alerts the rule engine re-sends; the notification log keeps a
// reload from paging again.
func (p *pager) apply(plan *pagerPlan) {
	d := p.newDispatcher(plan)
	p.mu.Lock()
	p.plan, p.dispatcher = plan, d
	p.mu.Unlock()
	p.outbox.SetTargets(plan.targets)
	p.runDispatcher(d)
}

// Send takes the rule engine's alerts.
func (p *pager) Send(alerts []*rules.Alert) {
	p.mu.RLock()
	plan, d := p.plan, p.dispatcher
	p.mu.RUnlock()
	now := time.Now()
	out := make([]notify.Alert, 0, len(alerts))
	for _, a := range alerts {
		out = append(out, p.convert(a, plan.externalURL, now))
	}
	if d != nil {
		d.Put(out)
	}
	if p.onAlerts != nil {
		p.onAlerts(out)
	}
	if len(plan.peers) == 0 {
		return
	}
	ctx := context.Background()
	for _, peer := range plan.peers {
		var batch []notify.Alert
		for _, a := range out {
			if a.Labels["drill"] != "true" || plan.peerDrills[peer] {
				batch = append(batch, a)
			}
		}
		if len(batch) == 0 {
			continue
		}
		m := &notify.Message{Receiver: "alertmanager", GroupKey: peer, Alerts: batch, ExternalURL: plan.externalURL, Created: now}
		if err := p.outbox.Enqueue(ctx, m, peer, []string{peer}); err != nil {
			p.a.log.Error("queue alerts for Alertmanager", "target", peer, "err", err)
		}
	}
}

// convert maps a rule-engine alert to the Alertmanager model, with the
// agent's external labels and the state of the check it is about.
func (p *pager) convert(a *rules.Alert, externalURL string, now time.Time) notify.Alert {
	lbls := a.Labels.Map()
	p.a.mu.RLock()
	for k, v := range p.a.cfg.Global.Labels {
		if _, ok := lbls[k]; !ok {
			lbls[k] = v
		}
	}
	p.a.mu.RUnlock()
	out := notify.Alert{Labels: lbls, Annotations: a.Annotations.Map(), StartsAt: a.FiredAt,
		GeneratorURL: externalURL + "/api/v1/alerts?alertname=" + url.QueryEscape(a.Labels.Get(labels.AlertName))}
	if out.StartsAt.IsZero() {
		out.StartsAt = a.ActiveAt
	}
	if a.State == rules.StateInactive && !a.ResolvedAt.IsZero() {
		out.EndsAt = a.ResolvedAt
	} else {
		out.EndsAt = a.ValidUntil
	}
	out.Fingerprint = notify.Fingerprint(lbls)
	out.Check = p.a.checkInfo(lbls["check"])
	return out
}

// checkInfo is the last result of a configured check, for pages.
func (a *Agent) checkInfo(name string) *notify.CheckInfo {
	if name == "" {
		return nil
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	c, ok := a.checks[name]
	if !ok {
		return nil
	}
	r, ok := a.last[name]
	if !ok {
		return &notify.CheckInfo{Name: name, Type: c.Type}
	}
	return &notify.CheckInfo{Name: name, Type: c.Type, Success: r.Success, Reason: string(r.Reason), Message: notify.Truncate(r.Message, 500),
		Diagnostics: diagnosticLines(r.Diagnostics)}
}

// diagnosticLines renders diagnostics one line each (hops one per line).
func diagnosticLines(d map[string]any) []string {
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		// Lists (traceroute hops, violations) one element per line; hops
		// print through their String method.
		if v := reflect.ValueOf(d[k]); v.Kind() == reflect.Slice && v.Type().Elem().Kind() != reflect.Uint8 {
			for i := range v.Len() {
				out = append(out, fmt.Sprintf("%s: %v", k, v.Index(i).Interface()))
			}
			continue
		}
		out = append(out, fmt.Sprintf("%s: %v", k, d[k]))
	}
	if len(out) > 40 {
		out = append(out[:40], fmt.Sprintf("… %d more lines", len(out)-40))
	}
	return out
}

// sink queues the dispatcher's notifications with their log entries in
// one transaction, and serves the notification log from memory (loaded at
// start, written through).
type sink struct {
	p *pager

	mu  sync.Mutex
	log map[string]store.NotifyLogEntry
}

func newSink(ctx context.Context, p *pager) (*sink, error) {
	log, err := p.a.store.NotifyLogs(ctx)
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
		items, err := s.p.outbox.Items(m, m.Receiver+"\x00"+m.GroupKey, receivers[m.Receiver])
		if err != nil {
			return err
		}
		rows = append(rows, store.LoggedItems{Items: items, Receiver: m.Receiver, GroupKey: m.GroupKey,
			Entry: store.NotifyLogEntry{FiringHash: n.Entry.FiringHash, ResolvedHash: n.Entry.ResolvedHash, SentAt: n.Entry.SentAt}})
		all = append(all, items...)
	}
	// A store that cannot be written (full disk, damaged file) must not
	// stop paging: the notifications and their log entries are kept in
	// memory and delivered from there (AcceptUnsaved).
	saveErr := s.p.a.store.EnqueueWithLog(ctx, rows)
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

// CheckPaging builds every paging integration of a config (templates
// parsed, secret files read) without starting anything, for check-config,
// and summarises it; empty when nothing pages.
func CheckPaging(cfg *config.Config) (string, error) {
	plan, err := buildPagerPlan(cfg, "http://localhost")
	if err != nil {
		return "", err
	}
	if len(plan.targets) == 0 {
		return "", nil
	}
	return fmt.Sprintf("paging: %d Alertmanager peer(s), %d receiver(s) with %d integration(s)",
		len(plan.peers), len(plan.receivers), len(plan.targets)-len(plan.peers)), nil
}
