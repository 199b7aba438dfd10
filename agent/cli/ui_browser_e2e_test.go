package cli_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"github.com/vigil-project/vigil/internal/testenv"
)

// chromium returns Debian's Chromium, skipping the test on a laptop without
// it and failing under VIGIL_REQUIRE_INTEGRATION=1.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("VIGIL_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	testenv.Missing(t, "chromium", "not installed (apt-get install chromium, or VIGIL_CHROMIUM names the binary); .ci/run installs it")
	return ""
}

// artifactsDir is where the browser tests leave their screenshots:
// $VIGIL_ARTIFACTS, or bin/test-artifacts/ui in the repository.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("VIGIL_ARTIFACTS")
	if dir == "" {
		dir = "../../bin/test-artifacts"
	}
	dir = filepath.Join(dir, "ui")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(dir)
	return abs
}

// authClient makes requests as a basic-auth user.
type authClient struct {
	base, user, pass string
}

func (c authClient) do(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if c.user != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// demoAgent is demoDir (the demo platform, the agent with the example
// config and fast shipped rules) behind basic auth (user ops, password
// vigil-ui-pass), with the failover runbook waiting for a person.
func demoAgent(t *testing.T, extra ...string) (a *agentProc, c authClient, url func(int) string) {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("vigil-ui-pass"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webCfg := writeConfig(t, t.TempDir(), "web.yml", "basic_auth_users:\n  ops: "+string(hash)+"\n")
	a, url, _ = startDemoAgent(t, demoOptions{
		args:         append([]string{"--web.config.file", webCfg}, extra...),
		runbookEdits: []func(string) string{func(s string) string { return strings.Replace(s, "mode: enforce", "mode: approve", 1) }},
	})
	c = authClient{base: a.url, user: "ops", pass: "vigil-ui-pass"}
	// Wait until the invoice checks have run once.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, body := c.do(t, "GET", "/metrics", "")
		if strings.Contains(body, `vigil_check_success{check="invoice_qr",type="invoice_qr",team="invoicing"} 1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("invoice_qr never passed:\n%s", a.logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	return a, c, url
}

// browser starts headless Chromium; every page it loads carries header.
func browser(t *testing.T, header network.Headers) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(alloc)
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	// Confirmation dialogs (approve, abort) are accepted, as a person would.
	// The listener must not send commands itself.
	if err := chromedp.Listen(bctx, func(ev any) {
		if _, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			go chromedp.Call(bctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(bctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(bctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: header}); err != nil {
		t.Fatal(err)
	}
	return bctx
}

// count loads url and counts the elements matching selector.
func count(ctx context.Context, url, selector string) (int, error) {
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		return 0, err
	}
	return chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll(`+strconv.Quote(selector)+`).length`))
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(artifactsDir(t), name)
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", p)
}

// waitFor reloads path until selector matches (the page is server-rendered:
// new state shows on the next load).
func waitFor(t *testing.T, ctx context.Context, url, selector string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		n, err := count(ctx, url, selector)
		if err == nil && n > 0 {
			return
		}
		if time.Now().After(deadline) {
			html, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerHTML`))
			t.Fatalf("%s: no %s after %s (err %v):\n%s", url, selector, within, err, html)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestStatusPageInBrowser drives the status page in headless Chromium
// against the agent and the demo platform, behind basic auth: the overview
// renders, an injected fault shows up after "Run now", a runbook waiting
// for approval is approved with its button and fails over, the Chinese page
// fits a phone screen. Screenshots go to bin/test-artifacts/ui.
func TestStatusPageInBrowser(t *testing.T) {
	t.Parallel()
	chromium(t)
	a, c, url := demoAgent(t)
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("ops:vigil-ui-pass"))
	ctx := browser(t, network.Headers{"Authorization": auth, "Accept-Language": "en-US,en;q=0.9"})

	// The overview, laid out as the checklist, all green.
	waitFor(t, ctx, a.url+"/", `tr[data-check="invoice_qr"][data-status="ok"]`, 30*time.Second)
	steps, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("section.step")).map(s => s.id)`))
	if err != nil {
		t.Fatal(err)
	}
	// Auto-refresh off for the rest of the test (the choice is remembered).
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("autorefresh"))); err != nil {
		t.Fatal(err)
	}
	if strings.Join(steps, ",") != "step-host,step-database,step-invoice,step-network,step-logs,step-sync" {
		t.Errorf("overview sections: %v", steps)
	}
	// The run bar shows the runs /api/v1/checks has, oldest first, padded
	// to 30 slots; the SLO's budget is the API's. A run may land between
	// the page and the API call: compare a few times.
	barMatches := func() (string, bool) {
		if err := chromedp.Do(ctx, chromedp.Navigate(a.url+"/"), chromedp.WaitVisible(`tr[data-check="invoice_qr"]`)); err != nil {
			t.Fatal(err)
		}
		bar, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('tr[data-check="invoice_qr"] .runbar i')).map(i => i.className)`))
		if err != nil {
			t.Fatal(err)
		}
		budget, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('tr.slo[data-slo="invoice-generation"]').dataset.budget`))
		_, body := c.do(t, "GET", "/api/v1/checks?name=invoice_qr&history=30", "")
		type apiCheck struct {
			Name    string
			History []struct{ Success bool }
		}
		var list struct{ Checks []apiCheck }
		if err := json.Unmarshal([]byte(body), &list); err != nil {
			t.Fatalf("/api/v1/checks?name=invoice_qr: %v %s", err, body)
		}
		i := slices.IndexFunc(list.Checks, func(c apiCheck) bool { return c.Name == "invoice_qr" })
		if i < 0 {
			t.Fatalf("/api/v1/checks?name=invoice_qr has no invoice_qr: %s", body)
		}
		hist := list.Checks[i].History
		want := make([]string, 30-len(hist))
		for i := range want {
			want[i] = "none"
		}
		for i := len(hist) - 1; i >= 0; i-- {
			want = append(want, map[bool]string{true: "ok", false: "fail"}[hist[i].Success])
		}
		_, body = c.do(t, "GET", "/api/v1/slos", "")
		var slos struct {
			SLOs []struct {
				Name            string
				BudgetRemaining *float64 `json:"budget_remaining"`
			}
		}
		json.Unmarshal([]byte(body), &slos)
		apiBudget := ""
		for _, sl := range slos.SLOs {
			if sl.Name == "invoice-generation" && sl.BudgetRemaining != nil {
				apiBudget = strconv.FormatFloat(*sl.BudgetRemaining, 'g', -1, 64)
			}
		}
		got := fmt.Sprintf("bar %v budget %q", bar, budget)
		return got + fmt.Sprintf(" / API bar %v budget %q", want, apiBudget),
			slices.Equal(bar, want) && budget == apiBudget && apiBudget != ""
	}
	var last string
	matched := false
	for range 5 {
		var ok bool
		if last, ok = barMatches(); ok {
			matched = true
			break
		}
		time.Sleep(time.Second)
	}
	if !matched {
		t.Errorf("overview and API disagree: %s", last)
	}
	screenshot(t, ctx, "01-overview.png")

	// A fault on the primary issuer: the QR amount is wrong. Run the check
	// from its page; the page shows the failure and its reason.
	if st, body := httpDo(t, "POST", url(11)+"/admin/faults", `{"qr_wrong_amount":true}`); st/100 != 2 {
		t.Fatalf("inject fault: %d %s", st, body)
	}
	if err := chromedp.Do(ctx,
		chromedp.Navigate(a.url+"/checks/invoice_qr"),
		chromedp.Click(chromedp.ID("run-now")),
		chromedp.WaitVisible(chromedp.ID("last-failure")),
	); err != nil {
		t.Fatal(err)
	}
	failure, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("last-failure")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(failure, "qr_mismatch") || !strings.Contains(failure, "amount") {
		t.Errorf("check page after the fault: %q", failure)
	}
	// The detail shows what the QR said against what the service said.
	if n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#diagnostics tr[data-key="qr_decoded"], #diagnostics tr[data-key="qr_expected"]').length`)); n != 2 {
		t.Errorf("check page shows %d of the QR decode diagnostics, want 2", n)
	}
	// Phases in the order they ran: the invoice is created before its QR
	// code is decoded.
	phases, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("table.phases tr")).map(r => r.dataset.phase)`))
	if len(phases) < 2 || !slices.Contains(phases, "void") || phases[len(phases)-1] != "void" {
		t.Errorf("phases shown as %v, want the run's order (void last)", phases)
	}
	screenshot(t, ctx, "02-check-failed.png")
	waitFor(t, ctx, a.url+"/", `tr[data-check="invoice_qr"][data-status="fail"]`, 10*time.Second)
	screenshot(t, ctx, "03-overview-failing.png")

	// The shipped rule InvoiceQRFailing fires (for: 2s here) and starts the
	// failover, which waits for a person: approve it with the button.
	var run struct{ ID, State string }
	deadline := time.Now().Add(60 * time.Second)
	for run.ID == "" {
		_, body := c.do(t, "GET", "/api/v1/runbooks/runs?state=waiting_approval", "")
		var runs struct{ Runs []struct{ ID, State string } }
		json.Unmarshal([]byte(body), &runs)
		if len(runs.Runs) > 0 {
			run = runs.Runs[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failover waiting for approval: %s\n%s", body, a.logs.String())
		}
		time.Sleep(250 * time.Millisecond)
	}
	waitFor(t, ctx, a.url+"/alerts", `tr[data-alert="InvoiceQRFailing"][data-state="firing"]`, 30*time.Second)
	screenshot(t, ctx, "04-alert-firing.png")
	runURL := a.url + "/runbooks/runs/" + run.ID
	waitFor(t, ctx, runURL, `#run-state[data-state="waiting_approval"]`, 20*time.Second)
	screenshot(t, ctx, "05-run-waiting-approval.png")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("approve")), chromedp.WaitVisible(chromedp.CSS(".flash"))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, runURL, `#run-state[data-state="succeeded"]`, 90*time.Second)
	screenshot(t, ctx, "06-run-succeeded.png")
	_, body := c.do(t, "GET", "/api/v1/runbooks/runs/"+run.ID, "")
	if !strings.Contains(body, `"kind": "approved"`) || !strings.Contains(body, `"detail": "ops"`) {
		t.Errorf("journal does not record the approval by ops:\n%s", body)
	}

	// The outage is an incident: its timeline lists the failed run, the
	// alert firing, the page and the runbook run, in that order.
	var incidentID int64
	for deadline := time.Now().Add(20 * time.Second); incidentID == 0; {
		_, body := c.do(t, "GET", "/api/v1/incidents", "")
		var list struct {
			Incidents []struct {
				ID        int64
				Alertname string
			}
		}
		json.Unmarshal([]byte(body), &list)
		for _, in := range list.Incidents {
			if in.Alertname == "InvoiceQRFailing" {
				incidentID = in.ID
			}
		}
		if incidentID == 0 && time.Now().After(deadline) {
			t.Fatalf("no InvoiceQRFailing incident: %s", body)
		}
		time.Sleep(250 * time.Millisecond)
	}
	incURL := fmt.Sprintf("%s/incidents/%d", a.url, incidentID)
	waitFor(t, ctx, incURL, `li.ev-runbook`, 20*time.Second)
	kinds, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("ol.incident-timeline li.ev")).map(li => li.dataset.kind)`))
	if err != nil {
		t.Fatal(err)
	}
	firstAt := map[string]int{}
	for i, k := range kinds {
		if _, ok := firstAt[k]; !ok {
			firstAt[k] = i
		}
	}
	// The page and the runbook both follow the alert; which comes first
	// is a matter of milliseconds, and the timeline says what happened.
	for _, pair := range [][2]string{{"failure", "alert"}, {"alert", "page"}, {"alert", "runbook"}} {
		a, aok := firstAt[pair[0]]
		b, bok := firstAt[pair[1]]
		if !aok || !bok || a > b {
			t.Errorf("incident timeline %v: want the first %s before the first %s", kinds, pair[0], pair[1])
		}
	}
	if _, body := c.do(t, "GET", fmt.Sprintf("/api/v1/incidents/%d", incidentID), ""); !strings.Contains(body, `"time_to_page_seconds"`) ||
		strings.Contains(body, `"time_to_page_seconds": 0,`) {
		t.Errorf("incident without a time to page: %s", body)
	}
	screenshot(t, ctx, "11-incident.png")
	// The failover was real: the gateway now answers from the standby.
	resp, err := http.Get(url(0) + "/api/v1/invoices?limit=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Issuer") != "standby" {
		t.Errorf("gateway issuer after the approved failover: %q", resp.Header.Get("X-Issuer"))
	}

	// A silence through the form, then expired with its button.
	waitFor(t, ctx, a.url+"/alerts", `#new-silence`, 5*time.Second)
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS(`textarea[name="matchers"]`), `check="invoice_qr"`),
		chromedp.SetValue(chromedp.CSS(`input[name="duration"]`), "30m"),
		chromedp.SendKeys(chromedp.CSS(`input[name="comment"]`), "UI test, ticket OPS-1"),
		chromedp.Submit(chromedp.CSS(`input[name="comment"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr.silence`)),
	); err != nil {
		t.Fatal(err)
	}
	_, body = c.do(t, "GET", "/api/v1/silences", "")
	if !strings.Contains(body, `"createdBy": "ops"`) || !strings.Contains(body, "OPS-1") {
		t.Errorf("silence made in the page: %s", body)
	}
	screenshot(t, ctx, "07-silence.png")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`tr.silence button`)), chromedp.WaitVisible(chromedp.CSS(".flash"))); err != nil {
		t.Fatal(err)
	}
	// The page still shows the flash of the silence just added until the
	// browser has the answer to the expire form: poll the API.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, body = c.do(t, "GET", "/api/v1/silences", "")
		if strings.Contains(body, `"status": "expired"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("silence not expired by its button: %s", body)
			break
		}
	}
	waitFor(t, ctx, a.url+"/drills", `form[action="/ui/drills/run"]`, 5*time.Second)
	screenshot(t, ctx, "08-drills.png")

	// A drill, started and aborted at once, for a drill report to look at.
	st, body := c.do(t, "POST", "/api/v1/drills/run", `{"name": "invoice-qr-failover", "by": "ops"}`)
	if st != http.StatusAccepted && st != http.StatusOK {
		t.Fatalf("start drill: %d %s", st, body)
	}
	var started struct{ ID string }
	json.Unmarshal([]byte(body), &started)
	if st, body := c.do(t, "POST", "/api/v1/drills/runs/"+started.ID+"/abort", `{"by": "ops"}`); st/100 != 2 {
		t.Fatalf("abort drill: %d %s", st, body)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		_, body := c.do(t, "GET", "/api/v1/drills/runs/"+started.ID, "")
		if !strings.Contains(body, `"state": "running"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("drill still running after its abort: %s", body)
		}
	}

	// Every page on a phone, in English and Chinese: nothing wider than
	// the screen (no sideways scrolling) and no button or badge broken
	// over lines. Screenshots of each.
	phonePages := []struct{ name, path string }{
		{"overview", "/"}, {"check", "/checks/invoice_qr"}, {"logscan", "/checks/invoice-log"}, {"alerts", "/alerts"},
		{"runbooks", "/runbooks"}, {"run", "/runbooks/runs/" + run.ID}, {"drills", "/drills"}, {"drill", "/drills/runs/" + started.ID},
		{"incidents", "/incidents"}, {"incident", fmt.Sprintf("/incidents/%d", incidentID)}, {"status", "/status"},
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile)); err != nil {
		t.Fatal(err)
	}
	for _, lang := range []string{"en", "zh"} {
		for i, pg := range phonePages {
			sep := "?"
			if strings.Contains(pg.path, "?") {
				sep = "&"
			}
			if err := chromedp.Do(ctx, chromedp.Navigate(a.url+pg.path+sep+"lang="+lang), chromedp.WaitVisible("footer")); err != nil {
				t.Fatal(err)
			}
			width, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
			if err != nil {
				t.Fatal(err)
			}
			if width > 390 {
				wide, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("body *")).filter(e => !e.closest(".scroll") && e.getBoundingClientRect().right > 391).slice(0, 8).map(e => e.tagName + "." + e.className + " " + Math.round(e.getBoundingClientRect().right) + "px")`))
				t.Errorf("%s %s is %d px wide on a 390 px screen: %v", lang, pg.path, width, wide)
			}
			broken, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("button, a.button, .badge")).filter(b => {
				const r = b.getBoundingClientRect(), cs = getComputedStyle(b);
				if (!r.height) return false;
				const inner = r.height - parseFloat(cs.paddingTop) - parseFloat(cs.paddingBottom) - parseFloat(cs.borderTopWidth) - parseFloat(cs.borderBottomWidth);
				const line = parseFloat(cs.lineHeight) || parseFloat(cs.fontSize) * 1.45;
				return inner > line * 1.5;
			}).map(b => b.textContent.trim())`))
			if err != nil {
				t.Fatal(err)
			}
			if len(broken) > 0 {
				t.Errorf("%s %s: buttons or badges broken over lines: %q", lang, pg.path, broken)
			}
			if lang == "zh" && pg.name == "overview" {
				if nav, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`header nav a[href="/"]`))); nav != "总览" {
					t.Errorf("Chinese nav: %q", nav)
				}
			}
			screenshot(t, ctx, fmt.Sprintf("phone-%s-%02d-%s.png", lang, i+1, pg.name))
		}
	}
}

// TestStatusPageAuthInBrowser: without credentials the browser gets the
// basic-auth challenge, and with --web.public-read it sees the page but a
// button needs a user.
func TestStatusPageAuthInBrowser(t *testing.T) {
	t.Parallel()
	chromium(t)
	a, _, _ := demoAgent(t, "--web.public-read")
	ctx := browser(t, network.Headers{"Accept-Language": "en"})
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(a.url+"/checks/invoice_qr"))
	if err != nil {
		t.Fatal(err)
	}
	login, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#login").length`))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 200 || login != 1 {
		t.Errorf("public read: status %d, sign-in link %d", resp.Status, login)
	}
	screenshot(t, ctx, "10-public-read-anonymous.png")
	// The run-now button without a user: the agent answers the form post
	// with a basic-auth challenge and runs nothing.
	responses := chromedp.Events(ctx, network.ResponseReceived)
	got := make(chan int64, 1)
	go func() {
		for ev, err := range responses {
			if err != nil {
				return
			}
			if ev.Type == network.ResourceTypeDocument && strings.Contains(ev.Response.URL, "/ui/checks/invoice_qr/run") {
				got <- ev.Response.Status
				return
			}
		}
	}()
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("run-now"))); err != nil {
		t.Fatal(err)
	}
	select {
	case st := <-got:
		if st != http.StatusUnauthorized {
			t.Errorf("anonymous form post: %d, want 401", st)
		}
	case <-time.After(15 * time.Second):
		t.Error("no response to the anonymous form post")
	}
}

// TestStateChangesFromAnotherHost runs the agent on every interface and
// calls it through this host's non-loopback address: without users a state
// change is refused there and accepted on loopback; with users the right
// password is accepted from anywhere.
func TestStateChangesFromAnotherHost(t *testing.T) {
	t.Parallel()
	ip := nonLoopbackIP(t)
	dir := t.TempDir()
	port := strings.TrimPrefix(freePort(t), "127.0.0.1:")
	startAgent(t, "--web.listen-address", ":"+port, "--storage.path", filepath.Join(dir, "vigil.db"))
	remote := "http://" + net.JoinHostPort(ip, port)
	if st, body := httpDo(t, "POST", remote+"/-/reload", ""); st != http.StatusForbidden || !strings.Contains(body, "only accepted from localhost") {
		t.Errorf("reload from %s without users: %d %s", ip, st, body)
	}
	if st, _ := httpDo(t, "GET", remote+"/api/v1/checks", ""); st != 200 {
		t.Errorf("read from %s without users: %d", ip, st)
	}
	if st, body := httpDo(t, "POST", "http://127.0.0.1:"+port+"/-/reload", ""); st != 200 {
		t.Errorf("reload from loopback: %d %s", st, body)
	}
}

func nonLoopbackIP(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, ad := range addrs {
			if n, ok := ad.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
				return n.IP.String()
			}
		}
	}
	testenv.Missing(t, "a non-loopback IPv4 address", "none on this host")
	return ""
}
