package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/vigil-project/vigil/probes"
)

// Record is one check result as stored.
//
// What comes back from the store differs from what went in only where the
// storage format cannot tell: Start is truncated to the millisecond and in
// the local time zone, empty Phases, Values and Diagnostics come back nil,
// and Diagnostics come back as JSON-decoded values (numbers as float64,
// structs as map[string]any).
type Record struct {
	Check, Type string
	Result      probes.Result
}

// row is a Record encoded for the check_results table. Records are encoded
// in Record, on the caller's goroutine, so the caller may reuse or modify
// the Result's slices and maps as soon as Record returns.
type row struct {
	check, typ                  string
	startMS, durationNS         int64
	success                     bool
	reason, message             string
	phases, values, diagnostics string
}

// The JSON shapes are the store's own, not the probes types' json tags, so
// a change to the probes package cannot silently change the stored format.
type (
	phaseJSON struct {
		Name       string `json:"name"`
		DurationNS int64  `json:"duration_ns"`
	}
	labelJSON struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
	valueJSON struct {
		Name   string      `json:"name"`
		Labels []labelJSON `json:"labels,omitempty"`
		Value  jsonFloat   `json:"value"`
		Key    bool        `json:"key,omitempty"`
	}
)

// jsonFloat writes NaN and ±Inf as the strings Prometheus uses ("NaN",
// "+Inf", "-Inf"); plain encoding/json refuses them, and one such value
// would otherwise fail the whole batch it is in.
type jsonFloat float64

func (f jsonFloat) MarshalJSON() ([]byte, error) {
	v := float64(f)
	switch {
	case math.IsNaN(v):
		return []byte(`"NaN"`), nil
	case math.IsInf(v, 1):
		return []byte(`"+Inf"`), nil
	case math.IsInf(v, -1):
		return []byte(`"-Inf"`), nil
	}
	return strconv.AppendFloat(nil, v, 'g', -1, 64), nil
}

func (f *jsonFloat) UnmarshalJSON(b []byte) error {
	if s, ok := bytes.CutPrefix(b, []byte(`"`)); ok {
		v, err := strconv.ParseFloat(string(bytes.TrimSuffix(s, []byte(`"`))), 64)
		if err != nil {
			return fmt.Errorf("value %s: %w", b, err)
		}
		*f = jsonFloat(v)
		return nil
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("value %s: %w", b, err)
	}
	*f = jsonFloat(v)
	return nil
}

func encode(rec Record) row {
	r := rec.Result
	phases := make([]phaseJSON, len(r.Phases))
	for i, p := range r.Phases {
		phases[i] = phaseJSON{Name: p.Name, DurationNS: int64(p.Duration)}
	}
	values := make([]valueJSON, len(r.Values))
	for i, v := range r.Values {
		values[i] = valueJSON{Name: v.Name, Value: jsonFloat(v.Value), Key: v.Key}
		for _, l := range v.Labels {
			values[i].Labels = append(values[i].Labels, labelJSON(l))
		}
	}
	// Neither can fail: the types hold only strings, ints, bools and
	// jsonFloat.
	pj, _ := json.Marshal(phases)
	vj, _ := json.Marshal(values)
	dj := []byte("{}")
	if len(r.Diagnostics) > 0 {
		var err error
		if dj, err = json.Marshal(r.Diagnostics); err != nil {
			// Diagnostics are best effort; never lose the row for them.
			dj, _ = json.Marshal(map[string]string{"store_error": "diagnostics not stored: " + err.Error()})
		}
	}
	return row{
		check: rec.Check, typ: rec.Type,
		startMS: r.Start.UnixMilli(), durationNS: int64(r.Duration),
		success: r.Success, reason: string(r.Reason), message: r.Message,
		phases: string(pj), values: string(vj), diagnostics: string(dj),
	}
}

func decode(w row) (Record, error) {
	rec := Record{Check: w.check, Type: w.typ, Result: probes.Result{
		Success:  w.success,
		Reason:   probes.Reason(w.reason),
		Message:  w.message,
		Start:    time.UnixMilli(w.startMS),
		Duration: time.Duration(w.durationNS),
	}}
	r := &rec.Result
	var phases []phaseJSON
	if err := json.Unmarshal([]byte(w.phases), &phases); err != nil {
		return rec, fmt.Errorf("decode phases: %w", err)
	}
	for _, p := range phases {
		r.Phases = append(r.Phases, probes.Phase{Name: p.Name, Duration: time.Duration(p.DurationNS)})
	}
	var values []valueJSON
	if err := json.Unmarshal([]byte(w.values), &values); err != nil {
		return rec, fmt.Errorf("decode values: %w", err)
	}
	for _, v := range values {
		pv := probes.Value{Name: v.Name, Value: float64(v.Value), Key: v.Key}
		for _, l := range v.Labels {
			pv.Labels = append(pv.Labels, probes.Label(l))
		}
		r.Values = append(r.Values, pv)
	}
	if err := json.Unmarshal([]byte(w.diagnostics), &r.Diagnostics); err != nil {
		return rec, fmt.Errorf("decode diagnostics: %w", err)
	}
	if len(r.Diagnostics) == 0 {
		r.Diagnostics = nil
	}
	return rec, nil
}
