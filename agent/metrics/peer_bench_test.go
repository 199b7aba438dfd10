//go:build peerbench

package metrics

import (
	"fmt"
	"io"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// BenchmarkPeerClientGolang10k renders the same 10,000 series shape as
// BenchmarkWritePrometheus10k with prometheus/client_golang, the library
// most exporters use, for a side-by-side ratio (make bench-peer).
func BenchmarkPeerClientGolang10k(b *testing.B) {
	reg := prometheus.NewRegistry()
	labels := []string{"check", "type"}
	core := []string{"vigil_check_success", "vigil_check_duration_seconds", "vigil_check_last_run_timestamp_seconds", "vigil_check_consecutive_failures"}
	var vecs []*prometheus.GaugeVec
	for _, n := range core {
		vecs = append(vecs, prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: n}, labels))
	}
	runs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_check_runs_total"}, []string{"check", "type", "result"})
	failure := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vigil_check_failure_info"}, []string{"check", "type", "reason"})
	var values []*prometheus.GaugeVec
	for j := range 4 {
		values = append(values, prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: fmt.Sprintf("vigil_bench_value_%d", j)}, labels))
	}
	for _, c := range append(append(vecs, values...), failure) {
		reg.MustRegister(c)
	}
	reg.MustRegister(runs)
	for i := range 1000 {
		name := fmt.Sprintf("check-%04d", i)
		for _, v := range vecs {
			v.WithLabelValues(name, "http").Set(1)
		}
		runs.WithLabelValues(name, "http", "success").Inc()
		runs.WithLabelValues(name, "http", "failure")
		if i%7 == 0 {
			failure.WithLabelValues(name, "http", "timeout").Set(1)
		}
		for j, v := range values {
			v.WithLabelValues(name, "http").Set(float64(i * j))
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		mfs, err := reg.Gather()
		if err != nil {
			b.Fatal(err)
		}
		enc := expfmt.NewEncoder(io.Discard, expfmt.NewFormat(expfmt.TypeTextPlain))
		for _, mf := range mfs {
			if err := enc.Encode(mf); err != nil {
				b.Fatal(err)
			}
		}
	}
}
