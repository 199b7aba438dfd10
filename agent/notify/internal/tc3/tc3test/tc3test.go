// Package tc3test is a fake Tencent Cloud SMS API (SendSms, 2021-01-11)
// for the tests: it verifies each request's TC3-HMAC-SHA256 signature the
// way the API does — from the request as received, with its own
// canonicalisation, not the client's code — checks the action, version,
// region and timestamp, records the request and answers as told.
package tc3test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// SendSms is the request body the fake expects.
type SendSms struct {
	PhoneNumberSet   []string
	SmsSdkAppId      string
	SignName         string
	TemplateId       string
	TemplateParamSet []string
	SessionContext   string `json:",omitempty"`
}

// Call is one request the fake accepted.
type Call struct {
	Req    SendSms
	Header http.Header
}

// Fake is the fake API.
type Fake struct {
	*httptest.Server
	t             *testing.T
	id, key       string
	mu            sync.Mutex
	calls         []Call
	answer        func(c Call) (int, string)
	lenient       bool
	wantSignedHdr []string
}

// New starts a fake for the key pair id/key; it answers every number
// "Ok" until told otherwise and stops with the test.
func New(t *testing.T, id, key string) *Fake {
	f := &Fake{t: t, id: id, key: key, wantSignedHdr: []string{"content-type", "host", "x-tc-action"}}
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

// Lenient makes a rejected request an answer only, not a test failure.
func (f *Fake) Lenient() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lenient = true
}

// Calls are the calls accepted so far.
func (f *Fake) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Call(nil), f.calls...)
}

// Error renders an answer with Response.Error.
func Error(code, msg string) string {
	b, _ := json.Marshal(map[string]any{"Response": map[string]any{"Error": map[string]string{"Code": code, "Message": msg}, "RequestId": "fake-req-2"}})
	return string(b)
}

// Statuses renders a successful answer with one status per number, code
// as codes says ("Ok" for a number it does not list).
func Statuses(numbers []string, codes map[string]string) string {
	var set []map[string]any
	for _, n := range numbers {
		code, msg := "Ok", "send success"
		if c, ok := codes[n]; ok {
			code, msg = c, "refused by the fake: "+c
		}
		// Tencent answers with the number in E.164 form.
		e164 := n
		if !strings.HasPrefix(n, "+") {
			e164 = "+86" + n
		}
		set = append(set, map[string]any{"SerialNo": "2640:fake", "PhoneNumber": e164, "Fee": 1, "SessionContext": "", "Code": code, "Message": msg, "IsoCode": "CN"})
	}
	b, _ := json.Marshal(map[string]any{"Response": map[string]any{"SendStatusSet": set, "RequestId": "fake-req-1"}})
	return string(b)
}

func (f *Fake) reject(w http.ResponseWriter, code, msg string) {
	f.mu.Lock()
	lenient := f.lenient
	f.mu.Unlock()
	if !lenient {
		f.t.Errorf("fake tencent: %s: %s", code, msg)
	}
	io.WriteString(w, Error(code, msg))
}

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "application/json")
	if r.Method != http.MethodPost || r.URL.Path != "/" || r.URL.RawQuery != "" {
		f.reject(w, "InvalidParameter", fmt.Sprintf("%s %s?%s, want POST /", r.Method, r.URL.Path, r.URL.RawQuery))
		return
	}
	if a, v, reg := r.Header.Get("X-TC-Action"), r.Header.Get("X-TC-Version"), r.Header.Get("X-TC-Region"); a != "SendSms" || v != "2021-01-11" || reg == "" {
		f.reject(w, "InvalidAction", fmt.Sprintf("action %q version %q region %q", a, v, reg))
		return
	}
	if msg := f.verify(r, body); msg != "" {
		f.reject(w, "AuthFailure.SignatureFailure", msg)
		return
	}
	var req SendSms
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		f.reject(w, "InvalidParameter", "body: "+err.Error())
		return
	}
	c := Call{Req: req, Header: r.Header.Clone()}
	f.mu.Lock()
	f.calls = append(f.calls, c)
	answer := f.answer
	f.mu.Unlock()
	status, out := 200, Statuses(req.PhoneNumberSet, nil)
	if answer != nil {
		status, out = answer(c)
	}
	w.WriteHeader(status)
	io.WriteString(w, out)
}

// verify recomputes the signature from the received request; it returns
// what is wrong, or "".
func (f *Fake) verify(r *http.Request, body []byte) string {
	rest, ok := strings.CutPrefix(r.Header.Get("Authorization"), "TC3-HMAC-SHA256 ")
	if !ok {
		return "authorization is not TC3-HMAC-SHA256"
	}
	fields := map[string]string{}
	for _, kv := range strings.Split(rest, ", ") {
		k, v, _ := strings.Cut(kv, "=")
		fields[k] = v
	}
	cred := strings.Split(fields["Credential"], "/")
	if len(cred) != 4 || cred[0] != f.id || cred[2] != "sms" || cred[3] != "tc3_request" {
		return "bad credential " + fields["Credential"]
	}
	ts, err := strconv.ParseInt(r.Header.Get("X-TC-Timestamp"), 10, 64)
	if err != nil {
		return "bad X-TC-Timestamp"
	}
	if d := time.Since(time.Unix(ts, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return "AuthFailure.SignatureExpire: timestamp off by " + d.String()
	}
	if date := time.Unix(ts, 0).UTC().Format("2006-01-02"); cred[1] != date {
		return "credential date " + cred[1] + ", want the timestamp's UTC date " + date
	}
	signed := strings.Split(fields["SignedHeaders"], ";")
	if !sort.StringsAreSorted(signed) {
		return "SignedHeaders not sorted"
	}
	for _, h := range f.wantSignedHdr {
		if !containsString(signed, h) {
			return h + " not signed"
		}
	}
	var canon strings.Builder
	for _, h := range signed {
		v := r.Header.Get(h)
		if h == "host" {
			v = r.Host
		}
		canon.WriteString(h + ":" + strings.ToLower(strings.TrimSpace(v)) + "\n")
	}
	bodyHash := sha256.Sum256(body)
	canonical := "POST\n/\n\n" + canon.String() + "\n" + fields["SignedHeaders"] + "\n" + hex.EncodeToString(bodyHash[:])
	crHash := sha256.Sum256([]byte(canonical))
	toSign := "TC3-HMAC-SHA256\n" + strconv.FormatInt(ts, 10) + "\n" + cred[1] + "/sms/tc3_request\n" + hex.EncodeToString(crHash[:])
	k := hm([]byte("TC3"+f.key), cred[1])
	k = hm(k, "sms")
	k = hm(k, "tc3_request")
	if got := hex.EncodeToString(hm(k, toSign)); !hmac.Equal([]byte(got), []byte(fields["Signature"])) {
		return "signature mismatch; canonical request was:\n" + canonical
	}
	return ""
}

func hm(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	io.WriteString(m, msg)
	return m.Sum(nil)
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
