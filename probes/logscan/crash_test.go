package logscan

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/probes"
)

// crashRig drives a logscan check pass by pass, as Run does, over a log
// that it writes and rotates by copytruncate. A crash drops the reader
// without its final checkpoint and starts a new one, as a kill -9 and a
// restart of the agent do. After every step it checks that no exported
// counter went down.
type crashRig struct {
	t       *testing.T
	dir     string
	log     string
	l       *Logscan
	s       *session
	written int
	copies  int
	// high is the highest value each counter series has been exported with.
	high map[string]float64
}

func newCrashRig(t *testing.T) *crashRig {
	r := &crashRig{t: t, dir: t.TempDir(), high: map[string]float64{}}
	r.log = filepath.Join(r.dir, "app.log")
	appendFile(t, r.log, "")
	r.start()
	return r
}

// start builds the check as the agent does (a state directory: the
// counters come from the checkpoint before the reader has started) and
// opens a reader.
func (r *crashRig) start() {
	cfg := defaultConfig()
	cfg.Paths = []string{r.log}
	cfg.StartAt = "beginning"
	cfg.RotateGrace.Set("10ms")
	// Only the protocol's own checkpoints are taken (start, file changes,
	// truncations, close): never one that happens to cover the lines.
	cfg.CheckpointInterval.Set("1h")
	cfg.Patterns = []Pattern{
		{Name: "seq", Regex: `seq=\d+`},
		{Name: "err", Regex: `level=error code=(?P<code>\w+)`, LabelsFromGroups: []string{"code"}},
	}
	if err := cfg.Validate(); err != nil {
		r.t.Fatal(err)
	}
	p, err := newLogscan(cfg, probes.Options{CheckName: "app", Logger: quiet, StateDir: filepath.Join(r.dir, "state")})
	if err != nil {
		r.t.Fatal(err)
	}
	r.l = p.(*Logscan)
	r.check("before the reader started")
	r.s = r.l.open(quiet)
	r.check("after the checkpoint was restored")
}

// write appends n lines; every seventh is an error with one of three codes.
func (r *crashRig) write(n int) {
	var b strings.Builder
	for i := r.written; i < r.written+n; i++ {
		if i%7 == 0 {
			fmt.Fprintf(&b, "ts=2026-11-23T06:00:00Z seq=%d level=error code=E%d\n", i, i%3)
			continue
		}
		fmt.Fprintf(&b, "ts=2026-11-23T06:00:00Z seq=%d msg=hello\n", i)
	}
	appendFile(r.t, r.log, b.String())
	r.written += n
}

// copyTruncate rotates the log as logrotate's copytruncate does: older
// copies shift (app.log.1 to app.log.2), the log is copied to app.log.1,
// then truncated in place. inPlace copies over app.log.1 instead, as
// `cp app.log app.log.1 && : >app.log` does: the previous copy's file is
// rewritten.
func (r *crashRig) copyTruncate(inPlace bool) {
	for i := r.copies; i >= 1 && !inPlace; i-- {
		if err := os.Rename(r.log+"."+strconv.Itoa(i), r.log+"."+strconv.Itoa(i+1)); err != nil {
			r.t.Fatal(err)
		}
	}
	b, err := os.ReadFile(r.log)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(r.log+".1", b, 0o644); err != nil { // O_TRUNC: the same file when it exists
		r.t.Fatal(err)
	}
	if err := os.Truncate(r.log, 0); err != nil {
		r.t.Fatal(err)
	}
	r.copies++
}

func (r *crashRig) pass() {
	r.s.pass()
	r.check("after a pass")
}

// crash drops the reader without a last checkpoint and starts another.
func (r *crashRig) crash() {
	r.s.t.close()
	r.start()
}

// crashAtTruncation runs a pass that finds a truncation, and crashes right
// after the checkpoint that the truncation causes: the state file is put
// back as it was at that moment.
func (r *crashRig) crashAtTruncation() {
	var state []byte
	progress := r.s.t.progress
	r.s.t.progress = func(urgent bool) {
		progress(urgent)
		if urgent && state == nil {
			var err error
			if state, err = os.ReadFile(r.l.stateFile); err != nil {
				r.t.Fatal(err)
			}
		}
	}
	r.s.pass()
	if state == nil {
		r.t.Fatal("the pass found no truncation")
	}
	r.s.t.close()
	if err := os.WriteFile(r.l.stateFile, state, 0o644); err != nil {
		r.t.Fatal(err)
	}
	r.start()
}

// counters returns the exported counter series by name and labels.
func (r *crashRig) counters() map[string]float64 {
	out := map[string]float64{}
	for _, v := range r.l.Collect() {
		if !v.Counter {
			continue
		}
		key := v.Name
		for _, lb := range v.Labels {
			key += "," + lb.Name + "=" + lb.Value
		}
		out[key] = v.Value
	}
	return out
}

func (r *crashRig) check(when string) {
	r.t.Helper()
	for k, v := range r.counters() {
		if v < r.high[k] {
			r.t.Errorf("%s: %s went down from %v to %v", when, k, r.high[k], v)
		}
		r.high[k] = max(r.high[k], v)
	}
}

// run performs steps: wN (write N lines), p (a pass), ct (copytruncate),
// cp (copytruncate over the previous copy), s (a checkpoint, as
// checkpoint_interval or a scrape causes), crash, crash@trunc (a pass, crashing at the truncation's checkpoint).
// Without crashes it is the reference: the same log read by one reader.
func (r *crashRig) run(steps string, crashes bool) {
	for _, st := range strings.Fields(steps) {
		switch {
		case strings.HasPrefix(st, "w"):
			n, err := strconv.Atoi(st[1:])
			if err != nil {
				r.t.Fatal(err)
			}
			r.write(n)
		case st == "p":
			r.pass()
		case st == "s":
			r.s.save()
		case st == "ct", st == "cp":
			r.copyTruncate(st == "cp")
		case st == "crash":
			if crashes {
				r.crash()
			}
		case st == "crash@trunc":
			if crashes {
				r.crashAtTruncation()
			} else {
				r.pass()
			}
		default:
			r.t.Fatalf("unknown step %q", st)
		}
	}
	// Catch up, then stop gracefully.
	r.pass()
	r.s.close()
	r.check("after the last pass")
}

// TestCopytruncateCrash: copytruncate at various points around a kill -9
// loses no line and counts none twice: the counters after the restarts
// equal those of a reader that never crashed, and the line and match
// totals equal what was written. No counter is ever exported lower than
// before, across the crashes included.
func TestCopytruncateCrash(t *testing.T) {
	for _, tc := range []struct {
		name, steps string
	}{
		{"crash between checkpoints, no truncation", "w100 p w20 p crash p w10 p"},
		{"truncation seen, crash before the next checkpoint", "w100 p ct w50 p crash w10 p"},
		{"crash at the truncation's checkpoint", "w100 p ct w50 crash@trunc w10 p"},
		{"truncation not yet seen at the crash", "w100 p ct w50 crash w10 p"},
		{"truncation while down, nothing read since the checkpoint", "w100 p crash ct w50 crash p"},
		{"lines not yet read when truncated", "w100 p w30 ct w50 p"},
		{"lines not yet read when truncated, crash at its checkpoint", "w100 p w30 ct w50 crash@trunc p"},
		{"lines not yet read when truncated, crash before it is seen", "w100 p w30 ct w50 crash p"},
		{"truncated to empty and seen, then lines, crash", "w100 p ct p w40 crash p"},
		{"two truncations, the second while down", "w100 p ct w20 p ct w10 crash p"},
		{"truncated to empty and seen, lines read, truncated again, crash", "w100 p ct p w40 p ct w10 crash p"},
		{"truncation found at restart, another before the next checkpoint", "w100 p s ct w50 crash p w20 ct w10 crash p"},
		{"copies rewritten in place while drained", "w100 p w30 cp w50 p w40 cp w10 p w5 cp crash@trunc p"},
		{"copies rewritten in place, truncation not yet seen at the crash", "w100 p w30 cp w50 crash p w40 cp w10 crash p"},
		{"truncations and crashes in a row", "w80 p ct w5 crash@trunc w60 p crash ct w7 crash w3 p ct crash@trunc w1 crash p"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ref := newCrashRig(t)
			ref.run(tc.steps, false)
			want := ref.counters()

			r := newCrashRig(t)
			r.run(tc.steps, true)
			got := r.counters()

			// The reference itself is exact.
			errs := 0
			for i := 0; i < r.written; i += 7 {
				errs++
			}
			for k, v := range map[string]int{
				"vigil_log_lines_total":                r.written,
				"vigil_log_matches_total,pattern=seq":  r.written,
				"vigil_log_truncations_total":          r.copies,
				"vigil_log_matches_total,pattern=err,": errs, // summed over codes below
			} {
				n := want[k]
				if strings.HasSuffix(k, ",") {
					n = 0
					for s, c := range want {
						if strings.HasPrefix(s, k) {
							n += c
						}
					}
				}
				if n != float64(v) {
					t.Errorf("without crashes: %s = %v, want %d", k, n, v)
				}
			}
			if d := diff(want, got); d != "" {
				t.Errorf("counters after crashes differ from those of a reader that never crashed (want, got):\n%s", d)
			}
		})
	}
}

func diff(want, got map[string]float64) string {
	var out []string
	for k, v := range want {
		if got[k] != v {
			out = append(out, fmt.Sprintf("%s: %v, %v", k, v, got[k]))
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			out = append(out, fmt.Sprintf("%s: -, %v", k, v))
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// TestCollectExportsSavedCounts: while Run keeps a checkpoint, a scrape
// sees what has been read, though checkpoint_interval is long, by having
// it saved first; and it never sees more than the state file holds, which
// is what a restart after kill -9 would resume from.
func TestCollectExportsSavedCounts(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "app.log")
	l := newCheck(t, dir, func(c *Config) { c.CheckpointInterval.Set("1h") })
	stop := start(l)
	defer stop()
	const n = 2000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < n; i += 20 {
			appendFile(t, log, lines(i, i+20))
			time.Sleep(time.Millisecond)
		}
	}()
	saved := func() float64 {
		cp, _, err := loadCheckpoint(l.stateFile)
		if err != nil {
			t.Fatal(err)
		}
		return float64(cp.Lines)
	}
	check := func() float64 {
		v := value(l, "vigil_log_lines_total")
		if s := saved(); v > s {
			t.Fatalf("exported %v lines, the checkpoint holds %v", v, s)
		}
		return v
	}
	for writing := true; writing; {
		select {
		case <-done:
			writing = false
		default:
		}
		check()
	}
	deadline := time.Now().Add(10 * time.Second)
	for check() != n {
		if time.Now().After(deadline) {
			t.Fatalf("exported %v lines, %d written", value(l, "vigil_log_lines_total"), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
