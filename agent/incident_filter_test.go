package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/agent/store"
	"github.com/vigil-project/vigil/agent/web/api"
)

// TestIncidentFilters: /api/v1/incidents and /incidents filter by state,
// check, alert name and time range, a page at a time like /api/v1/checks.
func TestIncidentFilters(t *testing.T) {
	a := newTestAgent(t)
	ctx := context.Background()
	now := time.Now()
	day := 24 * time.Hour
	type inc struct {
		alert, check   string
		fired, resolve time.Duration // ago; resolve 0: open
	}
	incs := []inc{
		{"SyncFailing", "invoice_sync", 2 * time.Hour, 0},
		{"SyncFailing", "invoice_sync", 3 * day, 3*day - time.Hour},
		{"QRFailing", "invoice_qr", 1 * day, 1*day - 10*time.Minute},
		{"QRFailing", "invoice_qr", 20 * day, 20*day - time.Hour},
		{"HostCPUHigh", "host", 40 * day, 0}, // open since long ago
	}
	for i, in := range incs {
		fp := fmt.Sprintf("fp%d", i)
		at := now.Add(-in.fired)
		if _, err := a.store.OpenIncident(ctx, store.Incident{Fingerprint: fp, Alertname: in.alert, Check: in.check, StartedAt: at, FiringAt: at}); err != nil {
			t.Fatal(err)
		}
		if in.resolve > 0 {
			if err := a.store.ResolveIncident(ctx, fp, now.Add(-in.resolve), time.Time{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	h := a.web.Handler()
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		return rec.Code, rec.Body.String()
	}
	list := func(query string) (api.IncidentPage, []string) {
		t.Helper()
		code, body := get("/api/v1/incidents?" + query)
		if code != 200 {
			t.Fatalf("?%s: %d %s", query, code, body)
		}
		var p api.IncidentPage
		if err := json.Unmarshal([]byte(body), &p); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, in := range p.Incidents {
			state := "resolved"
			if in.Open {
				state = "open"
			}
			got = append(got, in.Alertname+"/"+state)
		}
		return p, got
	}
	date := func(ago time.Duration) string {
		return now.Add(-ago).In(a.state.Config().Global.Zone()).Format("2006-01-02")
	}
	tests := []struct {
		query string
		want  string
		total int
	}{
		{"", "SyncFailing/open QRFailing/resolved SyncFailing/resolved HostCPUHigh/open", 4}, // last 7 days and open
		{"state=open", "SyncFailing/open HostCPUHigh/open", 2},
		{"state=resolved&days=30", "QRFailing/resolved SyncFailing/resolved QRFailing/resolved", 3},
		{"check=invoice_qr&days=90", "QRFailing/resolved QRFailing/resolved", 2},
		{"alertname=SyncFailing", "SyncFailing/open SyncFailing/resolved", 2},
		{"from=" + url.QueryEscape(now.Add(-21*day).Format(time.RFC3339)) + "&to=" + url.QueryEscape(now.Add(-19*day).Format(time.RFC3339)), "QRFailing/resolved HostCPUHigh/open", 2},
		{"from=" + date(3*day) + "&to=" + date(3*day), "SyncFailing/resolved HostCPUHigh/open", 2},
		{"days=90&limit=2", "SyncFailing/open QRFailing/resolved", 5},
		{"days=90&limit=2&offset=4", "HostCPUHigh/open", 5},
	}
	for _, tt := range tests {
		p, got := list(tt.query)
		if strings.Join(got, " ") != tt.want || p.Total != tt.total {
			t.Errorf("?%s: %v (total %d), want %s (total %d)", tt.query, got, p.Total, tt.want, tt.total)
		}
	}
	if p, _ := list("days=90&limit=2"); p.NextOffset != 2 {
		t.Errorf("next_offset %d, want 2", p.NextOffset)
	}
	if p, _ := list("days=90&limit=2&offset=4"); p.NextOffset != 0 {
		t.Errorf("last page has next_offset %d", p.NextOffset)
	}
	for _, bad := range []string{"state=closed", "from=yesterday", "limit=0", "from=2024-02-02&to=2024-02-01"} {
		if code, _ := get("/api/v1/incidents?" + bad); code != 400 {
			t.Errorf("?%s: %d, want 400", bad, code)
		}
	}

	// The page: the same filters, a form holding them, pages linked.
	code, page := get("/incidents?check=invoice_qr&days=90")
	if code != 200 || strings.Count(page, `<tr class="incident"`) != 2 || !strings.Contains(page, `name="check" value="invoice_qr"`) ||
		!strings.Contains(page, `data-total="2"`) {
		t.Errorf("/incidents?check=invoice_qr: %d %s", code, page)
	}
	// The page shows 50 at a time; with a limit it links the next page
	// with the filter kept.
	code, page = get("/incidents?days=90&limit=2&state=")
	if code != 200 || !strings.Contains(page, `href="/incidents?days=90&amp;limit=2&amp;offset=2"`) || strings.Contains(page, `id="prev-page"`) {
		t.Errorf("/incidents page 1 links: %d", code)
	}
	code, page = get("/incidents?days=90&limit=2&offset=2")
	if code != 200 || !strings.Contains(page, `href="/incidents?days=90&amp;limit=2"`) || !strings.Contains(page, `id="next-page"`) {
		t.Errorf("/incidents page 2 links: %d", code)
	}
	if code, _ := get("/incidents?state=nope"); code != 400 {
		t.Errorf("/incidents?state=nope: %d", code)
	}
	if _, zh := get("/incidents?lang=zh"); !strings.Contains(zh, "筛选") {
		t.Error("/incidents in Chinese lacks the filter button")
	}
}
