package email

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"io"
	"math/big"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/agent/notify/internal/notifytest"
	"github.com/vigil-project/vigil/internal/confkit"
)

const (
	username = "vigil@vigil.example"
	password = "s3cret-Pa55word!"
)

// created is when the invoice-QR page the tests send was queued.
var created = notifytest.Invoice.Created

func message(resolved bool) *notify.Message { return notifytest.Message(resolved) }

// pki is a throw-away CA and a server certificate it signed for
// 127.0.0.1 and mail.test.
type pki struct {
	server *tls.Config
	caFile string
}

func newPKI(t *testing.T) pki {
	t.Helper()
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vigil test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "mail.test"},
		DNSNames: []string{"mail.test"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return pki{caFile: caFile, server: &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: key}},
	}}
}

// mailReceived is one message the fake relay accepted.
type mailReceived struct {
	from string
	to   []string
	data string
	tls  bool
}

// relayOpts says what the fake relay offers and how it answers.
type relayOpts struct {
	starttls    bool   // offer STARTTLS
	implicitTLS bool   // TLS from the first byte
	mechs       string // "PLAIN" or "LOGIN": require AUTH with it
	// insecureAuth offers AUTH before TLS too.
	insecureAuth bool
	rcpt         func(to string) error
	data         func() error
}

// relay is an SMTP server (go-smtp) on 127.0.0.1 recording what it got.
type relay struct {
	addr string
	opts relayOpts
	mu   sync.Mutex
	got  []mailReceived
	// logins are the credentials tried, "user:password".
	logins []string
	// transcript is the SMTP dialogue as the server read and wrote it
	// (decrypted); wire is what the client sent on the TCP connection,
	// encrypted where TLS was used.
	transcript lockedBuffer
	wire       lockedBuffer
}

// recordingListener copies what clients send into a buffer, below TLS.
type recordingListener struct {
	net.Listener
	w io.Writer
}

func (l recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return recordingConn{Conn: c, w: l.w}, nil
}

type recordingConn struct {
	net.Conn
	w io.Writer
}

func (c recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.w.Write(p[:n])
	return n, err
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newRelay(t *testing.T, p pki, o relayOpts) *relay {
	t.Helper()
	return newRelayAt(t, p, o, "127.0.0.1:0")
}

func newRelayAt(t *testing.T, p pki, o relayOpts, addr string) *relay {
	t.Helper()
	r := &relay{opts: o}
	s := gosmtp.NewServer(gosmtp.BackendFunc(func(c *gosmtp.Conn) (gosmtp.Session, error) {
		return &session{r: r, c: c}, nil
	}))
	s.Domain = "mail.test"
	s.ReadTimeout, s.WriteTimeout = 10*time.Second, 10*time.Second
	s.AllowInsecureAuth = o.insecureAuth
	s.Debug = &r.transcript
	s.ErrorLog = testLogger{t}
	if o.starttls || o.implicitTLS {
		s.TLSConfig = p.server
	}
	raw, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener = recordingListener{Listener: raw, w: &r.wire}
	if o.implicitTLS {
		ln = tls.NewListener(ln, p.server)
	}
	r.addr = raw.Addr().String()
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return r
}

type testLogger struct{ t *testing.T }

func (l testLogger) Printf(format string, v ...any) { l.t.Logf(format, v...) }
func (l testLogger) Println(v ...any)               { l.t.Log(v...) }

func (r *relay) mails() []mailReceived {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]mailReceived(nil), r.got...)
}

func (r *relay) tried() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.logins...)
}

// session is one SMTP session of the relay.
type session struct {
	r      *relay
	c      *gosmtp.Conn
	authed bool
	cur    mailReceived
}

func (s *session) AuthMechanisms() []string {
	if s.r.opts.mechs == "" {
		return nil
	}
	return []string{s.r.opts.mechs}
}

func (s *session) login(user, pass string) error {
	s.r.mu.Lock()
	s.r.logins = append(s.r.logins, user+":"+pass)
	s.r.mu.Unlock()
	if user != username || pass != password {
		return gosmtp.ErrAuthFailed
	}
	s.authed = true
	return nil
}

func (s *session) Auth(mech string) (sasl.Server, error) {
	if mech == sasl.Login {
		return &loginServer{check: s.login}, nil
	}
	return sasl.NewPlainServer(func(identity, user, pass string) error { return s.login(user, pass) }), nil
}

func (s *session) Mail(from string, _ *gosmtp.MailOptions) error {
	if s.r.opts.mechs != "" && !s.authed {
		return gosmtp.ErrAuthRequired
	}
	_, isTLS := s.c.TLSConnectionState()
	s.cur = mailReceived{from: from, tls: isTLS}
	return nil
}

func (s *session) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	if s.r.opts.rcpt != nil {
		if err := s.r.opts.rcpt(to); err != nil {
			return err
		}
	}
	s.cur.to = append(s.cur.to, to)
	return nil
}

func (s *session) Data(rd io.Reader) error {
	b, err := io.ReadAll(rd)
	if err != nil {
		return err
	}
	if s.r.opts.data != nil {
		if err := s.r.opts.data(); err != nil {
			return err
		}
	}
	s.cur.data = string(b)
	s.r.mu.Lock()
	s.r.got = append(s.r.got, s.cur)
	s.r.mu.Unlock()
	return nil
}

func (s *session) Reset()        { s.cur = mailReceived{} }
func (s *session) Logout() error { return nil }

// loginServer is the server side of AUTH LOGIN, which go-sasl lacks.
type loginServer struct {
	check    func(user, pass string) error
	step     int
	username string
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	l.step++
	switch l.step {
	case 1:
		return []byte("Username:"), false, nil
	case 2:
		l.username = string(resp)
		return []byte("Password:"), false, nil
	default:
		return nil, true, l.check(l.username, string(resp))
	}
}

// config is an entry for the relay: STARTTLS verified against the test CA,
// AUTH with the right password.
func config(r *relay, p pki) Config {
	return Config{
		To: []string{"oncall@example.com", "billing-oncall@example.com"}, From: "vigil@vigil.example",
		Smarthost: r.addr, Hello: "agent-1.vigil.example",
		AuthUsername: username, AuthPassword: confkit.NewSecret(password),
		TLSConfig: TLSConfig{CAFile: p.caFile},
	}
}

func newNotifier(t *testing.T, cfg Config) *Notifier {
	t.Helper()
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

const firingBody = `### [FIRING:1] InvoiceQRFailing · invoice-qr

**InvoiceQRFailing** · critical · firing

Invoice QR codes do not match the amount due

The QR code on issued invoices encodes a different amount.

check **invoice-qr** (invoice_qr): qr_mismatch — amount 0.11 != 0.10

> hop 1 10.0.0.1 0.3ms

started 2026-03-09 14:20:00 UTC

[runbook](https://runbooks.example/invoice-qr) · [source](http://vigil.example:9800/checks/invoice-qr)
`

const resolvedBody = `### [RESOLVED] InvoiceQRFailing · invoice-qr

**InvoiceQRFailing** · critical · resolved

Invoice QR codes do not match the amount due

The QR code on issued invoices encodes a different amount.

check **invoice-qr** (invoice_qr): qr_mismatch — amount 0.11 != 0.10

> hop 1 10.0.0.1 0.3ms

started 2026-03-09 14:20:00 UTC, resolved 2026-03-09 14:29:00 UTC

[runbook](https://runbooks.example/invoice-qr) · [source](http://vigil.example:9800/checks/invoice-qr)
`

// parsed is a received message read back with net/mail.
type parsed struct {
	header map[string]string
	body   string
}

func parse(t *testing.T, data string) parsed {
	t.Helper()
	if strings.Contains(strings.ReplaceAll(data, "\r\n", ""), "\n") {
		t.Errorf("bare LF in the message: %q", data)
	}
	head, body, _ := strings.Cut(data, "\r\n\r\n")
	for _, line := range strings.Split(head, "\r\n") {
		if len(line) > 998 {
			t.Errorf("header line over RFC 5322's 998 characters: %q", line)
		}
	}
	for _, line := range strings.Split(body, "\r\n") {
		if len(line) > 76 {
			t.Errorf("body line over quoted-printable's 76 characters: %q", line)
		}
	}
	msg, err := mail.ReadMessage(strings.NewReader(data))
	if err != nil {
		t.Fatalf("not a mail message: %v\n%s", err, data)
	}
	h := map[string]string{}
	dec := &mime.WordDecoder{}
	for k, vs := range msg.Header {
		if len(vs) != 1 {
			t.Errorf("header %s appears %d times", k, len(vs))
		}
		v, err := dec.DecodeHeader(vs[0])
		if err != nil {
			t.Errorf("header %s: %v", k, err)
		}
		h[k] = v
	}
	text, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatalf("body is not quoted-printable: %v", err)
	}
	return parsed{header: h, body: strings.ReplaceAll(string(text), "\r\n", "\n")}
}

func TestSend(t *testing.T) {
	p := newPKI(t)
	dedup := message(false).DedupKey()
	msgID := "<1773066600000000000." + dedup[:20] + "@vigil.example>"
	for _, tc := range []struct {
		name     string
		opts     relayOpts
		cfg      func(Config) Config
		resolved bool
		to       []string
		header   map[string]string
		body     string
	}{
		{name: "firing", opts: relayOpts{starttls: true, mechs: sasl.Plain},
			header: map[string]string{
				"Date": "Mon, 09 Mar 2026 14:30:00 +0000", "From": "vigil@vigil.example",
				"To": "oncall@example.com, billing-oncall@example.com", "Subject": "[FIRING:1] InvoiceQRFailing · invoice-qr",
				"Message-Id": msgID, "X-Vigil-Group-Key": dedup, "Mime-Version": "1.0",
				"Content-Type": "text/plain; charset=UTF-8", "Content-Transfer-Encoding": "quoted-printable",
			}, body: firingBody},
		{name: "resolved", resolved: true, opts: relayOpts{starttls: true, mechs: sasl.Plain},
			header: map[string]string{
				"Date": "Mon, 09 Mar 2026 14:30:00 +0000", "From": "vigil@vigil.example",
				"To": "oncall@example.com, billing-oncall@example.com", "Subject": "[RESOLVED] InvoiceQRFailing · invoice-qr",
				"Message-Id": msgID, "X-Vigil-Group-Key": dedup, "Mime-Version": "1.0",
				"Content-Type": "text/plain; charset=UTF-8", "Content-Transfer-Encoding": "quoted-printable",
			}, body: resolvedBody},
		{name: "custom", opts: relayOpts{starttls: true, mechs: sasl.Login},
			cfg: func(c Config) Config {
				c.To = []string{"Astrid Ødegård <oncall@example.com>"}
				c.From = "Vigil <vigil@vigil.example>"
				c.Subject = `{{ .Status | toUpper }}: {{ .CommonAnnotations.summary }} — {{ .CommonLabels.check }}, {{ len .Alerts }} alert(s) in group {{ .GroupLabels.alertname }}`
				c.Message = "{{ range .Alerts }}{{ .Check.Message }}\n.{{ .Labels.check }} starts with a dot{{ end }}\nüber 100 %"
				c.Headers = map[string]string{"Reply-To": "Billing Team <billing@example.com>", "x-team": "{{ .CommonLabels.check }}\r\nBcc: evil@example.com",
					"X-Priority": "1"}
				return c
			},
			to: []string{"oncall@example.com"},
			header: map[string]string{
				"Date": "Mon, 09 Mar 2026 14:30:00 +0000", "From": `"Vigil" <vigil@vigil.example>`,
				"To":         "Astrid Ødegård <oncall@example.com>",
				"Subject":    "FIRING: Invoice QR codes do not match the amount due — invoice-qr, 1 alert(s) in group InvoiceQRFailing",
				"Message-Id": msgID, "X-Vigil-Group-Key": dedup, "Mime-Version": "1.0",
				"Reply-To": `"Billing Team" <billing@example.com>`, "X-Team": "invoice-qr Bcc: evil@example.com", "X-Priority": "1",
				"Content-Type": "text/plain; charset=UTF-8", "Content-Transfer-Encoding": "quoted-printable",
			}, body: "amount 0.11 != 0.10\n.invoice-qr starts with a dot\nüber 100 %\n"},
		{name: "implicit_tls", opts: relayOpts{implicitTLS: true, mechs: sasl.Plain}},
		// Without require_tls and without credentials, a relay with no TLS
		// at all is fine.
		{name: "plain_relay", opts: relayOpts{},
			cfg: func(c Config) Config {
				c.RequireTLS = new(bool)
				c.AuthUsername, c.AuthPassword = "", confkit.Secret{}
				return c
			}},
		{name: "insecure_skip_verify", opts: relayOpts{starttls: true, mechs: sasl.Plain},
			cfg: func(c Config) Config {
				c.TLSConfig = TLSConfig{InsecureSkipVerify: true}
				return c
			}},
		{name: "server_name", opts: relayOpts{starttls: true, mechs: sasl.Plain},
			cfg: func(c Config) Config {
				c.TLSConfig.ServerName = "mail.test"
				return c
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRelay(t, p, tc.opts)
			cfg := config(r, p)
			if tc.cfg != nil {
				cfg = tc.cfg(cfg)
			}
			n := newNotifier(t, cfg)
			if tc.opts.implicitTLS {
				// Port 465 cannot be had in a test.
				n.implicitTLS = true
			}
			if err := n.Notify(context.Background(), message(tc.resolved)); err != nil {
				t.Fatal(err)
			}
			got := r.mails()
			if len(got) != 1 {
				t.Fatalf("relay got %d messages, want 1", len(got))
			}
			m := got[0]
			wantTo := tc.to
			if wantTo == nil {
				wantTo = []string{"oncall@example.com", "billing-oncall@example.com"}
			}
			if m.from != "vigil@vigil.example" || !reflect.DeepEqual(m.to, wantTo) {
				t.Errorf("envelope from %q to %q, want vigil@vigil.example to %q", m.from, m.to, wantTo)
			}
			wantTLS := tc.opts.starttls || tc.opts.implicitTLS
			if m.tls != wantTLS {
				t.Errorf("sent over TLS = %v, want %v", m.tls, wantTLS)
			}
			if tc.opts.mechs != "" {
				if logins := r.tried(); !reflect.DeepEqual(logins, []string{username + ":" + password}) {
					t.Errorf("logins %q", logins)
				}
			}
			assertNoSecrets(t, nil, r)
			if tc.header == nil {
				return
			}
			notifytest.Golden(t, filepath.Join("testdata", tc.name+".eml"), []byte(m.data))
			msg := parse(t, m.data)
			if !reflect.DeepEqual(msg.header, tc.header) {
				t.Errorf("headers\n%q\nwant\n%q", msg.header, tc.header)
			}
			if msg.body != tc.body {
				t.Errorf("body\n%s\nwant\n%s", msg.body, tc.body)
			}
		})
	}
}

// TestGroupKey: every mail of a group carries the same X-Vigil-Group-Key;
// a retry is the same mail (same Message-Id), a later notification a new
// one; another group has its own key.
func TestGroupKey(t *testing.T) {
	p := newPKI(t)
	r := newRelay(t, p, relayOpts{starttls: true, mechs: sasl.Plain})
	n := newNotifier(t, config(r, p))
	later := message(true)
	later.Created = created.Add(10 * time.Minute)
	other := message(false)
	other.GroupKey = `{}:{alertname="InvoicePDFFailing"}`
	for _, m := range []*notify.Message{message(false), message(false), later, other} {
		if err := n.Notify(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	got := r.mails()
	if len(got) != 4 {
		t.Fatalf("relay got %d messages", len(got))
	}
	var keys, ids []string
	for _, m := range got {
		h := parse(t, m.data).header
		keys, ids = append(keys, h["X-Vigil-Group-Key"]), append(ids, h["Message-Id"])
	}
	if keys[0] != keys[1] || keys[0] != keys[2] || keys[0] == keys[3] || keys[0] != message(false).DedupKey() {
		t.Errorf("group keys %q", keys)
	}
	if ids[0] != ids[1] || ids[0] == ids[2] || ids[0] == ids[3] {
		t.Errorf("message ids %q: want a retry to repeat its id and other notifications to differ", ids)
	}
}

func TestErrors(t *testing.T) {
	p := newPKI(t)
	tempFail := &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "Try again later"}
	noMailbox := &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "Mailbox unavailable"}
	for _, tc := range []struct {
		name      string
		opts      relayOpts
		cfg       func(Config) Config
		permanent bool
		msg       string
		// sent is how many messages the relay accepted; tried whether it
		// saw a login attempt.
		sent  int
		tried bool
	}{
		{name: "wrong password", opts: relayOpts{starttls: true, mechs: sasl.Plain},
			cfg: func(c Config) Config {
				c.AuthPassword = confkit.NewSecret("wrong-" + password)
				return c
			}, permanent: true, msg: `email: auth: 535 "5.7.8 Authentication failed"`, tried: true},
		{name: "wrong password login", opts: relayOpts{starttls: true, mechs: sasl.Login},
			cfg: func(c Config) Config {
				c.AuthPassword = confkit.NewSecret("wrong-" + password)
				return c
			}, permanent: true, msg: "email: auth: 535", tried: true},
		// The relay would even take AUTH in clear text: the password must
		// not leave.
		{name: "no starttls", opts: relayOpts{mechs: sasl.Plain, insecureAuth: true},
			permanent: true, msg: "email: the server does not offer STARTTLS and require_tls is on: refusing to send"},
		{name: "no starttls without auth", opts: relayOpts{},
			cfg: func(c Config) Config {
				c.AuthUsername, c.AuthPassword = "", confkit.Secret{}
				return c
			}, permanent: true, msg: "does not offer STARTTLS"},
		{name: "untrusted certificate", opts: relayOpts{starttls: true, mechs: sasl.Plain},
			cfg: func(c Config) Config {
				c.TLSConfig.CAFile = ""
				return c
			}, permanent: true, msg: "email: starttls: tls: failed to verify certificate"},
		{name: "wrong server name", opts: relayOpts{starttls: true, mechs: sasl.Plain},
			cfg: func(c Config) Config {
				c.TLSConfig.ServerName = "smtp.example.com"
				return c
			}, permanent: true, msg: "email: starttls: tls: failed to verify certificate"},
		{name: "no auth offered", opts: relayOpts{starttls: true},
			permanent: true, msg: "email: auth_username is set but the server offers no AUTH"},
		{name: "4xx recipient", opts: relayOpts{starttls: true, mechs: sasl.Plain, rcpt: func(string) error { return tempFail }},
			msg: `email: rcpt to oncall@example.com: 451 "4.3.0 Try again later"`, tried: true},
		{name: "4xx second recipient", opts: relayOpts{starttls: true, mechs: sasl.Plain, rcpt: func(to string) error {
			if strings.HasPrefix(to, "billing") {
				return tempFail
			}
			return nil
		}}, msg: "email: rcpt to billing-oncall@example.com: 451", tried: true},
		{name: "5xx all recipients", opts: relayOpts{starttls: true, mechs: sasl.Plain, rcpt: func(string) error { return noMailbox }},
			permanent: true, msg: "email: rcpt to oncall@example.com: 550 \"5.1.1 Mailbox unavailable\"\nrcpt to billing-oncall@example.com: 550", tried: true},
		// One bad address must not keep the page from the others.
		{name: "5xx one recipient", opts: relayOpts{starttls: true, mechs: sasl.Plain, rcpt: func(to string) error {
			if strings.HasPrefix(to, "billing") {
				return noMailbox
			}
			return nil
		}}, permanent: true, msg: "email: sent to the other recipients, but: rcpt to billing-oncall@example.com: 550", sent: 1, tried: true},
		{name: "4xx data", opts: relayOpts{starttls: true, mechs: sasl.Plain, data: func() error { return tempFail }},
			msg: `email: data: 451 "4.3.0 Try again later"`, tried: true},
		{name: "5xx data", opts: relayOpts{starttls: true, mechs: sasl.Plain, data: func() error {
			return &gosmtp.SMTPError{Code: 554, EnhancedCode: gosmtp.EnhancedCode{5, 6, 0}, Message: "Message rejected as spam"}
		}}, permanent: true, msg: `email: data: 554 "5.6.0 Message rejected as spam"`, tried: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRelay(t, p, tc.opts)
			cfg := config(r, p)
			if tc.cfg != nil {
				cfg = tc.cfg(cfg)
			}
			n := newNotifier(t, cfg)
			err := n.Notify(context.Background(), message(false))
			if err == nil {
				t.Fatal("no error")
			}
			t.Log(err)
			if notify.IsPermanent(err) != tc.permanent {
				t.Errorf("permanent = %v, want %v", notify.IsPermanent(err), tc.permanent)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q, want one containing %q", err, tc.msg)
			}
			if got := len(r.mails()); got != tc.sent {
				t.Errorf("relay accepted %d messages, want %d", got, tc.sent)
			}
			if got := len(r.tried()) > 0; got != tc.tried {
				t.Errorf("login attempted = %v, want %v", got, tc.tried)
			}
			assertNoSecrets(t, err, r)
		})
	}
}

// assertNoSecrets checks the error and what the client sent on the wire
// (where TLS was used, the password is there but encrypted).
func assertNoSecrets(t *testing.T, err error, r *relay) {
	t.Helper()
	for _, s := range []string{password, base64.StdEncoding.EncodeToString([]byte("\x00" + username + "\x00" + password)),
		base64.StdEncoding.EncodeToString([]byte(password))} {
		if err != nil && strings.Contains(err.Error(), s) {
			t.Errorf("error shows the password: %v", err)
		}
		if strings.Contains(r.wire.String(), s) {
			t.Errorf("the password crossed the wire in clear:\n%s", r.wire.String())
		}
	}
}

// TestNoStartTLSSendsNothing spells out what the client said to a relay
// without STARTTLS: EHLO, then nothing — no AUTH, no MAIL.
func TestNoStartTLSSendsNothing(t *testing.T) {
	p := newPKI(t)
	r := newRelay(t, p, relayOpts{mechs: sasl.Plain, insecureAuth: true})
	n := newNotifier(t, config(r, p))
	if err := n.Notify(context.Background(), message(false)); err == nil {
		t.Fatal("no error")
	}
	tr := r.transcript.String()
	if !strings.Contains(tr, "EHLO agent-1.vigil.example") || !strings.Contains(tr, "AUTH PLAIN") {
		t.Fatalf("transcript lacks the EHLO or the AUTH offer:\n%s", tr)
	}
	for _, cmd := range []string{"AUTH PLAIN ", "AUTH LOGIN", "MAIL FROM", "RCPT TO", "DATA"} {
		// The server's own EHLO answer lists "AUTH PLAIN" on a line of its
		// own; a client command would be followed by its argument.
		for _, line := range strings.Split(tr, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), cmd) && !strings.HasPrefix(line, "250") {
				t.Errorf("client sent %q:\n%s", line, tr)
			}
		}
	}
}

// TestPlainAuth: without require_tls, credentials go in clear only to a
// loopback relay (as net/smtp allows); to any other address the notifier
// refuses before AUTH.
func TestPlainAuth(t *testing.T) {
	p := newPKI(t)
	noTLS := func(c Config) Config {
		c.RequireTLS = new(bool)
		return c
	}
	t.Run("loopback", func(t *testing.T) {
		r := newRelay(t, p, relayOpts{mechs: sasl.Plain, insecureAuth: true})
		if err := newNotifier(t, noTLS(config(r, p))).Notify(context.Background(), message(false)); err != nil {
			t.Fatal(err)
		}
		if len(r.mails()) != 1 {
			t.Fatal("not delivered")
		}
		// Also shows the wire check of the other tests can see a password.
		if !strings.Contains(r.wire.String(), "AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00"+username+"\x00"+password))) {
			t.Errorf("wire does not show the clear-text login:\n%s", r.wire.String())
		}
	})
	t.Run("not loopback", func(t *testing.T) {
		ip := externalIP(t)
		r := newRelayAt(t, p, relayOpts{mechs: sasl.Plain, insecureAuth: true}, net.JoinHostPort(ip, "0"))
		err := newNotifier(t, noTLS(config(r, p))).Notify(context.Background(), message(false))
		if err == nil || !notify.IsPermanent(err) || !strings.Contains(err.Error(), "email: refusing to send credentials over an unencrypted connection") {
			t.Fatalf("error %v, want a permanent refusal", err)
		}
		if len(r.tried()) != 0 || len(r.mails()) != 0 {
			t.Errorf("logins %q, messages %d", r.tried(), len(r.mails()))
		}
		assertNoSecrets(t, err, r)
	})
}

// externalIP is an address of this machine that is not loopback.
func externalIP(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skip(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	t.Skip("no non-loopback IPv4 address")
	return ""
}

func TestNetworkErrors(t *testing.T) {
	p := newPKI(t)
	t.Run("connection refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		cfg := Config{To: []string{"oncall@example.com"}, From: "vigil@vigil.example", Smarthost: addr,
			AuthUsername: username, AuthPassword: confkit.NewSecret(password), TLSConfig: TLSConfig{CAFile: p.caFile}}
		err = newNotifier(t, cfg).Notify(context.Background(), message(false))
		if err == nil || notify.IsPermanent(err) || !strings.Contains(err.Error(), "email: connect: ") {
			t.Errorf("error %v, want a retryable connect error", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		// A relay that accepts the connection and never greets.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		var conns []net.Conn
		var mu sync.Mutex
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		}()
		defer func() {
			mu.Lock()
			defer mu.Unlock()
			for _, c := range conns {
				c.Close()
			}
		}()
		cfg := Config{To: []string{"oncall@example.com"}, From: "vigil@vigil.example", Smarthost: ln.Addr().String()}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		err = newNotifier(t, cfg).Notify(ctx, message(false))
		if err == nil || notify.IsPermanent(err) || !strings.Contains(err.Error(), "email: greeting: ") {
			t.Errorf("error %v, want a retryable greeting timeout", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %s despite the context's deadline", d)
		}
	})
}

func TestPasswordFile(t *testing.T) {
	p := newPKI(t)
	r := newRelay(t, p, relayOpts{starttls: true, mechs: sasl.Plain})
	f := notifytest.WriteFile(t, t.TempDir(), "password", password+"\n")
	cfg := config(r, p)
	cfg.AuthPassword, cfg.AuthPasswordFile = confkit.Secret{}, f
	if err := newNotifier(t, cfg).Notify(context.Background(), message(false)); err != nil {
		t.Fatal(err)
	}
	if got := r.tried(); !reflect.DeepEqual(got, []string{username + ":" + password}) {
		t.Errorf("logins %q", got)
	}
}

func TestTemplateRenderError(t *testing.T) {
	p := newPKI(t)
	r := newRelay(t, p, relayOpts{starttls: true, mechs: sasl.Plain})
	for name, cfg := range map[string]func(Config) Config{
		"message": func(c Config) Config { c.Message = "{{ index .Alerts 3 }}"; return c },
		"header":  func(c Config) Config { c.Headers = map[string]string{"X-A": "{{ index .Alerts 3 }}"}; return c },
		"from":    func(c Config) Config { c.Headers = map[string]string{"From": "{{ .Receiver }}"}; return c },
	} {
		t.Run(name, func(t *testing.T) {
			err := newNotifier(t, cfg(config(r, p))).Notify(context.Background(), message(false))
			if err == nil || !notify.IsPermanent(err) || !strings.HasPrefix(err.Error(), "email: ") {
				t.Errorf("error %v, want a permanent email: error", err)
			}
		})
	}
	if n := len(r.mails()); n != 0 {
		t.Errorf("relay got %d messages", n)
	}
}

func TestNew(t *testing.T) {
	dir := t.TempDir()
	notPEM := notifytest.WriteFile(t, dir, "ca.txt", "not a certificate")
	base := Config{To: []string{"oncall@example.com"}, From: "vigil@vigil.example", Smarthost: "smtp.example.com:587"}
	for _, tc := range []struct {
		name string
		cfg  func(Config) Config
		err  string
	}{
		{"ok", func(c Config) Config { return c }, ""},
		{"missing password file", func(c Config) Config {
			c.AuthUsername, c.AuthPasswordFile = username, filepath.Join(dir, "nope")
			return c
		}, "email: auth_password_file: read secret file"},
		{"missing ca_file", func(c Config) Config { c.TLSConfig.CAFile = filepath.Join(dir, "nope"); return c }, "email: tls_config.ca_file: "},
		{"ca_file not PEM", func(c Config) Config { c.TLSConfig.CAFile = notPEM; return c }, "email: tls_config.ca_file: no PEM certificate"},
		{"message parse error", func(c Config) Config { c.Message = "{{ .Alerts"; return c }, "email: message: "},
		{"subject parse error", func(c Config) Config { c.Subject = "{{ end }}"; return c }, "email: subject: "},
		{"header parse error", func(c Config) Config { c.Headers = map[string]string{"X-A": "{{ if }}"}; return c }, "email: headers.X-A: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := New(tc.cfg(base))
			if notifytest.WantError(t, err, tc.err) {
				return
			}
			if n.hello != "localhost" || !n.requireTLS || n.tls.ServerName != "smtp.example.com" || n.implicitTLS {
				t.Errorf("defaults: hello %q require_tls %v server name %q implicit TLS %v", n.hello, n.requireTLS, n.tls.ServerName, n.implicitTLS)
			}
		})
	}
	n, err := New(Config{To: []string{"a@example.com"}, From: "b@example.com", Smarthost: "smtp.example.com:465"})
	if err != nil || !n.implicitTLS {
		t.Errorf("port 465: implicit TLS = %v (%v)", n != nil && n.implicitTLS, err)
	}
}

func TestValidate(t *testing.T) {
	ok := Config{To: []string{"oncall@example.com"}, From: "vigil@vigil.example", Smarthost: "smtp.example.com:587"}
	for _, tc := range []struct {
		name   string
		cfg    func(Config) Config
		fields []string
	}{
		{"ok", func(c Config) Config { return c }, nil},
		{"ok auth", func(c Config) Config {
			c.AuthUsername, c.AuthPassword, c.Headers = username, confkit.NewSecret(password), map[string]string{"Subject": "x", "Reply-To": "a@example.com"}
			return c
		}, nil},
		{"missing everything", func(Config) Config { return Config{} }, []string{"to", "from", "smarthost"}},
		{"bad addresses", func(c Config) Config {
			c.To, c.From = []string{"oncall@example.com", "not an address"}, "vigil"
			return c
		}, []string{"to", "from"}},
		{"smarthost without port", func(c Config) Config { c.Smarthost = "smtp.example.com"; return c }, []string{"smarthost"}},
		{"smarthost bad port", func(c Config) Config { c.Smarthost = "smtp.example.com:smtp"; return c }, []string{"smarthost"}},
		{"hello", func(c Config) Config { c.Hello = "my host"; return c }, []string{"hello"}},
		{"password twice", func(c Config) Config {
			c.AuthUsername, c.AuthPassword, c.AuthPasswordFile = username, confkit.NewSecret(password), "/run/secrets/smtp"
			return c
		}, []string{"auth_password"}},
		{"password without username", func(c Config) Config { c.AuthPasswordFile = "/run/secrets/smtp"; return c }, []string{"auth_username"}},
		{"username without password", func(c Config) Config { c.AuthUsername = username; return c }, []string{"auth_password"}},
		{"headers", func(c Config) Config {
			c.Subject = "x"
			c.Headers = map[string]string{"Bad Name": "x", "content-type": "text/html", "Subject": "y", "X-Ok": "{{ .Status"}
			return c
		}, []string{"headers", "subject", "headers.X-Ok", "headers"}},
		{"templates", func(c Config) Config { c.Subject, c.Message = "{{ .Status", "{{ range }}"; return c }, []string{"subject", "message"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg(ok)
			notifytest.WantFields(t, cfg.Validate(), tc.fields, password)
		})
	}
}
