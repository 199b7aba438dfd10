package invoice

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	qrcode "github.com/skip2/go-qrcode"
)

// helperEnv makes TestHelperDecode, in a child process, decode the file
// named by its value ("png:PATH" or "pdf:PATH") and report on stdout.
const helperEnv = "VIGIL_TEST_DECODE"

// maxBombGrowth is how much more a bomb may cost than a real QR image.
const maxBombGrowth = 100 << 10 // KB, as Maxrss counts

// TestHelperDecode is not a test on its own: TestBombMemory runs it in a
// child process, where the peak RSS of one decode can be measured.
func TestHelperDecode(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		t.Skip("runs as a child of TestBombMemory")
	}
	kind, path, _ := strings.Cut(spec, ":")
	b, err := os.ReadFile(path)
	if err == nil {
		err = decodeKind(kind, b)
	}
	var le *limitError
	fmt.Printf("\nhelper-result\t%d\t%t\t%v\n", peakRSS(t), errors.As(err, &le), err)
}

// peakRSS is this process's own high-water RSS in KB (VmHWM). The parent
// cannot use the child's rusage for it: Go starts children with vfork
// (CLONE_VM), and Linux records the shared memory's high-water mark into
// the child's ru_maxrss at exec, so Maxrss is at least the parent's peak
// (199 MB under -race here, whatever the child did). VmHWM belongs to the
// memory the child got at exec.
func peakRSS(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
	return 0
}

type childResult struct {
	peak   int64 // KB: the child's own VmHWM
	maxRSS int64 // KB: rusage, an upper bound that includes the parent's peak
	limit  bool  // the error was a limitError
	err    string
}

// decodeInChild decodes one file in a fresh copy of this test binary and
// returns its peak RSS and error. The rusage the brief for this test
// suggested (ProcessState.SysUsage().Maxrss) is kept for the log only; see
// peakRSS for why it cannot be the measure.
func decodeInChild(t *testing.T, kind string, b []byte) childResult {
	t.Helper()
	path := filepath.Join(t.TempDir(), "input."+kind)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperDecode$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+kind+":"+path)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	runErr := cmd.Run()
	if cmd.ProcessState == nil {
		t.Fatalf("child: %v", runErr)
	}
	res := childResult{maxRSS: cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss}
	_, line, ok := strings.Cut(out.String(), "helper-result\t")
	if runErr != nil || !ok {
		t.Fatalf("child failed (%v, rusage max RSS %d MB):\n%s", runErr, res.maxRSS>>10, out.String())
	}
	line, _, _ = strings.Cut(line, "\n")
	fields := strings.SplitN(line, "\t", 3)
	if len(fields) != 3 {
		t.Fatalf("child said %q", line)
	}
	res.peak, _ = strconv.ParseInt(fields[0], 10, 64)
	res.limit, res.err = fields[1] == "true", fields[2]
	return res
}

// TestBombMemory decodes every bomb of bombCases in a child process and
// compares its peak RSS with a child decoding a real QR of the same kind:
// a bomb must be refused with its clear error for less than 100 MB more.
// Before the limits, the 15000x15000 PNG alone cost 527-771 MB.
func TestBombMemory(t *testing.T) {
	t.Parallel()
	q, err := qrcode.New(samplePayload, qrcode.Medium)
	if err != nil {
		t.Fatal(err)
	}
	qrPNG, err := q.PNG(256)
	if err != nil {
		t.Fatal(err)
	}
	baseline := map[string]int64{}
	for kind, b := range map[string][]byte{"png": qrPNG, "pdf": pdfWith(t, qrImage(t, samplePayload, 256))} {
		r := decodeInChild(t, kind, b)
		if r.err != "<nil>" {
			t.Fatalf("baseline %s: %s", kind, r.err)
		}
		baseline[kind] = r.peak
		t.Logf("baseline %s: peak RSS %.1f MB (rusage %.1f MB)", kind, float64(r.peak)/1024, float64(r.maxRSS)/1024)
	}
	for _, tc := range bombCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := decodeInChild(t, tc.kind, tc.input(t))
			t.Logf("peak RSS %.1f MB (baseline %.1f MB, rusage %.1f MB): %s",
				float64(r.peak)/1024, float64(baseline[tc.kind])/1024, float64(r.maxRSS)/1024, r.err)
			if !r.limit || !strings.Contains(r.err, tc.want) {
				t.Errorf("error %q; want a limit error containing %q", r.err, tc.want)
			}
			if r.peak > baseline[tc.kind]+maxBombGrowth {
				t.Errorf("peak RSS %d MB, more than %d MB over the %d MB of a real QR",
					r.peak>>10, maxBombGrowth>>10, baseline[tc.kind]>>10)
			}
		})
	}
}
