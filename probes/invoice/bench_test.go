package invoice

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkInvoiceQR runs the whole invoice_qr check against the demo
// platform on loopback and splits each run into service time (waiting on
// the platform: issue, fetches, read-back, void) and probe time (decoding
// the PNG and the PDF, parsing, validating). Medians are reported beside
// the means because the machines are noisy.
func BenchmarkInvoiceQR(b *testing.B) {
	d := startDemo(b)
	check := qrCheck(b, d.URL["gateway"], nil)
	var total, service, probe []float64
	for b.Loop() {
		start := time.Now()
		r := run(b, check, 10*time.Second)
		if !r.Success {
			b.Fatal(r.Reason, r.Message)
		}
		total = append(total, time.Since(start).Seconds())
		service = append(service, value(r, "vigil_invoice_qr_service_seconds"))
		probe = append(probe, value(r, "vigil_invoice_qr_probe_seconds"))
	}
	b.ReportMetric(median(total)*1e3, "median-ms")
	b.ReportMetric(median(service)*1e3, "service-median-ms")
	b.ReportMetric(median(probe)*1e3, "probe-median-ms")
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// BenchmarkRealDocuments reads the real e-invoices in the fixtures the way
// the check and `vigil einvoice inspect` do (open, find the QR, decode,
// parse; for OFD also the embedded data), one sub-benchmark per format:
// the median time per document, OFD beside PDF.
func BenchmarkRealDocuments(b *testing.B) {
	dir := fixtureDir(b)
	for _, ext := range []string{".pdf", ".ofd"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*"+ext))
		var docs [][]byte
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				b.Fatal(err)
			}
			docs = append(docs, data)
		}
		b.Run(strings.TrimPrefix(ext, "."), func(b *testing.B) {
			var per []float64
			for b.Loop() {
				for _, d := range docs {
					start := time.Now()
					if in := Inspect("bench", d); in.Unreadable != "" || len(in.Problems) > 0 {
						b.Fatal(in.Unreadable, in.Problems)
					}
					per = append(per, time.Since(start).Seconds())
				}
			}
			b.ReportMetric(median(per)*1e3, "median-ms/doc")
			b.ReportMetric(float64(len(docs)), "docs")
		})
	}
}
