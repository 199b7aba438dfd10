package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"strings"

	"golang.org/x/time/rate"

	"github.com/vigil-project/vigil/agent/client"
	"github.com/vigil-project/vigil/agent/web/httpx"
	"github.com/vigil-project/vigil/probes"
)

// access is what a route needs from its caller.
type access int

const (
	// accessOpen routes answer anyone: health and readiness for probes and
	// load balancers; they reveal nothing.
	accessOpen access = iota
	// accessRead routes show state. With basic_auth_users configured they
	// need a user unless --web.public-read is set.
	accessRead
	// accessWrite routes change state (run a check, reload, approve,
	// abort, silence, drill). With users configured they need one; without,
	// only loopback clients may call them.
	accessWrite
)

func (l access) String() string {
	return [...]string{"open", "read", "write"}[l]
}

// routeEntry is one entry of the agent's route table; the auth tests walk it.
type routeEntry struct {
	pattern string
	access  access
}

// router registers handlers with their access level.
type router struct {
	srv    *Server
	mux    *http.ServeMux
	routes []routeEntry
}

func (rt *router) handle(level access, pattern string, h http.Handler) {
	rt.routes = append(rt.routes, routeEntry{pattern, level})
	if level != accessOpen && pattern != "GET /metrics" {
		h = rt.srv.bounded(h)
	}
	rt.mux.Handle(pattern, rt.srv.guard(level, h))
}

// bounded lets at most --web.max-requests pages and API calls run at
// once; more are answered 503 with Retry-After at once, so a storm of
// browser tabs or scripts cannot starve the checks of CPU. /metrics and
// the health endpoints are not counted: a scrape is never refused for a
// browser's sake.
func (srv *Server) bounded(next http.Handler) http.Handler {
	if srv.busy == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case srv.busy <- struct{}{}:
			defer func() { <-srv.busy }()
			next.ServeHTTP(w, r)
		default:
			srv.refused(refusedBusy)
			w.Header().Set("Retry-After", "1")
			http.Error(w, fmt.Sprintf("busy: %d pages and API calls already running (--web.max-requests)", cap(srv.busy)), http.StatusServiceUnavailable)
		}
	})
}

func (rt *router) Open(pattern string, h http.HandlerFunc)  { rt.handle(accessOpen, pattern, h) }
func (rt *router) Read(pattern string, h http.HandlerFunc)  { rt.handle(accessRead, pattern, h) }
func (rt *router) Write(pattern string, h http.HandlerFunc) { rt.handle(accessWrite, pattern, h) }

// guard enforces a route's access level.
func (srv *Server) guard(level access, next http.Handler) http.Handler {
	if level == accessOpen {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := srv.web.current()
		users := len(c.Users) > 0
		user, res := srv.web.authenticate(c, r)
		switch {
		case res == authBad:
			// Wrong credentials are refused even where none are needed:
			// a client that thinks it is logged in should learn it is not.
			srv.refused(refusedUnauthorized)
			unauthorized(w)
			return
		case level == accessRead && users && !srv.opts.PublicRead && res != authOK:
			srv.refused(refusedUnauthorized)
			unauthorized(w)
			return
		case level == accessWrite && users && res != authOK:
			srv.refused(refusedUnauthorized)
			unauthorized(w)
			return
		case level == accessWrite && !users && !isLoopback(r):
			srv.refused(refusedNotLoopback)
			httpx.WriteJSON(w, http.StatusForbidden, client.Error{Error: "state-changing calls are only accepted from localhost unless " +
				"basic_auth_users are set in the web config file (--web.config.file)"})
			return
		}
		if user != "" {
			r = r.WithContext(httpx.WithUser(r.Context(), user))
		}
		next.ServeHTTP(w, r)
	})
}

func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Basic realm="vigil", charset="UTF-8"`)
	httpx.WriteError(w, http.StatusUnauthorized, http.StatusText(http.StatusUnauthorized))
}

// hostOnly is a Host header without its port.
func hostOnly(hostHeader string) string {
	if h, _, err := net.SplitHostPort(hostHeader); err == nil {
		return h
	}
	return hostHeader
}

// isLoopback is true for a client on this host. Proxy headers are not
// trusted: behind a local reverse proxy every client looks local, so such
// setups must configure users.
func isLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	ip := net.ParseIP(host)
	return err == nil && ip != nil && ip.IsLoopback()
}

// contentSecurityPolicy allows the page's own scripts, styles and images
// only: no inline script, no CDN, no framing.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Why a request was refused: the reason label of
// vigil_http_requests_refused_total.
const (
	refusedHost         = "host"         // Host header names no known host (DNS rebinding)
	refusedCrossOrigin  = "cross_origin" // unsafe method from another site
	refusedUnauthorized = "unauthorized" // missing or wrong credentials
	refusedNotLoopback  = "not_loopback" // state change from another host without users configured
	refusedCSRF         = "csrf"         // form post without a valid token
	refusedRateLimited  = "rate_limited" // the web config's rate_limit
	refusedBusy         = "busy"         // --web.max-requests pages and API calls already running
)

var refusedReasons = []string{refusedHost, refusedCrossOrigin, refusedUnauthorized, refusedNotLoopback, refusedCSRF, refusedRateLimited, refusedBusy}

// refused counts a refused request by reason.
func (srv *Server) refused(reason string) {
	srv.opts.Metrics.Inc("vigil_http_requests_refused_total", probes.Label{Name: "reason", Value: reason})
}

// exportRefused creates every reason's series at zero, so rules and
// dashboards see them before the first refusal.
func (srv *Server) exportRefused() {
	for _, r := range refusedReasons {
		srv.opts.Metrics.Counter("vigil_http_requests_refused_total", "HTTP requests refused, by reason: host (unknown Host name), cross_origin, unauthorized, not_loopback, csrf, rate_limited, busy (--web.max-requests).", probes.Label{Name: "reason", Value: r})
	}
}

// secure wraps the whole handler: the Host allow-list (every route but
// health and readiness), security headers (the web config's
// http_server_config.headers are applied after and win), its rate limit,
// and cross-origin protection for every unsafe method (Sec-Fetch-Site and
// Origin checks: a page on another site cannot make a logged-in browser
// post here).
func (srv *Server) secure(next http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		srv.refused(refusedCrossOrigin)
		srv.opts.Logger.Warn("cross-origin request refused", "method", r.Method, "path", r.URL.Path, "origin", r.Header.Get("Origin"))
		httpx.WriteError(w, http.StatusForbidden, "cross-origin request refused")
	}))
	// Refusals are logged at most once a second: a rebinding page retries.
	logLimit := rate.NewLimiter(1, 5)
	protected := cop.Handler(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		c, limiter := srv.web.current()
		for k, v := range c.HTTPConfig.Header {
			h.Set(k, v)
		}
		if !srv.hosts.allowed(r.Host) && r.URL.Path != "/-/healthy" && r.URL.Path != "/-/ready" {
			srv.refused(refusedHost)
			if logLimit.Allow() {
				srv.opts.Logger.Warn("request for an unknown host refused (add the name with --web.allowed-host if it is this agent's)",
					"host", r.Host, "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
			}
			httpx.WriteJSON(w, http.StatusMisdirectedRequest, client.Error{Error: fmt.Sprintf("host %q is not a name this agent answers to; "+
				"if it is, start the agent with --web.allowed-host=%s", r.Host, hostOnly(r.Host))})
			return
		}
		if limiter != nil && !limiter.Allow() {
			srv.refused(refusedRateLimited)
			http.Error(w, http.StatusText(http.StatusTooManyRequests), http.StatusTooManyRequests)
			return
		}
		protected.ServeHTTP(w, r)
	})
}

// csrfKey signs the form tokens of this agent process.
type csrfKey []byte

func newCSRFKey() csrfKey {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}

// Token is the form token for a user ("" without auth): an HMAC, so it
// needs no server-side state, and bound to the user, so a token read by an
// anonymous viewer of public pages is worth nothing to a logged-in user.
func (k csrfKey) Token(user string) string {
	m := hmac.New(sha256.New, k)
	m.Write([]byte("vigil-form\x00" + user))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (k csrfKey) Valid(user, tok string) bool {
	return tok != "" && hmac.Equal([]byte(k.Token(user)), []byte(strings.TrimSpace(tok)))
}
