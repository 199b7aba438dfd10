//go:build peerbench

// Side-by-side measurements for BENCHMARKS.md (make bench-peer): one cycle
// of 1,000 HTTP checks at concurrency 64 by `vigil once` versus
// blackbox_exporter's /probe driven at the same concurrency, and one cycle
// of 500 ICMP checks on loopback addresses.
package network

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const blackboxBin = "/usr/bin/prometheus-blackbox-exporter"

// TestMain lets the test binary double as the target server, so the
// targets' CPU is never counted for either prober.
func TestMain(m *testing.M) {
	if addr := os.Getenv("VIGIL_BENCH_SERVE"); addr != "" {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			panic(err)
		}
		fmt.Println("listening")
		http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") }))
		return
	}
	os.Exit(m.Run())
}

func startTargetServer(t *testing.T) string {
	t.Helper()
	addr := freeLoopback(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "VIGIL_BENCH_SERVE="+addr)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	buf := make([]byte, 64)
	if n, _ := out.Read(buf); !strings.Contains(string(buf[:n]), "listening") {
		t.Fatalf("target server: %q", buf[:n])
	}
	return addr
}

func freeLoopback(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func buildVigil(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "vigil")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "github.com/vigil-project/vigil")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// cpuOf reads utime+stime of a running process.
func cpuOf(t *testing.T, pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b)[strings.LastIndexByte(string(b), ')')+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s[len(s)/2]
}

const httpTargets, concurrency, rounds = 1000, 64, 5

func TestPeerHTTPCycle(t *testing.T) {
	if _, err := os.Stat(blackboxBin); err != nil {
		t.Skipf("%s not installed (apt-get install prometheus-blackbox-exporter)", blackboxBin)
	}
	target := startTargetServer(t)
	dir := t.TempDir()

	var cfg strings.Builder
	fmt.Fprintf(&cfg, "global: {max_concurrency: %d, timeout: 5s}\nchecks:\n", concurrency)
	for i := range httpTargets {
		fmt.Fprintf(&cfg, "  - {name: t%d, type: http, http: {url: \"http://%s/t/%d\", traceroute_on_failure: false}}\n", i, target, i)
	}
	vcfg := filepath.Join(dir, "vigil.yml")
	os.WriteFile(vcfg, []byte(cfg.String()), 0o644)
	bin := buildVigil(t)

	bbcfg := filepath.Join(dir, "blackbox.yml")
	os.WriteFile(bbcfg, []byte("modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n"), 0o644)
	bbAddr := freeLoopback(t)
	bb := exec.Command(blackboxBin, "--config.file", bbcfg, "--web.listen-address", bbAddr, "--log.level", "warn")
	if err := bb.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { bb.Process.Kill(); bb.Wait() }()
	for i := 0; ; i++ {
		if resp, err := http.Get("http://" + bbAddr + "/-/healthy"); err == nil {
			resp.Body.Close()
			break
		}
		if i > 200 {
			t.Fatal("blackbox_exporter did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: concurrency}}

	var vWall, vCPU, bWall, bCPU []float64
	for range rounds {
		// vigil: one `vigil once` cycle over the 1,000 checks.
		wall, cpu := vigilOnce(t, bin, vcfg)
		vWall, vCPU = append(vWall, wall.Seconds()), append(vCPU, cpu.Seconds()/httpTargets*1000)

		// blackbox_exporter: 1,000 /probe requests, 64 at a time.
		before := cpuOf(t, bb.Process.Pid)
		start := time.Now()
		var wg sync.WaitGroup
		next := make(chan int)
		var failures sync.Map
		for range concurrency {
			wg.Go(func() {
				for i := range next {
					u := fmt.Sprintf("http://%s/probe?module=http_2xx&target=http://%s/t/%d", bbAddr, target, i)
					resp, err := client.Get(u)
					if err != nil {
						failures.Store(i, err.Error())
						continue
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if !strings.Contains(string(body), "probe_success 1") {
						failures.Store(i, "probe_success not 1")
					}
				}
			})
		}
		for i := range httpTargets {
			next <- i
		}
		close(next)
		wg.Wait()
		wall = time.Since(start)
		failures.Range(func(k, v any) bool { t.Fatalf("blackbox probe %v: %v", k, v); return false })
		time.Sleep(200 * time.Millisecond) // let the last accounting tick land
		cpu = cpuOf(t, bb.Process.Pid) - before
		bWall, bCPU = append(bWall, wall.Seconds()), append(bCPU, cpu.Seconds()/httpTargets*1000)
	}
	t.Logf("1,000 HTTP targets, concurrency %d, median of %d cycles:", concurrency, rounds)
	t.Logf("  vigil once:        wall %.2f s, CPU %.3f ms/probe", median(vWall), median(vCPU))
	t.Logf("  blackbox_exporter: wall %.2f s, CPU %.3f ms/probe", median(bWall), median(bCPU))
	t.Logf("  ratio vigil/blackbox: wall %.2f, CPU per probe %.2f", median(vWall)/median(bWall), median(vCPU)/median(bCPU))
}

// TestPeerICMPCycle pings 500 loopback addresses, 3 packets each, in one
// `vigil once` cycle.
func TestPeerICMPCycle(t *testing.T) {
	requireRawICMP(t)
	dir := t.TempDir()
	var cfg strings.Builder
	cfg.WriteString("global: {max_concurrency: 128, timeout: 10s}\nchecks:\n")
	for i := range 500 {
		fmt.Fprintf(&cfg, "  - {name: p%d, type: icmp, icmp: {host: 127.0.%d.%d, count: 3}}\n", i, 1+i/250, 1+i%250)
	}
	vcfg := filepath.Join(dir, "icmp.yml")
	os.WriteFile(vcfg, []byte(cfg.String()), 0o644)
	bin := buildVigil(t)
	var walls, cpus []float64
	for range rounds {
		wall, cpu := vigilOnce(t, bin, vcfg)
		walls, cpus = append(walls, wall.Seconds()), append(cpus, cpu.Seconds())
	}
	t.Logf("500 ICMP targets (127.0.x.y), 3 echoes each, concurrency 128, median of %d cycles: wall %.2f s, CPU %.2f s", rounds, median(walls), median(cpus))
}

// vigilOnce runs one `vigil once` cycle, which must pass, and returns its
// wall time and the child's CPU time (start-up included).
func vigilOnce(t *testing.T, bin, cfg string) (wall, cpu time.Duration) {
	t.Helper()
	start := time.Now()
	cmd := exec.Command(bin, "once", "--config.file", cfg, "-o", "json")
	out, err := cmd.Output()
	wall = time.Since(start)
	if err != nil {
		t.Fatalf("vigil once: %v\n%s", err, out[:min(len(out), 2000)])
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return wall, time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
