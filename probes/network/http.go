package network

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ohler55/ojg/jp"
	"github.com/ohler55/ojg/oj"
	"github.com/prometheus/common/model"

	"github.com/vigil-project/vigil/internal/confkit"
	"github.com/vigil-project/vigil/probes"
	"github.com/vigil-project/vigil/probes/internal/neterr"
	"github.com/vigil-project/vigil/probes/internal/tlsconfig"
)

func init() {
	probes.Register(probes.Family{
		Type: "http", Step: probes.StepNetwork,
		NewConfig: func() probes.Config { return defaultHTTPConfig() },
		New:       newHTTP,
		Metrics: append([]probes.Metric{
			{Name: "vigil_http_status_code", Help: "Status code of the final response."},
			{Name: "vigil_http_response_bytes", Help: "Body bytes read from the final response."},
			{Name: "vigil_http_redirects", Help: "Redirects followed."},
			{Name: "vigil_http_version", Help: "HTTP version of the final response (1.1, 2)."},
		}, tlsconfig.Metrics...),
	})
}

// HTTPConfig is the `http:` section of a check.
type HTTPConfig struct {
	URL     string            `yaml:"url"`
	Method  string            `yaml:"method"`
	Headers map[string]string `yaml:"headers,omitempty"`
	Body    string            `yaml:"body,omitempty"`
	// ProxyURL sends the request through an HTTP proxy.
	ProxyURL        string `yaml:"proxy_url,omitempty"`
	FollowRedirects bool   `yaml:"follow_redirects"`
	MaxRedirects    int    `yaml:"max_redirects"`
	// HTTPVersion is "" (HTTP/2 when the server offers it over TLS), "1.1" or "2".
	HTTPVersion string `yaml:"http_version,omitempty"`
	// ValidStatusCodes are codes ("200"), classes ("2xx") or ranges ("200-399").
	ValidStatusCodes []string     `yaml:"valid_status_codes"`
	BodyMustMatch    []string     `yaml:"body_must_match,omitempty"`
	BodyMustNotMatch []string     `yaml:"body_must_not_match,omitempty"`
	JSON             []JSONExpect `yaml:"json,omitempty"`
	// MaxBodyBytes bounds how much of the response is read.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// CertExpiryMin fails the check with cert_expiring when the earliest
	// certificate of the chain expires sooner (0 disables).
	CertExpiryMin model.Duration `yaml:"cert_expiry_min"`
	// TLS is nil without a tls_config block: most checks have none, and
	// at thousands of checks the block cost 88 bytes each.
	TLS                 *tlsconfig.Config `yaml:"tls_config,omitempty"`
	TracerouteOnFailure bool              `yaml:"traceroute_on_failure"`
}

// JSONExpect is an expectation on a JSONPath in the response body: the
// value must equal Equals, match Matches, or (with neither) exist.
type JSONExpect struct {
	Path    string  `yaml:"path"`
	Equals  *string `yaml:"equals,omitempty"`
	Matches string  `yaml:"matches,omitempty"`
}

// defaultStatusCodes is valid_status_codes when a check sets none, shared
// by every such check (YAML decoding replaces a slice, never writes into
// it); defaultStatuses is its parsed form.
var (
	defaultStatusCodes = []string{"2xx"}
	defaultStatuses    = []statusRange{{200, 299}}
)

func defaultHTTPConfig() *HTTPConfig {
	return &HTTPConfig{
		Method:              http.MethodGet,
		FollowRedirects:     true,
		MaxRedirects:        10,
		ValidStatusCodes:    defaultStatusCodes,
		MaxBodyBytes:        1 << 20,
		TracerouteOnFailure: true,
	}
}

// statusRange is an inclusive range of status codes.
type statusRange struct{ lo, hi int }

func parseStatus(s string) (statusRange, error) {
	s = strings.TrimSpace(s)
	if len(s) == 3 && strings.HasSuffix(strings.ToLower(s), "xx") && s[0] >= '1' && s[0] <= '5' {
		base := int(s[0]-'0') * 100
		return statusRange{base, base + 99}, nil
	}
	lo, hi, isRange := strings.Cut(s, "-")
	a, err := strconv.Atoi(lo)
	if err != nil || a < 100 || a > 599 {
		return statusRange{}, fmt.Errorf("invalid status code %q (use 200, 2xx or 200-299)", s)
	}
	if !isRange {
		return statusRange{a, a}, nil
	}
	b, err := strconv.Atoi(hi)
	if err != nil || b < a || b > 599 {
		return statusRange{}, fmt.Errorf("invalid status range %q", s)
	}
	return statusRange{a, b}, nil
}

// Validate reports every problem as a FieldError.
func (c *HTTPConfig) Validate() error {
	var errs []error
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		errs = append(errs, confkit.FieldErrorf("url", "required"))
	case err != nil:
		errs = append(errs, confkit.FieldErrorf("url", "%v", err))
	case u.Scheme != "http" && u.Scheme != "https":
		errs = append(errs, confkit.FieldErrorf("url", "scheme must be http or https, got %q", u.Scheme))
	case u.Host == "":
		errs = append(errs, confkit.FieldErrorf("url", "no host in %q", c.URL))
	}
	if c.ProxyURL != "" {
		if _, err := url.Parse(c.ProxyURL); err != nil {
			errs = append(errs, confkit.FieldErrorf("proxy_url", "%v", err))
		}
	}
	if c.Method == "" || strings.ContainsAny(c.Method, " \t\r\n") {
		errs = append(errs, confkit.FieldErrorf("method", "invalid method %q", c.Method))
	}
	switch c.HTTPVersion {
	case "", "1.1", "2":
	default:
		errs = append(errs, confkit.FieldErrorf("http_version", "must be 1.1 or 2, got %q", c.HTTPVersion))
	}
	if len(c.ValidStatusCodes) == 0 {
		errs = append(errs, confkit.FieldErrorf("valid_status_codes", "must not be empty"))
	}
	for i, s := range c.ValidStatusCodes {
		if _, err := parseStatus(s); err != nil {
			errs = append(errs, confkit.FieldErrorf(fmt.Sprintf("valid_status_codes.%d", i), "%v", err))
		}
	}
	for field, list := range map[string][]string{"body_must_match": c.BodyMustMatch, "body_must_not_match": c.BodyMustNotMatch} {
		for i, re := range list {
			if _, err := regexp.Compile(re); err != nil {
				errs = append(errs, confkit.FieldErrorf(fmt.Sprintf("%s.%d", field, i), "invalid regular expression: %v", err))
			}
		}
	}
	for i, j := range c.JSON {
		if _, err := jp.ParseString(j.Path); err != nil || j.Path == "" {
			errs = append(errs, confkit.FieldErrorf(fmt.Sprintf("json.%d.path", i), "invalid JSONPath %q: %v", j.Path, err))
		}
		if _, err := regexp.Compile(j.Matches); err != nil {
			errs = append(errs, confkit.FieldErrorf(fmt.Sprintf("json.%d.matches", i), "invalid regular expression: %v", err))
		}
	}
	if c.MaxBodyBytes <= 0 {
		errs = append(errs, confkit.FieldErrorf("max_body_bytes", "must be greater than 0"))
	}
	if c.MaxRedirects < 0 {
		errs = append(errs, confkit.FieldErrorf("max_redirects", "must not be negative"))
	}
	errs = append(errs, c.TLS.Validate("tls_config.")...)
	return errors.Join(errs...)
}

// HTTP is the http check. At thousands of checks it is kept small: the
// transport is shared (transportFor), the client is made per run, and the
// body matchers exist only for a check that has some.
type HTTP struct {
	cfg       *HTTPConfig
	transport http.RoundTripper
	statuses  []statusRange
	match     *bodyMatchers
}

// bodyMatchers are a check's compiled body expectations.
type bodyMatchers struct {
	must, not []*regexp.Regexp
	json      []compiledJSON
}

type compiledJSON struct {
	JSONExpect
	path    jp.Expr
	matches *regexp.Regexp
}

var (
	_ probes.Prober    = (*HTTP)(nil)
	_ probes.Diagnoser = (*HTTP)(nil)
)

// transports are shared by HTTP checks with the same connection settings
// and no certificate files: with keep-alives off a transport holds no
// state between runs, and one per check cost ~2 KB each at thousands of
// checks. Checks that read CA or client certificate files get their own,
// so a changed file is read at the next reload.
var (
	transportsMu sync.Mutex
	transports   = map[transportKey]http.RoundTripper{}
)

type transportKey struct {
	serverName, minVersion, httpVersion, proxy string
	insecure                                   bool
}

func transportFor(cfg *HTTPConfig) (http.RoundTripper, error) {
	var t tlsconfig.Config
	if cfg.TLS != nil {
		t = *cfg.TLS
	}
	if t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" {
		return newTransport(cfg)
	}
	key := transportKey{serverName: t.ServerName, minVersion: t.MinVersion, httpVersion: cfg.HTTPVersion, proxy: cfg.ProxyURL, insecure: t.InsecureSkipVerify}
	transportsMu.Lock()
	defer transportsMu.Unlock()
	if tr, ok := transports[key]; ok {
		return tr, nil
	}
	tr, err := newTransport(cfg)
	if err == nil {
		transports[key] = tr
	}
	return tr, err
}

// newTransport returns the round tripper for cfg: plain-HTTP requests
// without a proxy go over plainTransport, the rest (HTTPS, proxies, HTTP/2)
// over a keep-alive-free http.Transport.
func newTransport(cfg *HTTPConfig) (http.RoundTripper, error) {
	tlsCfg, err := cfg.TLS.Build("")
	if err != nil {
		return nil, err
	}
	// A connection lives for one request: TCP keep-alive probes would
	// never fire, and setting them up cost four setsockopt calls a run.
	dialer := &net.Dialer{KeepAlive: -1}
	transport := &http.Transport{
		TLSClientConfig: tlsCfg,
		// Every run measures a fresh connection: DNS, connect and TLS included.
		DisableKeepAlives: true,
		DialContext:       dialer.DialContext,
		// The check's own ctx bounds the run; no separate transport timeouts.
		ForceAttemptHTTP2: cfg.HTTPVersion != "1.1",
		// No Accept-Encoding: gzip of its own, as on plain HTTP
		// (plainTransport): the body is read and matched as the server
		// sends it, over either scheme (a Headers entry can still ask).
		DisableCompression: true,
	}
	if cfg.HTTPVersion == "1.1" {
		transport.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	if cfg.ProxyURL != "" {
		pu, _ := url.Parse(cfg.ProxyURL)
		transport.Proxy = http.ProxyURL(pu)
		return transport, nil
	}
	return &plainTransport{dialer: dialer, fallback: transport}, nil
}

func newHTTP(c probes.Config, _ probes.Options) (probes.Prober, error) {
	cfg, ok := c.(*HTTPConfig)
	if !ok {
		return nil, fmt.Errorf("http: config of type %T", c)
	}
	transport, err := transportFor(cfg)
	if err != nil {
		return nil, err
	}
	h := &HTTP{cfg: cfg, transport: transport, statuses: defaultStatuses}
	if !slices.Equal(cfg.ValidStatusCodes, defaultStatusCodes) {
		h.statuses = make([]statusRange, 0, len(cfg.ValidStatusCodes))
		for _, s := range cfg.ValidStatusCodes {
			r, _ := parseStatus(s)
			h.statuses = append(h.statuses, r)
		}
	}
	if len(cfg.BodyMustMatch)+len(cfg.BodyMustNotMatch)+len(cfg.JSON) == 0 {
		return h, nil
	}
	m := &bodyMatchers{}
	for _, re := range cfg.BodyMustMatch {
		m.must = append(m.must, regexp.MustCompile(re))
	}
	for _, re := range cfg.BodyMustNotMatch {
		m.not = append(m.not, regexp.MustCompile(re))
	}
	for _, j := range cfg.JSON {
		x, _ := jp.ParseString(j.Path)
		cj := compiledJSON{JSONExpect: j, path: x}
		if j.Matches != "" {
			cj.matches = regexp.MustCompile(j.Matches)
		}
		m.json = append(m.json, cj)
	}
	h.match = m
	return h, nil
}

// phaseTimer collects httptrace timestamps. Redirects add up: the phases
// describe the whole run, as the operator experiences it.
type phaseTimer struct {
	dnsStart, connStart, tlsStart, wrote, firstByte time.Time
	dns, connect, tls                               time.Duration
}

func (t *phaseTimer) trace() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{
		DNSStart:          func(httptrace.DNSStartInfo) { t.dnsStart = time.Now() },
		DNSDone:           func(httptrace.DNSDoneInfo) { t.dns += time.Since(t.dnsStart) },
		ConnectStart:      func(string, string) { t.connStart = time.Now() },
		ConnectDone:       func(string, string, error) { t.connect += time.Since(t.connStart) },
		TLSHandshakeStart: func() { t.tlsStart = time.Now() },
		TLSHandshakeDone:  func(tls.ConnectionState, error) { t.tls += time.Since(t.tlsStart) },
		WroteRequest:      func(httptrace.WroteRequestInfo) { t.wrote = time.Now() },
		GotFirstResponseByte: func() {
			t.firstByte = time.Now()
		},
	}
}

// Probe sends the request and checks the response.
func (h *HTTP) Probe(ctx context.Context, log *slog.Logger) probes.Result {
	var res probes.Result
	t := &phaseTimer{}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, t.trace()), h.cfg.Method, h.cfg.URL, strings.NewReader(h.cfg.Body))
	if err != nil {
		return probes.Failf(probes.ReasonError, "build request: %v", err)
	}
	req.Close = true // one request per connection: "Connection: close"
	for k, v := range h.cfg.Headers {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "vigil")
	}
	client := &http.Client{Transport: h.transport, CheckRedirect: h.checkRedirect}
	resp, err := client.Do(req)
	h.addPhases(&res, t, time.Time{})
	if err != nil {
		res.Reason = neterr.Classify(err)
		res.Message = fmt.Sprintf("%s %s: %v", h.cfg.Method, h.cfg.URL, unwrapURLError(err))
		return res
	}
	defer resp.Body.Close()

	// The body is kept only for the matchers; otherwise it is counted
	// through io.Discard's pooled buffer rather than read into a new one.
	var (
		body    []byte
		size    int64
		readErr error
	)
	limited := io.LimitReader(resp.Body, h.cfg.MaxBodyBytes+1)
	if h.match != nil {
		body, readErr = io.ReadAll(limited)
		size = int64(len(body))
	} else {
		size, readErr = io.Copy(io.Discard, limited)
	}
	res.Phases = res.Phases[:0]
	h.addPhases(&res, t, time.Now())

	res.Values = slices.Grow(res.Values, 4)
	res.AddKeyValue("vigil_http_status_code", float64(resp.StatusCode))
	res.AddValue("vigil_http_response_bytes", float64(size))
	res.AddValue("vigil_http_version", httpVersion(resp))
	res.AddValue("vigil_http_redirects", float64(redirectCount(resp)))
	reason, msg := tlsconfig.Values(&res, resp.TLS, time.Duration(h.cfg.CertExpiryMin))

	fail := func(r probes.Reason, format string, args ...any) probes.Result {
		res.Reason, res.Message = r, fmt.Sprintf(format, args...)
		return res
	}
	switch {
	case readErr != nil:
		return fail(neterr.Classify(readErr), "reading the response body: %v", readErr)
	case size > h.cfg.MaxBodyBytes:
		return fail(probes.ReasonResponseTooLarge, "response body larger than max_body_bytes (%d)", h.cfg.MaxBodyBytes)
	case !h.statusOK(resp.StatusCode):
		return fail(probes.ReasonStatusMismatch, "status %d, want %s", resp.StatusCode, strings.Join(h.cfg.ValidStatusCodes, ", "))
	case h.cfg.HTTPVersion == "2" && resp.ProtoMajor != 2:
		return fail(probes.ReasonStatusMismatch, "server answered %s, want HTTP/2", resp.Proto)
	case reason != probes.ReasonNone:
		return fail(reason, "%s", msg)
	}
	if h.match != nil {
		if r, m := h.match.check(body); r != probes.ReasonNone {
			return fail(r, "%s", m)
		}
	}
	res.Success = true
	return res
}

// checkRedirect is the client's redirect policy: follow_redirects and
// max_redirects.
func (h *HTTP) checkRedirect(req *http.Request, via []*http.Request) error {
	if !h.cfg.FollowRedirects {
		return http.ErrUseLastResponse
	}
	if len(via) > h.cfg.MaxRedirects {
		return fmt.Errorf("stopped after %d redirects", h.cfg.MaxRedirects)
	}
	return nil
}

// check matches the body against the expectations in the order the
// config lists them: body_must_match, body_must_not_match, json.
func (m *bodyMatchers) check(body []byte) (probes.Reason, string) {
	for _, re := range m.must {
		if !re.Match(body) {
			return probes.ReasonBodyMismatch, fmt.Sprintf("body does not match %q", re.String())
		}
	}
	for _, re := range m.not {
		if re.Match(body) {
			return probes.ReasonBodyMismatch, fmt.Sprintf("body matches %q", re.String())
		}
	}
	if len(m.json) > 0 {
		return m.checkJSON(body)
	}
	return probes.ReasonNone, ""
}

func (h *HTTP) statusOK(code int) bool {
	for _, r := range h.statuses {
		if code >= r.lo && code <= r.hi {
			return true
		}
	}
	return false
}

func (m *bodyMatchers) checkJSON(body []byte) (probes.Reason, string) {
	doc, err := oj.Parse(body)
	if err != nil {
		return probes.ReasonBodyMismatch, fmt.Sprintf("body is not JSON: %v", err)
	}
	for _, j := range m.json {
		got, ok := j.path.FirstFound(doc)
		if !ok {
			return probes.ReasonBodyMismatch, fmt.Sprintf("JSON %s not found", j.Path)
		}
		s := jsonString(got)
		switch {
		case j.Equals != nil && s != *j.Equals:
			return probes.ReasonBodyMismatch, fmt.Sprintf("JSON %s is %s, want %s", j.Path, truncate(s, 80), *j.Equals)
		case j.matches != nil && !j.matches.MatchString(s):
			return probes.ReasonBodyMismatch, fmt.Sprintf("JSON %s is %s, does not match %q", j.Path, truncate(s, 80), j.Matches)
		}
	}
	return probes.ReasonNone, ""
}

// jsonString renders a JSON value for comparison: strings as themselves,
// everything else as compact JSON (42, true, null, {"a":1}).
func jsonString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return oj.JSON(v, &oj.Options{Sort: true})
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func (h *HTTP) addPhases(res *probes.Result, t *phaseTimer, bodyDone time.Time) {
	if res.Phases == nil {
		res.Phases = make([]probes.Phase, 0, 5)
	}
	add := func(name string, d time.Duration) {
		res.Phases = append(res.Phases, probes.Phase{Name: name, Duration: d})
	}
	add("dns", t.dns)
	add("connect", t.connect)
	add("tls", t.tls)
	if !t.firstByte.IsZero() && !t.wrote.IsZero() {
		add("first_byte", t.firstByte.Sub(t.wrote))
	}
	if !bodyDone.IsZero() && !t.firstByte.IsZero() {
		add("transfer", bodyDone.Sub(t.firstByte))
	}
}

func httpVersion(resp *http.Response) float64 {
	return float64(resp.ProtoMajor) + float64(min(max(resp.ProtoMinor, 0), 9))/10
}

// redirectCount walks the chain of responses that led to this one.
func redirectCount(resp *http.Response) int {
	n := 0
	for r := resp.Request; r != nil && r.Response != nil; r = r.Response.Request {
		n++
	}
	return n
}

// unwrapURLError drops net/http's `Get "url":` prefix; the message names the URL already.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Diagnose traces the path to the host when the request did not get through.
func (h *HTTP) Diagnose(ctx context.Context, log *slog.Logger, failed probes.Result) map[string]any {
	if !h.cfg.TracerouteOnFailure || !tracerouteWorthy(failed.Reason) {
		return nil
	}
	u, err := url.Parse(h.cfg.URL)
	if err != nil {
		return nil
	}
	return traceDiagnostics(ctx, log, u.Hostname())
}
