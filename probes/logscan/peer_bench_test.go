//go:build peerbench

package logscan

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// benchPatterns are 20 patterns of the kind an invoice platform's request
// and sync log needs, written so that RE2 (vigil, mtail) and POSIX ERE
// (grep -E) read them alike. Each generated matching line matches exactly
// one, so the per-pattern sums of all three tools must agree.
var benchPatterns = []struct{ name, re, sample string }{
	{"sync_failed", `"msg":"sync failed".*"error_code":"(UPSTREAM_[A-Z0-9]+)"`, `"msg":"sync failed","role":"primary","number":"26111000000000000042","error_code":"UPSTREAM_5XX","attempts":3`},
	{"upstream_5xx", `"role":"upstream".*"status":5[0-9][0-9]`, `"msg":"request","role":"upstream","method":"GET","path":"/api/v1/verify","status":503,"duration_ms":2.1`},
	{"slow_request", `"duration_ms":[0-9]{4,}\.`, `"msg":"request","role":"primary","method":"POST","path":"/api/v1/invoices","status":201,"duration_ms":1523.7`},
	{"db_error", `"error_code":"DB_ERROR"`, `"msg":"request","role":"primary","method":"GET","path":"/api/v1/invoices","status":500,"error_code":"DB_ERROR"`},
	{"qr_failed", `"error_code":"QR_FAILED"`, `"msg":"request","role":"standby","method":"GET","path":"/qr.png","status":500,"error_code":"QR_FAILED"`},
	{"pdf_failed", `"error_code":"PDF_FAILED"`, `"msg":"request","role":"standby","method":"GET","path":"/pdf","status":500,"error_code":"PDF_FAILED"`},
	{"invalid_invoice", `"error_code":"INVALID_INVOICE"`, `"msg":"request","role":"primary","method":"POST","status":422,"error_code":"INVALID_INVOICE"`},
	{"already_void", `"error_code":"ALREADY_VOID"`, `"msg":"request","role":"primary","method":"POST","status":409,"error_code":"ALREADY_VOID"`},
	{"gateway_down", `"error_code":"ISSUER_UNAVAILABLE"`, `"msg":"request","role":"gateway","status":502,"error_code":"ISSUER_UNAVAILABLE"`},
	{"unavailable", `"error_code":"SERVICE_UNAVAILABLE"`, `"msg":"request","role":"primary","status":503,"error_code":"SERVICE_UNAVAILABLE"`},
	{"switched", `"msg":"active issuer switched"`, `"msg":"active issuer switched","role":"gateway","from":"primary","to":"standby"`},
	{"faults", `"msg":"faults injected"`, `"msg":"faults injected","role":"primary","listener":"admin"`},
	{"resync_fail", `"msg":"resync finished with failures"`, `"msg":"resync finished with failures","role":"primary","resent":3,"failed":2`},
	{"panic", `panic: runtime error`, `"msg":"panic: runtime error: index out of range","role":"primary"`},
	{"timeout", `context deadline exceeded`, `"msg":"request","role":"primary","status":504,"error":"context deadline exceeded"`},
	{"refused", `connect: connection refused`, `"msg":"request","role":"primary","status":502,"error":"dial tcp 10.0.0.9:8483: connect: connection refused"`},
	{"tls", `x509: certificate`, `"msg":"request","role":"primary","status":502,"error":"x509: certificate has expired"`},
	{"auth", `"status":40[13],`, `"msg":"request","role":"gateway","method":"GET","path":"/api/v1/invoices","status":401,"bytes":0`},
	{"void", `"path":"/api/v1/invoices/[0-9]{20}/void","status":2`, `"msg":"request","role":"primary","method":"POST","path":"/api/v1/invoices/26111000000000000042/void","status":200`},
	{"fatal", `"level":"FATAL"`, `"msg":"cannot open database","role":"primary","extra":"level FATAL","level":"FATAL"`},
}

// writeBenchLog writes n lines of about 170 bytes, 5% of them matching.
func writeBenchLog(t testing.TB, path string, n int) (perPattern []int) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	perPattern = make([]int, len(benchPatterns))
	for i := 0; i < n; i++ {
		ts := fmt.Sprintf("2026-11-23T06:%02d:%02d.%03dZ", (i/60000)%60, (i/1000)%60, i%1000)
		if rng.IntN(100) < 5 {
			p := rng.IntN(len(benchPatterns))
			perPattern[p]++
			fmt.Fprintf(w, `{"time":"%s","level":"ERROR",%s}`+"\n", ts, benchPatterns[p].sample)
			continue
		}
		fmt.Fprintf(w, `{"time":"%s","level":"INFO","msg":"request","role":"primary","method":"GET","path":"/api/v1/invoices/2611100000%010d","status":200,"duration_ms":%d.%03d}`+"\n",
			ts, rng.IntN(1e9), rng.IntN(400), rng.IntN(1000))
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return perPattern
}

type run struct {
	cpu, wall time.Duration
	out       string
}

func timed(t testing.TB, cmd *exec.Cmd) run {
	start := time.Now()
	out, err := cmd.CombinedOutput()
	wall := time.Since(start)
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmd.Path, err, out)
	}
	return run{cpu: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), wall: wall, out: string(out)}
}

func medianDur(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestPeerLogscanThroughput runs vigil (`vigil once` with a logscan check:
// open, read, prefilter, match, count), mtail 3 (-one_shot with an
// equivalent program) and grep -cE over the same file, alternating
// RUNS (default 3) times, and reports lines per CPU-second.
func TestPeerLogscanThroughput(t *testing.T) {
	if _, err := exec.LookPath("mtail"); err != nil {
		t.Skip("mtail not installed (apt-get install mtail)")
	}
	n := 1_000_000
	if s := os.Getenv("LINES"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	runs := 3
	if s := os.Getenv("RUNS"); s != "" {
		runs, _ = strconv.Atoi(s)
	}
	dir := t.TempDir()
	logPath := filepath.Join(dir, "bench.log")
	perPattern := writeBenchLog(t, logPath, n)
	st, _ := os.Stat(logPath)
	t.Logf("%d lines, %.0f bytes/line, %d matching", n, float64(st.Size())/float64(n), sum(perPattern))

	bin := filepath.Join(dir, "vigil")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "github.com/vigil-project/vigil")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "checks:\n  - name: bench\n    type: logscan\n    timeout: 10m\n    interval: 1h\n    logscan:\n      paths: [%q]\n      start_at: beginning\n      patterns:\n", logPath)
	var prog, ere strings.Builder
	for i, p := range benchPatterns {
		fmt.Fprintf(&cfg, "        - {name: %s, regex: '%s'}\n", p.name, p.re)
		fmt.Fprintf(&prog, "counter %s\n/%s/ {\n  %s++\n}\n", p.name, strings.ReplaceAll(p.re, "/", `\/`), p.name)
		if i > 0 {
			ere.WriteString("|")
		}
		ere.WriteString(p.re)
	}
	cfgPath := filepath.Join(dir, "vigil.yml")
	os.WriteFile(cfgPath, []byte(cfg.String()), 0o644)
	progDir := filepath.Join(dir, "progs")
	os.Mkdir(progDir, 0o755)
	os.WriteFile(filepath.Join(progDir, "bench.mtail"), []byte(prog.String()), 0o644)

	tools := []struct {
		name string
		cmd  func() *exec.Cmd
	}{
		{"vigil", func() *exec.Cmd {
			return exec.Command(bin, "once", "--config.file", cfgPath, "-o", "json")
		}},
		{"mtail", func() *exec.Cmd {
			return exec.Command("mtail", "-one_shot", "-one_shot_format", "prometheus", "-progs", progDir, "-logs", logPath,
				"-logtostderr", "-emit_prog_label=false")
		}},
		{"grep -cE", func() *exec.Cmd {
			c := exec.Command("grep", "-cE", ere.String(), logPath)
			c.Env = append(os.Environ(), "LC_ALL=C")
			return c
		}},
	}
	cpu := map[string][]time.Duration{}
	wall := map[string][]time.Duration{}
	for r := 0; r < runs; r++ {
		for _, tool := range tools {
			res := timed(t, tool.cmd())
			cpu[tool.name] = append(cpu[tool.name], res.cpu)
			wall[tool.name] = append(wall[tool.name], res.wall)
			if r == 0 {
				checkCounts(t, tool.name, res.out, perPattern)
			}
		}
	}
	base := float64(n) / medianDur(cpu["mtail"]).Seconds()
	for _, tool := range tools {
		c := medianDur(cpu[tool.name])
		rate := float64(n) / c.Seconds()
		t.Logf("%-9s median CPU %7.3fs wall %7.3fs  %9.0f lines/CPU-s  %.2fx mtail", tool.name, c.Seconds(), medianDur(wall[tool.name]).Seconds(), rate, rate/base)
	}
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

// checkCounts makes sure each tool found what was written.
func checkCounts(t testing.TB, tool, out string, perPattern []int) {
	switch tool {
	case "grep -cE":
		if got, _ := strconv.Atoi(strings.TrimSpace(out)); got != sum(perPattern) {
			t.Errorf("grep counted %d, %d written", got, sum(perPattern))
		}
	case "mtail":
		for i, p := range benchPatterns {
			m := regexp.MustCompile(`(?m)^` + p.name + `\{?[^}\n]*\}? (\d+)`).FindStringSubmatch(out)
			if m == nil || m[1] != strconv.Itoa(perPattern[i]) {
				t.Errorf("mtail %s = %v, want %d", p.name, m, perPattern[i])
			}
		}
	case "vigil":
		for i, p := range benchPatterns {
			if !strings.Contains(out, fmt.Sprintf("%s=%d", p.name, perPattern[i])) {
				t.Errorf("vigil %s: want %d in %s", p.name, perPattern[i], out[:min(len(out), 600)])
			}
		}
	}
}
