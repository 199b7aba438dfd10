//go:build peerbench

package rules

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// benchSeries writes 10,000 series (100 metrics × 100 instances) the way
// an exporter page looks: 70% gauges that rarely change, 20% counters,
// 10% noisy floats. step advances the counters.
func benchSeries(w io.Writer, step int, rng *rand.Rand) {
	for m := 0; m < 100; m++ {
		kind := "gauge"
		if m >= 70 && m < 90 {
			kind = "counter"
		}
		fmt.Fprintf(w, "# TYPE bench_m%d %s\n", m, kind)
		for i := 0; i < 100; i++ {
			var v float64
			switch {
			case m < 70:
				v = float64((i + m) % 2)
			case m < 90:
				v = float64(step * (i + 1))
			default:
				v = rng.Float64()
			}
			fmt.Fprintf(w, "bench_m%d{instance=\"host-%d\",shard=\"%d\"} %g\n", m, i, i%10, v)
		}
	}
}

// benchRules writes 1,000 rules in 10 groups: 800 alerts comparing a
// metric, 200 recording rules aggregating a counter's rate.
func benchRules(path string) {
	var b strings.Builder
	b.WriteString("groups:\n")
	for g := 0; g < 10; g++ {
		fmt.Fprintf(&b, "  - name: g%d\n    rules:\n", g)
		for r := 0; r < 100; r++ {
			n := g*100 + r
			if r < 80 {
				fmt.Fprintf(&b, "      - alert: A%d\n        expr: bench_m%d{shard=\"%d\"} > 0.5\n        for: 1m\n        labels: {severity: warning}\n        annotations: {summary: \"{{ $labels.instance }} at {{ $value }}\"}\n", n, n%70, n%10)
			} else {
				fmt.Fprintf(&b, "      - record: job:bench_m%d:rate1m_%d\n        expr: sum by (shard) (rate(bench_m%d[1m]))\n", 70+n%20, n, 70+n%20)
			}
		}
	}
	os.WriteFile(path, []byte(b.String()), 0o644)
}

// TestPeerRules evaluates the same 1,000 rules over the same 10,000
// series in vigil (in process) and in Prometheus (Debian's, scraping the
// series over HTTP), and reports one evaluation round's duration in each.
func TestPeerRules(t *testing.T) {
	dir := t.TempDir()
	rulesPath := filepath.Join(dir, "bench.rules.yml")
	benchRules(rulesPath)

	// vigil: 20 minutes of 15s scrapes, then timed rounds.
	st := NewStore()
	rng := rand.New(rand.NewPCG(1, 2))
	step := 0
	sc := NewScraper(st, TextSource(func(w io.Writer) { benchSeries(w, step, rng) }))
	base := time.Now().Add(-20 * time.Minute)
	for ; step < 80; step++ {
		if _, err := sc.Scrape(base.Add(time.Duration(step) * 15 * time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	groups, err := LoadFiles(dir, []string{"bench.rules.yml"}, 15*time.Second, nil, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	m := NewManager(Options{Store: st, Engine: newTestEngine(), Notifier: discardNotifier{}})
	m.Update(groups)
	var rounds []time.Duration
	var allocs []uint64
	for i := 0; i < 6; i++ {
		ts := base.Add(time.Duration(step+i) * 15 * time.Second)
		sc.Scrape(ts)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		for _, g := range groups {
			m.EvalGroup(context.Background(), g, ts)
		}
		rounds = append(rounds, time.Since(start))
		runtime.ReadMemStats(&after)
		allocs = append(allocs, after.Mallocs-before.Mallocs)
	}
	vigil := median(rounds)
	series, samples, bytes := st.Stats()
	t.Logf("vigil: %d series, %d samples, %.2f bytes/sample; one round of 1,000 rules: median %s (rounds %v), %d allocs",
		series, samples, float64(bytes)/float64(samples), vigil, rounds, allocs[len(allocs)/2])

	prom, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not installed (apt-get install prometheus)")
	}
	// Prometheus scrapes the same page every 15s and evaluates every 15s.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	pstep := 0
	prng := rand.New(rand.NewPCG(1, 2))
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pstep++
		benchSeries(w, pstep, prng)
	}))
	cfg := fmt.Sprintf("global: {scrape_interval: 15s, evaluation_interval: 15s}\nrule_files: [%q]\nscrape_configs:\n  - job_name: bench\n    static_configs: [{targets: [%q]}]\n", rulesPath, ln.Addr().String())
	os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644)
	pl, _ := net.Listen("tcp", "127.0.0.1:0")
	paddr := pl.Addr().String()
	pl.Close()
	cmd := exec.Command(prom, "--config.file", filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path", filepath.Join(dir, "tsdb"),
		"--web.listen-address", paddr, "--log.level", "warn")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	wait := 150 * time.Second
	if s := os.Getenv("PROM_WAIT"); s != "" {
		wait, _ = time.ParseDuration(s)
	}
	time.Sleep(wait)
	resp, err := http.Get("http://" + paddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	re := regexp.MustCompile(`(?m)^prometheus_rule_group_last_duration_seconds\{[^}]*\} (\S+)$`)
	total := 0.0
	n := 0
	for _, m := range re.FindAllStringSubmatch(string(body), -1) {
		v, _ := strconv.ParseFloat(m[1], 64)
		total += v
		n++
	}
	if n != 10 {
		t.Fatalf("prometheus reported %d groups", n)
	}
	promRound := time.Duration(total * float64(time.Second))
	t.Logf("prometheus: one round of 1,000 rules (sum of the 10 groups' last durations): %s; vigil/prometheus %.2f",
		promRound, vigil.Seconds()/promRound.Seconds())
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s[len(s)/2]
}
