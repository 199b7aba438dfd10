package cli_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// TestSLOPageInBrowser opens an SLO's page from the overview in headless
// Chromium against the demo: its attainment and budget are the API's, it
// shows the burn-down, the burn rates of both window pairs and the state
// of the burn-rate alert, and fits a 390 px phone in English and Chinese.
// Screenshots go to bin/test-artifacts/ui.
func TestSLOPageInBrowser(t *testing.T) {
	t.Parallel()
	chromium(t)
	a, c, _ := demoAgent(t)
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("ops:vigil-ui-pass"))
	ctx := browser(t, network.Headers{"Authorization": auth, "Accept-Language": "en-US,en;q=0.9"})

	// The overview links the SLO to its page.
	waitFor(t, ctx, a.url+"/", `tr.slo[data-slo="invoice-generation"] a[href="/slos/invoice-generation"]`, 30*time.Second)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`tr.slo[data-slo="invoice-generation"] a`)), chromedp.WaitVisible(chromedp.ID("slo-facts"))); err != nil {
		t.Fatal(err)
	}
	if u, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.pathname`)); u != "/slos/invoice-generation" {
		t.Fatalf("the overview's SLO link goes to %s", u)
	}
	// The page's numbers are the API's (a run may land between the two
	// reads: compare a few times).
	matches := func() (string, bool) {
		if err := chromedp.Do(ctx, chromedp.Navigate(a.url+"/slos/invoice-generation"), chromedp.WaitVisible(chromedp.ID("slo-facts"))); err != nil {
			t.Fatal(err)
		}
		page, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[document.getElementById("slo-attainment").dataset.attainment, document.getElementById("slo-budget").dataset.budget, document.getElementById("slo-alert-state").dataset.state]`))
		if err != nil {
			t.Fatal(err)
		}
		_, body := c.do(t, "GET", "/api/v1/slos/invoice-generation", "")
		var d struct {
			Attainment      *float64 `json:"attainment"`
			BudgetRemaining *float64 `json:"budget_remaining"`
			Alert           struct{ State string }
		}
		if err := json.Unmarshal([]byte(body), &d); err != nil {
			t.Fatalf("/api/v1/slos/invoice-generation: %v %s", err, body)
		}
		f := func(p *float64) string {
			if p == nil {
				return ""
			}
			return strconv.FormatFloat(*p, 'g', -1, 64)
		}
		api := []string{f(d.Attainment), f(d.BudgetRemaining), d.Alert.State}
		return fmt.Sprintf("page %q, API %q", page, api), strings.Join(page, "|") == strings.Join(api, "|") && api[0] != ""
	}
	var last string
	ok := false
	for range 5 {
		if last, ok = matches(); ok {
			break
		}
		time.Sleep(time.Second)
	}
	if !ok {
		t.Errorf("SLO page and API disagree: %s", last)
	}
	rows, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("tr.burn-rate")).map(r => r.dataset.long + "/" + r.dataset.short)`))
	if strings.Join(rows, ",") != "1h/5m,6h/30m" {
		t.Errorf("burn-rate rows %v", rows)
	}
	if n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#slo-burn svg.burn.large polyline").length`)); n != 1 {
		t.Errorf("%d burn-down charts", n)
	}
	if st, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("slo-alert-state").dataset.state`)); st == "not_loaded" || st == "" {
		t.Errorf("burn-rate alert state %q: the agent loads the SLO's rules", st)
	}
	screenshot(t, ctx, "slo-desktop-en.png")

	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile)); err != nil {
		t.Fatal(err)
	}
	// The incident list's filter form too.
	for _, lang := range []string{"en", "zh"} {
		if err := chromedp.Do(ctx, chromedp.Navigate(a.url+"/incidents?state=open&lang="+lang), chromedp.WaitVisible("#incident-filters")); err != nil {
			t.Fatal(err)
		}
		if width, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); width > 390 {
			t.Errorf("%s /incidents?state=open is %d px wide on a 390 px screen", lang, width)
		}
		screenshot(t, ctx, "phone-"+lang+"-incidents-filtered.png")
	}
	for _, lang := range []string{"en", "zh"} {
		if err := chromedp.Do(ctx, chromedp.Navigate(a.url+"/slos/invoice-generation?lang="+lang), chromedp.WaitVisible("footer")); err != nil {
			t.Fatal(err)
		}
		width, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
		if err != nil {
			t.Fatal(err)
		}
		if width > 390 {
			wide, _ := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("body *")).filter(e => e.getBoundingClientRect().right > 391).slice(0, 8).map(e => e.tagName + "." + e.className + " " + Math.round(e.getBoundingClientRect().right) + "px")`))
			t.Errorf("%s /slos/invoice-generation is %d px wide on a 390 px screen: %v", lang, width, wide)
		}
		if lang == "zh" {
			if h, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#slo-rates h2`))); h != "消耗速率" {
				t.Errorf("Chinese burn-rate heading %q", h)
			}
		}
		screenshot(t, ctx, "phone-"+lang+"-slo.png")
	}
}
