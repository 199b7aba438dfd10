package agent

import (
	"fmt"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vigil-project/vigil/agent/config"
	"github.com/vigil-project/vigil/probes"
)

// ResultView is the JSON form of a result, shared by the API and `vigil once -o json`.
type ResultView struct {
	Success         bool               `json:"success"`
	Reason          string             `json:"reason,omitempty"`
	Message         string             `json:"message,omitempty"`
	Start           time.Time          `json:"start"`
	DurationSeconds float64            `json:"duration_seconds"`
	Phases          map[string]float64 `json:"phases_seconds,omitempty"`
	Values          []ValueView        `json:"values,omitempty"`
	Diagnostics     map[string]any     `json:"diagnostics,omitempty"`
}

// ValueView is one exported value.
type ValueView struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
	Value  float64           `json:"value"`
}

// NewResultView converts a result for JSON output.
func NewResultView(r probes.Result) ResultView {
	v := ResultView{
		Success:         r.Success,
		Reason:          string(r.Reason),
		Message:         r.Message,
		Start:           r.Start.UTC(),
		DurationSeconds: r.Duration.Seconds(),
		Diagnostics:     r.Diagnostics,
	}
	if len(r.Phases) > 0 {
		v.Phases = make(map[string]float64, len(r.Phases))
		for _, p := range r.Phases {
			v.Phases[p.Name] = p.Duration.Seconds()
		}
	}
	for _, val := range r.Values {
		vv := ValueView{Name: val.Name, Value: val.Value}
		if len(val.Labels) > 0 {
			vv.Labels = make(map[string]string, len(val.Labels))
			for _, l := range val.Labels {
				vv.Labels[l.Name] = l.Value
			}
		}
		v.Values = append(v.Values, vv)
	}
	return v
}

// HistoryEntry is one past run in a check's history.
type HistoryEntry struct {
	Start           time.Time `json:"start"`
	Success         bool      `json:"success"`
	Reason          string    `json:"reason,omitempty"`
	Message         string    `json:"message,omitempty"`
	DurationSeconds float64   `json:"duration_seconds"`
}

// CheckView is the API's view of one check.
type CheckView struct {
	Name            string            `json:"name"`
	Type            string            `json:"type"`
	Interval        string            `json:"interval"`
	Timeout         string            `json:"timeout"`
	RecheckInterval string            `json:"recheck_interval"`
	Labels          map[string]string `json:"labels,omitempty"`
	// Config is the type's section with defaults applied. It is rendered
	// through the YAML tags, so secret fields show their redacted form.
	Config     map[string]any `json:"config"`
	LastResult *ResultView    `json:"last_result"`
	History    []HistoryEntry `json:"history"`
}

func newCheckView(c config.Check) CheckView {
	return CheckView{
		Name:            c.Name,
		Type:            c.Type,
		Interval:        c.Interval.String(),
		Timeout:         c.Timeout.String(),
		RecheckInterval: c.RecheckInterval.String(),
		Labels:          c.Labels,
		History:         []HistoryEntry{},
	}
}

// specMap renders a family config through its yaml tags as a generic map.
func specMap(spec probes.Config) map[string]any {
	out := map[string]any{}
	b, err := yaml.Marshal(spec)
	if err == nil {
		err = yaml.Unmarshal(b, &out)
	}
	if err != nil {
		return map[string]any{"error": fmt.Sprintf("cannot render config: %v", err)}
	}
	return out
}
