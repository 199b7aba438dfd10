package network

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/vigil-project/vigil/internal/confkit"
	"github.com/vigil-project/vigil/probes"
)

// authServer is a small authoritative server for tax.test. on UDP and TCP
// (the same port number for both).
func authServer(t *testing.T) string {
	t.Helper()
	zone := map[string][]string{
		"api.tax.test.":  {"api.tax.test. 300 IN A 192.0.2.10", "api.tax.test. 300 IN A 192.0.2.11"},
		"mail.tax.test.": {"mail.tax.test. 300 IN MX 10 mx.tax.test."},
	}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		q := r.Question[0]
		records, known := zone[strings.ToLower(q.Name)]
		if !known {
			m.Rcode = dns.RcodeNameError
		}
		for _, s := range records {
			rr, err := dns.NewRR(s)
			if err == nil && rr.Header().Rrtype == q.Qtype {
				m.Answer = append(m.Answer, rr)
			}
		}
		w.WriteMsg(m)
	})
	// UDP and TCP on one port number: the UDP port is free, the same TCP
	// port may not be (another test's connection can hold it); try again.
	var pc net.PacketConn
	var l net.Listener
	for attempt := 1; ; attempt++ {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if l, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		if attempt == 10 {
			t.Fatal(err)
		}
	}
	udp := &dns.Server{PacketConn: pc, Handler: handler}
	tcp := &dns.Server{Listener: l, Handler: handler}
	go udp.ActivateAndServe()
	go tcp.ActivateAndServe()
	t.Cleanup(func() { udp.Shutdown(); tcp.Shutdown() })
	return pc.LocalAddr().String()
}

func TestDNS(t *testing.T) {
	server := authServer(t)
	pc, _ := net.ListenPacket("udp", "127.0.0.1:0")
	silent := pc.LocalAddr().String() // receives, never answers
	defer pc.Close()

	tests := []struct {
		name    string
		cfg     DNSConfig
		reason  probes.Reason
		message string
		answers float64
	}{
		{"A records over UDP", DNSConfig{QueryName: "api.tax.test", AnswersMustMatch: []string{`IN\tA\t192\.0\.2\.10$`, `192\.0\.2\.11$`}},
			probes.ReasonNone, "", 2},
		{"A records over TCP", DNSConfig{QueryName: "api.tax.test", Transport: "tcp"}, probes.ReasonNone, "", 2},
		{"MX record", DNSConfig{QueryName: "mail.tax.test", QueryType: "MX", AnswersMustMatch: []string{`mx\.tax\.test\.$`}}, probes.ReasonNone, "", 1},
		{"NXDOMAIN not accepted", DNSConfig{QueryName: "gone.tax.test"}, probes.ReasonRcodeMismatch, "rcode NXDOMAIN, want NOERROR", 0},
		{"NXDOMAIN expected", DNSConfig{QueryName: "gone.tax.test", ValidRcodes: []string{"NXDOMAIN"}}, probes.ReasonNone, "", 0},
		{"answer missing", DNSConfig{QueryName: "api.tax.test", AnswersMustMatch: []string{`192\.0\.2\.99`}},
			probes.ReasonAnswerMismatch, `no answer matches "192\\.0\\.2\\.99" (2 answers)`, 2},
		{"answer forbidden", DNSConfig{QueryName: "api.tax.test", AnswersMustNotMatch: []string{`192\.0\.2\.11`}},
			probes.ReasonAnswerMismatch, `an answer matches "192\\.0\\.2\\.11"`, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.Server = server
			if cfg.QueryType == "" {
				cfg.QueryType = "A"
			}
			if cfg.Transport == "" {
				cfg.Transport = "udp"
			}
			if cfg.ValidRcodes == nil {
				cfg.ValidRcodes = []string{"NOERROR"}
			}
			r := probeDNS(t, &cfg, 2*time.Second)
			if r.Success != (tt.reason == probes.ReasonNone) || r.Reason != tt.reason || !strings.Contains(r.Message, tt.message) {
				t.Fatalf("got success=%v reason=%q message=%q; want reason=%q containing %q", r.Success, r.Reason, r.Message, tt.reason, tt.message)
			}
			if v, _ := valueOf(r, "vigil_dns_answer_rrs"); v != tt.answers {
				t.Errorf("answers = %v, want %v", v, tt.answers)
			}
			if _, ok := phase(r, "lookup"); !ok {
				t.Error("no lookup phase")
			}
		})
	}

	r := probeDNS(t, &DNSConfig{QueryName: "api.tax.test", QueryType: "A", Transport: "udp", ValidRcodes: []string{"NOERROR"}, Server: silent}, 300*time.Millisecond)
	if r.Reason != probes.ReasonTimeout {
		t.Errorf("silent server: %q %s", r.Reason, r.Message)
	}
}

func probeDNS(t *testing.T, cfg *DNSConfig, timeout time.Duration) probes.Result {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := newDNS(cfg, probes.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return p.Probe(ctx, discard)
}

func TestDNSValidate(t *testing.T) {
	c := &DNSConfig{QueryName: "bad..name", QueryType: "AAAAA", Transport: "quic", ValidRcodes: []string{"NOERROR", "MAYBE"}}
	var got []string
	for _, e := range confkit.FlattenErrors(c.Validate()) {
		got = append(got, e.Error())
	}
	want := []string{
		`query_name: not a domain name: "bad..name"`,
		`query_type: unknown record type "AAAAA"`,
		`transport: must be udp or tcp, got "quic"`,
		`valid_rcodes.1: unknown rcode "MAYBE"`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
