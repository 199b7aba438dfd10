package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	toolkit "github.com/prometheus/exporter-toolkit/web"
	"golang.org/x/crypto/bcrypt"

	"github.com/vigil-project/vigil/agent/metrics"
)

// TestWebConfigErrors: a bad web config file is refused at start with the
// file named, and a file broken while running keeps the last good one.
func TestWebConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"unknown key":     "basic_auth_user:\n  ops: x\n",
		"not bcrypt":      "basic_auth_users:\n  ops: plaintext\n",
		"missing cert":    "tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n",
		"not yaml at all": "basic_auth_users: [\n",
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".yml")
		os.WriteFile(p, []byte(body), 0o600)
		_, err := loadWebConfig(p, nil)
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %v, want an error naming %s", name, err, p)
		}
	}
	path := filepath.Join(dir, "web.yml")
	ops, _ := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	os.WriteFile(path, []byte("basic_auth_users:\n  ops: "+string(ops)+"\n"), 0o600)
	// Only the reload route is called: no subsystem but Reload is needed.
	srv, err := New(Options{Flags: &toolkit.FlagConfig{WebConfigFile: &path}, Metrics: metrics.New(),
		AllowedHosts: []string{"example.com"}, Reload: func(context.Context) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("basic_auth_users: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv.web.checked = time.Time{} // look at the file now, not within the second
	c, _ := srv.web.current()
	if len(c.Users) != 1 {
		t.Fatalf("broken web config replaced the running one: %d users", len(c.Users))
	}
	// A valid edit takes effect without a restart: a second user.
	hash, _ := bcrypt.GenerateFromPassword([]byte("second"), bcrypt.MinCost)
	other, _ := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	os.WriteFile(path, []byte("basic_auth_users:\n  ops: "+string(other)+"\n  li.wei: "+string(hash)+"\n"), 0o600)
	srv.web.checked = time.Time{}
	req := httptest.NewRequest("POST", "/-/reload", nil)
	req.SetBasicAuth("li.wei", "second")
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Errorf("new user after editing the web config: %d %s", rec.Code, rec.Body)
	}
}
