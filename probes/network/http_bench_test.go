package network

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/vigil-project/vigil/probes"
)

// BenchmarkHTTPProbe is one http check run against a local server: a fresh
// connection, the request, the response, the phases. The server's work is
// in the same process, so compare runs of this benchmark, not its absolute
// time with an agent's CPU per run.
func BenchmarkHTTPProbe(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) }))
	defer srv.Close()
	cfg := defaultHTTPConfig()
	cfg.URL = srv.URL
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	p, err := newHTTP(cfg, probes.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if r := p.Probe(ctx, discard); !r.Success {
			b.Fatalf("%s: %s", r.Reason, r.Message)
		}
	}
}
