// Package aliyun is what the Aliyun (Alibaba Cloud) SMS and voice
// integrations share: the AccessKey settings, the ACS3-HMAC-SHA256 (V3)
// request signature, and one signed call of an RPC-style API whose JSON
// answer's Code says whether the outbox retries.
//
// Both APIs (dysmsapi SendSms, dyvmsapi SingleCallByTts, version
// 2017-05-25) are RPC style: every parameter goes in the query string of
// a POST to "/", the body is empty, and the V3 signature covers the query
// string and the host and x-acs-* headers. Aliyun documents V3 for every
// API its SDKs cover, RPC and ROA alike, and recommends it over the older
// RPC (V2, HMAC-SHA1) signature, which vigil does not implement.
package aliyun

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/agent/notify/internal/phonepage"
	"github.com/vigil-project/vigil/internal/confkit"
)

// Credentials are an entry's AccessKey pair, inlined into its config:
// each an environment reference or a file, never written in the config.
type Credentials struct {
	AccessKeyID         confkit.Secret `yaml:"access_key_id" json:"access_key_id,omitzero"`
	AccessKeyIDFile     string         `yaml:"access_key_id_file" json:"access_key_id_file,omitempty"`
	AccessKeySecret     confkit.Secret `yaml:"access_key_secret" json:"access_key_secret,omitzero"`
	AccessKeySecretFile string         `yaml:"access_key_secret_file" json:"access_key_secret_file,omitempty"`
	// Endpoint is the API's address, https://<product>.aliyuncs.com by
	// default; a regional endpoint, a private cloud's or a test's fake.
	Endpoint string `yaml:"endpoint" json:"endpoint,omitempty"`
}

// Validate checks the credentials and the endpoint.
func (c *Credentials) Validate() error {
	errs := []error{
		notify.CheckSecret("access_key_id", c.AccessKeyID, c.AccessKeyIDFile, true),
		notify.CheckSecret("access_key_secret", c.AccessKeySecret, c.AccessKeySecretFile, true),
	}
	if c.Endpoint != "" {
		if err := notify.CheckURL(c.Endpoint, "an http(s) URL such as https://dysmsapi.aliyuncs.com"); err != nil {
			errs = append(errs, confkit.FieldErrorf("endpoint", "%w", err))
		}
	}
	return errors.Join(errs...)
}

// API is one RPC-style API of one product.
type API struct {
	// Name starts every error ("aliyun_sms").
	Name            string
	Action, Version string
	// DefaultEndpoint is used when the entry sets none.
	DefaultEndpoint string
}

// Client calls an API with an entry's credentials.
type Client struct {
	api      API
	endpoint *url.URL
	keyID    string
	secret   string
	http     *http.Client
	// Redact hides the AccessKey pair from every error.
	Redact *notify.Redactor
	// Now and Nonce are the signing clock and nonce; tests fix them.
	Now   func() time.Time
	Nonce func() string
}

// NewClient reads the credentials (their files at load, so an unreadable
// one fails the load rather than the first page).
func NewClient(api API, c Credentials, client *http.Client) (*Client, error) {
	id, err := notify.ReadSecret("access_key_id", c.AccessKeyID, c.AccessKeyIDFile)
	if err != nil {
		return nil, err
	}
	secret, err := notify.ReadSecret("access_key_secret", c.AccessKeySecret, c.AccessKeySecretFile)
	if err != nil {
		return nil, err
	}
	ep := c.Endpoint
	if ep == "" {
		ep = api.DefaultEndpoint
	}
	u, err := url.Parse(ep)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("endpoint: must be an http(s) URL")
	}
	if client == nil {
		client = http.DefaultClient
	}
	return &Client{api: api, endpoint: u, keyID: id.Reveal(), secret: secret.Reveal(), http: client,
		// An AccessKey ID is shorter than notify.MinHidden only when
		// it is not a real one; hide both whatever their length.
		Redact: notify.NewRedactor(1, id.Reveal(), secret.Reveal()),
		Now:    time.Now, Nonce: nonce}, nil
}

func nonce() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Answer is the JSON answer of an RPC API: Code "OK" on success.
type Answer struct {
	Code      string `json:"Code"`
	Message   string `json:"Message"`
	RequestID string `json:"RequestId"`
	// BizId (SendSms) and CallId (SingleCallByTts) identify what was sent.
	BizID  string `json:"BizId"`
	CallID string `json:"CallId"`
}

// Call signs and sends one call with params and classifies its answer:
// nil for Code "OK", else an error whose class follows Classify and whose
// message carries Aliyun's code, message and request id, with the
// credentials removed. The error does not start with the API's name: the
// integration names it once for all its numbers.
func (c *Client) Call(ctx context.Context, params map[string]string) (*Answer, error) {
	a, err := c.call(ctx, params)
	return a, c.Redact.Scrub(err)
}

func (c *Client) call(ctx context.Context, params map[string]string) (*Answer, error) {
	u := *c.endpoint
	path := u.Path
	if path == "" {
		path = "/"
	}
	u.Path, u.RawPath = path, ""
	u.RawQuery = CanonicalQuery(params)
	s := Sign(Request{Method: http.MethodPost, Path: path, Query: params, Headers: map[string]string{"host": u.Host}},
		c.api.Action, c.api.Version, c.keyID, c.secret, c.Now(), c.Nonce())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(nil))
	if err != nil {
		return nil, notify.Permanent(errors.New("build request: bad endpoint"))
	}
	for k, v := range s.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "vigil")
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			// Its URL holds the phone number and parameters.
			err = fmt.Errorf("%s: %w", ue.Op, ue.Err)
		}
		return nil, fmt.Errorf("send: %w", err)
	}
	defer resp.Body.Close()
	body := phonepage.ReadAnswer(resp.Body)
	var a Answer
	if json.Unmarshal(body, &a) != nil || a.Code == "" {
		// Not Aliyun's answer: a proxy's, a load balancer's.
		err := fmt.Errorf("answered %s: %s", resp.Status, c.Redact.Excerpt(string(body)))
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode/100 == 5 {
			return nil, err
		}
		return nil, notify.Permanent(err)
	}
	if a.Code == "OK" {
		return &a, nil
	}
	return &a, Classify(a.Code, fmt.Errorf("%s: %s (request %s)", a.Code, c.Redact.Excerpt(a.Message), a.RequestID))
}

// Wait after Aliyun's per-number flow control: its limits count per
// minute and hour.
const NumberLimitWait = time.Minute

// Classify says how the outbox treats Aliyun's error code: per-number flow
// control is retried after NumberLimitWait; API throttling and server-side
// failures are retried at the outbox's pace; anything else (a template or
// signature not approved, a bad number, a wrong AccessKey, an account out
// of credit or over its daily limit) fails the same way on every retry and
// is permanent.
func Classify(code string, err error) error {
	switch {
	case code == "isv.BUSINESS_LIMIT_CONTROL":
		return &notify.RetryAfterError{Err: err, After: NumberLimitWait}
	case strings.HasPrefix(code, "Throttling"), code == "ServiceUnavailable", code == "InternalError",
		code == "SignatureNonceUsed", strings.HasPrefix(code, "isp.") && code != "isp.RAM_PERMISSION_DENY":
		return err
	default:
		return notify.Permanent(err)
	}
}
