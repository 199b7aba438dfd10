package web

import (
	"net/http"

	"github.com/vigil-project/vigil/agent/web/promapi"
)

// Handler returns the agent's HTTP routes behind the security layer.
func (srv *Server) Handler() http.Handler {
	return srv.secure(srv.router().mux)
}

// router builds the route table: every route with its access level.
func (srv *Server) router() *router {
	rt := &router{srv: srv, mux: http.NewServeMux()}
	rt.Read("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		srv.opts.Metrics.WritePrometheus(w)
	})
	rt.Open("GET /-/healthy", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("Healthy\n"))
	})
	rt.Open("GET /-/ready", func(w http.ResponseWriter, r *http.Request) {
		if !srv.ready.Load() {
			http.Error(w, "Not ready", http.StatusServiceUnavailable)
			return
		}
		// A store that cannot be written loses history, alert state and
		// the durability of pages: an orchestrator should know, though
		// the agent keeps checking and paging from memory.
		if err := srv.opts.Store.WriteHealth(); err != nil {
			http.Error(w, "Not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("Ready\n"))
	})
	srv.api.Routes(rt)
	promapi.New(srv.opts.Rules).Routes(rt)
	srv.site.Routes(rt)
	return rt
}
