package network

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/vigil-project/vigil/agent/scheduler"
	"github.com/vigil-project/vigil/internal/confkit"
	"github.com/vigil-project/vigil/probes"
	"github.com/vigil-project/vigil/probes/internal/tlsconfig"
)

var discard = slog.New(slog.DiscardHandler)

func newHTTPProber(t *testing.T, mutate func(*HTTPConfig)) *HTTP {
	t.Helper()
	cfg := defaultHTTPConfig()
	mutate(cfg)
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	p, err := newHTTP(cfg, probes.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p.(*HTTP)
}

func probeHTTP(t *testing.T, mutate func(*HTTPConfig)) probes.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return newHTTPProber(t, mutate).Probe(ctx, discard)
}

func valueOf(r probes.Result, name string) (float64, bool) {
	for _, v := range r.Values {
		if v.Name == name {
			return v.Value, true
		}
	}
	return 0, false
}

func phase(r probes.Result, name string) (time.Duration, bool) {
	for _, p := range r.Phases {
		if p.Name == name {
			return p.Duration, true
		}
	}
	return 0, false
}

func TestHTTPResponses(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":"ok","upstream":{"reachable":true,"lag":3},"items":[{"no":"24312000000136634917"}]}`)
	})
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) { w.Write(make([]byte, 4096)) })
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/redirect2", http.StatusFound) })
	mux.HandleFunc("/redirect2", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s token=%s", r.Method, r.Host, r.Header.Get("X-Token"))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	eq := func(s string) *string { return &s }
	tests := []struct {
		name    string
		mutate  func(*HTTPConfig)
		reason  probes.Reason
		message string
	}{
		{"ok with body and JSON expectations", func(c *HTTPConfig) {
			c.URL = srv.URL + "/ok"
			c.BodyMustMatch = []string{`"status":"ok"`}
			c.BodyMustNotMatch = []string{`error`}
			c.JSON = []JSONExpect{
				{Path: "$.status", Equals: eq("ok")},
				{Path: "$.upstream.reachable", Equals: eq("true")},
				{Path: "$.upstream.lag", Matches: `^[0-9]$`},
				{Path: "$.items[0].no"},
			}
		}, probes.ReasonNone, ""},
		{"status mismatch", func(c *HTTPConfig) { c.URL = srv.URL + "/fail" }, probes.ReasonStatusMismatch, "status 503, want 2xx"},
		{"status in a configured range", func(c *HTTPConfig) { c.URL = srv.URL + "/fail"; c.ValidStatusCodes = []string{"200", "500-503"} }, probes.ReasonNone, ""},
		{"body must match", func(c *HTTPConfig) { c.URL = srv.URL + "/ok"; c.BodyMustMatch = []string{`"status":"degraded"`} },
			probes.ReasonBodyMismatch, `body does not match "\"status\":\"degraded\""`},
		{"body must not match", func(c *HTTPConfig) { c.URL = srv.URL + "/ok"; c.BodyMustNotMatch = []string{`reachable`} },
			probes.ReasonBodyMismatch, `body matches "reachable"`},
		{"JSON value differs", func(c *HTTPConfig) {
			c.URL = srv.URL + "/ok"
			c.JSON = []JSONExpect{{Path: "$.upstream.lag", Equals: eq("0")}}
		},
			probes.ReasonBodyMismatch, "JSON $.upstream.lag is 3, want 0"},
		{"JSON path missing", func(c *HTTPConfig) { c.URL = srv.URL + "/ok"; c.JSON = []JSONExpect{{Path: "$.missing"}} },
			probes.ReasonBodyMismatch, "JSON $.missing not found"},
		{"JSON expected, HTML served", func(c *HTTPConfig) {
			c.URL = srv.URL + "/fail"
			c.ValidStatusCodes = []string{"5xx"}
			c.JSON = []JSONExpect{{Path: "$.a"}}
		},
			probes.ReasonBodyMismatch, "body is not JSON"},
		{"response too large", func(c *HTTPConfig) { c.URL = srv.URL + "/big"; c.MaxBodyBytes = 1000 },
			probes.ReasonResponseTooLarge, "response body larger than max_body_bytes (1000)"},
		{"redirects followed", func(c *HTTPConfig) { c.URL = srv.URL + "/redirect"; c.BodyMustMatch = []string{"ok"} }, probes.ReasonNone, ""},
		{"redirects not followed", func(c *HTTPConfig) { c.URL = srv.URL + "/redirect"; c.FollowRedirects = false },
			probes.ReasonStatusMismatch, "status 302, want 2xx"},
		{"too many redirects", func(c *HTTPConfig) { c.URL = srv.URL + "/redirect"; c.MaxRedirects = 1 },
			probes.ReasonError, "stopped after 1 redirects"},
		{"method, host header and headers sent", func(c *HTTPConfig) {
			c.URL, c.Method = srv.URL+"/echo", "POST"
			c.Headers = map[string]string{"Host": "tax.example", "X-Token": "abc"}
			c.BodyMustMatch = []string{`^POST tax.example token=abc$`}
		}, probes.ReasonNone, ""},
		{"HTTP/2 required from an HTTP/1.1 server", func(c *HTTPConfig) { c.URL = srv.URL + "/ok"; c.HTTPVersion = "2" },
			probes.ReasonStatusMismatch, "server answered HTTP/1.1, want HTTP/2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := probeHTTP(t, tt.mutate)
			if r.Success != (tt.reason == probes.ReasonNone) || r.Reason != tt.reason || !strings.Contains(r.Message, tt.message) {
				t.Fatalf("got success=%v reason=%q message=%q; want reason=%q message containing %q", r.Success, r.Reason, r.Message, tt.reason, tt.message)
			}
			if _, ok := phase(r, "connect"); !ok {
				t.Errorf("no connect phase: %+v", r.Phases)
			}
		})
	}

	r := probeHTTP(t, func(c *HTTPConfig) { c.URL = srv.URL + "/redirect" })
	if v, _ := valueOf(r, "vigil_http_redirects"); v != 2 {
		t.Errorf("redirects = %v, want 2", v)
	}
	if v, _ := valueOf(r, "vigil_http_status_code"); v != 200 {
		t.Errorf("status = %v", v)
	}
	if _, ok := phase(r, "transfer"); !ok {
		t.Errorf("no transfer phase: %+v", r.Phases)
	}
}

func TestHTTPConnectionErrors(t *testing.T) {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := l.Addr().String()
	l.Close()

	r := probeHTTP(t, func(c *HTTPConfig) { c.URL = "http://" + closed + "/" })
	if r.Reason != probes.ReasonConnectionRefused {
		t.Errorf("closed port: reason %q (%s)", r.Reason, r.Message)
	}
	if strings.Contains(r.Message, `Get "`) {
		t.Errorf("message repeats net/http's URL prefix: %s", r.Message)
	}
}

func TestHTTPTLS(t *testing.T) {
	pki := newPKI(t)
	now := time.Now()
	valid, _, _ := pki.issue(t, "valid", now.Add(-time.Hour), now.Add(90*24*time.Hour), false, "127.0.0.1")
	expiring, _, _ := pki.issue(t, "expiring", now.Add(-time.Hour), now.Add(5*24*time.Hour), false, "127.0.0.1")
	expired, _, _ := pki.issue(t, "expired", now.Add(-48*time.Hour), now.Add(-24*time.Hour), false, "127.0.0.1")
	wrongHost, _, _ := pki.issue(t, "wronghost", now.Add(-time.Hour), now.Add(90*24*time.Hour), false, "tax.example")
	_, clientCert, clientKey := pki.issue(t, "client", now.Add(-time.Hour), now.Add(90*24*time.Hour), true)

	serve := func(cert tls.Certificate, requireClient bool) string {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake failures are the point
		if requireClient {
			srv.TLS.ClientAuth = tls.RequireAndVerifyClientCert
			srv.TLS.ClientCAs = pki.pool()
		}
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return srv.URL
	}
	validURL := serve(valid, false)
	mtlsURL := serve(valid, true)
	tests := []struct {
		name    string
		url     string
		mutate  func(*HTTPConfig)
		reason  probes.Reason
		message string
	}{
		{"valid certificate, custom CA", validURL, nil, probes.ReasonNone, ""},
		{"unknown CA", validURL, func(c *HTTPConfig) { c.TLS.CAFile = "" }, probes.ReasonTLSError, "certificate signed by unknown authority"},
		{"insecure skip verify", validURL, func(c *HTTPConfig) { c.TLS = &tlsconfig.Config{InsecureSkipVerify: true} }, probes.ReasonNone, ""},
		{"expiring within cert_expiry_min", serve(expiring, false), func(c *HTTPConfig) { c.CertExpiryMin = model.Duration(14 * 24 * time.Hour) },
			probes.ReasonCertExpiring, `certificate "expiring" expires`},
		{"expiring but no threshold", serve(expiring, false), nil, probes.ReasonNone, ""},
		{"expired", serve(expired, false), nil, probes.ReasonTLSError, "certificate has expired"},
		{"wrong host", serve(wrongHost, false), nil, probes.ReasonTLSError, "doesn't contain any IP SANs"},
		{"wrong host accepted by server_name", serve(wrongHost, false), func(c *HTTPConfig) { c.TLS.ServerName = "tax.example" }, probes.ReasonNone, ""},
		{"client certificate required, none sent", mtlsURL, nil, probes.ReasonTLSError, "certificate required"},
		{"client certificate sent", mtlsURL, func(c *HTTPConfig) { c.TLS.CertFile, c.TLS.KeyFile = clientCert, clientKey }, probes.ReasonNone, ""},
		{"TLS 1.3 minimum accepted", validURL, func(c *HTTPConfig) { c.TLS.MinVersion = "TLS13" }, probes.ReasonNone, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := probeHTTP(t, func(c *HTTPConfig) {
				c.URL = tt.url
				c.TLS = &tlsconfig.Config{CAFile: pki.CAFile}
				if tt.mutate != nil {
					tt.mutate(c)
				}
			})
			if r.Success != (tt.reason == probes.ReasonNone) || r.Reason != tt.reason || !strings.Contains(r.Message, tt.message) {
				t.Fatalf("got success=%v reason=%q message=%q; want reason=%q containing %q", r.Success, r.Reason, r.Message, tt.reason, tt.message)
			}
			if r.Success {
				exp, ok := valueOf(r, "vigil_tls_cert_expiry_timestamp_seconds")
				if !ok || exp < float64(time.Now().Unix()) {
					t.Errorf("cert expiry value %v, %v", exp, ok)
				}
				if _, ok := phase(r, "tls"); !ok {
					t.Errorf("no tls phase")
				}
			}
		})
	}
}

// TestSlowServersDoNotDelayOthers runs a slow server, a server that
// accepts and never answers, and a fast one through the real scheduler.
func TestSlowServersDoNotDelayOthers(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(10 * time.Second):
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	hang, _ := net.Listen("tcp", "127.0.0.1:0")
	defer hang.Close()
	go func() {
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			defer c.Close() // hold it open, say nothing
		}
	}()
	fast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	defer fast.Close()

	job := func(name, url string, timeout time.Duration) scheduler.Job {
		return scheduler.Job{Name: name, Timeout: timeout, Prober: newHTTPProber(t, func(c *HTTPConfig) {
			c.URL, c.TracerouteOnFailure = url, false
		})}
	}
	s := scheduler.New(scheduler.Options{MaxConcurrency: 3})
	begin := time.Now()
	res := s.RunOnce(context.Background(), []scheduler.Job{
		job("slow", slow.URL, 300*time.Millisecond),
		job("hang", "http://"+hang.Addr().String()+"/", 300*time.Millisecond),
		job("fast", fast.URL, 300*time.Millisecond),
	})
	took := time.Since(begin)
	for i, name := range []string{"slow", "hang"} {
		if res[i].Reason != probes.ReasonTimeout {
			t.Errorf("%s: reason %q (%s), want timeout", name, res[i].Reason, res[i].Message)
		}
	}
	if !res[2].Success || res[2].Duration > 250*time.Millisecond {
		t.Errorf("fast check: success=%v after %s", res[2].Success, res[2].Duration)
	}
	if took > 3*time.Second {
		t.Errorf("the cycle took %s with 300ms timeouts", took)
	}
}

func TestHTTPValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*HTTPConfig)
		want   []string
	}{
		{"missing url", func(c *HTTPConfig) {}, []string{"url: required"}},
		{"bad scheme", func(c *HTTPConfig) { c.URL = "ftp://x" }, []string{`url: scheme must be http or https, got "ftp"`}},
		{"bad status codes and regex", func(c *HTTPConfig) {
			c.URL = "http://x"
			c.ValidStatusCodes = []string{"2xx", "600", "300-200"}
			c.BodyMustMatch = []string{"("}
		}, []string{
			`valid_status_codes.1: invalid status code "600" (use 200, 2xx or 200-299)`,
			`valid_status_codes.2: invalid status range "300-200"`,
			"body_must_match.0: invalid regular expression: error parsing regexp: missing closing ): `(`",
		}},
		{"bad JSONPath and version", func(c *HTTPConfig) {
			c.URL = "http://x"
			c.JSON = []JSONExpect{{Path: ""}}
			c.HTTPVersion = "3"
		}, []string{`http_version: must be 1.1 or 2, got "3"`, `json.0.path: invalid JSONPath "": <nil>`}},
		{"tls files", func(c *HTTPConfig) {
			c.URL = "https://x"
			c.TLS = &tlsconfig.Config{CAFile: "/nonexistent/ca.pem", CertFile: "/etc/hostname", MinVersion: "SSL3"}
		}, []string{
			"tls_config.ca_file: stat /nonexistent/ca.pem: no such file or directory",
			"tls_config.cert_file: cert_file and key_file must be set together",
			`tls_config.min_version: unknown TLS version "SSL3" (use TLS10, TLS11, TLS12 or TLS13)`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := defaultHTTPConfig()
			tt.mutate(c)
			var got []string
			for _, e := range confkit.FlattenErrors(c.Validate()) {
				got = append(got, e.Error())
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestHTTPProxy(t *testing.T) {
	var seen string
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A forward proxy receives the absolute URL.
		seen = r.URL.String()
		fmt.Fprint(w, "via proxy")
	}))
	defer proxy.Close()
	r := probeHTTP(t, func(c *HTTPConfig) {
		c.URL, c.ProxyURL = "http://tax.example.invalid/api/health", proxy.URL
		c.BodyMustMatch = []string{"^via proxy$"}
	})
	if !r.Success || seen != "http://tax.example.invalid/api/health" {
		t.Errorf("proxy: %q %s; proxy saw %q", r.Reason, r.Message, seen)
	}
}

func TestHTTPVersionValue(t *testing.T) {
	for _, tt := range []struct {
		major, minor int
		want         float64
	}{{1, 0, 1.0}, {1, 1, 1.1}, {2, 0, 2}, {3, 0, 3}} {
		if got := httpVersion(&http.Response{ProtoMajor: tt.major, ProtoMinor: tt.minor}); got != tt.want {
			t.Errorf("HTTP/%d.%d: vigil_http_version %v, want %v", tt.major, tt.minor, got, tt.want)
		}
	}
}
