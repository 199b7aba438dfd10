package ruleeval

import (
	"context"
	"encoding/json"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-project/vigil/agent/store"
	"github.com/vigil-project/vigil/rules"
)

// AlertStore is where alert state is kept across restarts (the agent's
// SQLite store).
type AlertStore interface {
	SaveAlerts(ctx context.Context, ruleKey string, rows []store.AlertRow) error
	LoadAlerts(ctx context.Context) (map[string][]store.AlertRow, error)
	KeepAlertRules(ctx context.Context, keys []string) error
}

// alertState adapts an AlertStore to the rule manager.
type alertState struct{ st AlertStore }

var _ rules.StateStore = alertState{}

func (s alertState) SaveAlerts(ctx context.Context, key string, alerts []rules.Alert) error {
	rows := make([]store.AlertRow, 0, len(alerts))
	for _, a := range alerts {
		lb, _ := json.Marshal(a.Labels.Map())
		an, _ := json.Marshal(a.Annotations.Map())
		rows = append(rows, store.AlertRow{Labels: string(lb), Annotations: string(an), State: a.State.String(), Value: a.Value,
			ActiveAt: msOrZero(a.ActiveAt), FiredAt: msOrZero(a.FiredAt), ResolvedAt: msOrZero(a.ResolvedAt),
			LastSentAt: msOrZero(a.LastSentAt), KeepFiringSince: msOrZero(a.KeepFiringSince)})
	}
	return s.st.SaveAlerts(ctx, key, rows)
}

func (s alertState) LoadAlerts(ctx context.Context) (map[string][]rules.Alert, error) {
	rows, err := s.st.LoadAlerts(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string][]rules.Alert{}
	for key, rs := range rows {
		for _, r := range rs {
			var lb, an map[string]string
			if json.Unmarshal([]byte(r.Labels), &lb) != nil || json.Unmarshal([]byte(r.Annotations), &an) != nil {
				continue
			}
			out[key] = append(out[key], rules.Alert{State: rules.ParseState(r.State), Labels: labels.FromMap(lb),
				Annotations: labels.FromMap(an), Value: r.Value, ActiveAt: timeOrZero(r.ActiveAt), FiredAt: timeOrZero(r.FiredAt),
				ResolvedAt: timeOrZero(r.ResolvedAt), LastSentAt: timeOrZero(r.LastSentAt), KeepFiringSince: timeOrZero(r.KeepFiringSince)})
		}
	}
	return out, nil
}

func (s alertState) KeepRules(ctx context.Context, keys []string) error {
	return s.st.KeepAlertRules(ctx, keys)
}

func msOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func timeOrZero(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}
