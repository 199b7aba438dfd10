package remotewrite

import (
	"context"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"

	"github.com/vigil-project/vigil/agent/config"
	"github.com/vigil-project/vigil/internal/testenv"
)

func TestQueueDropsOldest(t *testing.T) {
	mk := func(from, n int) []sample {
		out := make([]sample, n)
		for i := range out {
			out[i] = sample{t: int64(from + i)}
		}
		return out
	}
	times := func(ss []sample) []int64 {
		out := make([]int64, len(ss))
		for i, s := range ss {
			out[i] = s.t
		}
		return out
	}
	tests := []struct {
		name        string
		capacity    int
		pushes      [][]sample
		wantDropped int
		wantQueued  []int64
	}{
		{"within capacity", 5, [][]sample{mk(0, 2), mk(2, 3)}, 0, []int64{0, 1, 2, 3, 4}},
		{"full: the oldest go", 5, [][]sample{mk(0, 4), mk(4, 3)}, 2, []int64{2, 3, 4, 5, 6}},
		{"one push larger than the queue", 3, [][]sample{mk(0, 2), mk(2, 5)}, 4, []int64{4, 5, 6}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := newQueue(tt.capacity)
			dropped := 0
			for _, p := range tt.pushes {
				dropped += q.push(p)
			}
			got, _ := q.peek(100, nil)
			if dropped != tt.wantDropped || !equal(times(got), tt.wantQueued) {
				t.Errorf("dropped %d, queued %v; want %d, %v", dropped, times(got), tt.wantDropped, tt.wantQueued)
			}
		})
	}

	t.Run("a batch dropped while in flight is counted once", func(t *testing.T) {
		q := newQueue(4)
		q.push(mk(0, 4))
		batch, start := q.peek(3, nil) // 0 1 2 in flight
		if dropped := q.push(mk(4, 2)); dropped != 2 {
			t.Fatalf("dropped %d, want 2", dropped)
		}
		// 0 and 1 were dropped (counted there); the ack counts 2 only.
		if acked := q.ack(start, len(batch)); acked != 1 {
			t.Errorf("acked %d, want 1", acked)
		}
		rest, _ := q.peek(10, nil)
		if !equal(times(rest), []int64{3, 4, 5}) {
			t.Errorf("left %v, want [3 4 5]", times(rest))
		}
	})
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// receiver is a remote-write endpoint that decodes what it gets the way
// Prometheus does and answers from a script of statuses.
type receiver struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	requests int
	series   []prompb.TimeSeries // accepted only
	statuses []int               // answers in order; then 204
	header   http.Header
	times    []time.Time
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	r := &receiver{t: t, statuses: statuses}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	for k, want := range map[string]string{"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
		"X-Prometheus-Remote-Write-Version": "0.1.0"} {
		if got := req.Header.Get(k); got != want {
			r.t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if !strings.HasPrefix(req.Header.Get("User-Agent"), "vigil/") {
		r.t.Errorf("User-Agent %q", req.Header.Get("User-Agent"))
	}
	compressed, _ := io.ReadAll(req.Body)
	raw, err := snappy.Decode(nil, compressed)
	if err != nil {
		r.t.Errorf("snappy: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var wr prompb.WriteRequest
	if err := wr.Unmarshal(raw); err != nil {
		r.t.Errorf("protobuf: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	r.header = req.Header.Clone()
	r.times = append(r.times, time.Now())
	status := http.StatusNoContent
	if len(r.statuses) > 0 {
		status, r.statuses = r.statuses[0], r.statuses[1:]
	}
	if status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	if status/100 == 2 {
		r.series = append(r.series, wr.Timeseries...)
	}
	w.WriteHeader(status)
}

func (r *receiver) accepted() []prompb.TimeSeries {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]prompb.TimeSeries(nil), r.series...)
}

func (r *receiver) setStatuses(s ...int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.statuses = s
}

func rwConfig(url string) config.RemoteWrite {
	c := config.DefaultRemoteWrite()
	c.URL, c.Name, c.Interval = url, "test", model.Duration(time.Hour)
	c.QueueConfig.BatchSendDeadline = model.Duration(5 * time.Millisecond)
	c.QueueConfig.MinBackoff = model.Duration(5 * time.Millisecond)
	c.QueueConfig.MaxBackoff = model.Duration(20 * time.Millisecond)
	return c
}

// testRemote builds a remote without starting it.
func testRemote(t *testing.T, c config.RemoteWrite) *remote {
	t.Helper()
	client, err := newClient(c)
	if err != nil {
		t.Fatal(err)
	}
	m := newMetrics()
	m.add(c.Name, c.QueueConfig.Capacity)
	return &remote{cfg: c, client: client, q: newQueue(c.QueueConfig.Capacity), m: m, log: testLogger(t)}
}

func testLogger(*testing.T) *slog.Logger { return slog.New(slog.DiscardHandler) }

func samples(n int, t int64) []sample {
	out := make([]sample, n)
	for i := range out {
		out[i] = sample{lset: labels.FromStrings("__name__", "m", "i", strconv.Itoa(i)), t: t, v: float64(i)}
	}
	return out
}

func counter(t *testing.T, r *remote, name string, lbls ...string) float64 {
	t.Helper()
	var b strings.Builder
	r.m.write(&b)
	prefix := name + "{"
	for _, line := range strings.Split(b.String(), "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		ok := true
		for _, l := range lbls {
			ok = ok && strings.Contains(line, l)
		}
		if ok {
			v, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			return v
		}
	}
	t.Fatalf("no %s%v in:\n%s", name, lbls, b.String())
	return 0
}

// TestSendAnswers: 2xx sends, 4xx drops (counted as rejected), 5xx and
// 429 retry (429 after its Retry-After), network errors retry.
func TestSendAnswers(t *testing.T) {
	tests := []struct {
		name                   string
		statuses               []int
		wantRequests           int
		wantSent, wantRejected float64
		wantRetried            float64
		wantWaitAtLeast        time.Duration
	}{
		{"accepted", []int{200}, 1, 10, 0, 0, 0},
		{"bad request is dropped", []int{400}, 1, 0, 10, 0, 0},
		{"not found is dropped", []int{404}, 1, 0, 10, 0, 0},
		{"server errors are retried", []int{500, 503, 204}, 3, 10, 0, 20, 0},
		{"request timeout is retried", []int{408, 200}, 2, 10, 0, 10, 0},
		{"too many requests waits for Retry-After", []int{429, 200}, 2, 10, 0, 10, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rcv := newReceiver(t, tt.statuses...)
			r := testRemote(t, rwConfig(rcv.srv.URL+"/api/v1/write"))
			r.q.push(samples(10, 1000))
			start := time.Now()
			r.sendBatch(context.Background(), &encoder{}, nil)
			if rcv.requests != tt.wantRequests {
				t.Errorf("%d requests, want %d", rcv.requests, tt.wantRequests)
			}
			if got := counter(t, r, "vigil_remote_write_samples_total"); got != tt.wantSent {
				t.Errorf("sent %v, want %v", got, tt.wantSent)
			}
			if got := counter(t, r, "vigil_remote_write_samples_dropped_total", `reason="rejected"`); got != tt.wantRejected {
				t.Errorf("rejected %v, want %v", got, tt.wantRejected)
			}
			if got := counter(t, r, "vigil_remote_write_samples_retried_total"); got != tt.wantRetried {
				t.Errorf("retried %v, want %v", got, tt.wantRetried)
			}
			if r.q.len() != 0 {
				t.Errorf("%d samples left in the queue", r.q.len())
			}
			if d := time.Since(start); d < tt.wantWaitAtLeast {
				t.Errorf("took %s, want at least %s", d, tt.wantWaitAtLeast)
			}
			if rcv.requests > 1 && rcv.header.Get("Retry-Attempt") != strconv.Itoa(rcv.requests-1) {
				t.Errorf("Retry-Attempt %q on request %d", rcv.header.Get("Retry-Attempt"), rcv.requests)
			}
		})
	}

	t.Run("network errors are retried with growing backoff", func(t *testing.T) {
		t.Parallel()
		// A server that hangs up on every connection: a network error on
		// each attempt. (A closed port could be taken by another test's
		// listener meanwhile.)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var accepting sync.WaitGroup
		accepting.Go(func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				conn.Close()
			}
		})
		defer accepting.Wait()
		defer ln.Close()
		c := rwConfig("http://" + ln.Addr().String() + "/api/v1/write")
		c.QueueConfig.MinBackoff, c.QueueConfig.MaxBackoff = model.Duration(10*time.Millisecond), model.Duration(40*time.Millisecond)
		r := testRemote(t, c)
		r.q.push(samples(3, 1000))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		start := time.Now()
		r.sendBatch(ctx, &encoder{}, nil)
		took := time.Since(start)
		retried := int(counter(t, r, "vigil_remote_write_samples_retried_total") / 3)
		// The waits are 10, 20, 40, 40, ... ms: at most 51 attempts fit in
		// 2 s (200 without the doubling), and the attempts made took at
		// least their waits. Only bounds a loaded machine cannot break:
		// it makes attempts slower, never faster.
		var waits time.Duration
		for i, w := 0, 10*time.Millisecond; i < retried-1; i, w = i+1, min(w*2, 40*time.Millisecond) {
			waits += w
		}
		if retried < 2 || retried > 51 || took < waits {
			t.Errorf("%d attempts in %s (their waits alone are %s)", retried, took, waits)
		}
		if r.q.len() != 3 {
			t.Errorf("queue %d, want the batch kept (3)", r.q.len())
		}
	})
}

// TestBatches: a queue larger than max_samples_per_send goes out in full
// batches, oldest first, every sample once with its labels and time.
func TestBatches(t *testing.T) {
	rcv := newReceiver(t)
	c := rwConfig(rcv.srv.URL)
	c.QueueConfig.MaxSamplesPerSend = 400
	r := testRemote(t, c)
	r.q.push(samples(1000, 1000))
	r.q.push(samples(1000, 2000))
	enc := &encoder{}
	var buf []sample
	for r.q.len() > 0 {
		buf = r.sendBatch(context.Background(), enc, buf[:0])
	}
	if rcv.requests != 5 {
		t.Errorf("%d requests, want 5 of 400", rcv.requests)
	}
	got := rcv.accepted()
	if len(got) != 2000 {
		t.Fatalf("%d series, want 2000", len(got))
	}
	for i, ts := range got {
		want := labels.FromStrings("__name__", "m", "i", strconv.Itoa(i%1000))
		var lb labels.ScratchBuilder
		for _, l := range ts.Labels {
			lb.Add(l.Name, l.Value)
		}
		if !labels.Equal(lb.Labels(), want) || len(ts.Samples) != 1 || ts.Samples[0].Timestamp != int64(1000+1000*(i/1000)) || ts.Samples[0].Value != float64(i%1000) {
			t.Fatalf("series %d: %v %v, want %v", i, lb.Labels(), ts.Samples, want)
		}
	}
}

// staticSource serves a fixed set of series that a test can change.
type staticSource struct {
	mu     sync.Mutex
	series map[string]float64 // metric name → value, label check="c"
}

func (s *staticSource) read(want func(string) bool, emit func(labels.Labels, float64)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, v := range s.series {
		if want(name) {
			emit(labels.FromStrings("__name__", name, "check", "c", "instance", "own"), v)
		}
	}
	return nil
}

// TestSnapshotTimesIncrease: a snapshot in the millisecond of the previous
// one (two ticks, the first late) or before it (the wall clock stepped
// back) is not taken, so no series gets a repeated or earlier timestamp;
// the next later one is taken as usual.
func TestSnapshotTimesIncrease(t *testing.T) {
	src := &staticSource{series: map[string]float64{"up": 1}}
	s := newSnapshotter(src.read, labels.EmptyLabels(), nil)
	base := time.UnixMilli(5000)
	for _, step := range []struct {
		name string
		at   time.Time
		want int // samples
	}{
		{"first", base, 1},
		{"same millisecond", base.Add(400 * time.Microsecond), 0},
		{"clock stepped back", base.Add(-time.Second), 0},
		{"later", base.Add(20 * time.Millisecond), 1},
	} {
		got, err := s.take(step.at)
		if err != nil || len(got) != step.want {
			t.Errorf("%s: %d samples, %v; want %d", step.name, len(got), err, step.want)
		}
	}
}

func TestSnapshotLabelsAndStaleness(t *testing.T) {
	src := &staticSource{series: map[string]float64{"up_a": 1, "up_b": 2, "go_x": 3}}
	c := config.DefaultRemoteWrite()
	drop := "go_.*"
	rc, err := (&config.RelabelConfig{SourceLabels: []string{"__name__"}, Regex: &drop, Action: "drop"}).Compile()
	if err != nil {
		t.Fatal(err)
	}
	c.Relabel = append(c.Relabel, rc)
	ext := ExternalLabels(map[string]string{"site": "sh"}, map[string]string{"instance": "agent-1", "region": "east"})
	s := newSnapshotter(src.read, ext, c.Relabel)
	first, err := s.take(time.UnixMilli(1000))
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 2 {
		t.Fatalf("first snapshot %v, want up_a and up_b (go_x relabelled away)", first)
	}
	for _, smp := range first {
		// A series' own label wins over an external one, as in Prometheus.
		if smp.lset.Get("instance") != "own" || smp.lset.Get("site") != "sh" || smp.lset.Get("region") != "east" || smp.lset.Get("job") != "vigil" || smp.t != 1000 {
			t.Errorf("sample %v at %d", smp.lset, smp.t)
		}
	}
	src.mu.Lock()
	delete(src.series, "up_b")
	src.mu.Unlock()
	second, _ := s.take(time.UnixMilli(2000))
	var stale int
	for _, smp := range second {
		if value.IsStaleNaN(smp.v) {
			stale++
			if smp.lset.Get("__name__") != "up_b" {
				t.Errorf("stale marker for %v", smp.lset)
			}
		} else if math.IsNaN(smp.v) {
			t.Errorf("NaN for %v", smp.lset)
		}
	}
	if len(second) != 2 || stale != 1 {
		t.Errorf("second snapshot %v, want up_a and a stale marker for up_b", second)
	}
}

// TestOutage runs a whole remote through an outage of its receiver: the
// snapshots taken meanwhile queue up and arrive once it is back, nothing
// dropped; with a queue too small for the outage the oldest are dropped
// and counted, and what arrives is the newest.
func TestOutage(t *testing.T) {
	tests := []struct {
		name        string
		capacity    int
		wantDropped bool
	}{
		{"within capacity nothing is lost", 1000, false},
		{"a tiny queue drops the oldest and counts them", 4, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rcv := newReceiver(t)
			src := &staticSource{series: map[string]float64{"m1": 1, "m2": 2}}
			m := New(Options{Series: src.read, Logger: testLogger(t)})
			c := rwConfig(rcv.srv.URL)
			c.Interval = model.Duration(20 * time.Millisecond)
			c.QueueConfig.Capacity, c.QueueConfig.MaxSamplesPerSend = tt.capacity, 4
			m.Apply(&config.Config{RemoteWrite: []config.RemoteWrite{c}})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { m.Run(ctx); close(done) }()
			defer func() { cancel(); <-done }()

			testenv.Eventually(t, 5*time.Second, "the first snapshot", func() bool { return len(rcv.accepted()) >= 2 })
			outage := make([]int, 1000)
			for i := range outage {
				outage[i] = http.StatusServiceUnavailable
			}
			rcv.setStatuses(outage...)
			time.Sleep(300 * time.Millisecond) // ~15 snapshots
			rcv.setStatuses()
			before := len(rcv.accepted())
			testenv.Eventually(t, 5*time.Second, "the backlog", func() bool { return len(rcv.accepted()) > before+20 })
			cancel()
			<-done

			var out strings.Builder
			m.WritePrometheus(&out)
			dropped := metricValue(out.String(), `vigil_remote_write_samples_dropped_total{reason="queue_full",remote="test"}`)
			snapshots := metricValue(out.String(), `vigil_remote_write_snapshots_total{remote="test"}`)
			if tt.wantDropped != (dropped > 0) {
				t.Errorf("dropped %v samples", dropped)
			}
			// Every snapshot's two samples, in time order per series, with
			// no gap (within capacity) .
			got := map[string][]int64{}
			for _, ts := range rcv.accepted() {
				got[ts.Labels[0].Value] = append(got[ts.Labels[0].Value], ts.Samples[0].Timestamp)
			}
			// Snapshots still queued when the run was cancelled (the sender
			// may trail the 20 ms snapshots on a loaded machine) are not lost.
			queued := metricValue(out.String(), `vigil_remote_write_queue_samples{remote="test"}`) / 2
			for name, times := range got {
				for i := 1; i < len(times); i++ {
					// Strictly increasing: a repeated timestamp came from two
					// ticks within one millisecond (snapshotter.take).
					if times[i] <= times[i-1] {
						t.Fatalf("%s: samples out of order: %v", name, times)
					}
				}
				sent := float64(len(times))
				if !tt.wantDropped && sent+queued < snapshots-1 {
					t.Errorf("%s: %v of %v snapshots arrived, %v still queued, and none was dropped", name, sent, snapshots, queued)
				}
			}
			if tt.wantDropped {
				total := metricValue(out.String(), `vigil_remote_write_samples_total{remote="test"}`)
				if total+dropped+metricValue(out.String(), `vigil_remote_write_queue_samples{remote="test"}`) != 2*snapshots {
					t.Errorf("sent %v + dropped %v + queued != 2×%v snapshots:\n%s", total, dropped, snapshots, out.String())
				}
			}
		})
	}
}

func metricValue(text, series string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, series+" ") {
			v, _ := strconv.ParseFloat(strings.TrimPrefix(line, series+" "), 64)
			return v
		}
	}
	return math.NaN()
}

// TestReloadKeepsQueue: applying the same settings keeps the running
// remote and its queue; changed settings restart it with the backlog.
func TestReloadKeepsQueue(t *testing.T) {
	var calls atomic.Int32
	src := func(want func(string) bool, emit func(labels.Labels, float64)) error {
		calls.Add(1)
		emit(labels.FromStrings("__name__", "m"), 1)
		return nil
	}
	m := New(Options{Series: src, Logger: testLogger(t)})
	// A receiver that never answers 2xx: the queue only grows.
	rcv := newReceiver(t)
	outage := make([]int, 100000)
	for i := range outage {
		outage[i] = http.StatusServiceUnavailable
	}
	rcv.setStatuses(outage...)
	c := rwConfig(rcv.srv.URL)
	c.Interval = model.Duration(10 * time.Millisecond)
	cfg := &config.Config{RemoteWrite: []config.RemoteWrite{c}}
	m.Apply(cfg)
	running := map[string]*remote{}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() {
		cancel()
		for _, r := range running {
			r.stop()
		}
	}()
	m.reconcile(ctx, running, m.want)
	first := running["test"]
	testenv.Eventually(t, 5*time.Second, "a backlog", func() bool { return first.q.len() >= 5 })

	m.Apply(cfg)
	m.reconcile(ctx, running, m.want)
	if running["test"] != first {
		t.Fatal("an unchanged remote was restarted")
	}
	c.RemoteTimeout = model.Duration(time.Second)
	m.Apply(&config.Config{RemoteWrite: []config.RemoteWrite{c}})
	backlog := first.q.len()
	m.reconcile(ctx, running, m.want)
	second := running["test"]
	if second == first {
		t.Fatal("a changed remote kept running with its old settings")
	}
	if got := second.q.len(); got < backlog {
		t.Errorf("the new remote has %d samples queued, want the %d of its predecessor or more", got, backlog)
	}
	m.Apply(&config.Config{})
	m.reconcile(ctx, running, m.want)
	if len(running) != 0 {
		t.Errorf("a removed remote still runs")
	}
	var out strings.Builder
	m.WritePrometheus(&out)
	if strings.Contains(out.String(), `remote="test"`) {
		t.Errorf("a removed remote's series stay:\n%s", out.String())
	}
}
