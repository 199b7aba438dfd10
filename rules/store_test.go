package rules

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
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
	sc := NewScraper(st, TextSource(func(w io.Writer) { io.WriteString(w, body) }))
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

// readBack returns every sample of the series named name as text: "t:v"
// for floats, "t:{{…}}" for histograms (with the hint the chunks give).
func readBack(t *testing.T, st *Store, name string) []string {
	t.Helper()
	q, _ := st.Querier(math.MinInt64, math.MaxInt64)
	ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", name))
	var out []string
	for ss.Next() {
		it := ss.At().Iterator(nil)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			switch vt {
			case chunkenc.ValFloat:
				ts, v := it.At()
				out = append(out, fmt.Sprintf("%d:%g", ts, v))
			case chunkenc.ValFloatHistogram:
				ts, h := it.AtFloatHistogram(nil)
				out = append(out, fmt.Sprintf("%d:%s", ts, h.TestExpression()))
			default:
				t.Fatalf("sample type %v", vt)
			}
		}
	}
	return out
}

func hist(t *testing.T, text string) *histogram.FloatHistogram {
	t.Helper()
	h, err := parseHistogram(text)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestStoreHistograms: native histograms go into float-histogram chunks,
// a change of sample type cuts a chunk, counter resets and stale markers
// are recorded as Prometheus' head records them, and queries read it all.
func TestStoreHistograms(t *testing.T) {
	for _, tc := range []struct {
		name   string
		append func(t *testing.T, st *Store, l labels.Labels)
		want   []string
		chunks int
	}{
		{"floats then histograms then floats", func(t *testing.T, st *Store, l labels.Labels) {
			st.Append(l, 1000, 1)
			st.AppendHistogram(l, 2000, hist(t, "{{count:1 buckets:[1]}}"))
			st.AppendHistogram(l, 3000, hist(t, "{{count:2 buckets:[2]}}"))
			st.Append(l, 4000, 7)
		}, []string{"1000:1", "2000:{{count:1 buckets:[1]}}", "3000:{{count:2 counter_reset_hint:not_reset buckets:[2]}}", "4000:7"}, 3},
		{"a counter reset starts a chunk", func(t *testing.T, st *Store, l labels.Labels) {
			st.AppendHistogram(l, 1000, hist(t, "{{count:5 buckets:[5]}}"))
			st.AppendHistogram(l, 2000, hist(t, "{{count:1 buckets:[1]}}"))
			st.AppendHistogram(l, 3000, hist(t, "{{count:2 buckets:[2]}}"))
		}, []string{"1000:{{count:5 buckets:[5]}}", "2000:{{count:1 buckets:[1]}}", "3000:{{count:2 counter_reset_hint:not_reset buckets:[2]}}"}, 2},
		{"a new bucket recodes the chunk", func(t *testing.T, st *Store, l labels.Labels) {
			st.AppendHistogram(l, 1000, hist(t, "{{count:1 buckets:[1]}}"))
			st.AppendHistogram(l, 2000, hist(t, "{{count:3 buckets:[1 2]}}"))
		}, []string{"1000:{{count:1 buckets:[1]}}", "2000:{{count:3 counter_reset_hint:not_reset buckets:[1 2]}}"}, 1},
		{"a stale marker ends a histogram series as a histogram", func(t *testing.T, st *Store, l labels.Labels) {
			st.AppendHistogram(l, 1000, hist(t, "{{count:1 buckets:[1]}}"))
			st.MarkStale(l, 2000)
		}, []string{"1000:{{count:1 buckets:[1]}}", "2000:{{sum:NaN}}"}, 1},
		{"out-of-order histograms are dropped", func(t *testing.T, st *Store, l labels.Labels) {
			st.Append(l, 2000, 1)
			st.AppendHistogram(l, 2000, hist(t, "{{count:1 buckets:[1]}}"))
			st.AppendHistogram(l, 1000, hist(t, "{{count:1 buckets:[1]}}"))
		}, []string{"2000:1"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := NewStore()
			tc.append(t, st, labels.FromStrings("__name__", "h"))
			if got := readBack(t, st, "h"); !slices.Equal(got, tc.want) {
				t.Errorf("samples\n got %q\nwant %q", got, tc.want)
			}
			ms := st.byID[st.postings["__name__"]["h"][0]]
			if n := len(ms.closed) + 1; n != tc.chunks {
				t.Errorf("%d chunks, want %d", n, tc.chunks)
			}
			if _, samples, _ := st.Stats(); samples != len(tc.want) {
				t.Errorf("Stats: %d samples, want %d", samples, len(tc.want))
			}
		})
	}
}

// TestStoreHistogramQueries: PromQL's histogram functions and rate read
// the store's histograms; the store keeps its own copy of what it is given
// and refuses a histogram Prometheus would refuse.
func TestStoreHistogramQueries(t *testing.T) {
	st := NewStore()
	l := labels.FromStrings("__name__", "lat_seconds", "job", "api")
	base := time.Unix(1_800_000_000, 0)
	for i := 0; i <= 10; i++ {
		h := hist(t, fmt.Sprintf("{{schema:0 sum:%d count:%d buckets:[%d %d]}}", 3*i, 2*i, i, i))
		if err := st.AppendHistogram(l, base.Add(time.Duration(i)*time.Minute).UnixMilli(), h); err != nil {
			t.Fatal(err)
		}
		h.Count = -1 // the store's copy is not the caller's
	}
	end := base.Add(10 * time.Minute)
	for q, want := range map[string]float64{
		`histogram_count(lat_seconds)`:                        20,
		`histogram_sum(lat_seconds)`:                          30,
		`histogram_count(rate(lat_seconds[5m]))`:              2.0 / 60,
		`histogram_quantile(0.5, rate(lat_seconds[5m]))`:      1,
		`histogram_fraction(0, 1, increase(lat_seconds[5m]))`: 0.5,
	} {
		v := instant(t, st, q, end)
		if len(v) != 1 || math.Abs(v[0].F-want) > 1e-9 {
			t.Errorf("%s = %v, want %g", q, v, want)
		}
	}
	if err := st.AppendHistogram(l, end.Add(time.Minute).UnixMilli(), hist(t, "{{schema:0 count:1 buckets:[1 -1]}}")); err == nil {
		t.Error("a histogram with a negative bucket was accepted")
	}
}

// TestStoreSelectors: selectors read the intersection of their matchers'
// postings and get exactly the series their matchers match — before and
// after Truncate drops series and renumbers the rest.
func TestStoreSelectors(t *testing.T) {
	st := NewStore()
	var all []labels.Labels
	add := func(t0 int64, n int) {
		for i := range n {
			for _, name := range []string{"up", "dur", "runs"} {
				l := labels.FromStrings("__name__", name, "check", fmt.Sprintf("c%d", i), "team", fmt.Sprintf("t%d", i%7),
					"type", []string{"http", "tcp", "dns"}[i%3])
				if i%5 == 0 {
					l = labels.NewBuilder(l).Set("site", "ams").Labels()
				}
				st.Append(l, t0, float64(i))
				if t0 == 0 {
					all = append(all, l)
				}
			}
		}
	}
	// 300 checks at t=0; the first 200 again 3 hours later, so Truncate
	// drops the last 100.
	add(0, 300)
	add(3*3600*1000, 200)
	selectors := []string{
		`up`, `up{team="t3"}`, `{team="t3"}`, `dur{team="t3",type="tcp"}`, `up{type=~"http|dns"}`, `up{type=~"http|nope"}`,
		`runs{team="t3",type!="tcp"}`, `up{site=""}`, `up{site="ams",team="t0"}`, `up{site=~"|ams"}`, `up{check="c7"}`,
		`up{check="c1000"}`, `{__name__=~"up|dur",check="c12"}`, `{__name__=~".+",team="t6",type="dns"}`, `nothing`,
	}
	check := func(t *testing.T, mint int64, want []labels.Labels) {
		for _, sel := range selectors {
			ms, err := ruleParser.ParseMetricSelector(sel)
			if err != nil {
				t.Fatal(err)
			}
			q, _ := st.Querier(mint, math.MaxInt64)
			var got, exp []string
			ss := q.Select(context.Background(), true, nil, ms...)
			for ss.Next() {
				got = append(got, ss.At().Labels().String())
			}
			for _, l := range want {
				if matches(l, ms) {
					exp = append(exp, l.String())
				}
			}
			slices.Sort(exp)
			if !slices.Equal(got, exp) {
				t.Errorf("%s: got %d series %q, want %d %q", sel, len(got), got, len(exp), exp)
			}
		}
	}
	t.Run("all", func(t *testing.T) { check(t, math.MinInt64, all) })
	st.Truncate(3600 * 1000)
	t.Run("after truncate", func(t *testing.T) {
		if series, _, _ := st.Stats(); series != 600 || len(st.byID) != 600 {
			t.Fatalf("%d series, %d ids after Truncate, want 600", series, len(st.byID))
		}
		for i, ms := range st.byID {
			if int(ms.id) != i {
				t.Fatalf("series %s has id %d at %d", ms.lset, ms.id, i)
			}
		}
		var kept []labels.Labels
		for _, l := range all {
			var i int
			fmt.Sscanf(l.Get("check"), "c%d", &i)
			if i < 200 {
				kept = append(kept, l)
			}
		}
		check(t, math.MinInt64, kept)
		// A series created after the renumbering is found too.
		l := labels.FromStrings("__name__", "up", "check", "new", "team", "t3", "type", "tcp")
		st.Append(l, 4*3600*1000, 1)
		check(t, math.MinInt64, append(kept, l))
	})
}
