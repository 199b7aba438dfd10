package network

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/vigil-project/vigil/internal/confkit"
	"github.com/vigil-project/vigil/probes"
	"github.com/vigil-project/vigil/probes/internal/neterr"
)

func init() {
	probes.Register(probes.Family{
		Type: "dns", Step: probes.StepNetwork,
		NewConfig: func() probes.Config {
			return &DNSConfig{QueryType: "A", Transport: "udp", ValidRcodes: []string{"NOERROR"}, RecursionDesired: true}
		},
		New: newDNS,
		Metrics: []probes.Metric{
			{Name: "vigil_dns_answer_rrs", Help: "Records in the answer section of the reply."},
			{Name: "vigil_dns_authority_rrs", Help: "Records in the authority section of the reply."},
			{Name: "vigil_dns_additional_rrs", Help: "Records in the additional section of the reply."},
			{Name: "vigil_dns_rcode", Help: "Response code of the reply (0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, ...)."},
		},
	})
}

// DNSConfig is the `dns:` section of a check.
type DNSConfig struct {
	QueryName string `yaml:"query_name"`
	QueryType string `yaml:"query_type"`
	// Server is host:port (port 53 when left out); empty means the first
	// nameserver of /etc/resolv.conf.
	Server           string   `yaml:"server,omitempty"`
	Transport        string   `yaml:"transport"`
	RecursionDesired bool     `yaml:"recursion_desired"`
	ValidRcodes      []string `yaml:"valid_rcodes"`
	// AnswersMustMatch: each regex must match at least one answer record
	// in its text form ("tax.example. 300 IN A 192.0.2.10").
	AnswersMustMatch []string `yaml:"answers_must_match,omitempty"`
	// AnswersMustNotMatch: no answer record may match any of these.
	AnswersMustNotMatch []string `yaml:"answers_must_not_match,omitempty"`
}

// Validate reports every problem as a FieldError.
func (c *DNSConfig) Validate() error {
	var errs []error
	if c.QueryName == "" {
		errs = append(errs, confkit.FieldErrorf("query_name", "required"))
	} else if _, ok := dns.IsDomainName(c.QueryName); !ok {
		errs = append(errs, confkit.FieldErrorf("query_name", "not a domain name: %q", c.QueryName))
	}
	if _, ok := dns.StringToType[strings.ToUpper(c.QueryType)]; !ok {
		errs = append(errs, confkit.FieldErrorf("query_type", "unknown record type %q", c.QueryType))
	}
	if c.Transport != "udp" && c.Transport != "tcp" {
		errs = append(errs, confkit.FieldErrorf("transport", "must be udp or tcp, got %q", c.Transport))
	}
	if len(c.ValidRcodes) == 0 {
		errs = append(errs, confkit.FieldErrorf("valid_rcodes", "must not be empty"))
	}
	for i, rc := range c.ValidRcodes {
		if _, ok := dns.StringToRcode[strings.ToUpper(rc)]; !ok {
			errs = append(errs, confkit.FieldErrorf(fmt.Sprintf("valid_rcodes.%d", i), "unknown rcode %q", rc))
		}
	}
	for field, list := range map[string][]string{"answers_must_match": c.AnswersMustMatch, "answers_must_not_match": c.AnswersMustNotMatch} {
		for i, re := range list {
			if _, err := regexp.Compile(re); err != nil {
				errs = append(errs, confkit.FieldErrorf(fmt.Sprintf("%s.%d", field, i), "invalid regular expression: %v", err))
			}
		}
	}
	return errors.Join(errs...)
}

// DNS is the dns check.
type DNS struct {
	cfg       *DNSConfig
	qtype     uint16
	rcodes    map[int]bool
	must, not []*regexp.Regexp
	// server is the configured host:port; empty means resolv.conf.
	server string
}

var _ probes.Prober = (*DNS)(nil)

func newDNS(c probes.Config, _ probes.Options) (probes.Prober, error) {
	cfg, ok := c.(*DNSConfig)
	if !ok {
		return nil, fmt.Errorf("dns: config of type %T", c)
	}
	d := &DNS{cfg: cfg, qtype: dns.StringToType[strings.ToUpper(cfg.QueryType)], rcodes: map[int]bool{}}
	for _, rc := range cfg.ValidRcodes {
		d.rcodes[dns.StringToRcode[strings.ToUpper(rc)]] = true
	}
	for _, re := range cfg.AnswersMustMatch {
		d.must = append(d.must, regexp.MustCompile(re))
	}
	for _, re := range cfg.AnswersMustNotMatch {
		d.not = append(d.not, regexp.MustCompile(re))
	}
	if cfg.Server != "" {
		d.server = cfg.Server
		if _, _, err := net.SplitHostPort(cfg.Server); err != nil {
			d.server = net.JoinHostPort(cfg.Server, "53")
		}
	}
	return d, nil
}

// resolver returns the configured server or the system's first nameserver,
// read at each run so a changed resolv.conf is followed.
func (d *DNS) resolver() (string, error) {
	if d.server != "" {
		return d.server, nil
	}
	cc, err := dns.ClientConfigFromFile("/etc/resolv.conf")
	if err != nil {
		return "", fmt.Errorf("no server configured and /etc/resolv.conf unreadable: %w", err)
	}
	if len(cc.Servers) == 0 {
		return "", errors.New("no server configured and no nameserver in /etc/resolv.conf")
	}
	return net.JoinHostPort(cc.Servers[0], cc.Port), nil
}

// Probe sends one query and judges the answer.
func (d *DNS) Probe(ctx context.Context, log *slog.Logger) probes.Result {
	var res probes.Result
	fail := func(r probes.Reason, format string, args ...any) probes.Result {
		res.Reason, res.Message = r, fmt.Sprintf(format, args...)
		return res
	}
	server, err := d.resolver()
	if err != nil {
		return fail(probes.ReasonError, "%v", err)
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(d.cfg.QueryName), d.qtype)
	m.RecursionDesired = d.cfg.RecursionDesired
	client := &dns.Client{Net: d.cfg.Transport}
	start := time.Now()
	reply, _, err := client.ExchangeContext(ctx, m, server)
	res.AddPhase("lookup", start)
	if err != nil {
		return fail(neterr.Classify(err), "%s %s @%s: %v", d.cfg.QueryType, d.cfg.QueryName, server, err)
	}
	res.AddKeyValue("vigil_dns_answer_rrs", float64(len(reply.Answer)))
	res.AddValue("vigil_dns_authority_rrs", float64(len(reply.Ns)))
	res.AddValue("vigil_dns_additional_rrs", float64(len(reply.Extra)))
	res.AddValue("vigil_dns_rcode", float64(reply.Rcode))
	if !d.rcodes[reply.Rcode] {
		return fail(probes.ReasonRcodeMismatch, "%s %s @%s: rcode %s, want %s", d.cfg.QueryType, d.cfg.QueryName, server,
			dns.RcodeToString[reply.Rcode], strings.Join(d.cfg.ValidRcodes, ", "))
	}
	answers := make([]string, len(reply.Answer))
	for i, rr := range reply.Answer {
		answers[i] = rr.String()
	}
	for _, re := range d.must {
		if !anyMatch(re, answers) {
			res.Diagnostics = map[string]any{"answers": answers}
			return fail(probes.ReasonAnswerMismatch, "no answer matches %q (%d answers)", re.String(), len(answers))
		}
	}
	for _, re := range d.not {
		if anyMatch(re, answers) {
			res.Diagnostics = map[string]any{"answers": answers}
			return fail(probes.ReasonAnswerMismatch, "an answer matches %q", re.String())
		}
	}
	res.Success = true
	return res
}

func anyMatch(re *regexp.Regexp, ss []string) bool {
	for _, s := range ss {
		if re.MatchString(s) {
			return true
		}
	}
	return false
}
