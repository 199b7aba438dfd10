// Package aliyuntest is a fake Aliyun RPC API for the SMS and voice
// integrations' tests: it verifies each request's ACS3-HMAC-SHA256
// signature the way the gateway does — from the request as received, with
// its own canonicalisation, not the client's code — checks the action and
// version, records the parameters and answers as told.
package aliyuntest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
)

// Call is one request the fake accepted.
type Call struct {
	Params map[string]string
	Header http.Header
}

// Fake is the fake API.
type Fake struct {
	*httptest.Server
	t               *testing.T
	keyID, secret   string
	action, version string

	mu     sync.Mutex
	calls  []Call
	answer func(c Call) (status int, body string)
	nonces map[string]bool
	// lenient: a rejected request is answered, not a test failure.
	lenient bool
}

// Lenient makes a rejected request (a bad signature, a wrong action) an
// answer only, for tests of that rejection; by default it fails the test.
func (f *Fake) Lenient() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lenient = true
}

// New starts a fake that expects requests signed with keyID and secret for
// action and version, answering Code "OK" until told otherwise; it stops
// with the test.
func New(t *testing.T, keyID, secret, action, version string) *Fake {
	f := &Fake{t: t, keyID: keyID, secret: secret, action: action, version: version, nonces: map[string]bool{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

// Answer makes the fake answer each accepted call with fn's status and
// body.
func (f *Fake) Answer(fn func(c Call) (int, string)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answer = fn
}

// Calls are the calls accepted so far.
func (f *Fake) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Call(nil), f.calls...)
}

func (f *Fake) fail(w http.ResponseWriter, code, msg string) {
	f.mu.Lock()
	lenient := f.lenient
	f.mu.Unlock()
	if !lenient {
		f.t.Errorf("fake aliyun: %s: %s", code, msg)
	}
	w.WriteHeader(http.StatusBadRequest)
	fmt.Fprintf(w, `{"Code":%q,"Message":%q,"RequestId":"FAKE-REJECTED"}`, code, msg)
}

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		f.fail(w, "InvalidAction", fmt.Sprintf("%s %s, want POST /", r.Method, r.URL.Path))
		return
	}
	if a, v := r.Header.Get("x-acs-action"), r.Header.Get("x-acs-version"); a != f.action || v != f.version {
		f.fail(w, "InvalidAction.NotFound", fmt.Sprintf("action %q version %q, want %q %q", a, v, f.action, f.version))
		return
	}
	if msg := f.verify(r, body); msg != "" {
		f.fail(w, "SignatureDoesNotMatch", msg)
		return
	}
	params := map[string]string{}
	for k, vs := range r.URL.Query() {
		params[k] = vs[0]
	}
	c := Call{Params: params, Header: r.Header.Clone()}
	f.mu.Lock()
	f.calls = append(f.calls, c)
	answer := f.answer
	f.mu.Unlock()
	status, out := 200, `{"Code":"OK","Message":"OK","RequestId":"FAKE-1","BizId":"900619746936498440^0","CallId":"116012854210^102814"}`
	if answer != nil {
		status, out = answer(c)
	}
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, out)
}

// verify recomputes the signature from the received request; it returns
// what is wrong, or "".
func (f *Fake) verify(r *http.Request, body []byte) string {
	auth := r.Header.Get("Authorization")
	rest, ok := strings.CutPrefix(auth, "ACS3-HMAC-SHA256 ")
	if !ok {
		return "authorization is not ACS3-HMAC-SHA256: " + auth
	}
	fields := map[string]string{}
	for _, kv := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(kv, "=")
		fields[k] = v
	}
	if fields["Credential"] != f.keyID {
		return "unknown AccessKey ID"
	}
	sum := sha256.Sum256(body)
	if r.Header.Get("x-acs-content-sha256") != hex.EncodeToString(sum[:]) {
		return "x-acs-content-sha256 does not match the body"
	}
	nonce := r.Header.Get("x-acs-signature-nonce")
	if nonce == "" || r.Header.Get("x-acs-date") == "" {
		return "x-acs-signature-nonce or x-acs-date missing"
	}
	signed := strings.Split(fields["SignedHeaders"], ";")
	if !sort.StringsAreSorted(signed) {
		return "SignedHeaders not sorted"
	}
	// Every x-acs-* header and host must be signed.
	want := map[string]bool{"host": true}
	for k := range r.Header {
		if lk := strings.ToLower(k); strings.HasPrefix(lk, "x-acs-") {
			want[lk] = true
		}
	}
	for _, h := range signed {
		delete(want, h)
	}
	if len(want) > 0 {
		return fmt.Sprintf("headers not signed: %v", want)
	}
	var canonHeaders strings.Builder
	for _, h := range signed {
		v := r.Header.Get(h)
		if h == "host" {
			v = r.Host
		}
		canonHeaders.WriteString(h + ":" + strings.TrimSpace(v) + "\n")
	}
	// The query as the gateway reads it, re-encoded the documented way.
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return "query does not parse"
	}
	names := make([]string, 0, len(q))
	for k := range q {
		names = append(names, k)
	}
	sort.Strings(names)
	enc := func(s string) string {
		return strings.NewReplacer("+", "%20", "*", "%2A", "%7E", "~").Replace(url.QueryEscape(s))
	}
	var pairs []string
	for _, k := range names {
		pairs = append(pairs, enc(k)+"="+enc(q.Get(k)))
	}
	canonical := "POST\n/\n" + strings.Join(pairs, "&") + "\n" + canonHeaders.String() + "\n" +
		fields["SignedHeaders"] + "\n" + hex.EncodeToString(sum[:])
	hashed := sha256.Sum256([]byte(canonical))
	mac := hmac.New(sha256.New, []byte(f.secret))
	io.WriteString(mac, "ACS3-HMAC-SHA256\n"+hex.EncodeToString(hashed[:]))
	if got := hex.EncodeToString(mac.Sum(nil)); !hmac.Equal([]byte(got), []byte(fields["Signature"])) {
		return "signature mismatch; canonical request was:\n" + canonical
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.nonces[nonce] {
		return "nonce reused"
	}
	f.nonces[nonce] = true
	return ""
}

// JSON renders an answer body.
func JSON(code, message string) string {
	b, _ := json.Marshal(map[string]string{"Code": code, "Message": message, "RequestId": "FAKE-2"})
	return string(b)
}
