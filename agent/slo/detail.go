package slo

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/vigil-project/vigil/agent/config"
	"github.com/vigil-project/vigil/rules"
)

// BurnAlert is the name of the alert Rules generates for every SLO.
const BurnAlert = "SLOErrorBudgetBurn"

// BurnRate is an SLO's error ratio over one window pair of its burn-rate
// alert, as a multiple of the ratio that spends the budget exactly over
// the SLO's window (1 = on budget).
type BurnRate struct {
	Long, Short time.Duration
	// Budget is the share of the window's budget the condition stands
	// for (0.02: 2% in the long window).
	Budget float64
	// Threshold is the burn rate both windows must exceed.
	Threshold float64
	// LongRate and ShortRate are the current burn rates, read from the
	// recording rules; the ok flags are false without data (no runs in the
	// window, rules not evaluated yet).
	LongRate, ShortRate   float64
	LongKnown, ShortKnown bool
}

// Exceeded says both windows burn faster than the threshold: the
// condition of the alert, before its guard against single failed runs.
func (b BurnRate) Exceeded() bool {
	return b.LongKnown && b.ShortKnown && b.LongRate > b.Threshold && b.ShortRate > b.Threshold
}

// BurnRates are the SLO's current burn rates over the windows of its
// alert (1h/5m and 6h/30m), read at now from the recording rules the
// agent evaluates (slo:sli_error:ratio_rate*). Without a query function
// every rate is unknown.
func (e *Engine) BurnRates(ctx context.Context, s config.SLO, now time.Time) ([]BurnRate, error) {
	out := make([]BurnRate, 0, len(pageWindows))
	budget := 1 - s.Objective
	read := func(w time.Duration) (float64, bool, error) {
		if e.query == nil {
			return 0, false, nil
		}
		v, ok, err := e.query(ctx, fmt.Sprintf(`%s{slo=%q}`, RecordName(w), s.Name), now)
		if err != nil || !ok || math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, false, err
		}
		return v / budget, true, nil
	}
	for _, w := range pageWindows {
		b := BurnRate{Long: w.long, Short: w.short, Budget: w.budget, Threshold: w.BurnRate(time.Duration(s.Window))}
		var err error
		if b.LongRate, b.LongKnown, err = read(w.long); err != nil {
			return nil, fmt.Errorf("slo %s: burn rate over %s: %w", s.Name, w.long, err)
		}
		if b.ShortRate, b.ShortKnown, err = read(w.short); err != nil {
			return nil, fmt.Errorf("slo %s: burn rate over %s: %w", s.Name, w.short, err)
		}
		out = append(out, b)
	}
	return out, nil
}

// AlertInfo is the state of an SLO's burn-rate alert in the rule engine.
type AlertInfo struct {
	// Loaded is false when the engine has no rules for the SLO.
	Loaded bool
	// State is firing, pending or inactive: the most severe of its alerts.
	State string
	// ActiveAt is when the most severe alert became pending.
	ActiveAt time.Time
	// Health is the rule's evaluation health (ok, err, unknown) and
	// LastError its last error.
	Health, LastError string
	LastEvaluation    time.Time
}

// Alert finds the burn-rate alert of the named SLO among the rule
// engine's groups (the generated ones, RulesFile).
func Alert(groups []*rules.Group, name string) AlertInfo {
	for _, g := range groups {
		if g.File != RulesFile || g.Name != "slo:"+name {
			continue
		}
		for _, r := range g.Info().Rules {
			if r.Type != "alerting" || r.Name != BurnAlert {
				continue
			}
			ai := AlertInfo{Loaded: true, State: r.State, Health: r.Health, LastError: r.LastError, LastEvaluation: r.LastEvaluation}
			for _, a := range r.Alerts {
				if a.State.String() == r.State && (ai.ActiveAt.IsZero() || a.ActiveAt.Before(ai.ActiveAt)) {
					ai.ActiveAt = a.ActiveAt
				}
			}
			if r.State == "inactive" {
				ai.ActiveAt = time.Time{}
			}
			return ai
		}
	}
	return AlertInfo{}
}
