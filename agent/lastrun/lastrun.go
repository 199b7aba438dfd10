// Package lastrun keeps a check's last result compactly. At thousands of
// checks every check holds one, for the exporter, the API, pages and
// alerts: as a probes.Result with its own phase and value slices it was
// about 480 bytes a check, most of it names and labels that every result
// of a check repeats. Here a result keeps its own numbers; the names,
// labels and flags of its values and the names of its phases (its shape)
// are shared by every result of the same shape.
package lastrun

import (
	"hash/maphash"
	"slices"
	"sync"
	"time"

	"github.com/vigil-project/vigil/probes"
)

// Result is a check's last result. It is never modified once made.
type Result struct {
	Start    time.Time
	Duration time.Duration
	Success  bool
	Reason   probes.Reason
	Message  string
	// Diagnostics are the result's own (rare: failures with a traceroute
	// and the like).
	Diagnostics map[string]any
	shape       *shape
	// nums are the values' numbers, then the phases' durations in
	// nanoseconds (exact in a float64 up to 104 days).
	nums []float64
}

// shape is what results of one kind share: their values without the
// numbers and their phase names, in order.
type shape struct {
	values []probes.Value
	phases []string
}

// From keeps r compactly.
func From(r probes.Result) *Result {
	nums := make([]float64, len(r.Values)+len(r.Phases))
	for i, v := range r.Values {
		nums[i] = v.Value
	}
	for i, p := range r.Phases {
		nums[len(r.Values)+i] = float64(p.Duration)
	}
	return &Result{Start: r.Start, Duration: r.Duration, Success: r.Success, Reason: r.Reason, Message: r.Message,
		Diagnostics: r.Diagnostics, shape: shapeOf(&r), nums: nums}
}

// Result is the full probes.Result again (its slices are new).
func (l *Result) Result() probes.Result {
	r := probes.Result{Start: l.Start, Duration: l.Duration, Success: l.Success, Reason: l.Reason, Message: l.Message,
		Diagnostics: l.Diagnostics}
	if n := len(l.shape.values); n > 0 {
		r.Values = make([]probes.Value, n)
		for i, v := range l.shape.values {
			v.Value = l.nums[i]
			r.Values[i] = v
		}
	}
	if n := l.NumPhases(); n > 0 {
		r.Phases = make([]probes.Phase, n)
		for i := range n {
			r.Phases[i] = l.Phase(i)
		}
	}
	return r
}

// NumValues is how many values the result has.
func (l *Result) NumValues() int { return len(l.shape.values) }

// Value is the result's i-th value; its labels are shared and must not be
// modified.
func (l *Result) Value(i int) probes.Value {
	v := l.shape.values[i]
	v.Value = l.nums[i]
	return v
}

// NumPhases is how many phases the result has.
func (l *Result) NumPhases() int { return len(l.shape.phases) }

// Phase is the result's i-th phase.
func (l *Result) Phase(i int) probes.Phase {
	return probes.Phase{Name: l.shape.phases[i], Duration: time.Duration(l.nums[len(l.shape.values)+i])}
}

// shapes interns shapes by a hash of their contents. A result whose shape
// hashes like another of different contents (a collision) gets a shape of
// its own and takes the slot. The table is bounded: values come from
// bounded sets (probes.Value), but a check whose labels change keeps
// adding shapes; past maxShapes the table starts over (results keep their
// shapes; only sharing with later ones is lost).
var shapes = struct {
	sync.RWMutex
	m map[uint64]*shape
}{m: map[uint64]*shape{}}

const maxShapes = 10_000

var seed = maphash.MakeSeed()

func shapeOf(r *probes.Result) *shape {
	var h maphash.Hash
	h.SetSeed(seed)
	for _, v := range r.Values {
		h.WriteString(v.Name)
		h.WriteByte(flags(v))
		for _, l := range v.Labels {
			h.WriteByte(1)
			h.WriteString(l.Name)
			h.WriteByte(0)
			h.WriteString(l.Value)
		}
		h.WriteByte(2)
	}
	h.WriteByte(3)
	for _, p := range r.Phases {
		h.WriteString(p.Name)
		h.WriteByte(0)
	}
	sum := h.Sum64()
	shapes.RLock()
	s := shapes.m[sum]
	shapes.RUnlock()
	if s != nil && s.matches(r) {
		return s
	}
	s = &shape{values: make([]probes.Value, len(r.Values)), phases: make([]string, len(r.Phases))}
	for i, v := range r.Values {
		v.Value = 0
		v.Labels = slices.Clone(v.Labels)
		s.values[i] = v
	}
	for i, p := range r.Phases {
		s.phases[i] = p.Name
	}
	shapes.Lock()
	if len(shapes.m) >= maxShapes {
		shapes.m = map[uint64]*shape{}
	}
	shapes.m[sum] = s
	shapes.Unlock()
	return s
}

func flags(v probes.Value) byte {
	var f byte
	if v.Key {
		f |= 1
	}
	if v.Counter {
		f |= 2
	}
	return f
}

func (s *shape) matches(r *probes.Result) bool {
	if len(s.values) != len(r.Values) || len(s.phases) != len(r.Phases) {
		return false
	}
	for i, v := range r.Values {
		w := s.values[i]
		if w.Name != v.Name || w.Key != v.Key || w.Counter != v.Counter || !slices.Equal(w.Labels, v.Labels) {
			return false
		}
	}
	for i, p := range r.Phases {
		if s.phases[i] != p.Name {
			return false
		}
	}
	return true
}
