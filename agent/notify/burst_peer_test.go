//go:build peerbench

package notify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/agent/notify/outbox"
	"github.com/vigil-project/vigil/agent/notify/route"
	"github.com/vigil-project/vigil/agent/notify/webhook"
	"github.com/vigil-project/vigil/agent/store"
)

// burstReceiver records when each alert (by its "n" label) first arrived
// and how often.
type burstReceiver struct {
	mu    sync.Mutex
	first map[string]time.Time
	dups  int
	done  chan struct{}
	want  int
}

func newBurstReceiver(want int) (*burstReceiver, *httptest.Server) {
	r := &burstReceiver{first: map[string]time.Time{}, done: make(chan struct{}), want: want}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var p webhook.Payload
		body, _ := io.ReadAll(req.Body)
		if err := json.Unmarshal(body, &p); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		now := time.Now()
		r.mu.Lock()
		for _, a := range p.Alerts {
			n := a.Labels["n"]
			if _, seen := r.first[n]; seen {
				r.dups++
				continue
			}
			r.first[n] = now
			if len(r.first) == r.want {
				close(r.done)
			}
		}
		r.mu.Unlock()
	}))
	return r, srv
}

func (r *burstReceiver) report(t *testing.T, name string, start time.Time, sent map[string]time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var lat []float64
	var last time.Time
	for n, at := range r.first {
		lat = append(lat, at.Sub(sent[n]).Seconds()*1000)
		if at.After(last) {
			last = at
		}
	}
	sort.Float64s(lat)
	q := func(p float64) float64 { return lat[int(p*float64(len(lat)-1))] }
	t.Logf("%s: %d/%d alerts delivered, %d duplicates, %.0f alerts/s, enqueue→delivery p50 %.0f ms, p99 %.0f ms, max %.0f ms",
		name, len(r.first), r.want, r.dups, float64(len(r.first))/last.Sub(start).Seconds(), q(0.5), q(0.99), lat[len(lat)-1])
}

// TestPeerPagingBurst pushes 10,000 alerts, each its own group (group_by
// [...], the worst case: one notification per alert), through vigil's
// dispatcher and SQLite outbox to a local webhook receiver, and the same
// burst through a real Alertmanager to the same kind of receiver.
func TestPeerPagingBurst(t *testing.T) {
	const total = 10_000
	runs := 1
	if s := os.Getenv("RUNS"); s != "" {
		runs, _ = strconv.Atoi(s)
	}
	for i := range runs {
		t.Run(fmt.Sprintf("vigil-%d", i), func(t *testing.T) { burstVigil(t, total) })
		t.Run(fmt.Sprintf("alertmanager-%d", i), func(t *testing.T) { burstAlertmanager(t, total) })
	}
}

func burstAlertsAt(total int, now time.Time) []notify.Alert {
	out := make([]notify.Alert, total)
	for i := range out {
		out[i] = notify.Alert{Labels: map[string]string{"alertname": "Burst", "n": strconv.Itoa(i)},
			StartsAt: now, EndsAt: now.Add(time.Hour)}
	}
	return out
}

// sinkFunc does what the agent's sink does (agent/pager.go): one
// transaction per batch, the notification log served from memory.
type sinkFunc struct {
	st  *store.Store
	ob  *outbox.Outbox
	mu  *sync.Mutex
	log map[string]route.LogEntry
}

func (s sinkFunc) Deliver(ctx context.Context, batch []route.Notification) error {
	var rows []store.LoggedItems
	var all []*store.OutboxItem
	for _, n := range batch {
		m := n.Message
		items, err := s.ob.Items(m, m.Receiver+"\x00"+m.GroupKey, []string{"oncall/webhook[0]"})
		if err != nil {
			return err
		}
		rows = append(rows, store.LoggedItems{Items: items, Receiver: m.Receiver, GroupKey: m.GroupKey,
			Entry: store.NotifyLogEntry{FiringHash: n.Entry.FiringHash, SentAt: n.Entry.SentAt}})
		all = append(all, items...)
	}
	if err := s.st.EnqueueWithLog(ctx, rows); err != nil {
		return err
	}
	s.mu.Lock()
	for _, n := range batch {
		s.log[n.Message.Receiver+"\x00"+n.Message.GroupKey] = n.Entry
	}
	s.mu.Unlock()
	s.ob.Accept(all)
	return nil
}

func (s sinkFunc) LastSent(_ context.Context, r, k string) (route.LogEntry, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.log[r+"\x00"+k]
	return e, ok, nil
}

func burstVigil(t *testing.T, total int) {
	rcv, srv := newBurstReceiver(total)
	defer srv.Close()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "v.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithCancel(context.Background())
	ob := outbox.New(outbox.Options{Store: st})
	defer func() { cancel(); ob.Wait() }()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	if err := ob.Start(ctx, []outbox.Target{{Name: "oncall/webhook[0]", Receiver: "oncall", Integration: "webhook",
		Notifier: webhook.New(webhook.Config{URL: srv.URL}, client), Concurrency: 8}}); err != nil {
		t.Fatal(err)
	}
	var rc route.Config
	yaml.Unmarshal([]byte("receiver: oncall\ngroup_by: ['...']\ngroup_wait: 0s\ngroup_interval: 5m"), &rc)
	r, err := rc.Compile()
	if err != nil {
		t.Fatal(err)
	}
	d := route.NewDispatcher(route.Options{Route: r, Sink: sinkFunc{st, ob, &sync.Mutex{}, map[string]route.LogEntry{}}})
	go d.Run(ctx)

	start := time.Now()
	alerts := burstAlertsAt(total, start)
	sent := map[string]time.Time{}
	for i := 0; i < total; i += 100 { // the rule engine hands over alerts in batches
		now := time.Now()
		for _, a := range alerts[i : i+100] {
			sent[a.Labels["n"]] = now
		}
		d.Put(alerts[i : i+100])
	}
	select {
	case <-rcv.done:
	case <-time.After(5 * time.Minute):
	}
	time.Sleep(200 * time.Millisecond) // catch duplicates
	rcv.report(t, "vigil (dispatcher + SQLite outbox, concurrency 8)", start, sent)
	pending, _ := st.PendingOutbox(context.Background())
	if len(pending) != 0 || rcv.dups != 0 || len(rcv.first) != total {
		t.Errorf("loss or duplicates: %d pending, %d duplicates, %d delivered", len(pending), rcv.dups, len(rcv.first))
	}
}

func burstAlertmanager(t *testing.T, total int) {
	bin, err := exec.LookPath("prometheus-alertmanager")
	if err != nil {
		t.Skip("prometheus-alertmanager not installed")
	}
	rcv, srv := newBurstReceiver(total)
	defer srv.Close()
	dir := t.TempDir()
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	cfg := filepath.Join(dir, "am.yml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`route:
  receiver: r
  group_by: ['...']
  group_wait: 0s
  group_interval: 5m
receivers:
  - name: r
    webhook_configs: [{url: %q, send_resolved: false}]
`, srv.URL)), 0o644)
	cmd := exec.Command(bin, "--config.file", cfg, "--storage.path", filepath.Join(dir, "data"), "--web.listen-address", addr, "--cluster.listen-address=")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	for i := 0; ; i++ {
		if resp, err := http.Get("http://" + addr + "/-/ready"); err == nil && resp.StatusCode == 200 {
			resp.Body.Close()
			break
		}
		if i > 200 {
			t.Fatal("alertmanager not ready")
		}
		time.Sleep(50 * time.Millisecond)
	}
	start := time.Now()
	alerts := burstAlertsAt(total, start)
	sent := map[string]time.Time{}
	for i := 0; i < total; i += 100 {
		now := time.Now()
		body, _ := json.Marshal(alerts[i : i+100])
		resp, err := http.Post("http://"+addr+"/api/v2/alerts", "application/json", bytes.NewReader(body))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("push: %v %v", err, resp)
		}
		resp.Body.Close()
		for _, a := range alerts[i : i+100] {
			sent[a.Labels["n"]] = now
		}
	}
	select {
	case <-rcv.done:
	case <-time.After(5 * time.Minute):
	}
	time.Sleep(200 * time.Millisecond)
	rcv.report(t, "Alertmanager 0.25 (Debian), same burst via /api/v2/alerts", start, sent)
}
