package rules

import (
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// State is an alert's state, as in Prometheus.
type State int

// Alert states.
const (
	StateInactive State = iota
	StatePending
	StateFiring
)

func (s State) String() string {
	switch s {
	case StatePending:
		return "pending"
	case StateFiring:
		return "firing"
	default:
		return "inactive"
	}
}

// resolvedRetention is how long resolved alerts are kept (and re-sent).
const resolvedRetention = 15 * time.Minute

// Alert is one alert instance of an alerting rule: one label set.
type Alert struct {
	State       State
	Labels      labels.Labels
	Annotations labels.Labels
	// Value is the expression's value at the last evaluation; never a label.
	Value           float64
	ActiveAt        time.Time
	FiredAt         time.Time
	ResolvedAt      time.Time
	LastSentAt      time.Time
	ValidUntil      time.Time
	KeepFiringSince time.Time
}

// needsSending reports whether the alert should go to the notifier now:
// every resendDelay while firing, and once (then again every resendDelay
// while kept) after it resolved.
func (a *Alert) needsSending(ts time.Time, resendDelay time.Duration) bool {
	if a.State == StatePending {
		return false
	}
	if !a.ResolvedAt.IsZero() && a.LastSentAt.Before(a.ResolvedAt) {
		return true
	}
	return a.LastSentAt.Add(resendDelay).Before(ts) || a.LastSentAt.Add(resendDelay).Equal(ts)
}

// Notifier receives firing and resolved alerts (the paging issue delivers
// them). Send must not block for long.
type Notifier interface {
	Send(alerts []*Alert)
}

// ParseState reads State.String's output.
func ParseState(s string) State {
	switch s {
	case "pending":
		return StatePending
	case "firing":
		return StateFiring
	default:
		return StateInactive
	}
}
