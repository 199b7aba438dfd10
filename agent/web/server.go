// Package web is the agent's HTTP side: the server (TCP, TLS and basic
// auth from the exporter-toolkit web config file, vsock, systemd socket
// activation), the Host allow-list against DNS rebinding, the access level
// of every route (open, read, write), CSRF tokens and cross-origin
// protection, and the routes themselves: /metrics, health and readiness,
// the REST API, the Prometheus query API and the status pages. It reaches
// the agent's subsystems only through the small interfaces below, which
// the composition root (package agent) fills in.
package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/exporter-toolkit/web"

	"github.com/vigil-project/vigil/agent/web/api"
	"github.com/vigil-project/vigil/agent/web/promapi"
	"github.com/vigil-project/vigil/agent/web/ui"
	"github.com/vigil-project/vigil/probes"
)

// Metrics is the exporter: /metrics and the refused-requests counter.
type Metrics interface {
	WritePrometheus(w io.Writer)
	Inc(name string, labels ...probes.Label)
	Counter(name, help string, labels ...probes.Label)
}

// Store is what the server itself reads from the agent's store (the API
// reads the rest).
type Store interface {
	api.Store
	api.IncidentList
	// WriteHealth is why writes fail, nil while they succeed (readiness).
	WriteHealth() error
}

// Options are the server's settings and the subsystems it serves.
type Options struct {
	// Flags are the toolkit's listen addresses, systemd socket and web
	// config file.
	Flags *web.FlagConfig
	// PublicRead serves read-only pages, the read API and /metrics without
	// a user even when the web config sets basic_auth_users.
	PublicRead bool
	// PublicStatus serves /status and /api/v1/status without a user (the
	// public status page: nothing that reveals hosts or diagnostics).
	PublicStatus bool
	// MaxRequests bounds the pages and API calls served at once (0: no
	// bound); see bounded.
	MaxRequests int
	// AllowedHosts are Host names answered besides localhost, IP literals,
	// the listen addresses and the machine's names ("*.example.com" for a
	// whole domain).
	AllowedHosts []string
	Logger       *slog.Logger

	Metrics   Metrics
	Checks    api.Checks
	Scheduler api.Scheduler
	Rules     promapi.Rules
	Paging    api.Paging
	Runbooks  api.Runbooks
	Drills    api.Drills
	Store     Store
	Uptime    api.Uptime
	SLOs      api.SLOs
	Incidents api.Incidents
	Trimmer   ui.Trimmer
	// Known are the label sets silences are checked against.
	Known api.Known
	// Reload re-reads the agent's config (POST /-/reload).
	Reload func(ctx context.Context) error
}

// Server serves the agent's routes. Readiness starts false (SetReady).
type Server struct {
	opts  Options
	api   *api.API
	web   *webConfig
	hosts *hostAllowList
	csrf  csrfKey
	site  *ui.Site
	ready atomic.Bool
	// busy holds a token per page or API call running (MaxRequests).
	busy chan struct{}
}

// New reads the web config file (a bad one is an error) and builds the
// server; Serve starts it.
func New(opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	file := ""
	if opts.Flags != nil && opts.Flags.WebConfigFile != nil {
		file = *opts.Flags.WebConfigFile
	}
	wc, err := loadWebConfig(file, opts.Logger)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, web: wc, hosts: newHostAllowList(ListenAddresses(opts.Flags), opts.AllowedHosts), csrf: newCSRFKey()}
	if opts.MaxRequests > 0 {
		s.busy = make(chan struct{}, opts.MaxRequests)
	}
	s.api = api.New(api.Options{Checks: opts.Checks, Scheduler: opts.Scheduler, Paging: opts.Paging, Runbooks: opts.Runbooks,
		Drills: opts.Drills, Store: opts.Store, Uptime: opts.Uptime, SLOs: opts.SLOs, Rules: opts.Rules, Incidents: opts.Incidents, IncidentList: opts.Store, PublicStatus: opts.PublicStatus, Known: opts.Known, Reload: opts.Reload, Logger: opts.Logger})
	s.site = ui.NewSite(ui.SiteOptions{API: s.api, PublicStatus: opts.PublicStatus, Scheduler: opts.Scheduler, Paging: opts.Paging, Runbooks: opts.Runbooks,
		Drills: opts.Drills, Store: opts.Store, Rules: opts.Rules, Trimmer: opts.Trimmer, Reload: opts.Reload,
		AuthEnabled: func() bool { c, _ := s.web.current(); return len(c.Users) > 0 }, CSRF: s.csrf,
		OnCSRFRefused: func() { s.refused(refusedCSRF) }, Logger: opts.Logger})
	s.exportRefused()
	return s, nil
}

// SetReady sets what /-/ready answers.
func (srv *Server) SetReady(ready bool) { srv.ready.Store(ready) }

// Serve listens and serves until ctx ends or stop is done (a subsystem
// failed), then stops answering ready, drains the server for up to 10s and
// returns once every listener has stopped. It also learns the machine's
// DNS names for the Host allow-list meanwhile.
func (srv *Server) Serve(ctx, stop context.Context) error {
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	learnCtx, cancelLearn := context.WithCancel(stop)
	learned := make(chan struct{})
	go func() {
		defer close(learned)
		srv.hosts.learnDNSNames(learnCtx, srv.opts.Logger)
	}()
	defer func() {
		cancelLearn()
		<-learned
	}()
	srvErr := make(chan error, 1)
	go func() { srvErr <- serveWeb(stop, hs, srv.opts.Flags, srv.web, srv.opts.Logger) }()
	var err error
	served := false
	select {
	case <-ctx.Done():
	case <-stop.Done():
	case serr := <-srvErr:
		served = true
		if !errors.Is(serr, http.ErrServerClosed) {
			err = fmt.Errorf("http server: %w", serr)
		}
	}
	srv.SetReady(false)
	srv.opts.Logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if serr := hs.Shutdown(shutdownCtx); serr != nil {
		srv.opts.Logger.Warn("http shutdown", "err", serr)
	}
	if !served {
		<-srvErr
	}
	return err
}

// Route is one entry of the route table.
type Route struct {
	// Pattern is the http.ServeMux pattern ("GET /api/v1/checks").
	Pattern string
	// Access is "open", "read" or "write".
	Access string
}

// Routes lists every route with its access level (docs and tests read it).
func (srv *Server) Routes() []Route {
	var out []Route
	for _, r := range srv.router().routes {
		out = append(out, Route{Pattern: r.pattern, Access: r.access.String()})
	}
	return out
}

// FormToken is the CSRF token the status page's forms carry for a user
// ("" without auth).
func (srv *Server) FormToken(user string) string { return srv.csrf.Token(user) }
