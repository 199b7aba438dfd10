package rules

import (
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// RuleInfo describes a rule for the API.
type RuleInfo struct {
	Type           string // alerting | recording
	Name           string
	Query          string
	Labels         labels.Labels
	Annotations    labels.Labels
	For            time.Duration
	KeepFiringFor  time.Duration
	Health         string // ok | err | unknown
	LastError      string
	LastEvaluation time.Time
	EvaluationTime float64
	State          string // alerting: the most severe of its alerts
	Alerts         []Alert
}

// GroupInfo describes a group for the API.
type GroupInfo struct {
	Rules          []RuleInfo
	LastEvaluation time.Time
	EvaluationTime float64
}

// Info is a consistent snapshot of the group.
func (g *Group) Info() GroupInfo {
	g.mu.Lock()
	gi := GroupInfo{LastEvaluation: g.lastEval, EvaluationTime: g.evalD.Seconds()}
	g.mu.Unlock()
	for _, r := range g.Rules {
		switch r := r.(type) {
		case *RecordingRule:
			r.mu.Lock()
			ri := RuleInfo{Type: "recording", Name: r.name, Query: r.expr.String(), Labels: r.labels,
				Health: health(r.health), LastEvaluation: r.evalAt, EvaluationTime: r.evalD.Seconds()}
			if r.err != nil {
				ri.LastError = r.err.Error()
			}
			r.mu.Unlock()
			gi.Rules = append(gi.Rules, ri)
		case *AlertingRule:
			alerts := r.Alerts()
			r.mu.Lock()
			ri := RuleInfo{Type: "alerting", Name: r.name, Query: r.expr.String(), Labels: r.labels, Annotations: r.annotations,
				For: r.holdDuration, KeepFiringFor: r.keepFiringFor, Health: health(r.health),
				LastEvaluation: r.evalAt, EvaluationTime: r.evalD.Seconds(), Alerts: alerts, State: "inactive"}
			if r.err != nil {
				ri.LastError = r.err.Error()
			}
			r.mu.Unlock()
			for _, a := range alerts {
				if a.State == StateFiring || (a.State == StatePending && ri.State == "inactive") {
					ri.State = a.State.String()
				}
			}
			gi.Rules = append(gi.Rules, ri)
		}
	}
	return gi
}

func health(h string) string {
	if h == "" {
		return "unknown"
	}
	return h
}
