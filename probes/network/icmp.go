package network

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	probing "github.com/prometheus-community/pro-bing"
	"github.com/prometheus/common/model"

	"github.com/vigil-project/vigil/internal/confkit"
	"github.com/vigil-project/vigil/probes"
	"github.com/vigil-project/vigil/probes/internal/neterr"
)

func init() {
	probes.Register(probes.Family{
		Type: "icmp", Step: probes.StepNetwork,
		NewConfig: func() probes.Config {
			return &ICMPConfig{
				Count: 3, Interval: model.Duration(200 * time.Millisecond), PacketSize: 56, TTL: 64,
				IPProtocol: "auto", MaxLoss: 0.5, TracerouteOnFailure: true,
			}
		},
		New: newICMP,
		Metrics: []probes.Metric{
			{Name: "vigil_icmp_packets_sent", Help: "Echo requests sent in the last run."},
			{Name: "vigil_icmp_packets_received", Help: "Echo replies received in the last run."},
			{Name: "vigil_icmp_packet_loss_ratio", Help: "Share of echo requests without a reply in the last run."},
			{Name: "vigil_icmp_rtt_min_seconds", Help: "Shortest round trip of the last run."},
			{Name: "vigil_icmp_rtt_avg_seconds", Help: "Mean round trip of the last run."},
			{Name: "vigil_icmp_rtt_max_seconds", Help: "Longest round trip of the last run."},
			{Name: "vigil_icmp_rtt_stddev_seconds", Help: "Standard deviation of the round trips of the last run (the jitter)."},
		},
	})
}

// ICMPConfig is the `icmp:` section of a check.
type ICMPConfig struct {
	Host string `yaml:"host"`
	// Count echo requests are sent Interval apart.
	Count      int            `yaml:"count"`
	Interval   model.Duration `yaml:"interval"`
	PacketSize int            `yaml:"packet_size"`
	TTL        int            `yaml:"ttl"`
	// IPProtocol is ip4, ip6 or auto (IPv4 when the name has an A record).
	IPProtocol string `yaml:"ip_protocol"`
	// MaxLoss is the highest lost ratio that still passes (packet_loss above).
	MaxLoss float64 `yaml:"max_loss"`
	// MaxRTT fails with high_latency when the average round trip is longer (0 disables).
	MaxRTT              model.Duration `yaml:"max_rtt"`
	TracerouteOnFailure bool           `yaml:"traceroute_on_failure"`
}

const (
	// minPacketSize is pro-bing's floor: a timestamp and a tracking UUID.
	minPacketSize = 24
	// replyWait is how long a reply may take after the last request.
	replyWait = 2 * time.Second
)

// Validate reports every problem as a FieldError.
func (c *ICMPConfig) Validate() error {
	var errs []error
	if c.Host == "" {
		errs = append(errs, confkit.FieldErrorf("host", "required"))
	}
	if c.Count < 1 || c.Count > 100 {
		errs = append(errs, confkit.FieldErrorf("count", "must be between 1 and 100, got %d", c.Count))
	}
	if c.Interval <= 0 {
		errs = append(errs, confkit.FieldErrorf("interval", "must be greater than 0"))
	}
	if c.PacketSize < minPacketSize || c.PacketSize > 65000 {
		errs = append(errs, confkit.FieldErrorf("packet_size", "must be between %d and 65000, got %d", minPacketSize, c.PacketSize))
	}
	if c.TTL < 1 || c.TTL > 255 {
		errs = append(errs, confkit.FieldErrorf("ttl", "must be between 1 and 255, got %d", c.TTL))
	}
	switch c.IPProtocol {
	case "auto", "ip4", "ip6":
	default:
		errs = append(errs, confkit.FieldErrorf("ip_protocol", "must be ip4, ip6 or auto, got %q", c.IPProtocol))
	}
	if c.MaxLoss < 0 || c.MaxLoss > 1 {
		errs = append(errs, confkit.FieldErrorf("max_loss", "must be between 0 and 1, got %g", c.MaxLoss))
	}
	return errors.Join(errs...)
}

// ICMP is the icmp check.
type ICMP struct {
	cfg *ICMPConfig
}

var (
	_ probes.Prober    = (*ICMP)(nil)
	_ probes.Diagnoser = (*ICMP)(nil)
)

func newICMP(c probes.Config, _ probes.Options) (probes.Prober, error) {
	cfg, ok := c.(*ICMPConfig)
	if !ok {
		return nil, fmt.Errorf("icmp: config of type %T", c)
	}
	return &ICMP{cfg: cfg}, nil
}

// errNoICMPSocket names both fixes when neither socket kind is allowed.
var errNoICMPSocket = errors.New("no ICMP socket allowed: grant CAP_NET_RAW for raw sockets " +
	"(setcap cap_net_raw+ep vigil, or AmbientCapabilities=CAP_NET_RAW under systemd), " +
	"or allow unprivileged ping sockets for vigil's group: sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"")

// Probe pings the host Count times.
func (p *ICMP) Probe(ctx context.Context, log *slog.Logger) probes.Result {
	var res probes.Result
	fail := func(r probes.Reason, format string, args ...any) probes.Result {
		res.Reason, res.Message = r, fmt.Sprintf(format, args...)
		return res
	}
	start := time.Now()
	ip, err := p.resolve(ctx)
	res.AddPhase("dns", start)
	if err != nil {
		return fail(neterr.Classify(err), "resolve %s: %v", p.cfg.Host, err)
	}

	start = time.Now()
	// Raw sockets first (they see every reply); datagram "ping" sockets
	// when raw ones are not allowed.
	var stats *probing.Statistics
	for _, privileged := range []bool{true, false} {
		stats, err = p.ping(ctx, ip, privileged)
		if err == nil || !errors.Is(err, os.ErrPermission) {
			break
		}
	}
	res.AddPhase("ping", start)
	if errors.Is(err, os.ErrPermission) {
		return fail(probes.ReasonError, "%v", errNoICMPSocket)
	}
	if err != nil {
		return fail(neterr.Classify(err), "ping %s: %v", ip, err)
	}

	loss := 1.0
	if stats.PacketsSent > 0 {
		loss = float64(stats.PacketsSent-stats.PacketsRecv) / float64(stats.PacketsSent)
		loss = max(loss, 0) // duplicates
	}
	res.AddValue("vigil_icmp_packets_sent", float64(stats.PacketsSent))
	res.AddValue("vigil_icmp_packets_received", float64(stats.PacketsRecv))
	res.AddKeyValue("vigil_icmp_packet_loss_ratio", loss)
	if stats.PacketsRecv > 0 {
		res.AddValue("vigil_icmp_rtt_min_seconds", stats.MinRtt.Seconds())
		res.AddKeyValue("vigil_icmp_rtt_avg_seconds", stats.AvgRtt.Seconds())
		res.AddValue("vigil_icmp_rtt_max_seconds", stats.MaxRtt.Seconds())
		res.AddValue("vigil_icmp_rtt_stddev_seconds", stats.StdDevRtt.Seconds())
	}
	switch {
	case loss > p.cfg.MaxLoss:
		return fail(probes.ReasonPacketLoss, "%s: %d of %d echo requests answered (%.0f%% loss > %.0f%%)",
			ip, stats.PacketsRecv, stats.PacketsSent, loss*100, p.cfg.MaxLoss*100)
	case p.cfg.MaxRTT > 0 && stats.AvgRtt > time.Duration(p.cfg.MaxRTT):
		return fail(probes.ReasonHighLatency, "%s: average round trip %s > %s", ip, stats.AvgRtt.Round(time.Microsecond), p.cfg.MaxRTT)
	}
	res.Success = true
	return res
}

func (p *ICMP) resolve(ctx context.Context) (*net.IPAddr, error) {
	network := "ip"
	switch p.cfg.IPProtocol {
	case "ip4":
		network = "ip4"
	case "ip6":
		network = "ip6"
	}
	ips, err := net.DefaultResolver.LookupIP(ctx, network, p.cfg.Host)
	if err != nil {
		return nil, err
	}
	pick := ips[0]
	if p.cfg.IPProtocol == "auto" {
		for _, ip := range ips {
			if ip.To4() != nil {
				pick = ip
				break
			}
		}
	}
	return &net.IPAddr{IP: pick}, nil
}

// ping sends the echo requests and waits for the replies, bounded by ctx.
func (p *ICMP) ping(ctx context.Context, ip *net.IPAddr, privileged bool) (*probing.Statistics, error) {
	pinger := probing.New(ip.String())
	pinger.SetIPAddr(ip)
	if ip.IP.To4() != nil {
		pinger.SetNetwork("ip4")
	} else {
		pinger.SetNetwork("ip6")
	}
	pinger.SetPrivileged(privileged)
	pinger.Count = p.cfg.Count
	pinger.Interval = time.Duration(p.cfg.Interval)
	pinger.Size = p.cfg.PacketSize
	pinger.TTL = p.cfg.TTL
	// Lost replies are given up replyWait after the last request (longer
	// when max_rtt allows slower answers), not at the end of the check's
	// timeout: with the default 30s a single lost echo would stall the run.
	wait := max(replyWait, 2*time.Duration(p.cfg.MaxRTT))
	pinger.Timeout = time.Duration(p.cfg.Count-1)*time.Duration(p.cfg.Interval) + wait
	if dl, ok := ctx.Deadline(); ok {
		pinger.Timeout = min(pinger.Timeout, time.Until(dl))
	}
	if err := pinger.RunWithContext(ctx); err != nil {
		return nil, err
	}
	return pinger.Statistics(), nil
}

// Diagnose traces the path when echoes were lost or slow.
func (p *ICMP) Diagnose(ctx context.Context, log *slog.Logger, failed probes.Result) map[string]any {
	if !p.cfg.TracerouteOnFailure || !tracerouteWorthy(failed.Reason) {
		return nil
	}
	return traceDiagnostics(ctx, log, p.cfg.Host)
}
