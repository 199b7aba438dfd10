package logscan

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkScan reads a 100,000-line log of ~180-byte lines (5% matching)
// through the tailer with 20 patterns: the in-process part of what
// `make bench-logscan` compares with mtail. Reported per line.
func BenchmarkScan(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, "app.log")
	f, _ := os.Create(path)
	w := bufio.NewWriter(f)
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 100_000
	for i := 0; i < n; i++ {
		if rng.IntN(100) < 5 {
			fmt.Fprintf(w, `{"time":"2026-11-23T06:00:00.%03dZ","level":"ERROR","msg":"sync failed","role":"primary","number":"2611100000%010d","error_code":"UPSTREAM_5XX"}`+"\n", i%1000, i)
			continue
		}
		fmt.Fprintf(w, `{"time":"2026-11-23T06:00:00.%03dZ","level":"INFO","msg":"request","role":"primary","method":"GET","path":"/api/v1/invoices/2611100000%010d","status":200,"duration_ms":%d.%03d}`+"\n",
			i%1000, rng.IntN(1e9), rng.IntN(400), rng.IntN(1000))
	}
	w.Flush()
	f.Close()
	cfg := defaultConfig()
	cfg.Paths = []string{path}
	cfg.StartAt = "beginning"
	for i := 0; i < 19; i++ {
		cfg.Patterns = append(cfg.Patterns, Pattern{Name: fmt.Sprintf("p%d", i), Regex: fmt.Sprintf(`"error_code":"CODE_%d"`, i)})
	}
	cfg.Patterns = append(cfg.Patterns, Pattern{Name: "sync", Regex: `"msg":"sync failed".*"error_code":"(?P<code>[A-Z_0-9]+)"`, LabelsFromGroups: []string{"code"}})
	m, _, err := newMatcher(cfg.Patterns)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		c := newCounters(cfg.Patterns)
		t := newTailer(cfg, m, c, quiet)
		t.poll()
		t.close()
		if c.lines != n {
			b.Fatalf("lines %d", c.lines)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/line")
}
