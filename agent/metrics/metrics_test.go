package metrics

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/vigil-project/vigil/agent/lastrun"
	"github.com/vigil-project/vigil/probes"
)

func render(e *Exporter) string {
	var b bytes.Buffer
	e.writeChecks(&b)
	e.WriteAgent(&b)
	return b.String()
}

func TestObserve(t *testing.T) {
	e := New()
	c := Check{Name: "host", Type: "host", Labels: map[string]string{"team": "invoice"}}
	start := time.Unix(1700000000, 500_000_000)
	fail := probes.Result{
		Reason: probes.ReasonDiskLow, Start: start, Duration: 1500 * time.Millisecond,
		Phases: []probes.Phase{{Name: "cpu", Duration: time.Second}},
		Values: []probes.Value{
			{Name: "vigil_host_filesystem_avail_bytes", Value: 10, Labels: []probes.Label{{Name: "mountpoint", Value: "/"}}},
			{Name: "vigil_host_filesystem_avail_bytes", Value: 20, Labels: []probes.Label{{Name: "mountpoint", Value: "/data"}}},
		},
	}
	e.Observe(c, lastrun.From(fail))
	e.Observe(c, lastrun.From(fail))
	got := render(e)
	for _, want := range []string{
		`vigil_check_success{check="host",type="host",team="invoice"} 0`,
		`vigil_check_duration_seconds{check="host",type="host",team="invoice"} 1.5`,
		`vigil_check_last_run_timestamp_seconds{check="host",type="host",team="invoice"} 1.7000000005e+09`,
		`vigil_check_consecutive_failures{check="host",type="host",team="invoice"} 2`,
		`vigil_check_runs_total{check="host",type="host",team="invoice",result="failure"} 2`,
		`vigil_check_runs_total{check="host",type="host",team="invoice",result="success"} 0`,
		`vigil_check_failure_info{check="host",type="host",team="invoice",reason="disk_low"} 1`,
		`vigil_check_phase_duration_seconds{check="host",type="host",team="invoice",phase="cpu"} 1`,
		`vigil_host_filesystem_avail_bytes{check="host",type="host",team="invoice",mountpoint="/data"} 20`,
		"# TYPE vigil_check_runs_total counter",
	} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}

	// The next result passes and /data is gone: its series and failure_info must go.
	e.Observe(c, lastrun.From(probes.Result{Success: true, Start: start, Values: fail.Values[:1]}))
	got = render(e)
	for _, gone := range []string{"vigil_check_failure_info", `mountpoint="/data"`, "vigil_check_phase_duration_seconds"} {
		if strings.Contains(got, gone) {
			t.Errorf("stale series %q still exported:\n%s", gone, got)
		}
	}
	for _, want := range []string{
		`vigil_check_consecutive_failures{check="host",type="host",team="invoice"} 0`,
		`vigil_check_runs_total{check="host",type="host",team="invoice",result="success"} 1`,
	} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("missing %q", want)
		}
	}

	e.Forget("host")
	if got := render(e); strings.Contains(got, `check="host"`) {
		t.Errorf("series left after Forget:\n%s", got)
	}
}

func TestSeriesName(t *testing.T) {
	tests := []struct {
		name        string
		base, extra []probes.Label
		want        string
	}{
		{"escaping", []probes.Label{{Name: "check", Value: "a\"b\\c\nd"}}, nil, `m{check="a\"b\\c\nd"}`},
		{"family label wins", []probes.Label{{Name: "check", Value: "x"}, {Name: "process", Value: "user"}}, []probes.Label{{Name: "process", Value: "nginx"}}, `m{check="x",process="nginx"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := seriesName("m", tt.base, tt.extra); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

// BenchmarkWritePrometheus10k renders 10,000 check series (1,000 checks
// with four values each plus six core series) — the /metrics cost.
func BenchmarkWritePrometheus10k(b *testing.B) {
	e := New()
	for i := range 1000 {
		r := probes.Result{Success: i%7 != 0, Reason: probes.ReasonTimeout, Start: time.Now(), Duration: time.Millisecond}
		for j := range 4 {
			r.Values = append(r.Values, probes.Value{Name: fmt.Sprintf("vigil_bench_value_%d", j), Value: float64(i * j)})
		}
		e.Observe(Check{Name: fmt.Sprintf("check-%04d", i), Type: "http"}, lastrun.From(r))
	}
	var buf bytes.Buffer
	e.writeChecks(&buf)
	series := strings.Count(buf.String(), "\n") - strings.Count(buf.String(), "# ")
	b.ReportAllocs()
	for b.Loop() {
		e.writeChecks(io.Discard)
	}
	b.ReportMetric(float64(series), "series")
}

type fakeCollector []probes.Value

func (f fakeCollector) Collect() []probes.Value { return f }

func TestCollector(t *testing.T) {
	e := New()
	e.SetCollector(Check{Name: "b-logs", Type: "logscan"}, fakeCollector{
		{Name: "vigil_log_lines_total", Value: 12, Counter: true},
		{Name: "vigil_log_matches_total", Labels: []probes.Label{{Name: "pattern", Value: "err"}}, Value: 3, Counter: true},
		{Name: "vigil_log_last_match_timestamp_seconds", Value: 1.5e9 + 0.25},
	})
	e.SetCollector(Check{Name: "a-logs", Type: "logscan", Labels: map[string]string{"team": "ops"}}, fakeCollector{
		{Name: "vigil_log_lines_total", Value: 7, Counter: true},
	})
	var b strings.Builder
	e.WritePrometheus(&b)
	out := b.String()
	for _, want := range []string{
		"# TYPE vigil_log_lines_total counter\nvigil_log_lines_total{check=\"a-logs\",type=\"logscan\",team=\"ops\"} 7\nvigil_log_lines_total{check=\"b-logs\",type=\"logscan\"} 12\n",
		"# TYPE vigil_log_matches_total counter\nvigil_log_matches_total{check=\"b-logs\",type=\"logscan\",pattern=\"err\"} 3\n",
		"# TYPE vigil_log_last_match_timestamp_seconds gauge\nvigil_log_last_match_timestamp_seconds{check=\"b-logs\",type=\"logscan\"} 1.50000000025e+09\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing\n%s\nin\n%s", want, out)
		}
	}
	e.RemoveCollector("b-logs")
	b.Reset()
	e.WritePrometheus(&b)
	if strings.Contains(b.String(), "b-logs") {
		t.Error("removed collector still exported")
	}
}

// TestFailureThreshold: with a threshold of 3 the first two failures in a
// row are counted (runs, consecutive failures) but the check still passes
// in vigil_check_success, without failure_info; the third makes it fail,
// a pass clears it, and a blip shorter than the threshold never shows.
func TestFailureThreshold(t *testing.T) {
	e := New()
	c := Check{Name: "qr", Type: "invoice_qr", FailureThreshold: 3}
	fail := probes.Result{Reason: probes.ReasonQRMismatch, Start: time.Now()}
	pass := probes.Result{Success: true, Start: time.Now()}
	var changes []bool
	step := func(r probes.Result, success string, info bool) {
		t.Helper()
		changes = append(changes, e.Observe(c, lastrun.From(r)))
		got := render(e)
		if want := `vigil_check_success{check="qr",type="invoice_qr"} ` + success; !strings.Contains(got, want) {
			t.Errorf("want %s in\n%s", want, got)
		}
		if has := strings.Contains(got, "vigil_check_failure_info"); has != info {
			t.Errorf("failure_info present=%v, want %v:\n%s", has, info, got)
		}
	}
	step(pass, "1", false)
	step(fail, "1", false)
	step(fail, "1", false)
	step(fail, "0", true)
	step(fail, "0", true)
	step(pass, "1", false)
	step(fail, "1", false) // a blip
	step(pass, "1", false)
	if got := render(e); !strings.Contains(got, `vigil_check_runs_total{check="qr",type="invoice_qr",result="failure"} 5`) {
		t.Errorf("every failure counts in runs_total:\n%s", got)
	}
	// Observe says when the confirmed state changed: the first result, the
	// third failure, the pass after it.
	if got := fmt.Sprint(changes); got != "[true false false true false true false false]" {
		t.Errorf("changed %s", got)
	}
}

// TestSamplesMatchText: the rule engine's in-process read and the /metrics
// text carry the same series and values, across render chunks, with
// colliding labels, collectors and failures.
func TestSamplesMatchText(t *testing.T) {
	e := New()
	// Uptime: c0000 has all three windows, c0001 only 30 days, the rest none.
	e.SetUptime(func(check string) ([3]float64, [3]bool) {
		switch check {
		case "c0000":
			return [3]float64{1, 0.99, 0.5}, [3]bool{true, true, true}
		case "c0001":
			return [3]float64{0, 0, 0.25}, [3]bool{false, false, true}
		}
		return [3]float64{}, [3]bool{}
	})
	start := time.Unix(1700000000, 250_000_000)
	for i := range 3*renderChunk + 7 {
		c := Check{Name: fmt.Sprintf("c%04d", i), Type: "http", Interval: time.Minute, FailureThreshold: 1 + i%3,
			Labels: map[string]string{"team": "t" + strconv.Itoa(i%4), "process": "user"}}
		r := probes.Result{Success: i%5 != 0, Reason: probes.ReasonTimeout, Start: start, Duration: time.Duration(i) * time.Millisecond,
			Phases: []probes.Phase{{Name: "connect", Duration: time.Millisecond}},
			Values: []probes.Value{{Name: "vigil_http_status_code", Value: 200}, {Name: "vigil_proc_count", Value: 2, Labels: []probes.Label{{Name: "process", Value: "nginx\"x"}}}}}
		for range 1 + i%4 {
			e.Observe(c, lastrun.From(r))
		}
		if i%50 == 0 {
			e.SetCollector(c, fakeCollector{{Name: "vigil_log_lines_total", Value: float64(i), Counter: true}})
		}
	}
	// A collector of a check that has not run yet has only its values.
	e.SetCollector(Check{Name: "zz-logs", Type: "logscan"}, fakeCollector{{Name: "vigil_log_lines_total", Value: 1.5, Counter: true}})

	var b bytes.Buffer
	e.writeChecks(&b)
	fromText := map[string]float64{}
	p := textparse.NewPromParser(b.Bytes(), labels.NewSymbolTable(), false)
	var lset labels.Labels
	for {
		et, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("text does not parse: %v", err)
		}
		if et == textparse.EntrySeries {
			_, _, v := p.Series()
			p.Labels(&lset)
			if _, dup := fromText[lset.String()]; dup {
				t.Errorf("series twice in the text: %s", lset)
			}
			fromText[lset.String()] = v
		}
	}
	for series, want := range map[string]float64{
		`{__name__="vigil_check_uptime_ratio", check="c0000", process="user", team="t0", type="http", window="24h"}`: 1,
		`{__name__="vigil_check_uptime_ratio", check="c0000", process="user", team="t0", type="http", window="30d"}`: 0.5,
		`{__name__="vigil_check_uptime_ratio", check="c0001", process="user", team="t1", type="http", window="30d"}`: 0.25,
	} {
		if got, ok := fromText[series]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}
	if n := strings.Count(b.String(), "vigil_check_uptime_ratio{"); n != 4 {
		t.Errorf("%d uptime series, want 4 (windows without runs are absent)", n)
	}
	fromSamples := map[string]float64{}
	e.Samples(func(string) bool { return true }, func(l labels.Labels, v float64) { fromSamples[l.String()] = v })
	if len(fromText) < 3*renderChunk*10 {
		t.Fatalf("only %d series in the text", len(fromText))
	}
	if !maps.Equal(fromText, fromSamples) {
		for k, v := range fromText {
			if w, ok := fromSamples[k]; !ok || w != v {
				t.Errorf("text %s %v, samples %v (present %v)", k, v, w, ok)
			}
		}
		t.Fatalf("text has %d series, samples %d", len(fromText), len(fromSamples))
	}
	for _, want := range []string{
		`{__name__="vigil_proc_count", check="c0001", process="nginx\"x", team="t1", type="http"}`,
		`{__name__="vigil_log_lines_total", check="zz-logs", type="logscan"}`,
		`{__name__="vigil_check_failure_info", check="c0000", process="user", reason="timeout", team="t0", type="http"}`,
	} {
		if _, ok := fromText[want]; !ok {
			t.Errorf("missing %s", want)
		}
	}
	if _, ok := fromText[`{__name__="vigil_check_success", check="zz-logs", type="logscan"}`]; ok {
		t.Error("a check that never ran has core series")
	}
	// Families filter by name.
	n := 0
	e.Samples(func(name string) bool { return name == "vigil_check_success" }, func(l labels.Labels, v float64) {
		if l.Get(model.MetricNameLabel) != "vigil_check_success" {
			t.Errorf("unwanted %s", l)
		}
		n++
	})
	if n != 3*renderChunk+7 {
		t.Errorf("%d vigil_check_success samples", n)
	}
}

// TestConcurrentScrape: results keep arriving while /metrics and the rule
// engine read (run under -race).
func TestConcurrentScrape(t *testing.T) {
	e := New()
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			c := Check{Name: fmt.Sprintf("c%d", i%700), Type: "http"}
			e.Observe(c, lastrun.From(probes.Result{Success: i%3 == 0, Start: time.Now(), Values: []probes.Value{{Name: "vigil_x", Value: float64(i)}}}))
			if i%97 == 0 {
				e.Forget(c.Name)
			}
		}
	})
	for range 20 {
		e.WritePrometheus(io.Discard)
		e.Samples(func(string) bool { return true }, func(labels.Labels, float64) {})
	}
	close(done)
	wg.Wait()
}
