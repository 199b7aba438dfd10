// Package route decides who gets paged: a route tree by label matchers
// (Alertmanager's model, for deployments without one), inhibition and
// silences, and the dispatcher that groups alerts and times notifications
// (group_wait, group_interval, repeat_interval).
package route

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/alertmanager/matcher/compat"
	amlabels "github.com/prometheus/alertmanager/pkg/labels"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-project/vigil/internal/confkit"
)

// Matchers are label matchers written as in Alertmanager and PromQL:
// `severity="critical"`, `check=~"invoice-.*"`, `env!="test"`.
type Matchers []string

// Parse compiles the matchers.
func (ms Matchers) Parse() ([]*labels.Matcher, error) {
	var out []*labels.Matcher
	for _, s := range ms {
		m, err := ParseMatcher(s)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// parseAMMatcher is Alertmanager's own matcher parser, as its binary runs
// by default: the UTF-8 syntax, falling back to the classic one.
var parseAMMatcher = compat.FallbackMatcherParser(slog.New(slog.DiscardHandler))

// ParseMatcher compiles one matcher with Alertmanager's parser, so every
// form Alertmanager and amtool take works here too (`a="b"`, `a=b`,
// `a=~"x.*"`, `{a="b"}` …), as a Prometheus matcher for the rest of vigil.
func ParseMatcher(s string) (*labels.Matcher, error) {
	m, err := parseAMMatcher(s, "config")
	if err != nil {
		return nil, fmt.Errorf("bad matcher %q: %w (want name=\"value\", or !=, =~, !~)", s, err)
	}
	t, ok := map[amlabels.MatchType]labels.MatchType{amlabels.MatchEqual: labels.MatchEqual, amlabels.MatchNotEqual: labels.MatchNotEqual,
		amlabels.MatchRegexp: labels.MatchRegexp, amlabels.MatchNotRegexp: labels.MatchNotRegexp}[m.Type]
	if !ok {
		return nil, fmt.Errorf("bad matcher %q: unknown match type %v", s, m.Type)
	}
	return labels.NewMatcher(t, m.Name, m.Value)
}

// Matches reports whether every matcher matches lbls.
func Matches(ms []*labels.Matcher, lbls map[string]string) bool {
	for _, m := range ms {
		if !m.Matches(lbls[m.Name]) {
			return false
		}
	}
	return true
}

// Config is one node of the route tree. Children inherit unset fields.
type Config struct {
	Receiver string   `yaml:"receiver" json:"receiver,omitempty"`
	Matchers Matchers `yaml:"matchers" json:"matchers,omitempty"`
	// GroupBy lists the labels that split alerts into notifications; "..."
	// groups by every label (one notification per alert).
	GroupBy        []string        `yaml:"group_by" json:"group_by,omitempty"`
	GroupWait      *model.Duration `yaml:"group_wait" json:"group_wait,omitempty"`
	GroupInterval  *model.Duration `yaml:"group_interval" json:"group_interval,omitempty"`
	RepeatInterval *model.Duration `yaml:"repeat_interval" json:"repeat_interval,omitempty"`
	Continue       bool            `yaml:"continue" json:"continue,omitempty"`
	// MuteTimeIntervals name maintenance windows (notify.time_intervals)
	// during which this route sends nothing; ActiveTimeIntervals, windows
	// outside which it sends nothing. As in Alertmanager, neither is
	// inherited by child routes, and the root route takes neither.
	MuteTimeIntervals   []string `yaml:"mute_time_intervals" json:"mute_time_intervals,omitempty"`
	ActiveTimeIntervals []string `yaml:"active_time_intervals" json:"active_time_intervals,omitempty"`
	Routes              []Config `yaml:"routes" json:"routes,omitempty"`
}

// Defaults of the root route, as in Alertmanager.
const (
	DefaultGroupWait      = 30 * time.Second
	DefaultGroupInterval  = 5 * time.Minute
	DefaultRepeatInterval = 4 * time.Hour
)

// Route is a compiled node.
type Route struct {
	Receiver       string
	Matchers       []*labels.Matcher
	GroupBy        []string
	GroupByAll     bool
	GroupWait      time.Duration
	GroupInterval  time.Duration
	RepeatInterval time.Duration
	Continue       bool
	// MuteTimeIntervals and ActiveTimeIntervals name the route's
	// maintenance windows (see TimeIntervals.MutedBy).
	MuteTimeIntervals   []string
	ActiveTimeIntervals []string
	Routes              []*Route
	// Key identifies the node in the tree (its path), for group keys.
	Key string
}

// Validate checks a tree: every node's matchers parse, receivers and time
// intervals exist, durations are positive. receivers lists the configured
// receiver names, intervals the time interval names.
func (c *Config) Validate(receivers, intervals []string) error {
	return c.validate("", receivers, intervals, true)
}

func (c *Config) validate(path string, receivers, intervals []string, root bool) error {
	var errs []error
	at := func(f string) string {
		if path == "" {
			return f
		}
		return path + "." + f
	}
	if root && c.Receiver == "" {
		errs = append(errs, confkit.FieldErrorf(at("receiver"), "the root route needs a receiver"))
	}
	if root && len(c.Matchers) > 0 {
		errs = append(errs, confkit.FieldErrorf(at("matchers"), "the root route matches every alert; put matchers on child routes"))
	}
	if root && (len(c.MuteTimeIntervals) > 0 || len(c.ActiveTimeIntervals) > 0) {
		errs = append(errs, confkit.FieldErrorf(at("mute_time_intervals"), "the root route cannot have time intervals; put them on child routes"))
	}
	for _, f := range []struct {
		key   string
		names []string
	}{{"mute_time_intervals", c.MuteTimeIntervals}, {"active_time_intervals", c.ActiveTimeIntervals}} {
		for i, n := range f.names {
			if !slices.Contains(intervals, n) {
				errs = append(errs, confkit.FieldErrorf(at(fmt.Sprintf("%s.%d", f.key, i)), "unknown time interval %q (notify.time_intervals has: %s)", n, orNone(intervals)))
			}
		}
	}
	if c.Receiver != "" && !slices.Contains(receivers, c.Receiver) {
		errs = append(errs, confkit.FieldErrorf(at("receiver"), "unknown receiver %q (configured: %s)", c.Receiver, strings.Join(receivers, ", ")))
	}
	for i, s := range c.Matchers {
		if _, err := ParseMatcher(s); err != nil {
			errs = append(errs, confkit.FieldErrorf(at(fmt.Sprintf("matchers.%d", i)), "%v", err))
		}
	}
	for _, d := range []struct {
		name string
		v    *model.Duration
	}{{"group_wait", c.GroupWait}, {"group_interval", c.GroupInterval}, {"repeat_interval", c.RepeatInterval}} {
		if d.v != nil && *d.v <= 0 && d.name != "group_wait" {
			errs = append(errs, confkit.FieldErrorf(at(d.name), "must be greater than 0"))
		}
		if d.v != nil && *d.v < 0 {
			errs = append(errs, confkit.FieldErrorf(at(d.name), "must not be negative"))
		}
	}
	if slices.Contains(c.GroupBy, "...") && len(c.GroupBy) > 1 {
		errs = append(errs, confkit.FieldErrorf(at("group_by"), `"..." groups by every label and cannot be combined with names`))
	}
	for i := range c.Routes {
		if err := c.Routes[i].validate(at(fmt.Sprintf("routes.%d", i)), receivers, intervals, false); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Compile builds the tree; call Validate first.
func (c *Config) Compile() (*Route, error) {
	root := &Route{GroupWait: DefaultGroupWait, GroupInterval: DefaultGroupInterval, RepeatInterval: DefaultRepeatInterval}
	return c.compile(root, "{}")
}

func (c *Config) compile(parent *Route, key string) (*Route, error) {
	r := &Route{Receiver: parent.Receiver, GroupBy: parent.GroupBy, GroupByAll: parent.GroupByAll, GroupWait: parent.GroupWait,
		GroupInterval: parent.GroupInterval, RepeatInterval: parent.RepeatInterval, Continue: c.Continue, Key: key,
		MuteTimeIntervals: slices.Clone(c.MuteTimeIntervals), ActiveTimeIntervals: slices.Clone(c.ActiveTimeIntervals)}
	if c.Receiver != "" {
		r.Receiver = c.Receiver
	}
	if c.GroupBy != nil {
		r.GroupByAll = slices.Contains(c.GroupBy, "...")
		r.GroupBy = nil
		if !r.GroupByAll {
			r.GroupBy = slices.Clone(c.GroupBy)
			sort.Strings(r.GroupBy)
		}
	}
	if c.GroupWait != nil {
		r.GroupWait = time.Duration(*c.GroupWait)
	}
	if c.GroupInterval != nil {
		r.GroupInterval = time.Duration(*c.GroupInterval)
	}
	if c.RepeatInterval != nil {
		r.RepeatInterval = time.Duration(*c.RepeatInterval)
	}
	ms, err := c.Matchers.Parse()
	if err != nil {
		return nil, err
	}
	r.Matchers = ms
	for i := range c.Routes {
		child, err := c.Routes[i].compile(r, fmt.Sprintf("%s/%d%s", key, i, matcherKey(c.Routes[i].Matchers)))
		if err != nil {
			return nil, err
		}
		r.Routes = append(r.Routes, child)
	}
	return r, nil
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

func matcherKey(ms Matchers) string { return "{" + strings.Join(ms, ",") + "}" }

// Match returns the routes an alert goes to: the deepest matching nodes,
// depth first, stopping at the first match on each level unless that
// route says continue — Alertmanager's semantics.
func (r *Route) Match(lbls map[string]string) []*Route {
	if !Matches(r.Matchers, lbls) {
		return nil
	}
	var all []*Route
	for _, child := range r.Routes {
		matches := child.Match(lbls)
		all = append(all, matches...)
		if len(matches) > 0 && !child.Continue {
			break
		}
	}
	if len(all) == 0 {
		all = append(all, r)
	}
	return all
}

// GroupLabels are the labels of lbls that this route groups by.
func (r *Route) GroupLabels(lbls map[string]string) map[string]string {
	out := map[string]string{}
	if r.GroupByAll {
		for k, v := range lbls {
			out[k] = v
		}
		return out
	}
	for _, name := range r.GroupBy {
		if v, ok := lbls[name]; ok {
			out[name] = v
		}
	}
	return out
}

// GroupKey identifies an alert group: the route and its group labels.
func (r *Route) GroupKey(groupLabels map[string]string) string {
	keys := make([]string, 0, len(groupLabels))
	for k := range groupLabels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%q", k, groupLabels[k])
	}
	return r.Key + ":{" + strings.Join(parts, ", ") + "}"
}
