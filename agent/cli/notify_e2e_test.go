package cli_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-project/vigil/internal/testenv"
)

// receiver is a webhook receiver run by a test: it records every payload it
// accepted and answers 503 while down.
type receiver struct {
	srv  *httptest.Server
	down atomic.Bool

	mu       sync.Mutex
	got      []webhookPayload
	rejected int
}

type webhookPayload struct {
	Version     string            `json:"version"`
	GroupKey    string            `json:"groupKey"`
	Status      string            `json:"status"`
	Receiver    string            `json:"receiver"`
	GroupLabels map[string]string `json:"groupLabels"`
	ExternalURL string            `json:"externalURL"`
	Alerts      []struct {
		Status       string            `json:"status"`
		Labels       map[string]string `json:"labels"`
		Annotations  map[string]string `json:"annotations"`
		StartsAt     time.Time         `json:"startsAt"`
		EndsAt       time.Time         `json:"endsAt"`
		GeneratorURL string            `json:"generatorURL"`
		Fingerprint  string            `json:"fingerprint"`
	} `json:"alerts"`
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if r.down.Load() {
			r.mu.Lock()
			r.rejected++
			r.mu.Unlock()
			http.Error(w, "down for the test", http.StatusServiceUnavailable)
			return
		}
		var p webhookPayload
		if err := json.Unmarshal(body, &p); err != nil {
			t.Errorf("receiver: bad payload %s: %v", body, err)
			http.Error(w, "bad payload", http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.got = append(r.got, p)
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) payloads() []webhookPayload {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]webhookPayload(nil), r.got...)
}

// waitFor polls until a payload with the status arrived and returns all.
func (r *receiver) waitFor(t *testing.T, status string, timeout time.Duration) []webhookPayload {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		ps := r.payloads()
		for _, p := range ps {
			if p.Status == status {
				return ps
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no %s notification within %s; got %+v", status, timeout, r.payloads())
	return nil
}

// flipper is an HTTP target whose health the test switches.
func flipper(t *testing.T) (*httptest.Server, *atomic.Bool) {
	var healthy atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !healthy.Load() {
			http.Error(w, "broken", http.StatusInternalServerError)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &healthy
}

const pagingRules = `
groups:
  - name: paging
    interval: 1s
    rules:
      - alert: TargetDown
        expr: vigil_check_success{check="target"} == 0
        labels: {severity: critical}
        annotations:
          summary: "target {{ $labels.check }} is down"
          runbook_url: "https://runbooks.example/target-down"
`

// oncallRoute pages every alert at once to one webhook receiver, oncall,
// and repeats only after an hour: a test sees each page exactly once.
func oncallRoute(url string) string {
	return fmt.Sprintf(`  route:
    receiver: oncall
    group_by: [alertname]
    group_wait: 0s
    group_interval: 1s
    repeat_interval: 1h
  receivers:
    - name: oncall
      webhook_configs:
        - url: %s
`, url)
}

func pagingConfig(target, extra string) string {
	return fmt.Sprintf(`
global:
  startup_splay: 0s
  evaluation_interval: 1s
  labels: {site: test}
rule_files: [rules.yml]
checks:
  - name: target
    type: http
    interval: 1s
    recheck_interval: 1s
    timeout: 900ms
    http: {url: %q}
notify:
  min_backoff: 200ms
  max_backoff: 1s
%s`, target, extra)
}

func requireAlertmanager(t *testing.T) string {
	t.Helper()
	return testenv.NeedBinary(t, "prometheus-alertmanager", "prometheus-alertmanager")
}

// TestAlertmanagerEndToEnd: vigil pushes to a real Alertmanager, which
// routes to a webhook receiver run by the test; the same alert also goes
// straight to a receiver through vigil's own route. Firing and resolved
// both flow through.
func TestAlertmanagerEndToEnd(t *testing.T) {
	t.Parallel()
	amBin := requireAlertmanager(t)
	dir := t.TempDir()
	viaAM, direct := newReceiver(t), newReceiver(t)
	amAddr := freePort(t)
	amCfg := writeConfig(t, dir, "alertmanager.yml", fmt.Sprintf(`
route:
  receiver: test
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: test
    webhook_configs:
      - url: %s
        send_resolved: true
`, viaAM.srv.URL))
	am := exec.Command(amBin, "--config.file", amCfg, "--storage.path", filepath.Join(dir, "am"),
		"--web.listen-address", amAddr, "--cluster.listen-address=")
	amLog := &syncBuffer{mu: make(chan struct{}, 1)}
	am.Stdout, am.Stderr = amLog, amLog
	if err := am.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		am.Process.Kill()
		am.Wait()
		if t.Failed() {
			t.Logf("alertmanager log:\n%s", amLog.String())
		}
	})
	waitHTTP(t, "http://"+amAddr+"/-/ready")

	target, healthy := flipper(t)
	writeConfig(t, dir, "rules.yml", pagingRules)
	cfg := writeConfig(t, dir, "vigil.yml", pagingConfig(target.URL, fmt.Sprintf(`  external_url: http://vigil.test:9877
  alertmanagers:
    - url: http://%s
  route:
    receiver: direct
    group_by: [alertname, check]
    group_wait: 0s
    group_interval: 1s
  receivers:
    - name: direct
      webhook_configs:
        - url: %s
`, amAddr, direct.srv.URL)))
	startAgent(t, "--config.file", cfg, "--storage.path", filepath.Join(dir, "vigil.db"))

	for name, r := range map[string]*receiver{"via Alertmanager": viaAM, "direct": direct} {
		ps := r.waitFor(t, "firing", 30*time.Second)
		p := ps[0]
		a := p.Alerts[0]
		if p.Version != "4" || len(p.Alerts) != 1 || a.Labels["alertname"] != "TargetDown" || a.Labels["check"] != "target" ||
			a.Labels["severity"] != "critical" || a.Labels["site"] != "test" || a.Annotations["summary"] != "target target is down" {
			t.Errorf("%s: firing payload %+v", name, p)
		}
		if want := "http://vigil.test:9877/api/v1/alerts?alertname=TargetDown"; a.GeneratorURL != want {
			t.Errorf("%s: generatorURL %q, want %q", name, a.GeneratorURL, want)
		}
	}
	if p := direct.payloads()[0]; p.Receiver != "direct" || p.ExternalURL != "http://vigil.test:9877" ||
		p.GroupLabels["alertname"] != "TargetDown" || p.GroupLabels["check"] != "target" {
		t.Errorf("direct payload header %+v", p)
	}

	healthy.Store(true)
	for name, r := range map[string]*receiver{"via Alertmanager": viaAM, "direct": direct} {
		ps := r.waitFor(t, "resolved", 30*time.Second)
		last := ps[len(ps)-1]
		if last.Status != "resolved" || last.Alerts[0].Status != "resolved" || last.Alerts[0].EndsAt.IsZero() {
			t.Errorf("%s: resolved payload %+v", name, last)
		}
		for _, p := range ps[:len(ps)-1] {
			if p.Status != "firing" {
				t.Errorf("%s: notifications out of order: %+v", name, ps)
			}
		}
	}
	// The direct route sends one firing and one resolved notification.
	if n := len(direct.payloads()); n != 2 {
		t.Errorf("direct receiver got %d notifications, want 2: %+v", n, direct.payloads())
	}
}

func waitHTTP(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s not ready after 20s", url)
}

// TestPagerOutageAndKill9: the receiver is down when the alert fires, the
// agent is killed with SIGKILL during the outage and restarted, then the
// receiver comes back: the page arrives exactly once, the restart does not
// page again, and the resolved notification follows it in order.
func TestPagerOutageAndKill9(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rcv := newReceiver(t)
	rcv.down.Store(true)
	target, healthy := flipper(t)
	writeConfig(t, dir, "rules.yml", pagingRules)
	cfg := writeConfig(t, dir, "vigil.yml", pagingConfig(target.URL, oncallRoute(rcv.srv.URL)))
	db := filepath.Join(dir, "vigil.db")
	a := startAgent(t, "--config.file", cfg, "--storage.path", db)

	// Wait until the page was attempted (and refused) at least twice.
	deadline := time.Now().Add(30 * time.Second)
	for {
		rcv.mu.Lock()
		n := rcv.rejected
		rcv.mu.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no delivery attempts during the outage")
		}
		time.Sleep(100 * time.Millisecond)
	}
	a.waitMetric(t, `vigil_notify_retried_total\{receiver="oncall",integration="webhook"\} [1-9]`)
	a.waitMetric(t, `vigil_notify_queue_length\{receiver="oncall",integration="webhook"\} 1`)
	kill9(t, a)

	a = startAgent(t, "--config.file", cfg, "--storage.path", db)
	// The restarted agent re-evaluates; it must not queue a second page.
	a.waitEvaluations(t, 2)
	rcv.down.Store(false)
	rcv.waitFor(t, "firing", 30*time.Second)
	// Whatever was queued has been delivered once the outbox is empty.
	a.waitQueuesEmpty(t)
	if ps := rcv.payloads(); len(ps) != 1 {
		t.Fatalf("after the outage: %d notifications, want exactly 1: %+v", len(ps), ps)
	}
	healthy.Store(true)
	rcv.waitFor(t, "resolved", 30*time.Second)
	// The resolved alert is evaluated and sent on again; nothing more goes out.
	a.waitEvaluations(t, 2)
	a.waitQueuesEmpty(t)
	ps := rcv.payloads()
	if len(ps) != 2 || ps[0].Status != "firing" || ps[1].Status != "resolved" || ps[0].GroupKey != ps[1].GroupKey {
		t.Fatalf("want firing then resolved for one group, got %+v", ps)
	}
	a.waitMetric(t, `vigil_notify_queue_length\{receiver="oncall",integration="webhook"\} 0`)
}

// TestSilenceAndDrillRouting: a silence added with `vigil silence add`
// holds the page back until `vigil silence expire`; an alert labelled
// drill="true" never reaches the on-call receiver when no drill receiver is
// configured.
func TestSilenceAndDrillRouting(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rcv := newReceiver(t)
	target, healthy := flipper(t)
	healthy.Store(true) // until the silence is in place
	writeConfig(t, dir, "rules.yml", pagingRules+`
      - alert: DrillTargetDown
        expr: vigil_check_success{check="target"} == 0
        labels: {severity: critical, drill: "true"}
`)
	cfg := writeConfig(t, dir, "vigil.yml", pagingConfig(target.URL, fmt.Sprintf(`  route:
    receiver: oncall
    group_by: [alertname]
    group_wait: 0s
    group_interval: 1s
  receivers:
    - name: oncall
      webhook_configs:
        - url: %s
`, rcv.srv.URL)))
	a := startAgent(t, "--config.file", cfg, "--storage.path", filepath.Join(dir, "vigil.db"))
	out, errOut, code := run(t, "silence", "add", "--agent.url", a.url, `alertname="TargetDown"`, "-d", "1h", "-c", "maintenance OPS-1", "--author", "li.wei")
	if code != 0 {
		t.Fatalf("silence add: %d %s %s", code, out, errOut)
	}
	id := strings.Fields(out)[0]
	healthy.Store(false)
	a.waitMetric(t, `vigil_notify_drill_dropped_total [1-9]`)
	// Both alerts were handed to the dispatcher by the evaluation that
	// dropped the drill one; two more evaluations and an empty outbox: a
	// page the silence let through would have reached the receiver.
	a.waitEvaluations(t, 2)
	a.waitQueuesEmpty(t)
	if ps := rcv.payloads(); len(ps) != 0 {
		t.Fatalf("silenced or drill alert paged: %+v", ps)
	}
	out, _, _ = run(t, "silence", "list", "--agent.url", a.url)
	if !strings.Contains(out, id) || !strings.Contains(out, "active") || !strings.Contains(out, "li.wei") || !strings.Contains(out, "maintenance OPS-1") {
		t.Errorf("silence list:\n%s", out)
	}
	if _, errOut, code := run(t, "silence", "add", "--agent.url", a.url, `alertname=~".*"`, "-c", "x"); code == 0 || !strings.Contains(errOut, "every alert") {
		t.Errorf("match-all silence accepted: %d %s", code, errOut)
	}
	if out, errOut, code := run(t, "silence", "expire", "--agent.url", a.url, id); code != 0 {
		t.Fatalf("silence expire: %s %s", out, errOut)
	}
	ps := rcv.waitFor(t, "firing", 20*time.Second)
	for _, p := range ps {
		for _, al := range p.Alerts {
			if al.Labels["drill"] == "true" {
				t.Errorf("drill alert reached the on-call receiver: %+v", p)
			}
		}
	}
}

// TestPagingExampleConfig: examples/paging.yml, which uses every
// integration, passes check-config with its secrets in the environment and
// names the missing variable without one.
//
// Not parallel: it sets the secrets with t.Setenv for `vigil check-config`.
func TestPagingExampleConfig(t *testing.T) {
	env := map[string]string{
		"ONCALL_PD_KEY": "R0UTINGKEY", "OPS_DINGTALK_SECRET": "SEC0", "OPS_FEISHU_SECRET": "s", "SMTP_PASSWORD": "p",
		"OPS_DINGTALK_URL":     "https://oapi.dingtalk.com/robot/send?access_token=T",
		"OPS_WECOM_URL":        "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K",
		"OPS_FEISHU_URL":       "https://open.feishu.cn/open-apis/bot/v2/hook/H",
		"OPS_SLACK_URL":        "https://hooks.slack.com/services/T/B/X",
		"ALIYUN_ACCESS_KEY_ID": "LTAI5tExample", "ALIYUN_ACCESS_KEY_SECRET": "s",
		"TENCENT_SECRET_ID": "AKIDExample", "TENCENT_SECRET_KEY": "k",
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	out, errOut, code := run(t, "check-config", "../../examples/paging.yml")
	if code != 0 || !strings.Contains(out, "paging: 2 Alertmanager peer(s), 6 receiver(s) with 10 integration(s)") {
		t.Fatalf("check-config: %d\n%s%s", code, out, errOut)
	}
	os.Unsetenv("SMTP_PASSWORD")
	_, errOut, code = run(t, "check-config", "../../examples/paging.yml")
	if code == 0 || !strings.Contains(errOut, "environment variable SMTP_PASSWORD is not set") {
		t.Fatalf("missing secret: %d %s", code, errOut)
	}
	for _, v := range env {
		if strings.Contains(errOut, v) && len(v) > 2 {
			t.Errorf("check-config output shows a secret %q:\n%s", v, errOut)
		}
	}
}
