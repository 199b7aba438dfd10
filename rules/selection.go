package rules

import (
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
// Selectors are indexed by metric name, so testing a series costs the
// selectors of its own metric, not all of them.
type Selection struct {
	mu     sync.RWMutex
	exprs  map[string]bool
	byName map[string][][]*labels.Matcher
	// other are selectors without a fixed metric name ({job="x"},
	// {__name__=~"vigil_.*"}).
	other [][]*labels.Matcher
}

// NewSelection returns an empty selection (it selects nothing).
func NewSelection() *Selection {
	return &Selection{exprs: map[string]bool{}, byName: map[string][][]*labels.Matcher{}}
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
		name := ""
		for _, m := range ms {
			if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
				name = m.Value
			}
		}
		if name == "" {
			s.other = append(s.other, ms)
		} else {
			s.byName[name] = append(s.byName[name], ms)
		}
	}
}

// Selects reports whether some selector matches the series.
func (s *Selection) Selects(lset labels.Labels) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, ms := range s.byName[lset.Get(model.MetricNameLabel)] {
		if matchesAll(lset, ms) {
			return true
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
	if len(s.byName[name]) > 0 {
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

// Len is the number of selectors.
func (s *Selection) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := len(s.other)
	for _, v := range s.byName {
		n += len(v)
	}
	return n
}

func matchesAll(lset labels.Labels, ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches(lset.Get(m.Name)) {
			return false
		}
	}
	return true
}
