package network

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/internal/testenv"
	"github.com/vigil-project/vigil/probes"
	"github.com/vigil-project/vigil/probes/internal/tlsconfig"
)

// serveConns listens on loopback and hands each connection to handle in
// its own goroutine, closing it after; it returns the address.
func serveConns(t *testing.T, handle func(c net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return l.Addr().String()
}

// lineServer answers each line with reply(line); it never closes first.
func lineServer(t *testing.T, reply func(string) string) string {
	t.Helper()
	return serveConns(t, func(c net.Conn) {
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			if out := reply(sc.Text()); out != "" {
				c.Write([]byte(out))
			}
		}
	})
}

func probeTCP(t *testing.T, timeout time.Duration, cfg *TCPConfig) probes.Result {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	p, err := newTCP(cfg, probes.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return p.Probe(ctx, discard)
}

func TestTCP(t *testing.T) {
	redisLike := lineServer(t, func(l string) string {
		if l == "PING" {
			return "+PONG\r\n"
		}
		return "-ERR unknown command\r\n"
	})
	silent := lineServer(t, func(string) string { return "" })
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := l.Addr().String()
	l.Close()

	tests := []struct {
		name    string
		cfg     TCPConfig
		reason  probes.Reason
		message string
	}{
		{"connect only", TCPConfig{Address: redisLike}, probes.ReasonNone, ""},
		{"dialogue matches", TCPConfig{Address: redisLike, QueryResponse: []QueryStep{{Send: "PING\r\n", Expect: `^\+PONG$`}}}, probes.ReasonNone, ""},
		{"dialogue mismatch", TCPConfig{Address: redisLike, QueryResponse: []QueryStep{{Send: "HELLO\r\n", Expect: `^\+PONG$`}}},
			probes.ReasonExpectMismatch, `step 1: no line matched "^\\+PONG$"; last line "-ERR unknown command"`},
		{"silent server", TCPConfig{Address: silent, QueryResponse: []QueryStep{{Send: "PING\r\n", Expect: "PONG"}}},
			probes.ReasonTimeout, "step 1: expected \"PONG\""},
		{"refused", TCPConfig{Address: closed}, probes.ReasonConnectionRefused, "connect " + closed},
		{"unresolvable", TCPConfig{Address: "no-such-host.invalid:80"}, probes.ReasonDNSError, "resolve no-such-host.invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			r := probeTCP(t, 500*time.Millisecond, &cfg)
			if r.Success != (tt.reason == probes.ReasonNone) || r.Reason != tt.reason || !strings.Contains(r.Message, tt.message) {
				t.Fatalf("got success=%v reason=%q message=%q; want reason=%q containing %q", r.Success, r.Reason, r.Message, tt.reason, tt.message)
			}
		})
	}
}

func TestTCPTLS(t *testing.T) {
	pki := newPKI(t)
	cert, _, _ := pki.issue(t, "tcp-server", time.Now().Add(-time.Hour), time.Now().Add(30*24*time.Hour), false, "127.0.0.1")
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.Write([]byte("220 tax gateway ready\r\n"))
				time.Sleep(time.Second)
			}()
		}
	}()
	r := probeTCP(t, 2*time.Second, &TCPConfig{
		Address: l.Addr().String(), TLS: true, TLSConfig: tlsconfig.Config{CAFile: pki.CAFile},
		QueryResponse: []QueryStep{{Expect: "^220 "}},
	})
	if !r.Success {
		t.Fatalf("%q %s", r.Reason, r.Message)
	}
	for _, p := range []string{"dns", "connect", "tls", "dialogue"} {
		if _, ok := phase(r, p); !ok {
			t.Errorf("no %s phase in %+v", p, r.Phases)
		}
	}
	if _, ok := valueOf(r, "vigil_tls_cert_expiry_timestamp_seconds"); !ok {
		t.Error("no certificate expiry value")
	}
	r = probeTCP(t, 2*time.Second, &TCPConfig{Address: l.Addr().String(), TLS: true})
	if r.Reason != probes.ReasonTLSError {
		t.Errorf("unknown CA: %q %s", r.Reason, r.Message)
	}
}

// TestTCPRedis speaks to the real Redis on this machine.
func TestTCPRedis(t *testing.T) {
	testenv.NeedService(t, "Redis", "127.0.0.1:6379")
	r := probeTCP(t, 2*time.Second, &TCPConfig{Address: "127.0.0.1:6379", QueryResponse: []QueryStep{
		{Send: "PING\r\n", Expect: `^\+PONG$`},
		{Send: "INFO server\r\n", Expect: `^redis_version:\d+\.`},
	}})
	if !r.Success {
		t.Fatalf("%q %s", r.Reason, r.Message)
	}
}
