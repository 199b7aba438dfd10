package runbook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/vigil-project/vigil/internal/confkit"
)

// HTTPStep calls an API (the gateway's switch, an issuer's resync).
type HTTPStep struct {
	Method  string            `yaml:"method" json:"method"`
	URL     string            `yaml:"url" json:"url"`
	Headers map[string]string `yaml:"headers" json:"headers,omitempty"`
	// Body is a template; label values in it are JSON-escaped when
	// BodyFormat is json (the default when it starts with { or [).
	Body         string `yaml:"body" json:"body,omitempty"`
	ExpectStatus []int  `yaml:"expect_status" json:"expect_status,omitempty"`
	// IdempotencyKey sends Idempotency-Key: <run id>-<step> so a retried or
	// resumed step is recognised by a target that supports it.
	IdempotencyKey bool `yaml:"idempotency_key" json:"idempotency_key,omitempty"`
	// FencingHeader carries the lock's fencing token (default
	// X-Vigil-Fencing-Token) so a target can refuse a stale holder.
	FencingHeader string `yaml:"fencing_header" json:"fencing_header,omitempty"`
}

// DefaultFencingHeader is the header an http step sends the lock's
// fencing token in unless it names another.
const DefaultFencingHeader = "X-Vigil-Fencing-Token"

func init() {
	RegisterStep(StepKind[HTTPStep]{
		Key:      "http",
		Defaults: (*HTTPStep).setDefaults,
		Validate: func(h *HTTPStep) error {
			h.Method = strings.ToUpper(h.Method)
			var errs []error
			if h.URL == "" {
				errs = append(errs, confkit.FieldErrorf("url", "is required"))
			}
			errs = append(errs, checkTemplate("url", h.URL), checkTemplate("body", h.Body))
			for k, v := range h.Headers {
				errs = append(errs, checkTemplate("headers."+k, v))
			}
			return errors.Join(errs...)
		},
		Render:  renderHTTP,
		Execute: doHTTP,
	})
}

// setDefaults fills the fields left unset.
func (h *HTTPStep) setDefaults() {
	if h.Method == "" {
		h.Method = http.MethodPost
	}
	if len(h.ExpectStatus) == 0 {
		h.ExpectStatus = []int{200, 201, 202, 204}
	}
	if h.FencingHeader == "" {
		h.FencingHeader = DefaultFencingHeader
	}
}

// renderHTTP renders the URL percent-encoded, a JSON body as JSON string
// contents (and refuses one that stops being JSON), headers without
// control characters.
func renderHTTP(h *HTTPStep, d Data, r *RenderedStep) error {
	f := fieldRenderer{d: d}
	r.Method = h.Method
	r.URL = f.render(ctxURL, h.URL)
	body := strings.TrimSpace(h.Body)
	if strings.HasPrefix(body, "{") || strings.HasPrefix(body, "[") {
		r.Body = f.render(ctxJSON, h.Body)
		if f.err == nil && !json.Valid([]byte(r.Body)) {
			f.err = fmt.Errorf("rendered body is not valid JSON: %s", r.Body)
		}
	} else {
		r.Body = f.render(ctxText, h.Body)
	}
	if len(h.Headers) > 0 {
		r.Headers = map[string]string{}
		for k, v := range h.Headers {
			r.Headers[k] = f.render(ctxHeader, v)
		}
	}
	return f.err
}

func doHTTP(ctx context.Context, h *HTTPStep, r RenderedStep, env Env) (Outcome, error) {
	var body io.Reader
	if r.Body != "" {
		body = strings.NewReader(r.Body)
	}
	req, err := http.NewRequestWithContext(ctx, h.Method, r.URL, body)
	if err != nil {
		return Outcome{}, fmt.Errorf("build request: %w", err)
	}
	for k, v := range r.Headers {
		req.Header.Set(k, v)
	}
	if r.Body != "" && req.Header.Get("Content-Type") == "" {
		if json := strings.TrimSpace(r.Body); strings.HasPrefix(json, "{") || strings.HasPrefix(json, "[") {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	if h.IdempotencyKey {
		req.Header.Set("Idempotency-Key", env.RunID+"-"+r.Name)
	}
	if env.Fencing > 0 {
		req.Header.Set(h.FencingHeader, strconv.FormatInt(env.Fencing, 10))
	}
	client := env.HTTP
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return Outcome{}, err
	}
	defer resp.Body.Close()
	// Only what is kept is read: a large body is not drained to count it.
	out := &boundedBuffer{max: maxHTTPOutput, uncounted: true}
	io.Copy(out, io.LimitReader(resp.Body, maxHTTPOutput+redactSlack+1))
	o := Outcome{Status: resp.StatusCode, Output: out.text(env.Redactor)}
	if !slices.Contains(h.ExpectStatus, resp.StatusCode) {
		return o, fmt.Errorf("status %d, expected %v", resp.StatusCode, h.ExpectStatus)
	}
	return o, nil
}

// maxHTTPOutput bounds the response body an http step keeps.
const maxHTTPOutput = 4 << 10
