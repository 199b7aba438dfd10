package alertmanager

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/internal/confkit"
)

func TestPushPayloadAndAuth(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	var body []byte
	var path, user, pass string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ = io.ReadAll(r.Body)
		path = r.URL.Path
		user, pass, _ = r.BasicAuth()
	}))
	defer srv.Close()
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("hunter2\n"), 0o600)
	n, err := New(Config{URL: srv.URL + "/am/", BasicAuth: &BasicAuth{Username: "vigil", PasswordFile: pwFile}}, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	m := &notify.Message{Created: t0.Add(time.Minute), Alerts: []notify.Alert{{
		Labels: map[string]string{"alertname": "DatabaseDown", "check": "pg"}, Annotations: map[string]string{"summary": "pg down"},
		StartsAt: t0, EndsAt: t0.Add(5 * time.Minute), GeneratorURL: "http://vigil:9877/api/v1/alerts?alertname=DatabaseDown",
	}}}
	if err := n.Notify(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	want := `[{"labels":{"alertname":"DatabaseDown","check":"pg"},"annotations":{"summary":"pg down"},"startsAt":"2026-11-23T08:00:00Z","endsAt":"2026-11-23T08:05:00Z","generatorURL":"http://vigil:9877/api/v1/alerts?alertname=DatabaseDown"}]`
	if string(body) != want || path != "/am/api/v2/alerts" || user != "vigil" || pass != "hunter2" {
		t.Errorf("got %s %s %s:%s", body, path, user, pass)
	}
	var parsed []PostableAlert
	if err := json.Unmarshal(body, &parsed); err != nil || len(parsed) != 1 {
		t.Errorf("not a v2 alert list: %v", err)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{URL: "alertmanager:9093"}, "url: must be an http(s) URL"},
		{Config{URL: "http://am:9093", BasicAuth: &BasicAuth{Username: "u"}}, "basic_auth.password: set exactly one"},
		{Config{URL: "http://am:9093", BasicAuth: &BasicAuth{Password: confkit.NewSecret("p")}}, "basic_auth.username: is required"},
		{Config{URL: "http://am:9093", BasicAuth: &BasicAuth{Username: "u", Password: confkit.NewSecret("p")}, BearerToken: confkit.NewSecret("t")}, "bearer_token: set at most one"},
		{Config{URL: "https://am.example:9093/prefix"}, ""},
	} {
		err := tc.cfg.Validate()
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

func TestErrorNamesPeerWithoutCredentials(t *testing.T) {
	n, _ := New(Config{URL: "http://vigil:s3cret@127.0.0.1:1"}, http.DefaultClient)
	err := n.Notify(context.Background(), &notify.Message{Alerts: []notify.Alert{{Labels: map[string]string{"a": "b"}}}})
	if err == nil || strings.Contains(err.Error(), "s3cret") || notify.IsPermanent(err) {
		t.Errorf("err %v", err)
	}
}
