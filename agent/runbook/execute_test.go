package runbook

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// memJournal records transitions as lines.
type memJournal struct {
	mu    sync.Mutex
	lines []string
}

func (m *memJournal) StepStarted(_ context.Context, phase string, i, attempt int, r RenderedStep, planned bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	what := "start"
	if planned {
		what = "plan"
	}
	m.lines = append(m.lines, fmt.Sprintf("%s %s#%d %s a%d", what, phase, i, r.Name, attempt))
	return nil
}

func (m *memJournal) StepFinished(_ context.Context, phase string, i, attempt int, out Outcome, err error, _ time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	res := "ok"
	if err != nil {
		res = "fail"
	}
	m.lines = append(m.lines, fmt.Sprintf("%s %s#%d a%d", res, phase, i, attempt))
	return nil
}

func (m *memJournal) String() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return strings.Join(m.lines, "\n")
}

// gateway is a fake of the demo gateway's switch that can be made to fail.
type gateway struct {
	mu       sync.Mutex
	active   string
	failures int
	headers  []http.Header
}

func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	defer g.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	g.headers = append(g.headers, r.Header.Clone())
	if g.failures > 0 {
		g.failures--
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	switch {
	case strings.Contains(string(body), `"standby"`):
		g.active = "standby"
	case strings.Contains(string(body), `"primary"`):
		g.active = "primary"
	}
	fmt.Fprintf(w, `{"active":%q}`, g.active)
}

type fakeChecker struct {
	mu      sync.Mutex
	results map[string][]bool // consumed in order; last one repeats
}

func (f *fakeChecker) RunCheck(_ context.Context, name string) (bool, string, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rs := f.results[name]
	if len(rs) == 0 {
		return false, "", "", fmt.Errorf("unknown check %q", name)
	}
	ok := rs[0]
	if len(rs) > 1 {
		f.results[name] = rs[1:]
	}
	if ok {
		return true, "", "", nil
	}
	return false, "qr_mismatch", "field amount", nil
}

func failoverRunbook(t *testing.T, gw string) *Runbook {
	t.Helper()
	data, err := os.ReadFile("testdata/invoice-failover.yml")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(data), "http://127.0.0.1:8490", gw)
	s = strings.ReplaceAll(s, "backoff: 2s", "backoff: 10ms")
	s = strings.ReplaceAll(s, "interval: 10s", "interval: 10ms")
	rb, err := Parse("failover.yml", []byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return rb
}

type pagerFunc func(ctx context.Context, receiver, title, message string) error

func (f pagerFunc) NotifyReceiver(ctx context.Context, r, t, m string) error { return f(ctx, r, t, m) }

func TestExecuteFailover(t *testing.T) {
	alert := Data{Labels: map[string]string{"alertname": "InvoiceQRFailing", "check": "invoice_qr", "platform": "e-invoice"}, Run: "run1"}
	for _, tc := range []struct {
		name       string
		mode       Mode
		failures   int
		checks     map[string][]bool
		wantResult string
		wantActive string
		wantLines  string
	}{
		{"switches and verifies", Enforce, 1, map[string][]bool{"invoice_sync_standby": {true}, "invoice_qr": {false, true, true, true}}, ResultSucceeded, "standby",
			"start precondition#0 standby passes a1\nok precondition#0 a1\nstart step#0 switch to standby a1\nfail step#0 a1\nstart step#0 switch to standby a2\nok step#0 a2\nstart step#1 invoice_qr passes 3 times a1\nok step#1 a1\nstart step#2 tell on-call a1\nok step#2 a1"},
		{"standby not healthy: nothing runs", Enforce, 0, map[string][]bool{"invoice_sync_standby": {false}}, ResultPreconditionFailed, "",
			"start precondition#0 standby passes a1\nfail precondition#0 a1"},
		{"check never recovers: rolled back", Enforce, 0, map[string][]bool{"invoice_sync_standby": {true}, "invoice_qr": {false}}, ResultRolledBack, "primary",
			"start precondition#0 standby passes a1\nok precondition#0 a1\nstart step#0 switch to standby a1\nok step#0 a1\nstart step#1 invoice_qr passes 3 times a1\nfail step#1 a1\nstart rollback#0 switch back a1\nok rollback#0 a1"},
		{"dry run executes nothing", DryRun, 0, nil, ResultDryRun, "",
			"plan precondition#0 standby passes a0\nplan step#0 switch to standby a0\nplan step#1 invoice_qr passes 3 times a0\nplan step#2 tell on-call a0\nplan rollback#0 switch back a0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gw := &gateway{failures: tc.failures}
			srv := httptest.NewServer(gw)
			defer srv.Close()
			rb := failoverRunbook(t, srv.URL)
			rb.Mode = tc.mode
			rb.Steps[1].Config.(*CheckStep).Within = 300_000_000 // 300ms
			var paged []string
			env := Env{Checker: &fakeChecker{results: tc.checks}, RunID: "run1", Fencing: 42,
				Pager: pagerFunc(func(_ context.Context, r, _, m string) error { paged = append(paged, r+": "+m); return nil })}
			j := &memJournal{}
			res, err := Execute(context.Background(), rb, alert, env, j, ExecOptions{})
			if res != tc.wantResult {
				t.Errorf("result %s (%v), want %s", res, err, tc.wantResult)
			}
			if gw.active != tc.wantActive {
				t.Errorf("gateway active %q, want %q", gw.active, tc.wantActive)
			}
			if j.String() != tc.wantLines {
				t.Errorf("journal:\n%s\nwant:\n%s", j, tc.wantLines)
			}
			if tc.wantResult == ResultSucceeded {
				h := gw.headers[len(gw.headers)-1]
				if h.Get("Idempotency-Key") != "run1-switch to standby" || h.Get(DefaultFencingHeader) != "42" {
					t.Errorf("headers %v", h)
				}
				if len(paged) != 1 || paged[0] != "oncall: Failed over to the standby issuer after InvoiceQRFailing." {
					t.Errorf("paged %q", paged)
				}
			}
			if tc.mode == DryRun && len(gw.headers) != 0 {
				t.Error("dry run called the gateway")
			}
		})
	}
}

func TestExecuteLockLostAndAbort(t *testing.T) {
	gw := &gateway{}
	srv := httptest.NewServer(gw)
	defer srv.Close()
	rb := failoverRunbook(t, srv.URL)
	lost := make(chan struct{})
	close(lost)
	res, err := Execute(context.Background(), rb, Data{}, Env{Checker: &fakeChecker{results: map[string][]bool{"invoice_sync_standby": {true}}}}, &memJournal{}, ExecOptions{Lost: lost})
	if res != ResultLockLost || len(gw.headers) != 0 {
		t.Errorf("lost lock: %s %v, %d calls", res, err, len(gw.headers))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if res, _ := Execute(ctx, rb, Data{}, Env{}, &memJournal{}, ExecOptions{}); res != ResultAborted {
		t.Errorf("aborted: %s", res)
	}
}

func TestExecStepOutputBoundedAndTimeout(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "s.sh")
	os.WriteFile(script, []byte("#!/bin/sh\necho \"$1|$VIGIL_ALERT_CHECK\"\nhead -c 100000 /dev/zero | tr '\\0' x\n[ \"$2\" = sleep ] && sleep 5\nexit 3\n"), 0o755)
	rb, err := Parse("x.yml", []byte(fmt.Sprintf(`name: x
trigger: {manual: true}
steps:
  - exec: {argv: [%q, '{{ .Labels.check }}'], max_output: 100}
  - exec: {argv: [%q, a, sleep]}
    timeout: 200ms
    on_failure: continue
`, script, script)))
	if err != nil {
		t.Fatal(err)
	}
	d := Data{Labels: map[string]string{"check": "$(id); rm -rf /"}}
	r, _ := rb.Steps[0].Render(d)
	out, err := execute(context.Background(), &rb.Steps[0], r, Env{})
	if err == nil || out.Status != 3 || !strings.HasPrefix(out.Output, "$(id); rm -rf /|$(id); rm -rf /\n") || !strings.Contains(out.Output, "more bytes not kept") || len(out.Output) > 200 {
		t.Errorf("exec: %v %d %q", err, out.Status, out.Output)
	}
	start := time.Now()
	j := &memJournal{}
	res, err := Execute(context.Background(), rb, d, Env{}, j, ExecOptions{})
	if res != ResultFailed || time.Since(start) > 3*time.Second || !strings.Contains(fmt.Sprint(err), "exit status 3") {
		t.Errorf("result %s %v after %s", res, err, time.Since(start))
	}
}
