package cli_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// TestNotifyTest sends test pages through a running agent: a receiver
// whose webhook answers gets it, labelled as a test, and the command exits
// 0; one integration that refuses it makes the command report it failed
// with the answer and exit 1; an unknown receiver is an error.
func TestNotifyTest(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var bodies []string
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
	}))
	defer ok.Close()
	refuse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "unknown hook", http.StatusBadRequest)
	}))
	defer refuse.Close()
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "vigil.yml", fmt.Sprintf(`
global: {interval: 1h}
checks: [{name: host, type: host}]
notify:
  route: {receiver: oncall}
  receivers:
    - name: oncall
      webhook_configs: [{url: %q}]
    - name: mixed
      webhook_configs: [{url: %q}, {url: %q}]
`, ok.URL, ok.URL, refuse.URL))
	a := startAgent(t, "--config.file", cfg, "--storage.path", dir+"/vigil.db")

	out, errOut, code := run(t, "notify", "test", "oncall", "--agent.url", a.url, "--by", "li.wei")
	if code != 0 || !strings.Contains(out, "oncall/webhook[0]") || !strings.Contains(out, "delivered") {
		t.Errorf("notify test oncall: exit %d, stdout:\n%s\nstderr: %s", code, out, errOut)
	}
	mu.Lock()
	if len(bodies) != 1 || !strings.Contains(bodies[0], `"alertname":"VigilTestNotification"`) || !strings.Contains(bodies[0], `"test":"true"`) ||
		!strings.Contains(bodies[0], "li.wei") {
		t.Errorf("the webhook got %q", bodies)
	}
	mu.Unlock()

	out, _, code = run(t, "notify", "test", "mixed", "--agent.url", a.url, "--wait", "10s")
	t.Logf("vigil notify test mixed:\n%s", out)
	if code != 1 || !strings.Contains(out, "mixed/webhook[1]") || !strings.Contains(out, "failed") || !strings.Contains(out, "400") {
		t.Errorf("notify test mixed: exit %d, stdout:\n%s", code, out)
	}

	if _, errOut, code := run(t, "notify", "test", "nobody", "--agent.url", a.url); code != 1 || !strings.Contains(errOut, "nobody") {
		t.Errorf("unknown receiver: exit %d, stderr %q", code, errOut)
	}
}
