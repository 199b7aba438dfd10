// Package notifytest holds what the paging integrations' tests share: the
// invoice-QR page they send, golden files, a fake HTTP receiver, and checks
// of how errors are classified and that they show no secret. It is
// imported by tests only.
package notifytest

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/internal/confkit"
)

var update = flag.Bool("update", false, "rewrite golden files")

// Page is the invoice-QR page the tests send. The integrations were
// written against slightly different pages; their golden files fix them,
// so what differs is a field here.
type Page struct {
	// Created is when the message was queued; the alert started ten
	// minutes before.
	Created time.Time
	// ExternalURL is the agent's address; the alert's source is below it.
	ExternalURL string
	RunbookURL  string
	// GroupLabels are the message's group labels, none when nil.
	GroupLabels map[string]string
}

// Invoice is the page most tests send.
var Invoice = Page{
	Created:     time.Date(2026, 3, 9, 14, 30, 0, 0, time.UTC),
	ExternalURL: "http://vigil.example:9800",
	RunbookURL:  "https://runbooks.example/invoice-qr",
	GroupLabels: map[string]string{"alertname": "InvoiceQRFailing"},
}

// Linked is Invoice with a runbook link holding a query string, whose &
// the Slack and PagerDuty payloads must keep as it is.
var Linked = Page{
	Created:     Invoice.Created,
	ExternalURL: Invoice.ExternalURL,
	RunbookURL:  "https://runbooks.example/invoice-qr?team=billing&lang=en",
	GroupLabels: map[string]string{"alertname": "InvoiceQRFailing"},
}

// Chat is the page the chat robots' tests (DingTalk, WeCom, Feishu) send:
// an older one, without group labels.
var Chat = Page{
	Created:     time.Date(2024, 11, 14, 22, 13, 20, 0, time.UTC),
	ExternalURL: "http://vigil.example:9273",
	RunbookURL:  "https://runbooks.example/invoice-qr",
}

// Message is Invoice.Message.
func Message(resolved bool) *notify.Message { return Invoice.Message(resolved) }

// Message builds the page, firing or resolved a minute before Created.
// Every call returns a new message, which a test may change.
func (p Page) Message(resolved bool) *notify.Message {
	end := p.Created.Add(time.Hour)
	if resolved {
		end = p.Created.Add(-time.Minute)
	}
	lbls := map[string]string{"alertname": "InvoiceQRFailing", "severity": "critical", "check": "invoice-qr"}
	return &notify.Message{
		Receiver: "oncall", GroupKey: "{}:{alertname=\"InvoiceQRFailing\"}", Created: p.Created,
		GroupLabels: maps.Clone(p.GroupLabels),
		ExternalURL: p.ExternalURL,
		Alerts: []notify.Alert{{
			Labels: lbls,
			Annotations: map[string]string{
				"summary":     "Invoice QR codes do not match the amount due",
				"description": "The QR code on issued invoices encodes a different amount.",
				"runbook_url": p.RunbookURL,
			},
			StartsAt: p.Created.Add(-10 * time.Minute), EndsAt: end,
			GeneratorURL: p.ExternalURL + "/checks/invoice-qr",
			Fingerprint:  notify.Fingerprint(lbls),
			Check: &notify.CheckInfo{Name: "invoice-qr", Type: "invoice_qr", Reason: "qr_mismatch",
				Message: "amount 0.11 != 0.10", Diagnostics: []string{"hop 1 10.0.0.1 0.3ms"}},
		}},
	}
}

// Golden compares got with the file at path byte for byte; go test
// -update rewrites the file first.
func Golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n got: %s\nwant: %s", path, got, want)
	}
}

// GoldenJSON compares a JSON body with testdata/name.json, both
// re-indented (see CanonicalJSON).
func GoldenJSON(t *testing.T, name string, got []byte) {
	t.Helper()
	Golden(t, filepath.Join("testdata", name+".json"), CanonicalJSON(t, got))
}

// CanonicalJSON re-indents a JSON document, keys sorted, so golden files
// are readable and a comparison ignores formatting only.
func CanonicalJSON(t *testing.T, b []byte) []byte {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, b)
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// Decode decodes a JSON body strictly: a field T does not know fails the
// test, so a payload cannot carry what its type does not describe.
func Decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %T: %v\n%s", v, err, b)
	}
	return v
}

// Request is what a Receiver got.
type Request struct {
	Method, Path, RawQuery, ContentType string
	Query                               url.Values
	Body                                []byte
}

// Receiver is a fake receiver (a chat robot, an incoming webhook, an
// events API): it records requests and answers with the reply set by
// Reply, or else as its default says.
type Receiver struct {
	*httptest.Server
	mu    sync.Mutex
	got   []Request
	reply func(http.ResponseWriter)
}

// NewReceiver starts a receiver that answers ok unless told otherwise; it
// stops with the test.
func NewReceiver(t *testing.T, ok func(w http.ResponseWriter, r Request)) *Receiver {
	t.Helper()
	rc := &Receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := Request{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Query: r.URL.Query(),
			ContentType: r.Header.Get("Content-Type"), Body: body}
		rc.mu.Lock()
		rc.got = append(rc.got, req)
		reply := rc.reply
		rc.mu.Unlock()
		if reply == nil {
			ok(w, req)
			return
		}
		reply(w)
	}))
	t.Cleanup(rc.Close)
	return rc
}

// Reply makes the receiver answer every request with f.
func (rc *Receiver) Reply(f func(http.ResponseWriter)) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.reply = f
}

// Requests are the requests received so far.
func (rc *Receiver) Requests() []Request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]Request(nil), rc.got...)
}

// Last is the latest request; the test fails when there is none.
func (rc *Receiver) Last(t *testing.T) Request {
	t.Helper()
	got := rc.Requests()
	if len(got) == 0 {
		t.Fatal("the receiver received nothing")
	}
	return got[len(got)-1]
}

// Reply is a reply with this status, body and header (name, value, ...).
func Reply(status int, body string, header ...string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// Class is what Notify's outcome tells the outbox.
type Class int

const (
	// OK is a delivery: no error.
	OK Class = iota
	// Retry is an error the outbox retries.
	Retry
	// Permanent is an error the outbox dead-letters at once.
	Permanent
)

// AssertClass checks that err is of class and carries a RetryAfterError
// of after (none when after is 0).
func AssertClass(t *testing.T, err error, class Class, after time.Duration) {
	t.Helper()
	switch {
	case class == OK:
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	case err == nil:
		t.Fatal("no error")
	case notify.IsPermanent(err) != (class == Permanent):
		t.Errorf("permanent = %v, want %v: %v", notify.IsPermanent(err), class == Permanent, err)
	}
	var ra *notify.RetryAfterError
	switch {
	case after == 0 && errors.As(err, &ra):
		t.Errorf("unexpected retry-after %s: %v", ra.After, err)
	case after != 0 && (!errors.As(err, &ra) || ra.After != after):
		t.Errorf("want retry after %s: %v", after, err)
	}
}

// Answer is a row of a table of receiver answers: the reply, and what
// Notify must return for it.
type Answer struct {
	Name  string
	Reply func(http.ResponseWriter)
	Class Class
	// After is the retry delay the error must carry, 0 for none.
	After time.Duration
	// Msg is a part of the error's message.
	Msg string
}

// Check checks Notify's error for the answer: its class and retry delay,
// and for an error that its message starts with prefix, contains Msg and
// shows none of secrets.
func (a Answer) Check(t *testing.T, err error, prefix string, secrets ...string) {
	t.Helper()
	AssertClass(t, err, a.Class, a.After)
	if err == nil {
		return
	}
	t.Log(err)
	if !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), a.Msg) {
		t.Errorf("error %q, want %s… %q", err, prefix, a.Msg)
	}
	NoSecrets(t, err, secrets...)
}

// NoSecrets checks that err (when there is one) shows none of secrets.
func NoSecrets(t *testing.T, err error, secrets ...string) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range secrets {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error shows %q: %v", s, err)
		}
	}
}

// WantError checks an error from New: none when want is empty, else one
// containing want and showing none of secrets. It reports whether an error
// was wanted, after which the caller has nothing more to check.
func WantError(t *testing.T, err error, want string, secrets ...string) bool {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatal(err)
		}
		return false
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want one containing %q", err, want)
	}
	NoSecrets(t, err, secrets...)
	return true
}

// WantFields checks a Validate error: it joins field errors at exactly
// fields, in order, none showing one of secrets.
func WantFields(t *testing.T, err error, fields []string, secrets ...string) {
	t.Helper()
	var got []string
	for _, e := range confkit.FlattenErrors(err) {
		var fe *confkit.FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("not a field error: %v", e)
		}
		got = append(got, fe.Field)
		NoSecrets(t, e, secrets...)
	}
	if strings.Join(got, ",") != strings.Join(fields, ",") {
		t.Errorf("fields %v, want %v (%v)", got, fields, err)
	}
}

// WriteFile writes a file into dir (a secret file, say) and returns its
// path.
func WriteFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
