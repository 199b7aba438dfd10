//go:build peerbench

// Side-by-side measurements against node_exporter (Debian's
// prometheus-node-exporter), run with `make bench-peer`. They report numbers
// for BENCHMARKS.md rather than assert them: machines here are noisy.
package agent_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/examples/invoice-service/platform"
)

const nodeExporter = "/usr/bin/prometheus-node-exporter"

func buildVigil(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "vigil")
	// Built as `make build` builds it.
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "github.com/vigil-project/vigil")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitReady polls url until it answers 200 and returns the time it took.
func waitReady(t *testing.T, url string, start time.Time) time.Duration {
	t.Helper()
	for time.Since(start) < 30*time.Second {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return time.Since(start)
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("%s not ready after 30s", url)
	return 0
}

// rssKiB reads VmRSS, RssAnon and RssFile of a process.
func rssKiB(t *testing.T, pid int) (rss, anon, file float64) {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, v, _ := strings.Cut(sc.Text(), ":")
		n, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		switch key {
		case "VmRSS":
			rss = n
		case "RssAnon":
			anon = n
		case "RssFile":
			file = n
		}
	}
	if rss == 0 {
		t.Fatal("no VmRSS")
	}
	return rss, anon, file
}

type proc struct {
	name, url string
	cmd       *exec.Cmd
}

// exampleConfig is examples/vigil.yml pointed at a demo invoice platform
// started for the test, so the invoice checks run as under `make run`.
func exampleConfig(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	data := t.TempDir()
	d, err := platform.StartDemo(ctx, platform.DemoOptions{DataDir: data, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); d.Wait() })
	b, err := os.ReadFile("../examples/vigil.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(b)
	// Everything the example loads (rules, runbooks, drills) is loaded here
	// too, and its checks reach the demo started above.
	examples, _ := filepath.Abs("../examples")
	for _, glob := range []string{"rules/*.rules.yml", "runbooks/*.yml", "drills/*.yml"} {
		cfg = strings.ReplaceAll(cfg, "  - "+glob, "  - "+filepath.Join(examples, glob))
	}
	cfg = strings.ReplaceAll(cfg, "data/demo/primary.db", filepath.Join(data, "primary.db"))
	for i, role := range []string{"gateway", "primary", "standby", "upstream"} {
		cfg = strings.ReplaceAll(cfg, "http://127.0.0.1:848"+strconv.Itoa(i), d.URL[role])
		cfg = strings.ReplaceAll(cfg, "http://127.0.0.1:849"+strconv.Itoa(i), d.AdminURL[role])
		cfg = strings.ReplaceAll(cfg, "address: 127.0.0.1:848"+strconv.Itoa(i), "address: "+strings.TrimPrefix(d.URL[role], "http://"))
	}
	p := filepath.Join(t.TempDir(), "vigil.yml")
	if err := os.WriteFile(p, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func startVigil(t *testing.T, bin, config string) proc {
	addr := freeAddr(t)
	cmd := exec.Command(bin, "run", "--config.file", config, "--web.listen-address", addr,
		"--storage.path", filepath.Join(t.TempDir(), "vigil.db"), "--log.level", "warn")
	return proc{name: "vigil", url: "http://" + addr, cmd: cmd}
}

func startNodeExporter(t *testing.T) proc {
	addr := freeAddr(t)
	cmd := exec.Command(nodeExporter, "--web.listen-address", addr, "--log.level", "warn")
	return proc{name: "node_exporter", url: "http://" + addr, cmd: cmd}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func requirePeer(t *testing.T) {
	if _, err := os.Stat(nodeExporter); err != nil {
		t.Skipf("%s not installed (apt-get install prometheus-node-exporter)", nodeExporter)
	}
}

// TestPeerIdleRSS starts vigil (example config) and node_exporter side by
// side, scrapes each once a second like a Prometheus would at a fast
// interval, and after IDLE (default 60s) samples VmRSS ten times.
func TestPeerIdleRSS(t *testing.T) {
	requirePeer(t)
	idle := 60 * time.Second // IDLE=6m measures after the first periodic release too
	if s := os.Getenv("IDLE"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		idle = d
	}
	bin := buildVigil(t)
	procs := []proc{startVigil(t, bin, exampleConfig(t)), startNodeExporter(t)}
	for _, p := range procs {
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { p.cmd.Process.Kill(); p.cmd.Wait() }()
		waitReady(t, p.url+"/metrics", time.Now())
	}
	// VIEWER=1: a browser tab on the status page, reloading the overview
	// and a check's detail every 15 s as its auto-refresh does.
	viewer := os.Getenv("VIEWER") != ""
	end := time.Now().Add(idle)
	for i := 0; time.Now().Before(end); i++ {
		for _, p := range procs {
			if resp, err := http.Get(p.url + "/metrics"); err == nil {
				resp.Body.Close()
			}
		}
		if viewer && i%15 == 0 {
			for _, page := range []string{"/", "/checks/invoice_qr"} {
				if resp, err := http.Get(procs[0].url + page); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}
		time.Sleep(time.Second)
	}
	// The measured agent is the example's: runbooks and drills loaded,
	// every check passing against the demo.
	if resp, err := http.Get(procs[0].url + "/api/v1/checks"); err == nil {
		var body struct {
			Checks []struct {
				Name string
				Last *struct{ Success bool } `json:"last_result"`
			}
		}
		json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		for _, c := range body.Checks {
			if c.Last == nil || !c.Last.Success {
				t.Errorf("check %s is not passing in the measured agent", c.Name)
			}
		}
	}
	for path, want := range map[string]string{"/api/v1/runbooks": "invoice-failover", "/api/v1/drills": "invoice-qr-failover"} {
		resp, err := http.Get(procs[0].url + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), want) {
			t.Errorf("%s: the measured agent did not load %s", path, want)
		}
	}
	samples := map[string][]float64{}
	for range 10 {
		for _, p := range procs {
			rss, anon, file := rssKiB(t, p.cmd.Process.Pid)
			samples[p.name] = append(samples[p.name], rss/1024)
			samples[p.name+" anon"] = append(samples[p.name+" anon"], anon/1024)
			samples[p.name+" file"] = append(samples[p.name+" file"], file/1024)
		}
		time.Sleep(500 * time.Millisecond)
	}
	v, n := median(samples["vigil"]), median(samples["node_exporter"])
	t.Logf("idle RSS after %s, status page viewer %v (median of 10 samples): vigil %.1f MiB (anon %.1f, file %.1f), node_exporter %.1f MiB (anon %.1f, file %.1f), ratio vigil/node_exporter %.2f",
		idle, viewer, v, median(samples["vigil anon"]), median(samples["vigil file"]),
		n, median(samples["node_exporter anon"]), median(samples["node_exporter file"]), v/n)
}

// TestPeerStartup measures exec to ready ten times for each: vigil's
// /-/ready, node_exporter's first /metrics answer.
func TestPeerStartup(t *testing.T) {
	requirePeer(t)
	bin := buildVigil(t)
	config := exampleConfig(t)
	times := map[string][]float64{}
	for range 10 {
		for _, mk := range []func() proc{func() proc { return startVigil(t, bin, config) }, func() proc { return startNodeExporter(t) }} {
			p := mk()
			path := "/metrics"
			if p.name == "vigil" {
				path = "/-/ready"
			}
			start := time.Now()
			if err := p.cmd.Start(); err != nil {
				t.Fatal(err)
			}
			d := waitReady(t, p.url+path, start)
			p.cmd.Process.Kill()
			p.cmd.Wait()
			times[p.name] = append(times[p.name], float64(d.Microseconds())/1000)
		}
	}
	v, n := median(times["vigil"]), median(times["node_exporter"])
	t.Logf("start-up to ready (median of 10): vigil %.1f ms, node_exporter %.1f ms, ratio %.2f", v, n, v/n)
}
