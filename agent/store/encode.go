package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
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
//
// A result is split in two: its shape (type, phase names, value names,
// labels and flags), which repeats run after run and is stored once in
// result_shapes, and its numbers (phases and values in the shape's order),
// stored in the row. The writer turns check and shape into ids.
type row struct {
	check, typ          string
	shape               string // shapeJSON, the result_shapes key together with typ
	startMS, durationNS int64
	success             bool
	reason, message     string
	phases, values      []byte // see appendPhases and appendValue
	diagnostics         string // JSON object; "" for none (NULL)
}

// The JSON shapes are the store's own, not the probes types' json tags, so
// a change to the probes package cannot silently change the stored format.
type (
	// shapeJSON is a result_shapes row's shape.
	shapeJSON struct {
		Phases []string         `json:"phases"`
		Values []valueShapeJSON `json:"values"`
	}
	valueShapeJSON struct {
		Name    string      `json:"name"`
		Labels  []labelJSON `json:"labels,omitempty"`
		Key     bool        `json:"key,omitempty"`
		Counter bool        `json:"counter,omitempty"`
	}
	labelJSON struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}

	// phaseJSON and valueJSON are the phases and vals of rows written
	// before migration 0006 (shape ''), names and numbers together.
	phaseJSON struct {
		Name       string `json:"name"`
		DurationNS int64  `json:"duration_ns"`
	}
	valueJSON struct {
		Name   string      `json:"name"`
		Labels []labelJSON `json:"labels,omitempty"`
		Value  jsonFloat   `json:"value"`
		Key    bool        `json:"key,omitempty"`
	}
)

// jsonFloat reads NaN and ±Inf as the strings Prometheus uses ("NaN",
// "+Inf", "-Inf"), which rows from before migration 0006 hold.
type jsonFloat float64

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
	sh := shapeJSON{Phases: make([]string, len(r.Phases)), Values: make([]valueShapeJSON, len(r.Values))}
	var phases, values []byte
	for i, p := range r.Phases {
		sh.Phases[i] = p.Name
		phases = binary.AppendVarint(phases, int64(p.Duration))
	}
	for i, v := range r.Values {
		sh.Values[i] = valueShapeJSON{Name: v.Name, Key: v.Key, Counter: v.Counter}
		for _, l := range v.Labels {
			sh.Values[i].Labels = append(sh.Values[i].Labels, labelJSON(l))
		}
		values = appendValue(values, v.Value)
	}
	// Cannot fail: the types hold only strings and bools.
	shape, _ := json.Marshal(sh)
	var diag []byte
	if len(r.Diagnostics) > 0 {
		var err error
		if diag, err = json.Marshal(r.Diagnostics); err != nil {
			// Diagnostics are best effort; never lose the row for them.
			diag, _ = json.Marshal(map[string]string{"store_error": "diagnostics not stored: " + err.Error()})
		}
	}
	return row{
		check: rec.Check, typ: rec.Type, shape: string(shape),
		startMS: r.Start.UnixMilli(), durationNS: int64(r.Duration),
		success: r.Success, reason: string(r.Reason), message: r.Message,
		phases: phases, values: values, diagnostics: string(diag),
	}
}

// appendValue encodes a value in as few bytes as it needs: a whole number
// that a float64 holds exactly (a status code, a byte count, a timestamp)
// as the uvarint of its zigzag encoding shifted left by one, so 200 takes
// two bytes; anything else (fractions, -0, NaN, ±Inf) as the byte 0x01 and
// the eight bytes of its IEEE 754 bits, which round-trips it exactly.
func appendValue(b []byte, v float64) []byte {
	const exact = 1 << 53
	if v >= -exact && v <= exact && v == math.Trunc(v) && !(v == 0 && math.Signbit(v)) {
		i := int64(v)
		return binary.AppendUvarint(b, (uint64(i<<1)^uint64(i>>63))<<1)
	}
	b = append(b, 1)
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
}

var errShortBlob = errors.New("truncated")

func readValue(b []byte) (float64, []byte, error) {
	u, n := binary.Uvarint(b)
	switch {
	case n <= 0:
		return 0, nil, errShortBlob
	case u&1 == 0:
		z := u >> 1
		return float64(int64(z>>1) ^ -int64(z&1)), b[n:], nil
	case u == 1 && len(b) >= n+8:
		return math.Float64frombits(binary.LittleEndian.Uint64(b[n:])), b[n+8:], nil
	}
	return 0, nil, errShortBlob
}

// shapeDef is a result_shapes row, decoded once and shared by every
// record read with it; decode copies what a Record may be changed in.
type shapeDef struct {
	typ    string
	legacy bool // rows from before migration 0006: phases and vals are JSON
	shape  shapeJSON
}

func parseShape(typ, shape string) (*shapeDef, error) {
	d := &shapeDef{typ: typ, legacy: shape == ""}
	if !d.legacy {
		if err := json.Unmarshal([]byte(shape), &d.shape); err != nil {
			return nil, fmt.Errorf("decode shape: %w", err)
		}
	}
	return d, nil
}

// stored is a check_results row as read back, before decoding.
type stored struct {
	startMS, durationNS int64
	success             bool
	reason, message     string
	shapeID             int64
	phases, values      []byte
	diagnostics         []byte // nil for NULL
}

func decode(check string, w stored, sh *shapeDef) (Record, error) {
	rec := Record{Check: check, Type: sh.typ, Result: probes.Result{
		Success:  w.success,
		Reason:   probes.Reason(w.reason),
		Message:  w.message,
		Start:    time.UnixMilli(w.startMS),
		Duration: time.Duration(w.durationNS),
	}}
	r := &rec.Result
	var err error
	if sh.legacy {
		err = decodeLegacy(r, w)
	} else {
		err = decodeNumbers(r, w, sh)
	}
	if err != nil {
		return rec, err
	}
	if w.diagnostics != nil {
		if err := json.Unmarshal(w.diagnostics, &r.Diagnostics); err != nil {
			return rec, fmt.Errorf("decode diagnostics: %w", err)
		}
	}
	if len(r.Diagnostics) == 0 {
		r.Diagnostics = nil
	}
	return rec, nil
}

func decodeNumbers(r *probes.Result, w stored, sh *shapeDef) error {
	b := w.phases
	for _, name := range sh.shape.Phases {
		d, n := binary.Varint(b)
		if n <= 0 {
			return fmt.Errorf("decode phases: %w", errShortBlob)
		}
		b = b[n:]
		r.Phases = append(r.Phases, probes.Phase{Name: name, Duration: time.Duration(d)})
	}
	if len(b) > 0 {
		return fmt.Errorf("decode phases: %d bytes left over", len(b))
	}
	b = w.values
	for _, vs := range sh.shape.Values {
		var v float64
		var err error
		if v, b, err = readValue(b); err != nil {
			return fmt.Errorf("decode values: %w", err)
		}
		pv := probes.Value{Name: vs.Name, Value: v, Key: vs.Key, Counter: vs.Counter}
		for _, l := range vs.Labels {
			pv.Labels = append(pv.Labels, probes.Label(l))
		}
		r.Values = append(r.Values, pv)
	}
	if len(b) > 0 {
		return fmt.Errorf("decode values: %d bytes left over", len(b))
	}
	return nil
}

func decodeLegacy(r *probes.Result, w stored) error {
	var phases []phaseJSON
	if err := json.Unmarshal(w.phases, &phases); err != nil {
		return fmt.Errorf("decode phases: %w", err)
	}
	for _, p := range phases {
		r.Phases = append(r.Phases, probes.Phase{Name: p.Name, Duration: time.Duration(p.DurationNS)})
	}
	var values []valueJSON
	if err := json.Unmarshal(w.values, &values); err != nil {
		return fmt.Errorf("decode values: %w", err)
	}
	for _, v := range values {
		pv := probes.Value{Name: v.Name, Value: float64(v.Value), Key: v.Key}
		for _, l := range v.Labels {
			pv.Labels = append(pv.Labels, probes.Label(l))
		}
		r.Values = append(r.Values, pv)
	}
	return nil
}
