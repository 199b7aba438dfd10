package lastrun

import (
	"reflect"
	"testing"
	"time"

	"github.com/vigil-project/vigil/probes"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 12, 4, 9, 0, 0, 123456789, time.UTC)
	tests := []struct {
		name string
		r    probes.Result
	}{
		{"empty", probes.Result{}},
		{"failure without values", probes.Result{Reason: probes.ReasonTimeout, Message: "no answer", Start: start, Duration: 5 * time.Second,
			Diagnostics: map[string]any{"traceroute_target": "10.0.0.1"}}},
		{"http", probes.Result{Success: true, Start: start, Duration: 1930 * time.Microsecond,
			Phases: []probes.Phase{{Name: "dns", Duration: 0}, {Name: "connect", Duration: 213 * time.Microsecond}, {Name: "first_byte", Duration: time.Hour}},
			Values: []probes.Value{{Name: "vigil_http_status_code", Value: 200, Key: true}, {Name: "vigil_http_response_bytes", Value: 1 << 40},
				{Name: "vigil_http_version", Value: 1.1}}}},
		{"labelled values and counters", probes.Result{Success: true,
			Values: []probes.Value{{Name: "vigil_host_filesystem_free_ratio", Value: 0.25, Labels: []probes.Label{{Name: "mountpoint", Value: "/"}}},
				{Name: "vigil_log_lines_total", Value: 123456789, Counter: true}, {Name: "vigil_x", Value: -0.5}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := From(tt.r).Result()
			if !reflect.DeepEqual(got, tt.r) {
				t.Errorf("round trip:\n got %+v\nwant %+v", got, tt.r)
			}
		})
	}
}

// Results of one shape share it; a different name, label, flag or phase
// makes another; numbers are each result's own.
func TestShapesShared(t *testing.T) {
	t.Parallel()
	base := func(status float64) probes.Result {
		return probes.Result{Success: true, Phases: []probes.Phase{{Name: "dns"}, {Name: "connect", Duration: time.Duration(status)}},
			Values: []probes.Value{{Name: "vigil_test_shape_status", Value: status, Labels: []probes.Label{{Name: "k", Value: "v"}}}}}
	}
	a, b := From(base(200)), From(base(503))
	if a.shape != b.shape {
		t.Error("two results of one shape do not share it")
	}
	if a.Value(0).Value != 200 || b.Value(0).Value != 503 || b.Phase(1).Duration != 503 {
		t.Errorf("numbers mixed up: %v %v %v", a.Value(0), b.Value(0), b.Phase(1))
	}
	variants := map[string]func(*probes.Result){
		"label value": func(r *probes.Result) { r.Values[0].Labels = []probes.Label{{Name: "k", Value: "w"}} },
		"no labels":   func(r *probes.Result) { r.Values[0].Labels = nil },
		"key flag":    func(r *probes.Result) { r.Values[0].Key = true },
		"counter":     func(r *probes.Result) { r.Values[0].Counter = true },
		"name":        func(r *probes.Result) { r.Values[0].Name = "vigil_test_shape_other" },
		"phase name":  func(r *probes.Result) { r.Phases[1].Name = "tls" },
		"one phase":   func(r *probes.Result) { r.Phases = r.Phases[:1] },
	}
	for name, mutate := range variants {
		r := base(200)
		mutate(&r)
		l := From(r)
		if l.shape == a.shape {
			t.Errorf("%s: a different shape shares a's", name)
		}
		if got := l.Result(); !reflect.DeepEqual(got, r) {
			t.Errorf("%s: round trip got %+v, want %+v", name, got, r)
		}
	}
}

// A shape does not alias the labels of the result it was made from.
func TestShapeOwnsLabels(t *testing.T) {
	t.Parallel()
	labels := []probes.Label{{Name: "mountpoint", Value: "/srv/owns-labels"}}
	l := From(probes.Result{Values: []probes.Value{{Name: "vigil_test_owns", Labels: labels}}})
	labels[0].Value = "/changed"
	if got := l.Value(0).Labels[0].Value; got != "/srv/owns-labels" {
		t.Errorf("label changed with the caller's slice: %q", got)
	}
}

// At 10,000 checks every check keeps one: the compact form must stay a
// fraction of the full one.
func TestCompact(t *testing.T) {
	r := probes.Result{Success: true, Start: time.Now(),
		Phases: []probes.Phase{{Name: "dns"}, {Name: "connect"}, {Name: "tls"}, {Name: "first_byte"}, {Name: "transfer"}},
		Values: []probes.Value{{Name: "vigil_http_status_code", Value: 200, Key: true}, {Name: "vigil_http_response_bytes", Value: 2},
			{Name: "vigil_http_version", Value: 1.1}, {Name: "vigil_http_redirects"}}}
	From(r)
	if n := testing.AllocsPerRun(100, func() { From(r) }); n > 2 {
		t.Errorf("From made %v allocations per result, want 2 (the result and its numbers)", n)
	}
}
