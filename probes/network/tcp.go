package network

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"time"

	"github.com/prometheus/common/model"

	"github.com/vigil-project/vigil/internal/confkit"
	"github.com/vigil-project/vigil/probes"
	"github.com/vigil-project/vigil/probes/internal/neterr"
	"github.com/vigil-project/vigil/probes/internal/tlsconfig"
)

func init() {
	probes.Register(probes.Family{
		Type: "tcp", Step: probes.StepNetwork,
		NewConfig: func() probes.Config { return &TCPConfig{TracerouteOnFailure: true} },
		New:       newTCP,
		Metrics:   tlsconfig.Metrics,
	})
}

// TCPConfig is the `tcp:` section of a check.
type TCPConfig struct {
	// Address is host:port.
	Address string `yaml:"address"`
	// TLS performs a TLS handshake after connecting.
	TLS       bool             `yaml:"tls"`
	TLSConfig tlsconfig.Config `yaml:"tls_config,omitempty"`
	// QueryResponse is a dialogue: each step sends, expects, or both.
	QueryResponse []QueryStep `yaml:"query_response,omitempty"`
	// CertExpiryMin fails with cert_expiring when the chain expires sooner (0 disables).
	CertExpiryMin       model.Duration `yaml:"cert_expiry_min"`
	TracerouteOnFailure bool           `yaml:"traceroute_on_failure"`
}

// QueryStep sends Send (if set), then reads lines until one matches Expect
// (if set).
type QueryStep struct {
	Send   string `yaml:"send,omitempty"`
	Expect string `yaml:"expect,omitempty"`
}

// Validate reports every problem as a FieldError.
func (c *TCPConfig) Validate() error {
	var errs []error
	if host, port, err := net.SplitHostPort(c.Address); err != nil || host == "" || port == "" {
		errs = append(errs, confkit.FieldErrorf("address", "must be host:port, got %q", c.Address))
	}
	for i, q := range c.QueryResponse {
		if q.Send == "" && q.Expect == "" {
			errs = append(errs, confkit.FieldErrorf(fmt.Sprintf("query_response.%d", i), "set send, expect or both"))
		}
		if _, err := regexp.Compile(q.Expect); err != nil {
			errs = append(errs, confkit.FieldErrorf(fmt.Sprintf("query_response.%d.expect", i), "invalid regular expression: %v", err))
		}
	}
	errs = append(errs, c.TLSConfig.Validate("tls_config.")...)
	return errors.Join(errs...)
}

// TCP is the tcp check.
type TCP struct {
	cfg    *TCPConfig
	host   string
	tls    *tls.Config
	expect []*regexp.Regexp
}

var (
	_ probes.Prober    = (*TCP)(nil)
	_ probes.Diagnoser = (*TCP)(nil)
)

func newTCP(c probes.Config, _ probes.Options) (probes.Prober, error) {
	cfg, ok := c.(*TCPConfig)
	if !ok {
		return nil, fmt.Errorf("tcp: config of type %T", c)
	}
	host, _, _ := net.SplitHostPort(cfg.Address)
	t := &TCP{cfg: cfg, host: host}
	if cfg.TLS {
		var err error
		if t.tls, err = cfg.TLSConfig.Build(host); err != nil {
			return nil, err
		}
	}
	for _, q := range cfg.QueryResponse {
		var re *regexp.Regexp
		if q.Expect != "" {
			re = regexp.MustCompile(q.Expect)
		}
		t.expect = append(t.expect, re)
	}
	return t, nil
}

// Probe connects, optionally shakes hands and runs the dialogue.
func (t *TCP) Probe(ctx context.Context, log *slog.Logger) probes.Result {
	var res probes.Result
	fail := func(reason probes.Reason, format string, args ...any) probes.Result {
		res.Reason, res.Message = reason, fmt.Sprintf(format, args...)
		return res
	}
	host, port, _ := net.SplitHostPort(t.cfg.Address)

	start := time.Now()
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	res.AddPhase("dns", start)
	if err != nil {
		return fail(neterr.Classify(err), "resolve %s: %v", host, err)
	}
	start = time.Now()
	// One dialogue per connection: no TCP keep-alive probes to set up.
	d := net.Dialer{KeepAlive: -1}
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(ips[0].IP.String(), port))
	res.AddPhase("connect", start)
	if err != nil {
		return fail(neterr.Classify(err), "connect %s: %v", t.cfg.Address, err)
	}
	defer conn.Close()
	// The dialogue honours the check's deadline through the connection.
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()

	if t.tls != nil {
		start = time.Now()
		tc := tls.Client(conn, t.tls)
		err := tc.HandshakeContext(ctx)
		res.AddPhase("tls", start)
		if err != nil {
			return fail(neterr.Classify(err), "TLS handshake with %s: %v", t.cfg.Address, err)
		}
		state := tc.ConnectionState()
		if reason, msg := tlsconfig.Values(&res, &state, time.Duration(t.cfg.CertExpiryMin)); reason != probes.ReasonNone {
			return fail(reason, "%s", msg)
		}
		conn = tc
	}
	if len(t.cfg.QueryResponse) > 0 {
		start = time.Now()
		r := bufio.NewReader(conn)
		for i, q := range t.cfg.QueryResponse {
			if q.Send != "" {
				if _, err := conn.Write([]byte(q.Send)); err != nil {
					res.AddPhase("dialogue", start)
					return fail(neterr.Classify(err), "step %d: send: %v", i+1, err)
				}
			}
			if re := t.expect[i]; re != nil {
				if last, err := expectLine(r, re); err != nil {
					res.AddPhase("dialogue", start)
					// The server answered, just not as expected: that is the
					// finding, whatever ended the wait.
					if last != "" {
						return fail(probes.ReasonExpectMismatch, "step %d: no line matched %q; last line %q", i+1, q.Expect, truncate(last, 80))
					}
					reason := neterr.Classify(err)
					if reason == probes.ReasonError {
						reason = probes.ReasonExpectMismatch
					}
					return fail(reason, "step %d: expected %q: %v", i+1, q.Expect, err)
				}
			}
		}
		res.AddPhase("dialogue", start)
	}
	res.Success = true
	return res
}

// expectLine reads lines until one matches, returning the last line seen
// when none did. Lines are capped at 64 KiB so a server streaming garbage
// cannot exhaust memory.
func expectLine(r *bufio.Reader, re *regexp.Regexp) (last string, err error) {
	for {
		line, err := readLine(r, 64<<10)
		if line != "" {
			last = line
			if re.MatchString(line) {
				return "", nil
			}
		}
		if err != nil {
			return last, err
		}
	}
}

func readLine(r *bufio.Reader, max int) (string, error) {
	var buf []byte
	for {
		chunk, isPrefix, err := r.ReadLine()
		buf = append(buf, chunk...)
		if len(buf) > max {
			return string(buf[:max]), fmt.Errorf("line longer than %d bytes", max)
		}
		if err != nil || !isPrefix {
			return string(buf), err
		}
	}
}

// Diagnose traces the path when the connection did not get through.
func (t *TCP) Diagnose(ctx context.Context, log *slog.Logger, failed probes.Result) map[string]any {
	if !t.cfg.TracerouteOnFailure || !tracerouteWorthy(failed.Reason) {
		return nil
	}
	return traceDiagnostics(ctx, log, t.host)
}
