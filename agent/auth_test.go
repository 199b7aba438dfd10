package agent

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	toolkit "github.com/prometheus/exporter-toolkit/web"
	"golang.org/x/crypto/bcrypt"
)

// newAuthAgent is newTestAgent with a web config file holding one user
// (ops / s3cret), or none when users is false.
func newAuthAgent(t *testing.T, users, publicRead bool) *Agent {
	t.Helper()
	path := ""
	if users {
		hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		path = filepath.Join(t.TempDir(), "web.yml")
		if err := os.WriteFile(path, []byte("basic_auth_users:\n  ops: "+string(hash)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return newTestAgentWith(t, func(o *Options) {
		o.Web = &toolkit.FlagConfig{WebConfigFile: &path}
		o.PublicRead = publicRead
	})
}

// requestFor builds a request for a route pattern with its wildcards
// filled in.
func requestFor(t *testing.T, pattern string) *http.Request {
	t.Helper()
	method, path, _ := strings.Cut(pattern, " ")
	path = strings.NewReplacer("{$}", "", "{name}", "host", "{id}", "no-such-id", "{action}", "approve").Replace(path)
	if strings.HasSuffix(path, "/") && path != "/" {
		path += "vigil.css"
	}
	var req *http.Request
	if strings.HasPrefix(path, "/ui/") {
		req = httptest.NewRequest(method, path, strings.NewReader(""))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req = httptest.NewRequest(method, path, nil)
	}
	return req
}

// TestAuthMatrix calls every route of the agent (the route table itself,
// so a new route cannot be missed) as each kind of client, under each auth
// setup, and checks the guard's verdict.
func TestAuthMatrix(t *testing.T) {
	// host is the Host header (with the Origin and Sec-Fetch-Site a
	// browser would send for it on a same-origin request); "" is
	// httptest's example.com, which newTestAgent allows.
	type client struct {
		name       string
		remote     string
		user, pass string
		host       string
	}
	// The rebinding clients are a page in the operator's browser whose
	// name now resolves to 127.0.0.1: loopback, same-origin by the
	// browser's account, the attacker's name as Host.
	const rebind = "rebind.example:9877"
	clients := []client{
		{"loopback, no credentials", "127.0.0.1:40000", "", "", ""},
		{"non-loopback, no credentials", "192.0.2.10:40000", "", "", ""},
		{"wrong password", "127.0.0.1:40000", "ops", "wrong", ""},
		{"unknown user", "127.0.0.1:40000", "root", "s3cret", ""},
		{"right password, non-loopback", "192.0.2.10:40000", "ops", "s3cret", ""},
		{"loopback as localhost", "127.0.0.1:40000", "", "", "localhost:9877"},
		{"loopback by IP", "127.0.0.1:40000", "", "", "127.0.0.1:9877"},
		{"loopback, IPv6", "[::1]:40000", "", "", "[::1]:9877"},
		{"DNS rebinding, loopback", "127.0.0.1:40000", "", "", rebind},
		{"DNS rebinding, right password", "127.0.0.1:40000", "ops", "s3cret", rebind},
		{"unknown name, upper case", "192.0.2.10:40000", "ops", "s3cret", "EVIL.example"},
	}
	setups := []struct {
		name              string
		users, publicRead bool
	}{
		{"no auth configured", false, false},
		{"basic auth", true, false},
		{"basic auth, public read", true, true},
	}
	// want says whether the guard lets the call through, or which status it
	// answers instead.
	want := func(users, publicRead bool, c client, level string) int {
		authed := c.user == "ops" && c.pass == "s3cret"
		sent := c.user != ""
		switch {
		case level == "open":
			return 0
		case c.host == rebind || strings.Contains(c.host, "example"):
			return http.StatusMisdirectedRequest
		case !users:
			// Credentials are ignored when no users are configured.
			if level == "write" && !strings.HasPrefix(c.remote, "127.") && !strings.HasPrefix(c.remote, "[::1]") {
				return http.StatusForbidden
			}
			return 0
		case sent && !authed:
			return http.StatusUnauthorized
		case level == "read" && (authed || publicRead):
			return 0
		case level == "write" && authed:
			return 0
		}
		return http.StatusUnauthorized
	}
	for _, s := range setups {
		t.Run(s.name, func(t *testing.T) {
			a := newAuthAgent(t, s.users, s.publicRead)
			routes := a.web.Routes()
			h := a.web.Handler()
			if len(routes) < 40 {
				t.Fatalf("route table has %d routes; the matrix would miss some", len(routes))
			}
			for _, r := range routes {
				// Classification, independently of the table: anything but
				// GET changes state, except Prometheus' read API over POST.
				readPost := strings.HasPrefix(r.Pattern, "POST /api/v1/query") || r.Pattern == "POST /api/v1/series" || r.Pattern == "POST /api/v1/labels"
				if method, _, _ := strings.Cut(r.Pattern, " "); method != "GET" && !readPost && r.Access != "write" {
					t.Errorf("%s is %s; a state-changing route must be write", r.Pattern, r.Access)
				}
				for _, c := range clients {
					req := requestFor(t, r.Pattern)
					req.RemoteAddr = c.remote
					if c.host != "" {
						req.Host = c.host
						req.Header.Set("Origin", "http://"+c.host)
						req.Header.Set("Sec-Fetch-Site", "same-origin")
					}
					if c.user != "" {
						req.SetBasicAuth(c.user, c.pass)
					}
					if strings.HasPrefix(req.URL.Path, "/ui/") {
						user := ""
						if c.user == "ops" && c.pass == "s3cret" && s.users {
							user = "ops"
						}
						req.Body = http.NoBody
						req = withForm(req, url.Values{"csrf": {a.web.FormToken(user)}})
					}
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, req)
					expect := want(s.users, s.publicRead, c, r.Access)
					got := rec.Code
					blocked := got == http.StatusUnauthorized || got == http.StatusMisdirectedRequest ||
						(got == http.StatusForbidden && strings.Contains(rec.Body.String(), "only accepted from localhost"))
					switch {
					case expect == 0 && blocked:
						t.Errorf("%s [%s] as %s: %d %s, want it let through", r.Pattern, r.Access, c.name, got, firstLine(rec.Body.String()))
					case expect != 0 && got != expect:
						t.Errorf("%s [%s] as %s: %d, want %d", r.Pattern, r.Access, c.name, got, expect)
					case expect == http.StatusUnauthorized && !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Basic"):
						t.Errorf("%s as %s: 401 without a Basic challenge", r.Pattern, c.name)
					}
				}
			}
		})
	}
}

func withForm(req *http.Request, form url.Values) *http.Request {
	r := req.Clone(context.Background())
	r.Body = http.NoBody
	body := form.Encode()
	r.Body = readCloser{strings.NewReader(body)}
	r.ContentLength = int64(len(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

type readCloser struct{ *strings.Reader }

func (readCloser) Close() error { return nil }

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// TestFormProtection: a form post needs the page's token for the same user,
// and no browser may post from another site, password or not.
func TestFormProtection(t *testing.T) {
	a := newAuthAgent(t, true, true)
	h := a.web.Handler()
	post := func(token string, header map[string]string) int {
		req := withForm(httptest.NewRequest("POST", "/ui/checks/host/run", nil), url.Values{"csrf": {token}})
		req.RemoteAddr = "192.0.2.10:40000"
		req.SetBasicAuth("ops", "s3cret")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code
	}
	tests := []struct {
		name   string
		token  string
		header map[string]string
		want   int
	}{
		{"token of the user", a.web.FormToken("ops"), nil, http.StatusSeeOther},
		{"same-origin browser", a.web.FormToken("ops"), map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusSeeOther},
		{"no token", "", nil, http.StatusForbidden},
		{"anonymous viewer's token", a.web.FormToken(""), nil, http.StatusForbidden},
		{"forged token", "AAAA", nil, http.StatusForbidden},
		{"cross-site browser", a.web.FormToken("ops"), map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"foreign origin", a.web.FormToken("ops"), map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := post(tt.token, tt.header); got != tt.want {
				t.Errorf("%d, want %d", got, tt.want)
			}
		})
	}
	// The API is protected the same way against cross-site posts.
	req := httptest.NewRequest("POST", "/-/reload", nil)
	req.SetBasicAuth("ops", "s3cret")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Errorf("cross-site API post: %d, want 403", rec.Code)
	}
}

func TestSecurityHeaders(t *testing.T) {
	// Headers from the web config file are applied too, and win.
	path := filepath.Join(t.TempDir(), "web.yml")
	os.WriteFile(path, []byte("http_server_config:\n  headers:\n    Strict-Transport-Security: max-age=31536000\n    X-Frame-Options: sameorigin\n"), 0o600)
	a := newTestAgentWith(t, func(o *Options) { o.Web = &toolkit.FlagConfig{WebConfigFile: &path} })
	h := a.web.Handler()
	for _, p := range []string{"/", "/metrics", "/api/v1/checks", "/nope", "/static/vigil.js"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", p, nil))
		hd := rec.Header()
		for k, v := range map[string]string{
			"X-Content-Type-Options":    "nosniff",
			"X-Frame-Options":           "sameorigin",
			"Referrer-Policy":           "same-origin",
			"Strict-Transport-Security": "max-age=31536000",
		} {
			if hd.Get(k) != v {
				t.Errorf("%s: %s = %q, want %q", p, k, hd.Get(k), v)
			}
		}
		if csp := hd.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP %q", p, csp)
		}
	}
}
