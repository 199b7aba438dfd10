package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"
)

// Chat robots (DingTalk, WeCom, Feishu) answer HTTP 200 whatever happened:
// the outcome is a code in the JSON answer, which only the integration
// knows how to read. What they share is here.

// Unexpected is the error for a 2xx answer that is not the receiver's (a
// login page, a proxy's): the address points somewhere else, which no
// retry fixes. what names the receiver ("robot", "bot").
func (r *Redactor) Unexpected(what string, body []byte) error {
	return Permanent(fmt.Errorf("unexpected answer from the %s address: %s", what, r.Excerpt(string(body))))
}

// ErrCodes says how a robot that answers {"errcode":0,"errmsg":"ok"}
// (DingTalk, WeCom) is retried. Any non-zero errcode it does not list
// (a bad token, a signature or keyword mismatch, a rejected payload) fails
// the same way on every retry: permanent.
type ErrCodes struct {
	// RateLimited are the errcodes of a robot over its rate limit: the
	// message is retried after RateLimitWait.
	RateLimited   []int
	RateLimitWait time.Duration
	// Busy are the errcodes of a transient server-side failure: retried
	// at the outbox's pace.
	Busy []int
}

// Check classifies a robot's answer; r redacts what the error quotes.
func (c ErrCodes) Check(body []byte, r *Redactor) error {
	var a struct {
		ErrCode *int   `json:"errcode"`
		ErrMsg  string `json:"errmsg"`
	}
	if err := json.Unmarshal(body, &a); err != nil || a.ErrCode == nil {
		return r.Unexpected("robot", body)
	}
	code := *a.ErrCode
	if code == 0 {
		return nil
	}
	err := fmt.Errorf("robot answered errcode %d: %s", code, r.Excerpt(a.ErrMsg))
	switch {
	case slices.Contains(c.RateLimited, code):
		return &RetryAfterError{Err: err, After: c.RateLimitWait}
	case slices.Contains(c.Busy, code):
		return err
	default:
		return Permanent(err)
	}
}

// Hook is the delivery the chat integrations (DingTalk, WeCom, Feishu,
// Slack) share: a JSON payload posted with their client to an address
// that holds their credential, the 2xx answer checked the integration's
// way, and errors named after it with the credentials removed.
type Hook struct {
	// Name starts every error ("dingtalk").
	Name string
	// Client carries the timeout and TLS settings; nil is
	// http.DefaultClient.
	Client *http.Client
	Redact *Redactor
}

// Send posts payload to url and checks the answer with check.
func (h Hook) Send(ctx context.Context, url string, payload any, check func(answer []byte) error) error {
	client := h.Client
	if client == nil {
		client = http.DefaultClient
	}
	answer, err := PostJSON(ctx, client, url, payload, nil)
	if err == nil {
		err = check(answer)
	}
	return h.Fail(err)
}

// Fail names err after the integration and removes the credentials from
// it; nil stays nil. Send uses it, and Notify for what fails before
// sending (a template that does not render).
func (h Hook) Fail(err error) error {
	if err == nil {
		return nil
	}
	return h.Redact.Scrub(fmt.Errorf("%s: %w", h.Name, err))
}
