package invoice

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/ohler55/ojg/jp"
	"github.com/ohler55/ojg/oj"

	"github.com/vigil-project/vigil/internal/confkit"
	"github.com/vigil-project/vigil/probes/internal/tlsconfig"
)

// HTTPClientConfig is how a check reaches an HTTP API: base URL, headers,
// an optional bearer token (a secret) and TLS settings.
type HTTPClientConfig struct {
	URL         string            `yaml:"url"`
	Headers     map[string]string `yaml:"headers,omitempty"`
	BearerToken confkit.Secret    `yaml:"bearer_token,omitempty"`
	TLS         tlsconfig.Config  `yaml:"tls_config,omitempty"`
	// MaxBodyBytes bounds every response read.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
}

func (c *HTTPClientConfig) validate(prefix string) []error {
	var errs []error
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		errs = append(errs, confkit.FieldErrorf(prefix+"url", "required"))
	case err != nil:
		errs = append(errs, confkit.FieldErrorf(prefix+"url", "%v", err))
	case u.Scheme != "http" && u.Scheme != "https":
		errs = append(errs, confkit.FieldErrorf(prefix+"url", "scheme must be http or https, got %q", u.Scheme))
	case u.Host == "":
		errs = append(errs, confkit.FieldErrorf(prefix+"url", "no host in %q", c.URL))
	}
	for k := range c.Headers {
		if strings.EqualFold(k, "Authorization") {
			errs = append(errs, confkit.FieldErrorf(prefix+"headers."+k, "put credentials in bearer_token (a secret), not in a plain header"))
		}
	}
	if c.MaxBodyBytes < 1024 {
		errs = append(errs, confkit.FieldErrorf(prefix+"max_body_bytes", "must be at least 1024"))
	}
	errs = append(errs, c.TLS.Validate(prefix+"tls_config.")...)
	return errs
}

// apiClient makes the check's requests. It keeps no connections between
// runs (DisableKeepAlives) so every run measures a fresh connection, as a
// client of the invoice platform would see it after an idle hour.
type apiClient struct {
	cfg    *HTTPClientConfig
	base   string
	client *http.Client
}

func newAPIClient(cfg *HTTPClientConfig) (*apiClient, error) {
	u, _ := url.Parse(cfg.URL)
	tlsCfg, err := cfg.TLS.Build(u.Hostname())
	if err != nil {
		return nil, err
	}
	return &apiClient{cfg: cfg, base: strings.TrimRight(cfg.URL, "/"), client: &http.Client{
		Transport: &http.Transport{TLSClientConfig: tlsCfg, DisableKeepAlives: true, Proxy: http.ProxyFromEnvironment},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}, nil
}

// response is a read API response.
type response struct {
	status int
	ctype  string
	body   []byte
}

// errAPI is an answer outside 2xx.
type errAPI struct {
	status int
	body   string
}

func (e *errAPI) Error() string {
	if e.body == "" {
		return fmt.Sprintf("HTTP %d", e.status)
	}
	return fmt.Sprintf("HTTP %d: %s", e.status, e.body)
}

// do sends a request to base+path and reads the answer; a non-2xx status
// is an *errAPI.
func (c *apiClient) do(ctx context.Context, method, path string, body []byte) (*response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "vigil-invoice-check")
	for k, v := range c.cfg.Headers {
		req.Header.Set(k, v)
	}
	if c.cfg.BearerToken.IsSet() {
		req.Header.Set("Authorization", "Bearer "+c.cfg.BearerToken.Reveal())
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxBodyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	if int64(len(b)) > c.cfg.MaxBodyBytes {
		return nil, fmt.Errorf("response larger than %d bytes", c.cfg.MaxBodyBytes)
	}
	r := &response{status: resp.StatusCode, ctype: resp.Header.Get("Content-Type"), body: b}
	if resp.StatusCode/100 != 2 {
		return r, &errAPI{status: resp.StatusCode, body: snippet(b)}
	}
	return r, nil
}

// snippet is a short, printable excerpt of a body for messages.
func snippet(b []byte) string {
	s := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.TrimSpace(string(b)))
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

// jsonFields reads named JSONPath expressions from a JSON document.
type jsonFields map[string]jp.Expr

func compileFields(paths map[string]string, prefix string) (jsonFields, []error) {
	out := jsonFields{}
	var errs []error
	for name, p := range paths {
		x, err := jp.ParseString(p)
		if err != nil || p == "" {
			errs = append(errs, confkit.FieldErrorf(prefix+name, "invalid JSONPath %q", p))
			continue
		}
		out[name] = x
	}
	return out, errs
}

// parseJSON parses a document for field extraction.
func parseJSON(b []byte) (any, error) {
	v, err := oj.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("response is not JSON: %w", err)
	}
	return v, nil
}

// str returns a field as a string ("" and false when absent).
func (f jsonFields) str(doc any, name string) (string, bool) {
	x, ok := f[name]
	if !ok {
		return "", false
	}
	got := x.Get(doc)
	if len(got) == 0 || got[0] == nil {
		return "", false
	}
	switch v := got[0].(type) {
	case string:
		return v, true
	case bool:
		if v {
			return "true", true
		}
		return "false", true
	case int64:
		return fmt.Sprint(v), true
	case float64:
		return fmt.Sprint(v), true
	default:
		return oj.JSON(v), true
	}
}

// isTimeout reports whether err is the run's deadline running out.
func isTimeout(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
