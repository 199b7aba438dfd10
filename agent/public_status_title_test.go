package agent

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
)

// TestPublicStatusTitle: public_status sets the public page's title and
// description per language, defaults to "Service status" without them,
// and adds nothing else to the page or its JSON.
func TestPublicStatusTitle(t *testing.T) {
	a := newTestAgent(t)
	checks := `checks:
  - name: tax-gw-internal
    type: tcp
    tcp: {address: "127.0.0.1:1"}
`
	h := a.web.Handler()
	get := func(path, lang string) string {
		t.Helper()
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("Accept-Language", lang)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Fatalf("%s: %d", path, rec.Code)
		}
		return rec.Body.String()
	}
	load := func(cfg string) {
		t.Helper()
		writeFile(t, a.state.Config().File, cfg)
		if err := a.Reload(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, err := a.sched.RunNow(context.Background(), "tax-gw-internal"); err != nil {
			t.Fatal(err)
		}
	}
	keys := func(body string) []string {
		var m map[string]any
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatal(err)
		}
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		return ks
	}
	leaks := []string{"tax-gw-internal", "127.0.0.1", "connection_refused", "refused", "vigil.yml", "public_status"}

	// Without public_status: today's page.
	load(checks)
	for lang, title := range map[string]string{"en": "Service status", "zh-CN": "服务状态"} {
		page := get("/status", lang)
		if !strings.Contains(page, `<span id="public-title">`+title+`</span>`) || !strings.Contains(page, "<title>"+title+" · vigil</title>") ||
			strings.Contains(page, "public-description") {
			t.Errorf("default %s title: %s", lang, page)
		}
	}
	before := keys(get("/api/v1/status", ""))

	load(`public_status:
  title: Invoice platform status
  title_zh: 开票平台服务状态
  description: "Issuing e-invoices and delivering them to the tax platform. Questions: ops@example.com"
` + checks)
	en, zh := get("/status", "en"), get("/status", "zh-CN")
	for _, want := range []string{`<span id="public-title">Invoice platform status</span>`, "<title>Invoice platform status · vigil</title>", "Questions: ops@example.com"} {
		if !strings.Contains(en, want) {
			t.Errorf("English page lacks %q", want)
		}
	}
	// Chinese title, the English description where no Chinese one is set.
	if !strings.Contains(zh, `<span id="public-title">开票平台服务状态</span>`) || !strings.Contains(zh, "Questions: ops@example.com") {
		t.Errorf("Chinese page: %s", zh)
	}
	js := get("/api/v1/status", "")
	if !strings.Contains(js, `"title": "Invoice platform status"`) || !strings.Contains(js, `"description": "Issuing e-invoices`) {
		t.Errorf("/api/v1/status: %s", js)
	}
	after := keys(js)
	want := append(append([]string{}, before...), "description", "title")
	sort.Strings(want)
	if strings.Join(after, ",") != strings.Join(want, ",") {
		t.Errorf("/api/v1/status fields %v, want %v: only the title and description are added", after, want)
	}
	for _, body := range []string{en, zh, js} {
		for _, leak := range leaks {
			if strings.Contains(body, leak) {
				t.Errorf("public status reveals %q", leak)
			}
		}
	}
}
