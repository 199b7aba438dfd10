// Package email sends pages as plain-text mail through an SMTP smarthost,
// as Alertmanager's email_configs do.
//
// It uses the standard library's net/smtp, as Alertmanager does: the
// package is frozen but complete for a client that submits to one relay
// (STARTTLS, AUTH, pipelined commands are not needed), and it keeps the
// agent free of a mail library.
//
// Security: with require_tls (the default) a message is only sent after
// STARTTLS succeeded — or over implicit TLS when the smarthost's port is
// 465 — and the server's certificate is verified. Whatever require_tls
// says, credentials never cross an unencrypted connection except to a
// loopback relay.
//
// Delivery errors are classified for the outbox: connection failures,
// timeouts and 4xx replies are retried; 5xx replies (535 authentication
// failed, 550 mailbox unavailable), certificate failures and a server that
// cannot do what the entry requires are permanent.
package email

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/internal/confkit"
)

const (
	// defaultTimeout bounds a delivery whose context has no deadline: a
	// relay that stops answering must not hold the outbox forever.
	defaultTimeout = 2 * time.Minute
	// maxSubject keeps the Subject readable and its header well under
	// RFC 5322's line limit.
	maxSubject = 255
	// implicitTLSPort is SMTP submission over TLS (RFC 8314): no STARTTLS,
	// TLS from the first byte.
	implicitTLSPort = "465"
	// groupKeyHeader carries the alert group's stable key, for mail
	// filters and threading.
	groupKeyHeader = "X-Vigil-Group-Key"
)

// reservedHeaders are set by the notifier and cannot be configured.
var reservedHeaders = map[string]string{
	"Date":                      "set from the notification's time",
	"Message-Id":                "generated per notification",
	"Mime-Version":              "the body is always text/plain",
	"Content-Type":              "the body is always text/plain; charset=UTF-8",
	"Content-Transfer-Encoding": "the body is always quoted-printable",
	"Cc":                        "list every recipient in to",
	"Bcc":                       "list every recipient in to",
	textproto.CanonicalMIMEHeaderKey(groupKeyHeader): "identifies the alert group",
}

// addressHeaders hold address lists: they are parsed and re-encoded
// rather than Q-encoded whole.
var addressHeaders = map[string]bool{"From": true, "To": true, "Reply-To": true, "Sender": true}

// TLSConfig configures the TLS of STARTTLS (or implicit TLS on port 465).
type TLSConfig struct {
	// CAFile is a PEM bundle of the CAs trusted for the server's
	// certificate, instead of the system's.
	CAFile string `yaml:"ca_file" json:"ca_file,omitempty"`
	// ServerName is the name checked in the certificate (default the
	// smarthost's host).
	ServerName string `yaml:"server_name" json:"server_name,omitempty"`
	// InsecureSkipVerify accepts any certificate: the connection is
	// encrypted but not authenticated.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify" json:"insecure_skip_verify,omitempty"`
}

func init() {
	notify.Register(notify.Integration{
		Kind: "email", Key: "email_configs", Order: 70,
		NewConfig: func() notify.Config { return &Config{} },
		New:       notify.Adapt(func(c Config, _ *http.Client) (*Notifier, error) { return New(c) }),
	})
}

// Config is one email_configs entry.
type Config struct {
	// To are the recipients (the envelope; the To header shows them too
	// unless headers.To says otherwise).
	To []string `yaml:"to" json:"to,omitempty"`
	// From is the sender, "vigil@example.com" or "Vigil <vigil@example.com>".
	From string `yaml:"from" json:"from,omitempty"`
	// Smarthost is the relay, host:port; port 465 means implicit TLS.
	Smarthost string `yaml:"smarthost" json:"smarthost,omitempty"`
	// Hello is the name given in EHLO (default "localhost").
	Hello string `yaml:"hello" json:"hello,omitempty"`
	// AuthUsername and AuthPassword (or AuthPasswordFile) log in with
	// PLAIN, LOGIN or CRAM-MD5, whichever the server offers first in that
	// order.
	AuthUsername     string         `yaml:"auth_username" json:"auth_username,omitempty"`
	AuthPassword     confkit.Secret `yaml:"auth_password" json:"auth_password,omitempty"`
	AuthPasswordFile string         `yaml:"auth_password_file" json:"auth_password_file,omitempty"`
	// RequireTLS (default true) refuses to send unless the connection is
	// encrypted. When false, STARTTLS is still used if the server offers it.
	RequireTLS *bool     `yaml:"require_tls" json:"require_tls,omitempty"`
	TLSConfig  TLSConfig `yaml:"tls_config" json:"tls_config,omitzero"`
	// Headers are extra header templates; Subject defaults to the subject
	// template, From and To to the from and to fields.
	Headers map[string]string `yaml:"headers" json:"headers,omitempty"`
	// Subject and Message are the subject and body templates (defaults
	// notify.DefaultTitle and notify.DefaultMarkdown, sent as plain text).
	Subject string `yaml:"subject" json:"subject,omitempty"`
	Message string `yaml:"message" json:"message,omitempty"`
}

func (c *Config) requireTLS() bool { return c.RequireTLS == nil || *c.RequireTLS }

// Validate checks the entry.
func (c *Config) Validate() error {
	var errs []error
	if len(c.To) == 0 {
		errs = append(errs, confkit.FieldErrorf("to", "at least one recipient is required"))
	}
	for _, to := range c.To {
		if _, err := mail.ParseAddress(to); err != nil {
			errs = append(errs, confkit.FieldErrorf("to", "%q is not an e-mail address: %w", to, err))
		}
	}
	if c.From == "" {
		errs = append(errs, confkit.FieldErrorf("from", "the sender address is required"))
	} else if _, err := mail.ParseAddress(c.From); err != nil {
		errs = append(errs, confkit.FieldErrorf("from", "%q is not an e-mail address: %w", c.From, err))
	}
	if c.Smarthost == "" {
		errs = append(errs, confkit.FieldErrorf("smarthost", "the relay, host:port, is required"))
	} else if host, port, err := net.SplitHostPort(c.Smarthost); err != nil || host == "" || !validPort(port) {
		errs = append(errs, confkit.FieldErrorf("smarthost", "must be host:port, such as smtp.example.com:587"))
	}
	if strings.ContainsAny(c.Hello, " \t\r\n") {
		errs = append(errs, confkit.FieldErrorf("hello", "must be a host name"))
	}
	hasPassword := c.AuthPassword.IsSet() || c.AuthPasswordFile != ""
	switch {
	case c.AuthPassword.IsSet() && c.AuthPasswordFile != "":
		errs = append(errs, confkit.FieldErrorf("auth_password", "set at most one of auth_password and auth_password_file"))
	case hasPassword && c.AuthUsername == "":
		errs = append(errs, confkit.FieldErrorf("auth_username", "required with auth_password"))
	case !hasPassword && c.AuthUsername != "":
		errs = append(errs, confkit.FieldErrorf("auth_password", "auth_username needs auth_password or auth_password_file"))
	}
	names := make([]string, 0, len(c.Headers))
	for k := range c.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		ck := textproto.CanonicalMIMEHeaderKey(k)
		switch {
		case !validHeaderName(k):
			errs = append(errs, confkit.FieldErrorf("headers", "%q is not a header name", k))
		case reservedHeaders[ck] != "":
			errs = append(errs, confkit.FieldErrorf("headers", "%s cannot be set: %s", ck, reservedHeaders[ck]))
		case ck == "Subject" && c.Subject != "":
			errs = append(errs, confkit.FieldErrorf("subject", "set subject or headers.Subject, not both"))
		}
		errs = append(errs, notify.CheckField("headers."+k, "", c.Headers[k], ""))
	}
	return errors.Join(append(errs,
		notify.CheckField("subject", c.Subject, "", notify.DefaultMarkdown),
		notify.CheckField("message", "", c.Message, notify.DefaultMarkdown))...)
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n > 0 && n < 65536
}

// validHeaderName: printable ASCII without colon or space (RFC 5322 2.2).
func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		if r < 33 || r > 126 || r == ':' {
			return false
		}
	}
	return true
}

// Notifier mails one recipient list through one smarthost.
type Notifier struct {
	cfg        Config
	tmpl       *notify.Template
	headers    map[string]*notify.Template
	addr, host string
	hello      string
	from       string   // envelope sender
	to         []string // envelope recipients
	// domain names the sender's domain, for Message-Id.
	domain   string
	password string
	// redact keeps the password out of errors, should a server quote
	// what it was sent.
	redact      *notify.Redactor
	tls         *tls.Config
	implicitTLS bool
	requireTLS  bool
}

var _ notify.Notifier = (*Notifier)(nil)

// New builds a notifier: it parses the templates and reads the password
// file and the CA file, so a broken entry fails at load rather than at the
// first page.
func New(cfg Config) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("email: %w", err)
	}
	tmpl, err := notify.ParseTemplate(cfg.Subject, cfg.Message, notify.DefaultMarkdown)
	if err != nil {
		return nil, fmt.Errorf("email: %w", err)
	}
	n := &Notifier{cfg: cfg, tmpl: tmpl, headers: map[string]*notify.Template{}, addr: cfg.Smarthost,
		hello: cfg.Hello, requireTLS: cfg.requireTLS()}
	if n.hello == "" {
		n.hello = "localhost"
	}
	for k, v := range cfg.Headers {
		t, err := notify.ParseField("headers."+k, cfg.Subject, v, "")
		if err != nil {
			return nil, fmt.Errorf("email: %w", err)
		}
		n.headers[textproto.CanonicalMIMEHeaderKey(k)] = t
	}
	from, _ := mail.ParseAddress(cfg.From)
	n.from = from.Address
	n.domain = n.from[strings.LastIndexByte(n.from, '@')+1:]
	for _, to := range cfg.To {
		a, _ := mail.ParseAddress(to)
		n.to = append(n.to, a.Address)
	}
	var port string
	n.host, port, _ = net.SplitHostPort(cfg.Smarthost)
	n.implicitTLS = port == implicitTLSPort
	password, err := notify.ReadSecret("auth_password", cfg.AuthPassword, cfg.AuthPasswordFile)
	if err != nil {
		return nil, fmt.Errorf("email: %w", err)
	}
	n.password = password.Reveal()
	// Shorter "passwords" would garble messages and protect nothing.
	n.redact = notify.NewRedactor(4, n.password)
	n.tls = &tls.Config{
		ServerName:         cfg.TLSConfig.ServerName,
		InsecureSkipVerify: cfg.TLSConfig.InsecureSkipVerify,
		MinVersion:         tls.VersionTLS12,
	}
	if n.tls.ServerName == "" {
		n.tls.ServerName = n.host
	}
	if cfg.TLSConfig.CAFile != "" {
		pem, err := os.ReadFile(cfg.TLSConfig.CAFile)
		if err != nil {
			return nil, fmt.Errorf("email: tls_config.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("email: tls_config.ca_file: no PEM certificate in %s", cfg.TLSConfig.CAFile)
		}
		n.tls.RootCAs = pool
	}
	return n, nil
}

// Notify renders the mail and submits it to the smarthost.
func (n *Notifier) Notify(ctx context.Context, m *notify.Message) error {
	return n.redact.Scrub(n.notify(ctx, m))
}

func (n *Notifier) notify(ctx context.Context, m *notify.Message) error {
	msg, err := n.compose(m)
	if err != nil {
		return fmt.Errorf("email: %w", err)
	}
	if err := n.send(ctx, msg); err != nil {
		return fmt.Errorf("email: %w", err)
	}
	return nil
}

// compose renders the message: headers in a fixed order, then the body as
// quoted-printable UTF-8 text, all with CRLF line ends.
func (n *Notifier) compose(m *notify.Message) ([]byte, error) {
	d := notify.NewData(m)
	subject, body, err := n.tmpl.Render(d)
	if err != nil {
		return nil, err
	}
	h := map[string]string{"From": n.cfg.From, "To": strings.Join(n.cfg.To, ", "), "Subject": subject}
	for k, t := range n.headers {
		v, err := t.Body(d)
		if err != nil {
			return nil, fmt.Errorf("headers.%s: %w", k, err)
		}
		h[k] = v
	}
	for k, v := range h {
		// A template must not be able to add headers (or end them early).
		v = strings.Join(strings.Fields(v), " ")
		switch {
		case addressHeaders[k]:
			list, err := mail.ParseAddressList(v)
			if err != nil {
				return nil, notify.Permanent(fmt.Errorf("header %s: %q is not an address list: %w", k, v, err))
			}
			v = formatAddresses(list)
		case k == "Subject":
			v = mime.QEncoding.Encode("UTF-8", notify.Truncate(v, maxSubject))
		default:
			v = mime.QEncoding.Encode("UTF-8", v)
		}
		h[k] = v
	}
	created := m.Created
	if created.IsZero() {
		created = time.Now()
	}
	dedup := m.DedupKey()
	var b strings.Builder
	header := func(k, v string) { writeHeader(&b, k, v) }
	// Date and Message-Id come from the notification, not the attempt, so
	// a retried mail is the same mail and receivers can drop duplicates.
	header("Date", created.Format(time.RFC1123Z))
	header("From", h["From"])
	header("To", h["To"])
	if h["Subject"] != "" {
		header("Subject", h["Subject"])
	}
	header("Message-Id", fmt.Sprintf("<%d.%s@%s>", created.UnixNano(), dedup[:20], n.domain))
	var extra []string
	for k := range h {
		if k != "From" && k != "To" && k != "Subject" {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	for _, k := range extra {
		header(k, h[k])
	}
	header(groupKeyHeader, dedup)
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=UTF-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	if _, err := io.WriteString(qp, strings.ReplaceAll(body, "\r\n", "\n")+"\n"); err != nil {
		return nil, err
	}
	if err := qp.Close(); err != nil {
		return nil, err
	}
	return []byte(b.String()), nil
}

// formatAddresses renders an address list, a bare address without angle
// brackets, a display name encoded when it is not ASCII.
func formatAddresses(list []*mail.Address) string {
	parts := make([]string, len(list))
	for i, a := range list {
		if a.Name == "" {
			parts[i] = a.Address
		} else {
			parts[i] = a.String()
		}
	}
	return strings.Join(parts, ", ")
}

// writeHeader writes one header field, folded at spaces to keep lines
// under 78 characters where it can (RFC 5322 2.1.1).
func writeHeader(b *strings.Builder, k, v string) {
	line := k + ":"
	for _, w := range strings.Split(v, " ") {
		if len(line)+1+len(w) > 78 && strings.TrimSpace(line) != k+":" {
			b.WriteString(line + "\r\n")
			line = ""
		}
		line += " " + w
	}
	b.WriteString(line + "\r\n")
}

// send submits msg over one SMTP session.
func (n *Notifier) send(ctx context.Context, msg []byte) error {
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", n.addr)
	if err != nil {
		// Refused, unreachable, timed out: the relay may be back later.
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(defaultTimeout)
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	// A cancelled context interrupts whatever the session waits for.
	raw := conn
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Now()) })
	defer stop()

	encrypted := false
	if n.implicitTLS {
		tc := tls.Client(conn, n.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			return classify("tls", err)
		}
		conn, encrypted = tc, true
	}
	c, err := smtp.NewClient(conn, n.host)
	if err != nil {
		return classify("greeting", err)
	}
	defer c.Close()
	if err := c.Hello(n.hello); err != nil {
		return classify("hello", err)
	}
	if !encrypted {
		if ok, _ := c.Extension("STARTTLS"); ok {
			// Opportunistic even without require_tls: an encrypted
			// channel costs nothing when the server offers one.
			if err := c.StartTLS(n.tls); err != nil {
				return classify("starttls", err)
			}
			encrypted = true
		} else if n.requireTLS {
			// Nothing has been sent but EHLO: no credentials, no alert.
			return notify.Permanent(errors.New("the server does not offer STARTTLS and require_tls is on: refusing to send"))
		}
	}
	if n.cfg.AuthUsername != "" {
		if err := n.auth(c, encrypted); err != nil {
			return err
		}
	}
	if err := c.Mail(n.from); err != nil {
		return classify("mail from", err)
	}
	// A recipient refused for good (550 no such mailbox) must not keep
	// the page from the others: they get it, and the error reports the
	// refusal as permanent. A temporary refusal (4xx) aborts, so the retry
	// reaches everyone once.
	var refused []error
	for _, to := range n.to {
		if err := c.Rcpt(to); err != nil {
			var tpe *textproto.Error
			if errors.As(err, &tpe) && tpe.Code/100 == 5 {
				refused = append(refused, fmt.Errorf("rcpt to %s: %w", to, err))
				continue
			}
			return classify("rcpt to "+to, err)
		}
	}
	if len(refused) == len(n.to) {
		return notify.Permanent(errors.Join(refused...))
	}
	w, err := c.Data()
	if err != nil {
		return classify("data", err)
	}
	if _, err := w.Write(msg); err != nil {
		return classify("data", err)
	}
	if err := w.Close(); err != nil {
		return classify("data", err)
	}
	// The relay has taken the message; a failed QUIT changes nothing.
	_ = c.Quit()
	if len(refused) > 0 {
		return notify.Permanent(fmt.Errorf("sent to the other recipients, but: %w", errors.Join(refused...)))
	}
	return nil
}

// auth logs in with the first mechanism both sides support.
func (n *Notifier) auth(c *smtp.Client, encrypted bool) error {
	if !encrypted && !isLoopback(n.host) {
		return notify.Permanent(errors.New("refusing to send credentials over an unencrypted connection (the server offers no STARTTLS)"))
	}
	ok, mechs := c.Extension("AUTH")
	if !ok {
		return notify.Permanent(errors.New("auth_username is set but the server offers no AUTH"))
	}
	offered := map[string]bool{}
	for _, m := range strings.Fields(strings.ToUpper(mechs)) {
		offered[m] = true
	}
	var a smtp.Auth
	switch {
	case offered["PLAIN"]:
		a = smtp.PlainAuth("", n.cfg.AuthUsername, n.password, n.host)
	case offered["LOGIN"]:
		a = &loginAuth{username: n.cfg.AuthUsername, password: n.password}
	case offered["CRAM-MD5"]:
		a = smtp.CRAMMD5Auth(n.cfg.AuthUsername, n.password)
	default:
		return notify.Permanent(fmt.Errorf("the server offers AUTH %s, none of PLAIN, LOGIN and CRAM-MD5", mechs))
	}
	if err := c.Auth(a); err != nil {
		return classify("auth", err)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// loginAuth is the LOGIN mechanism, which net/smtp lacks and Microsoft
// 365 and many appliances still require. It is only used over TLS (or to
// a loopback relay): it sends the password as is.
type loginAuth struct{ username, password string }

func (a *loginAuth) Start(*smtp.ServerInfo) (string, []byte, error) { return "LOGIN", nil, nil }

func (a *loginAuth) Next(fromServer []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	switch strings.ToLower(strings.TrimSpace(string(fromServer))) {
	case "username:":
		return []byte(a.username), nil
	case "password:":
		return []byte(a.password), nil
	default:
		return nil, fmt.Errorf("unexpected LOGIN challenge %q", notify.Truncate(string(fromServer), 50))
	}
}

// classify marks what retrying cannot fix as permanent: 5xx replies, and
// certificates that do not verify (a configuration error: fix ca_file or
// server_name). 4xx replies and network errors are retried.
func classify(stage string, err error) error {
	err = fmt.Errorf("%s: %w", stage, err)
	var tpe *textproto.Error
	if errors.As(err, &tpe) {
		if tpe.Code/100 == 5 {
			return notify.Permanent(err)
		}
		return err
	}
	var verr *tls.CertificateVerificationError
	var rerr tls.RecordHeaderError
	if errors.As(err, &verr) || errors.As(err, &rerr) {
		return notify.Permanent(err)
	}
	return err
}
