package route

import (
	"context"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vigil-project/vigil/agent/notify"
)

// LogEntry is the last notification sent for an alert group (Alertmanager's
// notification log). Kept in the store, it stops a restarted agent from
// paging again for alerts it already paged for.
//
// FiringHash and ResolvedHash hold the fingerprints of the alerts, sorted
// and joined with "," (see alertSet): like Alertmanager's notification log,
// the dispatcher asks whether the alerts firing now are a subset of those
// last notified, which a hash cannot answer. (Entries written by older
// agents hold a hash; they read as an unknown set, so the group is paged
// once more rather than never.)
type LogEntry struct {
	FiringHash, ResolvedHash string
	SentAt                   time.Time
}

// Notification is one message the dispatcher hands over, with the log
// entry to record with it.
//
// A message without alerts only records its entry: every alert of the
// group resolved and the receiver does not want resolved notifications,
// but the log must forget the firing alerts, or one that fires again
// within repeat_interval would not be paged.
type Notification struct {
	Message *notify.Message
	Entry   LogEntry
}

// Sink takes the dispatcher's notifications: Deliver must make every
// message durable (queue it in the outbox) together with its log entry, all
// or nothing — one transaction for everything due at once, so a burst of
// alerts does not cost a commit each.
type Sink interface {
	Deliver(ctx context.Context, batch []Notification) error
	LastSent(ctx context.Context, receiver, groupKey string) (LogEntry, bool, error)
}

// Options configures a Dispatcher.
type Options struct {
	Route    *Route
	Inhibit  []*Inhibitor
	Silences *Silences
	// TimeIntervals are the maintenance windows routes name; nil when none.
	TimeIntervals *TimeIntervals
	Sink          Sink
	// SendResolved reports whether a receiver wants resolved notifications.
	SendResolved func(receiver string) bool
	// DrillReceiver takes alerts labelled drill="true"; when empty they are
	// dropped (counted and logged), so a drill never pages the real on-call.
	DrillReceiver string
	ExternalURL   string
	Logger        *slog.Logger
	Now           func() time.Time
	// OnDrop is called for each drill alert dropped for want of a drill
	// receiver (metrics).
	OnDrop func()
	// Dependency names the failing check an alert's check depends on
	// (depends_on), "" when none: such an alert is held back like an
	// inhibited one, and its resolve still goes out. nil: no dependencies.
	Dependency func(lbls map[string]string) string
}

// Dispatcher groups alerts by route and group labels and hands each group
// to the sink when its timers say so.
type Dispatcher struct {
	opts Options
	// drill holds, for each node of the route tree, the route its drill
	// alerts take instead: the drill receiver with the node's timings.
	drill map[*Route]*Route

	mu     sync.Mutex
	groups map[string]*group
	// active holds every alert the dispatcher knows, by fingerprint, for
	// inhibition.
	active map[string]notify.Alert
	wake   chan struct{}
}

type group struct {
	route    *Route
	key      string
	labels   map[string]string
	alerts   map[string]notify.Alert
	next     time.Time // next flush
	flushed  bool      // first notification done (group_wait over)
	changed  bool
	inflight bool
}

// NewDispatcher builds a dispatcher.
func NewDispatcher(opts Options) *Dispatcher {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.SendResolved == nil {
		opts.SendResolved = func(string) bool { return true }
	}
	d := &Dispatcher{opts: opts, groups: map[string]*group{}, active: map[string]notify.Alert{}, wake: make(chan struct{}, 1)}
	if opts.DrillReceiver != "" {
		d.drill = map[*Route]*Route{}
		opts.Route.walk(func(node *Route) {
			// A drill alert is timed as the real one would be (the drill
			// measures the real time to page), but goes to the drill
			// receiver and ignores maintenance windows: a drill is planned.
			r := *node
			r.Receiver, r.Key, r.Routes, r.Matchers = opts.DrillReceiver, "{drill}"+node.Key, nil, nil
			r.MuteTimeIntervals, r.ActiveTimeIntervals = nil, nil
			// Each drill is its own incident: its alerts form their own
			// groups (a fresh group_wait), not updates of the last drill's
			// group held back by group_interval.
			if !r.GroupByAll && !slices.Contains(r.GroupBy, "drill_id") {
				r.GroupBy = append(slices.Clone(r.GroupBy), "drill_id")
			}
			d.drill[node] = &r
		})
	}
	return d
}

// Put adds or updates alerts (firing or resolved).
func (d *Dispatcher) Put(alerts []notify.Alert) {
	now := d.opts.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, a := range alerts {
		if a.Fingerprint == "" {
			a.Fingerprint = notify.Fingerprint(a.Labels)
		}
		if a.Resolved(now) {
			delete(d.active, a.Fingerprint)
		} else {
			d.active[a.Fingerprint] = a
		}
		var routes []*Route
		if a.Labels["drill"] == "true" {
			if d.drill == nil {
				d.opts.Logger.Info("drill alert not sent: no drill receiver configured", "alertname", a.Labels["alertname"])
				if d.opts.OnDrop != nil {
					d.opts.OnDrop()
				}
				continue
			}
			// The first route the alert would take, once: a drill pages
			// the drill receiver once however many routes continue.
			routes = []*Route{d.drill[d.opts.Route.Match(a.Labels)[0]]}
		} else {
			routes = d.opts.Route.Match(a.Labels)
		}
		for _, r := range routes {
			gl := r.GroupLabels(a.Labels)
			key := r.Receiver + "\x00" + r.GroupKey(gl)
			g := d.groups[key]
			if g == nil {
				// A resolved alert may open a group too: the log decides at
				// flush whether the receiver was paged for it.
				g = &group{route: r, key: r.GroupKey(gl), labels: gl, alerts: map[string]notify.Alert{}, next: now.Add(r.GroupWait)}
				// An alert that started longer than group_wait ago (one
				// that fired before a restart or a reload, or reached us
				// late) is not held back again: Alertmanager flushes its
				// new group at once.
				if !a.StartsAt.IsZero() && a.StartsAt.Add(r.GroupWait).Before(now) {
					g.next = now
				}
				d.groups[key] = g
			}
			old, seen := g.alerts[a.Fingerprint]
			if !seen || old.Resolved(now) != a.Resolved(now) || !mapsEqual(old.Annotations, a.Annotations) {
				g.changed = true
			}
			g.alerts[a.Fingerprint] = a
		}
	}
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// Run flushes groups as they fall due until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	for {
		next := d.FlushDue(ctx)
		wait := time.Second
		if !next.IsZero() {
			wait = max(min(time.Until(next), time.Second), 10*time.Millisecond)
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-d.wake:
		}
	}
}

// FlushDue flushes every group whose time has come and returns the
// earliest next flush.
func (d *Dispatcher) FlushDue(ctx context.Context) time.Time {
	now := d.opts.Now()
	d.mu.Lock()
	var due []*group
	for _, g := range d.groups {
		if !g.inflight && !g.next.After(now) {
			g.inflight = true
			due = append(due, g)
		}
	}
	d.mu.Unlock()
	sort.Slice(due, func(i, j int) bool { return due[i].key < due[j].key })
	// Chunks bound a transaction, so the first pages of a burst go out
	// while the rest are still being queued.
	for len(due) > 0 {
		n := min(len(due), flushChunk)
		d.flushChunk(ctx, due[:n], now)
		due = due[n:]
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var earliest time.Time
	for _, g := range d.groups {
		if earliest.IsZero() || g.next.Before(earliest) {
			earliest = g.next
		}
	}
	return earliest
}

// flushChunk is the most groups whose notifications share a transaction.
const flushChunk = 256

func (d *Dispatcher) flushChunk(ctx context.Context, due []*group, now time.Time) {
	var batch []Notification
	var ok []*group
	for _, g := range due {
		n, err := d.prepare(ctx, g, now)
		if err != nil {
			d.opts.Logger.Error("read notification log", "receiver", g.route.Receiver, "err", err)
			d.retryLater([]*group{g}, now)
			continue
		}
		if n != nil {
			batch = append(batch, *n)
		}
		ok = append(ok, g)
	}
	if len(batch) > 0 {
		if err := d.opts.Sink.Deliver(ctx, batch); err != nil {
			d.opts.Logger.Error("queue notifications", "notifications", len(batch), "err", err)
			d.retryLater(ok, now)
			return
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, g := range ok {
		g.inflight, g.flushed, g.changed = false, true, false
		g.next = now.Add(g.route.GroupInterval)
		for fp, a := range g.alerts {
			if a.Resolved(now) {
				delete(g.alerts, fp)
			}
		}
		if len(g.alerts) == 0 {
			delete(d.groups, g.route.Receiver+"\x00"+g.key)
		}
	}
}

// prepare decides whether a due group needs a notification now and builds it.
func (d *Dispatcher) prepare(ctx context.Context, g *group, now time.Time) (*Notification, error) {
	d.mu.Lock()
	var firing, resolved []notify.Alert
	for _, a := range g.alerts {
		if d.mutedLocked(a, now) {
			continue
		}
		if a.Resolved(now) {
			resolved = append(resolved, a)
		} else {
			firing = append(firing, a)
		}
	}
	receiver, rt := g.route.Receiver, g.route
	d.mu.Unlock()
	if len(firing) == 0 && len(resolved) == 0 {
		// Every alert muted: nothing is sent and nothing recorded, as
		// Alertmanager's pipeline stops when its mute stages leave no
		// alerts. Recording an empty set would make the log forget what
		// was paged, and the alert's resolve would never go out.
		return nil, nil
	}

	// In a maintenance window the flush sends nothing and records nothing,
	// as Alertmanager's time stages do: what still fires when the window
	// ends is paged at the next group_interval.
	if by := d.opts.TimeIntervals.MutedBy(rt, now); len(by) > 0 {
		d.opts.Logger.Info("notification not sent: route in a maintenance window", "receiver", receiver,
			"group", g.key, "time_intervals", strings.Join(by, ","), "firing", len(firing))
		return nil, nil
	}

	sendResolved := d.opts.SendResolved(receiver)
	entry := LogEntry{FiringHash: alertSet(firing), ResolvedHash: alertSet(resolved), SentAt: now}
	last, ok, err := d.opts.Sink.LastSent(ctx, receiver, g.key)
	if err != nil {
		return nil, err
	}
	if !needsUpdate(entry, last, ok, len(firing), sendResolved, rt.RepeatInterval, now) {
		return nil, nil
	}
	alerts := firing
	if sendResolved {
		alerts = append(alerts, resolved...)
	}
	sort.Slice(alerts, func(i, j int) bool { return alerts[i].Fingerprint < alerts[j].Fingerprint })
	m := &notify.Message{Receiver: receiver, GroupKey: g.key, GroupLabels: g.labels, Alerts: alerts,
		ExternalURL: d.opts.ExternalURL, Created: now}
	return &Notification{Message: m, Entry: entry}, nil
}

func (d *Dispatcher) retryLater(gs []*group, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, g := range gs {
		g.inflight = false
		g.next = now.Add(10 * time.Second)
	}
}

// needsUpdate is Alertmanager's rule (its DedupStage): notify when an alert
// fires that the receiver was not told about; when every alert resolved
// and the receiver was told some fired — whatever send_resolved says, so
// that the log forgets them (the message then carries only the resolved
// alerts a receiver wants, possibly none); when alerts resolved that the
// receiver was not told about and it wants resolved notifications; and
// when the same alerts still fire after repeat_interval. Alerts that stop
// firing while others go on are not a notification of their own without
// send_resolved.
func needsUpdate(cur, last LogEntry, hasLast bool, nFiring int, sendResolved bool, repeat time.Duration, now time.Time) bool {
	if !hasLast {
		return nFiring > 0
	}
	if !isSubset(cur.FiringHash, last.FiringHash) {
		return true
	}
	if nFiring == 0 {
		return last.FiringHash != ""
	}
	if sendResolved && !isSubset(cur.ResolvedHash, last.ResolvedHash) {
		return true
	}
	return now.Sub(last.SentAt) >= repeat
}

// alertSet is the sorted fingerprints of alerts joined with ",".
func alertSet(as []notify.Alert) string {
	fps := make([]string, len(as))
	for i, a := range as {
		fps[i] = a.Fingerprint
	}
	sort.Strings(fps)
	return strings.Join(fps, ",")
}

// isSubset reports whether every fingerprint of set a is in set b.
func isSubset(a, b string) bool {
	if a == "" {
		return true
	}
	in := make(map[string]bool)
	for _, fp := range strings.Split(b, ",") {
		in[fp] = true
	}
	for _, fp := range strings.Split(a, ",") {
		if !in[fp] {
			return false
		}
	}
	return true
}

// Mute is why an alert is not paged now.
type Mute struct {
	// SilencedBy are the IDs of the silences matching it.
	SilencedBy []string
	// Inhibited: an inhibit rule mutes it.
	Inhibited bool
	// DependencyFailed is the failing check the alert's check depends on
	// (depends_on), which holds it back.
	DependencyFailed string
	// TimeIntervals are the maintenance windows that keep every route it
	// goes to from paging now (empty if any route pages).
	TimeIntervals []string
}

// Muted reports why an alert with these labels is not sent now.
func (d *Dispatcher) Muted(lbls map[string]string) Mute {
	now := d.opts.Now()
	var m Mute
	if d.opts.Silences != nil {
		m.SilencedBy = d.opts.Silences.Silenced(lbls, now)
	}
	if lbls["drill"] != "true" {
		m.TimeIntervals = MaintenanceOf(d.opts.Route, d.opts.TimeIntervals, lbls, now)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	m.Inhibited = d.inhibitedLocked(lbls, notify.Fingerprint(lbls))
	m.DependencyFailed = d.dependency(lbls)
	return m
}

func (d *Dispatcher) dependency(lbls map[string]string) string {
	if d.opts.Dependency == nil || lbls["check"] == "" {
		return ""
	}
	return d.opts.Dependency(lbls)
}

// MaintenanceOf names the maintenance windows that keep every route an
// alert with lbls goes to from paging at now; empty if some route pages.
func MaintenanceOf(root *Route, tis *TimeIntervals, lbls map[string]string, now time.Time) []string {
	if root == nil || tis == nil {
		return nil
	}
	var by []string
	for _, r := range root.Match(lbls) {
		m := tis.MutedBy(r, now)
		if len(m) == 0 {
			return nil
		}
		for _, n := range m {
			if !slices.Contains(by, n) {
				by = append(by, n)
			}
		}
	}
	return by
}

func (d *Dispatcher) mutedLocked(a notify.Alert, now time.Time) bool {
	if d.opts.Silences != nil && len(d.opts.Silences.Silenced(a.Labels, now)) > 0 {
		return true
	}
	// A resolved alert is still sent as resolved even if something else
	// fires now: the receiver was told it fired.
	return !a.Resolved(now) && (d.inhibitedLocked(a.Labels, a.Fingerprint) || d.dependency(a.Labels) != "")
}

func (d *Dispatcher) inhibitedLocked(lbls map[string]string, fp string) bool {
	for _, in := range d.opts.Inhibit {
		for sfp, src := range d.active {
			if in.inhibits(src.Labels, lbls, sfp, fp) {
				return true
			}
		}
	}
	return false
}
