package promhelp

import (
	"bytes"
	"testing"

	vm "github.com/VictoriaMetrics/metrics"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func TestFill(t *testing.T) {
	help := map[string]string{"a_total": "Things done.", "b": `Odd \ text` + "\nsecond line"}
	for _, tc := range []struct{ name, in, want string }{
		{"empty help filled", "# HELP a_total\n# TYPE a_total counter\na_total 1\n",
			"# HELP a_total Things done.\n# TYPE a_total counter\na_total 1\n"},
		{"escaped", "# HELP b\nb 2\n", "# HELP b Odd \\\\ text\\nsecond line\nb 2\n"},
		{"existing help kept", "# HELP a_total Own text.\na_total 1\n", "# HELP a_total Own text.\na_total 1\n"},
		{"unknown family left", "# HELP c\nc 3\n", "# HELP c\nc 3\n"},
		{"no trailing newline", "# HELP a_total", "# HELP a_total Things done.\n"},
		{"summary typed", "# HELP a_total\n# TYPE a_total unsupported\na_total{quantile=\"0.5\"} 1\n",
			"# HELP a_total Things done.\n# TYPE a_total summary\na_total{quantile=\"0.5\"} 1\n"},
		{"samples untouched", "a_total{x=\"# HELP a_total\"} 1\n", "a_total{x=\"# HELP a_total\"} 1\n"},
	} {
		if got := string(Fill([]byte(tc.in), help)); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestWriteParses writes a set holding every kind VictoriaMetrics/metrics
// has through Write and parses it as Prometheus does.
func TestWriteParses(t *testing.T) {
	vm.ExposeMetadata(true)
	s := vm.NewSet()
	s.GetOrCreateSummary(`s_seconds{phase="step"}`).Update(1)
	s.GetOrCreateHistogram(`h_seconds{r="a"}`).Update(0.3)
	s.GetOrCreateCounter(`c_total`).Inc()
	s.GetOrCreateGauge(`g`, func() float64 { return 2 })
	var b bytes.Buffer
	Write(&b, s, map[string]string{"s_seconds": "S.", "h_seconds": "H.", "c_total": "C.", "g": "G."})
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(&b)
	if err != nil {
		t.Fatalf("%v in:\n%s", err, b.String())
	}
	if len(fams) != 4 || fams["s_seconds"].GetType().String() != "SUMMARY" || fams["g"].GetHelp() != "G." {
		t.Errorf("parsed %v", fams)
	}
}
