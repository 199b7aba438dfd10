package network

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"time"
)

// maxResponseHeaderBytes bounds the status line and headers a server may
// send, as http.Transport's default does (MaxResponseHeaderBytes): a server
// that streams headers forever fails its own check, it does not grow the
// agent's memory.
const maxResponseHeaderBytes = 1 << 20

// plainTransport sends a plain-HTTP request over a fresh connection in the
// caller's goroutine, with net/http's own wire code (Request.Write,
// http.ReadResponse). Each check run opens one connection for one request,
// so http.Transport's connection pool buys nothing there, while it costs a
// dial goroutine and a read and a write loop per connection, each woken
// through the scheduler: measured at 10,000 checks, those handoffs were a
// fifth of the agent's CPU (BENCHMARKS.md, "Scale"). HTTPS, proxies and
// HTTP/2 go to fallback, a keep-alive-free http.Transport.
//
// Like http.Transport with DisableKeepAlives, it closes the connection when
// the body is closed, fires the httptrace hooks (DNS and connect come from
// the dialer itself), skips 1xx responses and bounds the response header.
// It does not ask for gzip: the body is read as the server sends it.
type plainTransport struct {
	dialer   *net.Dialer
	fallback http.RoundTripper
}

// errHeaderTooLarge is returned when the status line and headers exceed
// maxResponseHeaderBytes.
var errHeaderTooLarge = fmt.Errorf("server response headers exceeded %d bytes", maxResponseHeaderBytes)

// readerPool keeps the connections' read buffers: one run needs one for a
// few hundred microseconds, thousands of checks need a handful at once.
var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

// writerPool keeps write buffers likewise: Request.Write given a plain
// connection makes a 4 KB one for every request, a quarter of the bytes
// a run allocated.
var writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4096) }}

// writeRequest writes req to conn through a pooled buffer.
func writeRequest(req *http.Request, conn net.Conn) error {
	bw := writerPool.Get().(*bufio.Writer)
	bw.Reset(conn)
	err := req.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	bw.Reset(nil)
	writerPool.Put(bw)
	return err
}

func (t *plainTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "http" {
		return t.fallback.RoundTrip(req)
	}
	ctx := req.Context()
	conn, err := t.dialer.DialContext(ctx, "tcp", hostPort(req.URL.Host, "80"))
	if err != nil {
		closeBody(req)
		return nil, err
	}
	// The check's ctx bounds every read and write: cancelling it (deadline,
	// reload, shutdown) unblocks them at once.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	fail := func(err error) (*http.Response, error) {
		stop()
		_ = conn.Close()
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return nil, err
	}
	trace := httptrace.ContextClientTrace(ctx)
	if err := writeRequest(req, conn); err != nil {
		return fail(err)
	}
	if trace != nil && trace.WroteRequest != nil {
		trace.WroteRequest(httptrace.WroteRequestInfo{})
	}
	limit := &headerLimit{r: conn, n: maxResponseHeaderBytes}
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(limit)
	release := func() { br.Reset(nil); readerPool.Put(br) }
	if _, err := br.Peek(1); err != nil {
		release()
		return fail(err)
	}
	if trace != nil && trace.GotFirstResponseByte != nil {
		trace.GotFirstResponseByte()
	}
	var resp *http.Response
	for {
		resp, err = http.ReadResponse(br, req)
		if err != nil {
			release()
			if limit.n <= 0 {
				err = errHeaderTooLarge
			}
			return fail(err)
		}
		// 1xx responses (100 Continue, 103 Early Hints) precede the real
		// one; 101 Switching Protocols is final.
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue
		}
		break
	}
	limit.n = -1 // the body is bounded by its reader (max_body_bytes)
	resp.Body = &connBody{body: resp.Body, conn: conn, stop: stop, release: release}
	return resp, nil
}

// hostPort adds the default port when host has none.
func hostPort(host, port string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	return net.JoinHostPort(host, port)
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// headerLimit reads at most n bytes while n >= 0 and without limit once n
// is negative.
type headerLimit struct {
	r io.Reader
	n int64
}

func (l *headerLimit) Read(p []byte) (int, error) {
	if l.n < 0 {
		return l.r.Read(p)
	}
	if l.n == 0 {
		return 0, errHeaderTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// connBody is the response body; closing it closes the connection.
type connBody struct {
	body    io.ReadCloser
	conn    net.Conn
	stop    func() bool
	release func()
	closed  bool
}

// errBodyClosed is what a read after Close returns, as net/http's bodies do.
var errBodyClosed = errors.New("http: read on closed response body")

func (b *connBody) Read(p []byte) (int, error) {
	if b.closed {
		return 0, errBodyClosed
	}
	return b.body.Read(p)
}

// Close closes the connection and returns the read buffer to its pool; a
// second Close does nothing.
func (b *connBody) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	b.stop()
	err := b.conn.Close()
	b.release()
	return err
}
