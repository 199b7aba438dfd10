package cli_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-project/vigil/internal/testenv"
)

// receiverProc is a remote-write receiver run by a test: Debian's
// Prometheus (--web.enable-remote-write-receiver) or VictoriaMetrics. It
// can be stopped and started again on the same port and data directory.
type receiverProc struct {
	name      string
	writePath string
	addr      string
	args      []string
	ready     string
	cmd       *exec.Cmd
	logs      *syncBuffer
}

func startPrometheusReceiver(t *testing.T, dir string) *receiverProc {
	t.Helper()
	bin := testenv.NeedBinary(t, "prometheus", "prometheus")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, dir, "prometheus.yml", "global: {scrape_interval: 1h}\n")
	addr := freePort(t)
	r := &receiverProc{name: "prometheus", writePath: "/api/v1/write", addr: addr, ready: "/-/ready",
		args: []string{bin, "--config.file", cfg, "--storage.tsdb.path", filepath.Join(dir, "tsdb"),
			"--web.listen-address", addr, "--web.enable-remote-write-receiver"}}
	r.start(t)
	return r
}

func startVictoriaMetrics(t *testing.T, dir string) *receiverProc {
	t.Helper()
	bin := testenv.NeedBinary(t, "victoria-metrics", "victoria-metrics")
	addr := freePort(t)
	// latencyOffset 0: samples are queryable as soon as they are stored.
	r := &receiverProc{name: "victoria-metrics", writePath: "/api/v1/write", addr: addr, ready: "/health",
		args: []string{bin, "-httpListenAddr", addr, "-storageDataPath", filepath.Join(dir, "vm"),
			"-search.latencyOffset", "0s", "-search.disableCache"}}
	r.start(t)
	return r
}

func (r *receiverProc) start(t *testing.T) {
	t.Helper()
	if r.logs == nil {
		r.logs = &syncBuffer{mu: make(chan struct{}, 1)}
		t.Cleanup(func() {
			r.stop(t)
			if t.Failed() {
				t.Logf("%s log:\n%s", r.name, r.logs.String())
			}
		})
	}
	r.cmd = exec.Command(r.args[0], r.args[1:]...)
	r.cmd.Stdout, r.cmd.Stderr = r.logs, r.logs
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitHTTP(t, "http://"+r.addr+r.ready)
}

// stop ends the receiver cleanly (SIGTERM), so its data is on disk.
func (r *receiverProc) stop(t *testing.T) {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { r.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		r.cmd.Process.Kill()
		<-done
	}
	r.cmd = nil
}

func (r *receiverProc) writeURL() string { return "http://" + r.addr + r.writePath }

// query runs an instant query (both receivers speak Prometheus's API) and
// returns the result's series with their samples: [ts, "value"] pairs for
// a range selector, one pair for an instant vector.
func (r *receiverProc) query(t *testing.T, q string) []promSeries {
	t.Helper()
	resp, err := http.Get("http://" + r.addr + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		t.Fatalf("%s: %v", r.name, err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string       `json:"resultType"`
			Result     []promSeries `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Status != "success" {
		t.Fatalf("%s: query %s: %v %s", r.name, q, err, body.Error)
	}
	for i := range body.Data.Result {
		if s := body.Data.Result[i]; len(s.Values) == 0 && s.Value[0] != nil {
			body.Data.Result[i].Values = [][2]any{s.Value}
		}
	}
	return body.Data.Result
}

type promSeries struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
	Values [][2]any          `json:"values"`
}

// timesOf returns a series' sample times in ms.
func (s promSeries) timesOf() []int64 {
	out := make([]int64, len(s.Values))
	for i, v := range s.Values {
		f, _ := v[0].(float64)
		out[i] = int64(f*1000 + 0.5)
	}
	return out
}

// values returns a series' sample values.
func (s promSeries) values() []float64 {
	out := make([]float64, len(s.Values))
	for i, v := range s.Values {
		str, _ := v[1].(string)
		out[i], _ = strconv.ParseFloat(str, 64)
	}
	return out
}

// waitQuery polls a query until it returns at least one series.
func (r *receiverProc) waitQuery(t *testing.T, q string, timeout time.Duration) []promSeries {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if res := r.query(t, q); len(res) > 0 {
			return res
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no result for %s after %s", r.name, q, timeout)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

const remoteWriteRules = `
groups:
  - name: always
    rules:
      - alert: AgentHostChecked
        expr: vigil_check_success{check="host"} >= 0
        labels: {severity: info}
`

func remoteWriteConfig(extra string, receivers ...*receiverProc) string {
	cfg := `
global:
  startup_splay: 0s
  evaluation_interval: 1s
  labels: {site: e2e}
rule_files: [rules.yml]
checks:
  - name: host
    type: host
    interval: 1s
    timeout: 1s
    host: {cpu_sample: 100ms, cpu_max: 1, memory_max: 1, disk_free_min: 0, inodes_free_min: 0}
remote_write:
`
	for _, r := range receivers {
		cfg += fmt.Sprintf(`  - url: %s
    name: %s
    interval: 1s
    external_labels: {pusher: vigil-e2e}
    queue_config: {batch_send_deadline: 100ms, min_backoff: 50ms, max_backoff: 500ms%s}
`, r.writeURL(), r.name, extra)
	}
	return cfg
}

// agentMetric reads one series of the agent's /metrics.
func agentMetric(t *testing.T, a *agentProc, series string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(a.get(t, "/metrics"))
	if m == nil {
		t.Fatalf("no %s on /metrics", series)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// TestRemoteWriteEndToEnd: one agent pushes to a real Prometheus and a real
// VictoriaMetrics. Its series and its rules' ALERTS arrive with the
// external labels; then both receivers are down for a while, and once
// they are back every snapshot taken meanwhile arrives: no gap in the
// samples and nothing counted as dropped.
func TestRemoteWriteEndToEnd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	prom := startPrometheusReceiver(t, filepath.Join(dir, "prom"))
	vm := startVictoriaMetrics(t, filepath.Join(dir, "vmdata"))
	writeConfig(t, dir, "rules.yml", remoteWriteRules)
	cfg := writeConfig(t, dir, "vigil.yml", remoteWriteConfig("", prom, vm))
	a := startAgent(t, "--config.file", cfg, "--storage.path", filepath.Join(dir, "vigil.db"))

	for _, r := range []*receiverProc{prom, vm} {
		res := r.waitQuery(t, `vigil_check_success{check="host",pusher="vigil-e2e",site="e2e",job="vigil"}`, 30*time.Second)
		if res[0].Metric["instance"] == "" || res[0].Metric["type"] != "host" {
			t.Errorf("%s: series %v", r.name, res[0].Metric)
		}
		al := r.waitQuery(t, `ALERTS{alertname="AgentHostChecked",alertstate="firing",pusher="vigil-e2e",site="e2e"}`, 30*time.Second)
		if al[0].Metric["check"] != "host" || al[0].Metric["severity"] != "info" {
			t.Errorf("%s: ALERTS %v", r.name, al[0].Metric)
		}
		r.waitQuery(t, `ALERTS_FOR_STATE{alertname="AgentHostChecked",pusher="vigil-e2e"}`, 30*time.Second)
		r.waitQuery(t, `vigil_remote_write_samples_total{remote="`+r.name+`"} > 0`, 30*time.Second)
	}

	// The outage: both receivers down for ~5 snapshots.
	outageStart := time.Now()
	prom.stop(t)
	vm.stop(t)
	testenv.Eventually(t, 30*time.Second, "retries during the outage", func() bool {
		return agentMetric(t, a, `vigil_remote_write_samples_retried_total{remote="prometheus"}`) > 0 &&
			agentMetric(t, a, `vigil_remote_write_samples_retried_total{remote="victoria-metrics"}`) > 0
	})
	time.Sleep(5 * time.Second)
	if q := agentMetric(t, a, `vigil_remote_write_queue_samples{remote="prometheus"}`); q < 200 {
		t.Errorf("only %v samples queued during the outage", q)
	}
	prom.start(t)
	vm.start(t)
	outageEnd := time.Now()
	for _, r := range []*receiverProc{prom, vm} {
		remote := `{remote="` + r.name + `"}`
		testenv.Eventually(t, 60*time.Second, r.name+" to get the backlog", func() bool {
			return agentMetric(t, a, "vigil_remote_write_last_success_timestamp_seconds"+remote) > float64(outageEnd.Unix()) &&
				agentMetric(t, a, "vigil_remote_write_queue_samples"+remote) < 400
		})
		if d := agentMetric(t, a, `vigil_remote_write_samples_dropped_total{reason="queue_full",remote="`+r.name+`"}`); d != 0 {
			t.Errorf("%s: %v samples dropped", r.name, d)
		}
		if d := agentMetric(t, a, `vigil_remote_write_samples_dropped_total{reason="rejected",remote="`+r.name+`"}`); d != 0 {
			t.Errorf("%s: %v samples rejected", r.name, d)
		}
		// Every snapshot carries vigil_remote_write_snapshots_total as it
		// was before it: its raw samples at the receiver count 0, 1, 2, …
		// without a jump if no snapshot was lost, the outage's included
		// (polled: a receiver makes what it was sent searchable a little
		// later).
		var (
			problem string
			during  int
		)
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
			span := int(time.Since(outageStart).Seconds()) + 30
			res := r.waitQuery(t, fmt.Sprintf(`vigil_remote_write_snapshots_total{pusher="vigil-e2e",remote=%q}[%ds]`, r.name, span), 10*time.Second)
			problem, during = "", 0
			times, values := res[0].timesOf(), res[0].values()
			for i := range values {
				if i > 0 && values[i] != values[i-1]+1 {
					problem = fmt.Sprintf("snapshot count goes from %v to %v at %s", values[i-1], values[i], time.UnixMilli(times[i]).Format("15:04:05.000"))
					break
				}
				if times[i] > outageStart.UnixMilli() && times[i] < outageEnd.UnixMilli() {
					during++
				}
			}
			if want := int(outageEnd.Sub(outageStart).Seconds()) - 1; problem == "" && during < want {
				problem = fmt.Sprintf("%d snapshots taken during the %s outage arrived, want at least %d", during, outageEnd.Sub(outageStart).Round(time.Second), want)
			}
			if problem == "" {
				break
			}
		}
		if problem != "" {
			t.Errorf("%s: %s", r.name, problem)
		}
		t.Logf("%s: all %d snapshots of the %s outage arrived", r.name, during, outageEnd.Sub(outageStart).Round(time.Second))
	}
}

// TestRemoteWriteQueueFull: a queue too small for the outage drops its
// oldest samples, counts them, never holds more than its capacity, and
// sends again once the receiver is back.
func TestRemoteWriteQueueFull(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	vm := startVictoriaMetrics(t, filepath.Join(dir, "vmdata"))
	writeConfig(t, dir, "rules.yml", remoteWriteRules)
	cfg := writeConfig(t, dir, "vigil.yml", remoteWriteConfig(", capacity: 600, max_samples_per_send: 100", vm))
	a := startAgent(t, "--config.file", cfg, "--storage.path", filepath.Join(dir, "vigil.db"))
	vm.waitQuery(t, `vigil_check_success{pusher="vigil-e2e"}`, 30*time.Second)
	remote := `{remote="victoria-metrics"}`
	if c := agentMetric(t, a, "vigil_remote_write_queue_capacity"+remote); c != 600 {
		t.Errorf("capacity %v, want 600", c)
	}

	vm.stop(t)
	testenv.Eventually(t, 30*time.Second, "samples dropped from the full queue", func() bool {
		return agentMetric(t, a, `vigil_remote_write_samples_dropped_total{reason="queue_full",remote="victoria-metrics"}`) > 0
	})
	if q := agentMetric(t, a, "vigil_remote_write_queue_samples"+remote); q > 600 {
		t.Errorf("queue holds %v samples, capacity 600", q)
	}
	vm.start(t)
	back := time.Now()
	testenv.Eventually(t, 60*time.Second, "sending again", func() bool {
		return agentMetric(t, a, "vigil_remote_write_last_success_timestamp_seconds"+remote) > float64(back.Unix())
	})
}

// TestRemoteWriteExample: examples/remote-write.yml passes check-config,
// whose summary names the remotes without their URLs or credentials.
func TestRemoteWriteExample(t *testing.T) {
	t.Setenv("VM_PASSWORD", "vm-s3cret")
	out, errOut, code := run(t, "check-config", "../../examples/remote-write.yml")
	if code != 0 || !strings.Contains(out, "2 remote_write receiver(s): central (every 30s, queue of 100000 samples), vm (every 1m, queue of 100000 samples)") {
		t.Fatalf("check-config: %d\n%s%s", code, out, errOut)
	}
	for _, secret := range []string{"vm-s3cret", "vm.example.com"} {
		if strings.Contains(out+errOut, secret) {
			t.Errorf("check-config shows %q:\n%s%s", secret, out, errOut)
		}
	}
}
