package network

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/probes"
)

// rawServer answers every connection with reply after reading the request
// head, and sends the request line and headers it read to got.
func rawServer(t *testing.T, reply func(c net.Conn)) (url string, got chan string) {
	t.Helper()
	got = make(chan string, 16)
	addr := serveConns(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		var head strings.Builder
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			head.WriteString(line)
			if line == "\r\n" {
				break
			}
		}
		select {
		case got <- head.String():
		default:
		}
		reply(c)
	})
	return "http://" + addr + "/path?q=1", got
}

func canned(s string) func(net.Conn) {
	return func(c net.Conn) { c.Write([]byte(s)) }
}

// TestPlainTransportHostileServers drives the plain-HTTP round tripper
// against servers that misbehave on the wire.
func TestPlainTransportHostileServers(t *testing.T) {
	t.Parallel()
	endlessHeaders := func(c net.Conn) {
		c.Write([]byte("HTTP/1.1 200 OK\r\n"))
		line := []byte("X-Filler: " + strings.Repeat("a", 1000) + "\r\n")
		for range 4000 { // 4 MB of headers, more than the 1 MiB bound
			if _, err := c.Write(line); err != nil {
				return
			}
		}
	}
	tests := []struct {
		name    string
		reply   func(net.Conn)
		method  string
		reason  probes.Reason
		message string
	}{
		{"plain 200", canned("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), "GET", probes.ReasonNone, ""},
		{"100 Continue, then 200", canned("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), "GET", probes.ReasonNone, ""},
		{"103 Early Hints, then 503", canned("HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"), "GET", probes.ReasonStatusMismatch, "status 503"},
		{"chunked body", canned("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"), "GET", probes.ReasonNone, ""},
		{"body until close", canned("HTTP/1.0 200 OK\r\n\r\nok"), "GET", probes.ReasonNone, ""},
		{"HEAD with a length and no body", canned("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"), "HEAD", probes.ReasonNone, ""},
		{"garbage status line", canned("SSH-2.0-OpenSSH_9.6\r\n\r\n"), "GET", probes.ReasonError, "malformed HTTP"},
		{"closed before answering", func(net.Conn) {}, "GET", probes.ReasonError, "EOF"},
		{"body shorter than its length", canned("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok"), "GET", probes.ReasonError, "reading the response body"},
		{"endless headers", endlessHeaders, "GET", probes.ReasonError, "headers exceeded 1048576 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url, got := rawServer(t, tt.reply)
			r := probeHTTP(t, func(c *HTTPConfig) { c.URL, c.Method, c.TracerouteOnFailure = url, tt.method, false })
			if r.Success != (tt.reason == probes.ReasonNone) || r.Reason != tt.reason || !strings.Contains(r.Message, tt.message) {
				t.Fatalf("got success=%v reason=%q message=%q; want reason=%q message containing %q", r.Success, r.Reason, r.Message, tt.reason, tt.message)
			}
			head := <-got
			for _, want := range []string{tt.method + " /path?q=1 HTTP/1.1\r\n", "Connection: close\r\n", "User-Agent: vigil\r\n"} {
				if !strings.Contains(head, want) {
					t.Errorf("request head %q lacks %q", head, want)
				}
			}
		})
	}
}

// TestPlainTransportSlowHeaders: a server that trickles its headers is cut
// off by the check's deadline, with reason timeout.
func TestPlainTransportSlowHeaders(t *testing.T) {
	t.Parallel()
	url, _ := rawServer(t, func(c net.Conn) {
		c.Write([]byte("HTTP/1.1 200 OK\r\n"))
		for range 100 {
			if _, err := c.Write([]byte("X-Slow: 1\r\n")); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	p := newHTTPProber(t, func(c *HTTPConfig) { c.URL, c.TracerouteOnFailure = url, false })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	begin := time.Now()
	r := p.Probe(ctx, discard)
	if r.Reason != probes.ReasonTimeout {
		t.Errorf("reason %q (%s), want timeout", r.Reason, r.Message)
	}
	if took := time.Since(begin); took > 3*time.Second {
		t.Errorf("the run took %s with a 300ms deadline", took)
	}
}

// TestPlainTransportBody: the body reads as sent, closing it twice is
// harmless, and reading after Close is an error rather than a read from a
// buffer that went back to the pool.
func TestPlainTransportBody(t *testing.T) {
	t.Parallel()
	url, _ := rawServer(t, canned("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"))
	tr, err := newTransport(defaultHTTPConfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tr.(*plainTransport); !ok {
		t.Fatalf("transport for a plain URL without proxy is %T", tr)
	}
	req, _ := http.NewRequest("GET", url, nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3)
	if n, _ := resp.Body.Read(buf); string(buf[:n]) != "hel" {
		t.Errorf("read %q", buf[:n])
	}
	if err := resp.Body.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	if err := resp.Body.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	if _, err := resp.Body.Read(buf); err == nil {
		t.Error("read after close succeeded")
	}
}
