package rules

import (
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// Selection is the set of series the agent's rule engine keeps: those
// some loaded rule's expression selects (and the drills' stop conditions),
// by their selectors' matchers. Series nothing selects are not stored: at
// thousands of checks most series are read by Prometheus, not by the
// agent's own rules, and storing them cost most of the agent's memory.
//
// Selectors are indexed by metric name and, within it, by the value of
// one of their equality matchers, so testing a series costs the few
// selectors that can select it: vigil_check_success{team="t17"} is tried
// on team t17's series only, not on every check's series for every team's
// selector. The same selector in several rules is kept once.
type Selection struct {
	mu     sync.RWMutex
	exprs  map[string]bool
	byName map[string]*nameSelectors
	// other are selectors without a fixed metric name ({job="x"},
	// {__name__=~"vigil_.*"}).
	other [][]*labels.Matcher
	// known are the selectors added, as text.
	known map[string]bool
}

// nameSelectors are the selectors of one metric name: by the label and
// value of an equality matcher they have besides the name's, and those
// without one.
type nameSelectors struct {
	byLabel map[string]map[string][][]*labels.Matcher
	rest    [][]*labels.Matcher
}

// NewSelection returns an empty selection (it selects nothing).
func NewSelection() *Selection {
	return &Selection{exprs: map[string]bool{}, byName: map[string]*nameSelectors{}, known: map[string]bool{}}
}

// SelectionOf is the selection of the groups' rule expressions.
func SelectionOf(groups []*Group) *Selection {
	s := NewSelection()
	for _, g := range groups {
		for _, r := range g.Rules {
			switch r := r.(type) {
			case *AlertingRule:
				s.add(r.expr)
			case *RecordingRule:
				s.add(r.expr)
			}
		}
	}
	return s
}

// AddExpr adds the selectors of a PromQL expression; it reports whether
// the expression was new.
func (s *Selection) AddExpr(expr string) (bool, error) {
	s.mu.RLock()
	known := s.exprs[expr]
	s.mu.RUnlock()
	if known {
		return false, nil
	}
	e, err := ruleParser.ParseExpr(expr)
	if err != nil {
		return false, err
	}
	s.add(e)
	s.mu.Lock()
	s.exprs[expr] = true
	s.mu.Unlock()
	return true, nil
}

func (s *Selection) add(e parser.Expr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.exprs[e.String()] = true
	for _, ms := range parser.ExtractSelectors(e) {
		text := make([]string, len(ms))
		for i, m := range ms {
			text[i] = m.String()
		}
		slices.Sort(text)
		if key := strings.Join(text, ","); s.known[key] {
			continue
		} else {
			s.known[key] = true
		}
		var name, keyed *labels.Matcher
		for _, m := range ms {
			switch {
			case m.Type != labels.MatchEqual:
			case m.Name == model.MetricNameLabel:
				name = m
			case keyed == nil && m.Value != "":
				keyed = m
			}
		}
		if name == nil {
			s.other = append(s.other, ms)
			continue
		}
		ns := s.byName[name.Value]
		if ns == nil {
			ns = &nameSelectors{byLabel: map[string]map[string][][]*labels.Matcher{}}
			s.byName[name.Value] = ns
		}
		if keyed == nil {
			ns.rest = append(ns.rest, ms)
			continue
		}
		values := ns.byLabel[keyed.Name]
		if values == nil {
			values = map[string][][]*labels.Matcher{}
			ns.byLabel[keyed.Name] = values
		}
		values[keyed.Value] = append(values[keyed.Value], ms)
	}
}

// Selects reports whether some selector matches the series.
func (s *Selection) Selects(lset labels.Labels) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if ns := s.byName[lset.Get(model.MetricNameLabel)]; ns != nil {
		for _, ms := range ns.rest {
			if matchesAll(lset, ms) {
				return true
			}
		}
		for name, values := range ns.byLabel {
			for _, ms := range values[lset.Get(name)] {
				if matchesAll(lset, ms) {
					return true
				}
			}
		}
	}
	for _, ms := range s.other {
		if matchesAll(lset, ms) {
			return true
		}
	}
	return false
}

// Wants reports whether some selector may select series of the metric
// name: the cheap test before labels are built.
func (s *Selection) Wants(name string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.byName[name] != nil {
		return true
	}
	for _, ms := range s.other {
		if nameMatches(ms, name) {
			return true
		}
	}
	return false
}

// nameMatches: the selector's __name__ matchers, if any, accept name.
func nameMatches(ms []*labels.Matcher, name string) bool {
	for _, m := range ms {
		if m.Name == model.MetricNameLabel && !m.Matches(name) {
			return false
		}
	}
	return true
}

// Len is the number of distinct selectors.
func (s *Selection) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.known)
}

func matchesAll(lset labels.Labels, ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches(lset.Get(m.Name)) {
			return false
		}
	}
	return true
}
