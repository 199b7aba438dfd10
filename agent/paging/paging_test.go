package paging

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-project/vigil/agent/config"
	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/agent/runbook"
	"github.com/vigil-project/vigil/agent/store"
	"github.com/vigil-project/vigil/internal/testenv"
)

// endpoint records the JSON bodies posted to it.
type endpoint struct {
	srv *httptest.Server

	mu     sync.Mutex
	bodies []map[string]any
	lists  [][]map[string]any
}

func newEndpoint(t *testing.T) *endpoint {
	s := &endpoint{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		defer s.mu.Unlock()
		var list []map[string]any
		if json.Unmarshal(b, &list) == nil {
			s.lists = append(s.lists, list)
			return
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Errorf("body %q: %v", b, err)
		}
		s.bodies = append(s.bodies, m)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *endpoint) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.bodies) + len(s.lists)
}

func parse(t *testing.T, notifyYAML string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("vigil.yml", []byte("notify:\n"+notifyYAML))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// start builds and runs a pager on a fresh store; stop cancels it and
// waits for Run to return.
func start(t *testing.T, cfg *config.Config, opts Options) (p *Pager, stop func()) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "vigil.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := BuildPlan(cfg, "http://vigil.test:9877")
	if err != nil {
		t.Fatal(err)
	}
	opts.Store = st
	opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	if p, err = New(ctx, opts, cfg, plan); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(rctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Error("Run did not return after its context ended")
			}
			st.Close()
		})
	}
	t.Cleanup(stop)
	return p, stop
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }

func firing(name string, extra ...string) notify.Alert {
	lbls := map[string]string{"alertname": name, "check": "db"}
	for i := 0; i+1 < len(extra); i += 2 {
		lbls[extra[i]] = extra[i+1]
	}
	now := time.Now()
	return notify.Alert{Labels: lbls, StartsAt: now, EndsAt: now.Add(time.Hour), Fingerprint: notify.Fingerprint(lbls)}
}

// TestPeersGetAlerts: every alert goes to each Alertmanager peer; drill
// alerts only to a peer with send_drills.
func TestPeersGetAlerts(t *testing.T) {
	t.Parallel()
	plain, drills := newEndpoint(t), newEndpoint(t)
	cfg := parse(t, fmt.Sprintf("  alertmanagers:\n    - url: %s\n    - url: %s\n      send_drills: true\n", plain.srv.URL, drills.srv.URL))
	p, _ := start(t, cfg, Options{})
	p.Alerts(context.Background(), []notify.Alert{firing("DatabaseDown"), firing("DrillDown", "drill", "true", "drill_id", "d1")})
	testenv.Eventually(t, 15*time.Second, "both peers", func() bool { return plain.count() == 1 && drills.count() == 1 })
	plain.mu.Lock()
	defer plain.mu.Unlock()
	drills.mu.Lock()
	defer drills.mu.Unlock()
	if n := len(plain.lists[0]); n != 1 {
		t.Errorf("plain peer got %d alerts, want 1 (no drill alert): %v", n, plain.lists[0])
	}
	if n := len(drills.lists[0]); n != 2 {
		t.Errorf("send_drills peer got %d alerts, want 2: %v", n, drills.lists[0])
	}
}

// TestRouteAndReload: alerts are routed to a receiver; after Apply with a
// new plan the next group goes to the new receiver, and Run still returns
// once stopped (the old dispatcher was stopped and waited for).
func TestRouteAndReload(t *testing.T) {
	t.Parallel()
	first, second := newEndpoint(t), newEndpoint(t)
	routeYAML := func(url string) string {
		return fmt.Sprintf("  route:\n    receiver: r\n    group_by: [alertname]\n    group_wait: 0s\n    group_interval: 1s\n  receivers:\n    - name: r\n      webhook_configs:\n        - url: %s\n", url)
	}
	p, stop := start(t, parse(t, routeYAML(first.srv.URL)), Options{})
	p.Alerts(context.Background(), []notify.Alert{firing("A")})
	testenv.Eventually(t, 15*time.Second, "the first receiver", func() bool { return first.count() == 1 })
	first.mu.Lock()
	if got := first.bodies[0]["receiver"]; got != "r" {
		t.Errorf("receiver %v", got)
	}
	first.mu.Unlock()

	cfg2 := parse(t, routeYAML(second.srv.URL))
	plan, err := BuildPlan(cfg2, "http://vigil.test:9877")
	if err != nil {
		t.Fatal(err)
	}
	p.Apply(plan)
	p.Alerts(context.Background(), []notify.Alert{firing("B")})
	testenv.Eventually(t, 15*time.Second, "the second receiver", func() bool { return second.count() >= 1 })
	stop()
}

// TestNotifyDrillWithoutReceiver: a drill's message with no drill
// receiver is dropped and counted, never sent to the named receiver.
func TestNotifyDrillWithoutReceiver(t *testing.T) {
	t.Parallel()
	rcv := newEndpoint(t)
	var dropped atomic.Int32
	cfg := parse(t, fmt.Sprintf("  route: {receiver: oncall}\n  receivers:\n    - name: oncall\n      webhook_configs:\n        - url: %s\n", rcv.srv.URL))
	p, _ := start(t, cfg, Options{OnDrillDropped: func() { dropped.Add(1) },
		ExternalLabels: func() map[string]string { return map[string]string{"site": "sh"} }})
	if err := p.NotifyDrill(context.Background(), "d1", "oncall", "switched", "to standby"); err != nil {
		t.Fatal(err)
	}
	if dropped.Load() != 1 {
		t.Errorf("dropped %d, want 1", dropped.Load())
	}
	if err := p.NotifyReceiver(context.Background(), "nobody", "t", "m"); err == nil {
		t.Error("a message to an unknown receiver was accepted")
	}
	if err := p.NotifyReceiver(runbook.WithRunID(context.Background(), "20261204T0600-abc"), "oncall", "switched", "to standby"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 15*time.Second, "the runbook message", func() bool { return rcv.count() == 1 })
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	alerts, _ := rcv.bodies[0]["alerts"].([]any)
	if len(alerts) != 1 {
		t.Fatalf("runbook message %v", rcv.bodies[0])
	}
	al := alerts[0].(map[string]any)
	lbls, ann := al["labels"].(map[string]any), al["annotations"].(map[string]any)
	if lbls["alertname"] != "RunbookNotification" || lbls["run_id"] != "20261204T0600-abc" || lbls["site"] != "sh" ||
		ann["run_url"] != "http://vigil.test:9877/runbooks/runs/20261204T0600-abc" {
		t.Errorf("runbook message without its run, external labels or link: %v", al)
	}
}

func TestExternalURL(t *testing.T) {
	t.Parallel()
	cfg := parse(t, "  external_url: https://vigil.example/\n")
	if got := ExternalURL(cfg, nil); got != "https://vigil.example" {
		t.Errorf("ExternalURL = %q", got)
	}
	cfg.Notify.ExternalURL = ""
	if got := ExternalURL(cfg, []string{":9999"}); got[len(got)-5:] != ":9999" {
		t.Errorf("ExternalURL = %q, want the listen port", got)
	}
}
