package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxResponse bounds how much of a receiver's answer is read.
const maxResponse = 64 << 10

// Post sends body to url with the given headers and classifies the answer
// for the outbox: 2xx is delivered (the response body is returned), 429 and
// 5xx are retried (honouring Retry-After), connection errors are retried,
// and any other status is permanent. Error messages carry the status and a
// short excerpt of the answer but never the URL, which for chat robots
// holds the access token.
func Post(ctx context.Context, client *http.Client, url, contentType string, body []byte, header http.Header) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, Permanent(fmt.Errorf("build request: %w", redactURL(err)))
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Content-Type", contentType)
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "vigil")
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("send: %w", redactURL(err))
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if resp.StatusCode/100 == 2 {
		return data, nil
	}
	err = fmt.Errorf("receiver answered %s: %s", resp.Status, Excerpt(data))
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode/100 == 5:
		if d := retryAfter(resp.Header.Get("Retry-After"), time.Now()); d > 0 {
			return nil, &RetryAfterError{Err: err, After: d}
		}
		return nil, err
	case resp.StatusCode == http.StatusRequestTimeout:
		return nil, err
	default:
		return nil, Permanent(err)
	}
}

// redactURL drops the URL from net/http's errors (*url.Error prints it,
// query string and all).
func redactURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// Excerpt shortens a receiver's answer for an error message: whitespace
// folded, at most 200 bytes, "(empty body)" when there is nothing to show.
func Excerpt(b []byte) string {
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "(empty body)"
	}
	return Truncate(strings.Join(strings.Fields(s), " "), 200)
}

// retryAfter parses a Retry-After header (seconds or an HTTP date).
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// EncodeJSON renders v as JSON without escaping <, > and &: chat messages
// use them for mentions (<at id=all>, <@userid>), links (<url|text>) and
// query strings, and escaping them only grows a message towards its
// receiver's size limit.
func EncodeJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// PostJSON encodes v with EncodeJSON and sends it with Post. A payload
// that does not encode fails the same way on every retry: permanent.
func PostJSON(ctx context.Context, client *http.Client, url string, v any, header http.Header) ([]byte, error) {
	body, err := EncodeJSON(v)
	if err != nil {
		return nil, Permanent(err)
	}
	return Post(ctx, client, url, "application/json", body, header)
}
