package alerts

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/internal/testenv"
	"github.com/vigil-project/vigil/rules"
)

// recorder is a consumer that keeps what it got; gate, when set, holds
// every call until it is closed.
type recorder struct {
	gate chan struct{}

	mu  sync.Mutex
	got []notify.Alert
}

func (r *recorder) Alerts(ctx context.Context, as []notify.Alert) {
	if r.gate != nil {
		select {
		case <-r.gate:
		case <-ctx.Done():
			return
		}
	}
	r.mu.Lock()
	r.got = append(r.got, as...)
	r.mu.Unlock()
}

func (r *recorder) names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, a := range r.got {
		out = append(out, a.Labels["alertname"])
	}
	return out
}

func alert(name string) *rules.Alert {
	now := time.Now()
	return &rules.Alert{State: rules.StateFiring, Labels: labels.FromStrings("alertname", name, "check", "db"),
		Annotations: labels.FromStrings("summary", "s"), ActiveAt: now, FiredAt: now, ValidUntil: now.Add(time.Minute)}
}

func run(t *testing.T, f *Fanout) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// TestSlowConsumerDoesNotBlock: a consumer that never returns holds up
// neither Send (rule evaluation) nor the other consumer.
func TestSlowConsumerDoesNotBlock(t *testing.T) {
	t.Parallel()
	stuck, fast := &recorder{gate: make(chan struct{})}, &recorder{}
	f := New(Options{}, Named{"stuck", stuck}, Named{"fast", fast})
	run(t, f)
	sent := make(chan struct{})
	go func() {
		for i := range 100 {
			f.Send([]*rules.Alert{alert("A" + string(rune('a'+i%26)))})
		}
		close(sent)
	}()
	select {
	case <-sent:
	case <-time.After(10 * time.Second):
		t.Fatal("Send blocked on a stuck consumer")
	}
	testenv.Eventually(t, 10*time.Second, "the fast consumer to get all 100 alerts", func() bool { return len(fast.names()) == 100 })
	close(stuck.gate)
	testenv.Eventually(t, 10*time.Second, "the stuck consumer to catch up", func() bool { return len(stuck.names()) == 100 })
}

// TestQueueDropsOldest: past its capacity a queue drops its oldest alerts
// and counts them; the newest are delivered.
func TestQueueDropsOldest(t *testing.T) {
	t.Parallel()
	c := &recorder{gate: make(chan struct{})}
	f := New(Options{Capacity: 3}, Named{"paging", c})
	for _, n := range []string{"A", "B", "C", "D", "E"} {
		f.Send([]*rules.Alert{alert(n)})
	}
	var buf bytes.Buffer
	f.WritePrometheus(&buf)
	for _, want := range []string{`vigil_alerts_dropped_total{consumer="paging"} 2`, `vigil_alerts_queue_length{consumer="paging"} 3`, "vigil_alerts_queue_capacity 3"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("metrics lack %s:\n%s", want, buf.String())
		}
	}
	close(c.gate)
	run(t, f)
	testenv.Eventually(t, 10*time.Second, "delivery", func() bool { return len(c.names()) == 3 })
	if got := strings.Join(c.names(), ","); got != "C,D,E" {
		t.Errorf("delivered %s, want the newest C,D,E", got)
	}
}

// TestConvert: external labels fill in (never override), the check's
// state rides along, resolved alerts end at their resolution.
func TestConvert(t *testing.T) {
	t.Parallel()
	info := &notify.CheckInfo{Name: "db", Type: "postgres", Reason: "timeout"}
	c := &recorder{}
	f := New(Options{
		ExternalURL:    func() string { return "http://vigil:9877" },
		ExternalLabels: func() map[string]string { return map[string]string{"site": "sh", "check": "other"} },
		CheckInfo: func(name string) *notify.CheckInfo {
			if name == "db" {
				return info
			}
			return nil
		},
	}, Named{"paging", c})
	run(t, f)
	resolved := alert("DatabaseDown")
	resolved.State, resolved.ResolvedAt = rules.StateInactive, time.Now()
	f.Send([]*rules.Alert{alert("DatabaseDown"), resolved})
	testenv.Eventually(t, 10*time.Second, "delivery", func() bool { return len(c.names()) == 2 })
	c.mu.Lock()
	defer c.mu.Unlock()
	a := c.got[0]
	if a.Labels["site"] != "sh" || a.Labels["check"] != "db" {
		t.Errorf("labels %v: want site=sh added and check=db kept", a.Labels)
	}
	if a.Check != info || a.GeneratorURL != "http://vigil:9877/api/v1/alerts?alertname=DatabaseDown" || a.Fingerprint == "" {
		t.Errorf("alert %+v", a)
	}
	if r := c.got[1]; !r.EndsAt.Equal(resolved.ResolvedAt) {
		t.Errorf("resolved alert ends %v, want %v", r.EndsAt, resolved.ResolvedAt)
	}
}
