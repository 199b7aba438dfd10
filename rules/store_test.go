package rules

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
)

func newEngine() *promql.Engine {
	return promql.NewEngine(promql.EngineOpts{MaxSamples: 50_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
}

func instant(t *testing.T, st *Store, q string, at time.Time) promql.Vector {
	t.Helper()
	qry, err := newEngine().NewInstantQuery(context.Background(), st, nil, q, at)
	if err != nil {
		t.Fatal(err)
	}
	res := qry.Exec(context.Background())
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	v, err := res.Vector()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestStoreQueries(t *testing.T) {
	st := NewStore()
	base := time.Unix(1_800_000_000, 0)
	for i := 0; i <= 300; i++ { // 300 × 30s = 2.5h, several chunks
		at := base.Add(time.Duration(i) * 30 * time.Second)
		st.Append(labels.FromStrings("__name__", "vigil_check_runs_total", "check", "db", "result", "failure"), at.UnixMilli(), float64(i))
		st.Append(labels.FromStrings("__name__", "vigil_check_success", "check", "db"), at.UnixMilli(), float64(i%2))
	}
	end := base.Add(300 * 30 * time.Second)
	v := instant(t, st, `rate(vigil_check_runs_total[5m])`, end)
	if len(v) != 1 || v[0].F < 0.0333 || v[0].F > 0.0334 {
		t.Fatalf("rate = %v", v)
	}
	v = instant(t, st, `sum by (check) (vigil_check_success)`, end)
	if len(v) != 1 || v[0].F != 0 || v[0].Metric.Get("check") != "db" {
		t.Fatalf("sum = %v", v)
	}
	// Lookback: 4 minutes after the last sample still visible, 6 not.
	if v := instant(t, st, `vigil_check_success`, end.Add(4*time.Minute)); len(v) != 1 {
		t.Fatalf("within lookback: %v", v)
	}
	if v := instant(t, st, `vigil_check_success`, end.Add(6*time.Minute)); len(v) != 0 {
		t.Fatalf("after lookback: %v", v)
	}
	// A stale marker ends the series at once.
	st.MarkStale(labels.FromStrings("__name__", "vigil_check_success", "check", "db"), end.Add(30*time.Second).UnixMilli())
	if v := instant(t, st, `vigil_check_success`, end.Add(time.Minute)); len(v) != 0 {
		t.Fatalf("after the stale marker: %v", v)
	}
	// Truncation drops old chunks but keeps recent data.
	st.Truncate(end.Add(-time.Hour).UnixMilli())
	if v := instant(t, st, `count_over_time(vigil_check_runs_total[3h])`, end); len(v) != 1 || v[0].F < 120 || v[0].F > 241 {
		t.Fatalf("after truncate: %v", v)
	}
}

func TestScraperStaleness(t *testing.T) {
	st := NewStore()
	body := "# TYPE vigil_check_success gauge\nvigil_check_success{check=\"a\",type=\"http\"} 1\nvigil_check_success{check=\"b\",type=\"http\"} 0\n"
	sc := NewScraper(st, func(w io.Writer) { io.WriteString(w, body) })
	t0 := time.Unix(1_800_000_000, 0)
	if n, err := sc.Scrape(t0); err != nil || n != 2 {
		t.Fatalf("%d %v", n, err)
	}
	body = "vigil_check_success{check=\"a\",type=\"http\"} 1\n"
	sc.Scrape(t0.Add(30 * time.Second))
	v := instant(t, st, `vigil_check_success`, t0.Add(40*time.Second))
	if len(v) != 1 || v[0].Metric.Get("check") != "a" {
		t.Fatalf("b should be stale: %v", v)
	}
	body = "garbage{\n"
	if _, err := sc.Scrape(t0.Add(time.Minute)); err == nil {
		t.Fatal("bad exposition accepted")
	}
}

// TestBytesPerSample reports the store's density on realistic series: 24 h
// at 30 s of gauges that mostly repeat and counters that grow.
func TestBytesPerSample(t *testing.T) {
	st := NewStore()
	rng := rand.New(rand.NewPCG(1, 1))
	base := time.Unix(1_800_000_000, 0)
	for i := 0; i < 2880; i++ {
		at := base.Add(time.Duration(i) * 30 * time.Second).UnixMilli()
		for s := 0; s < 50; s++ {
			st.Append(labels.FromStrings("__name__", "g", "i", fmt.Sprint(s)), at, float64(rng.IntN(2)))
			st.Append(labels.FromStrings("__name__", "c", "i", fmt.Sprint(s)), at, float64(i*s))
			st.Append(labels.FromStrings("__name__", "d", "i", fmt.Sprint(s)), at, 0.01+rng.Float64()/100)
		}
	}
	series, samples, bytes := st.Stats()
	t.Logf("%d series, %d samples, %d bytes: %.2f bytes/sample", series, samples, bytes, float64(bytes)/float64(samples))
	if series != 150 || samples != 150*2880 {
		t.Fatalf("series %d samples %d", series, samples)
	}
}

// BenchmarkStoreAppend appends one scrape's worth of float samples per
// iteration: 1,000 series (gauges that repeat, counters that grow, noisy
// floats), the agent's live path.
func BenchmarkStoreAppend(b *testing.B) {
	const nseries = 1000
	lsets := make([]labels.Labels, nseries)
	for i := range lsets {
		lsets[i] = labels.FromStrings("__name__", fmt.Sprintf("m%d", i%10), "i", fmt.Sprint(i))
	}
	rng := rand.New(rand.NewPCG(1, 1))
	st := NewStore()
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		t := int64(n) * 15_000
		for i, l := range lsets {
			var v float64
			switch i % 10 {
			case 0, 1, 2, 3, 4, 5, 6:
				v = float64(i % 2)
			case 7, 8:
				v = float64(n * i)
			default:
				v = rng.Float64()
			}
			st.Append(l, t, v)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*nseries), "ns/sample")
}

// BenchmarkStoreQuery runs a rate over 100 series of 1 h of 15 s samples
// (several chunks each), the read side of the same store.
func BenchmarkStoreQuery(b *testing.B) {
	st := NewStore()
	base := time.Unix(1_800_000_000, 0)
	for s := 0; s < 240; s++ {
		at := base.Add(time.Duration(s) * 15 * time.Second).UnixMilli()
		for i := 0; i < 100; i++ {
			st.Append(labels.FromStrings("__name__", "c", "i", fmt.Sprint(i)), at, float64(s*i))
		}
	}
	eng := newEngine()
	end := base.Add(time.Hour)
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		q, err := eng.NewInstantQuery(context.Background(), st, nil, `sum(rate(c[1h]))`, end)
		if err != nil {
			b.Fatal(err)
		}
		if res := q.Exec(context.Background()); res.Err != nil {
			b.Fatal(res.Err)
		}
		q.Close()
	}
}
