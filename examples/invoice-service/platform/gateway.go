package platform

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"sync"
)

// Gateway routes client traffic to the active issuer; switching it is the
// failover runbooks' job (POST /admin/switch on its admin listener).
type Gateway struct {
	log      *slog.Logger
	backends map[string]*url.URL
	mu       sync.RWMutex
	active   string
	faults   faultSet
	proxy    *httputil.ReverseProxy
	pages    pagerInbox
}

// NewGateway routes to backends (name → base URL), starting with active.
func NewGateway(backends map[string]string, active string, log *slog.Logger) (*Gateway, error) {
	if log == nil {
		log = slog.Default()
	}
	g := &Gateway{log: log.With("role", "gateway"), backends: map[string]*url.URL{}, active: active}
	g.pages.log = g.log.With("listener", "admin")
	for name, raw := range backends {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("backend %s: invalid URL %q", name, raw)
		}
		g.backends[name] = u
	}
	if _, ok := g.backends[active]; !ok {
		return nil, fmt.Errorf("active backend %q is not one of the backends", active)
	}
	g.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(g.backends[g.Active()])
			pr.SetXForwarded()
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			writeError(w, r, http.StatusBadGateway, "ISSUER_UNAVAILABLE", fmt.Sprintf("issuer %s: %v", g.Active(), err))
		},
	}
	return g, nil
}

// Active is the issuer currently receiving traffic.
func (g *Gateway) Active() string {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.active
}

// Handler proxies the issuing API to the active issuer.
func (g *Gateway) Handler() http.Handler {
	return accessLog(g.log, g.faults.middleware(g.proxy))
}

// AdminHandler serves the switch, faults and the demo pager inbox
// (/admin/pages); it belongs on a loopback listener.
func (g *Gateway) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	g.faults.adminRoutes(mux)
	mux.HandleFunc("GET /admin/active", g.handleActive)
	g.pages.routes(mux)
	mux.HandleFunc("POST /admin/switch", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Active string `json:"active"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<12)).Decode(&body); err != nil {
			writeError(w, r, http.StatusBadRequest, "BAD_REQUEST", "switch: "+err.Error())
			return
		}
		if _, ok := g.backends[body.Active]; !ok {
			writeError(w, r, http.StatusBadRequest, "UNKNOWN_BACKEND", fmt.Sprintf("no backend %q (have %v)", body.Active, g.names()))
			return
		}
		g.mu.Lock()
		prev := g.active
		g.active = body.Active
		g.mu.Unlock()
		if prev != body.Active {
			logFrom(r).Warn("active issuer switched", "from", prev, "to", body.Active)
		}
		g.handleActive(w, r)
	})
	return accessLog(g.log.With("listener", "admin"), mux)
}

func (g *Gateway) handleActive(w http.ResponseWriter, _ *http.Request) {
	backends := map[string]string{}
	for n, u := range g.backends {
		backends[n] = u.String()
	}
	writeJSON(w, http.StatusOK, map[string]any{"active": g.Active(), "backends": backends})
}

func (g *Gateway) names() []string {
	var out []string
	for n := range g.backends {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
