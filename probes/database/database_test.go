package database

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/probes"
)

var discard = slog.New(slog.DiscardHandler)

// dsnFile writes a DSN where dsn_file can read it.
func dsnFile(t *testing.T, dsn string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "dsn")
	if err := os.WriteFile(p, []byte(dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func run(t *testing.T, family string, cfg probes.Config, timeout time.Duration) probes.Result {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	f, _ := probes.Lookup(family)
	p, err := f.New(cfg, probes.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return p.Probe(ctx, discard)
}

func valueOf(r probes.Result, name string, label ...string) (float64, bool) {
	for _, v := range r.Values {
		if v.Name != name {
			continue
		}
		if len(label) == 1 && (len(v.Labels) == 0 || v.Labels[0].Value != label[0]) {
			continue
		}
		return v.Value, true
	}
	return 0, false
}

func phaseNames(r probes.Result) string {
	var names []string
	for _, p := range r.Phases {
		names = append(names, p.Name)
	}
	return strings.Join(names, ",")
}

// hangingListener accepts connections and never says a word.
func hangingListener(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	t.Cleanup(func() {
		l.Close()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	return l.Addr().String()
}

func closedPort(t *testing.T) string {
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	defer l.Close()
	return l.Addr().String()
}

func ptr(f float64) *float64 { return &f }
