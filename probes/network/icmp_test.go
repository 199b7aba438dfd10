package network

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/vigil-project/vigil/internal/confkit"
	"github.com/vigil-project/vigil/probes"
)

func newICMPConfig(host string) *ICMPConfig {
	f, _ := probes.Lookup("icmp")
	cfg := f.NewConfig().(*ICMPConfig)
	cfg.Host = host
	cfg.Interval = model.Duration(20 * time.Millisecond)
	return cfg
}

func probeICMP(t *testing.T, cfg *ICMPConfig, timeout time.Duration) probes.Result {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := newICMP(cfg, probes.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return p.Probe(ctx, discard)
}

func TestICMPLoopback(t *testing.T) {
	requireRawICMP(t)
	r := probeICMP(t, newICMPConfig("127.0.0.1"), 3*time.Second)
	if !r.Success {
		t.Fatalf("%q %s", r.Reason, r.Message)
	}
	for name, want := range map[string]float64{"vigil_icmp_packets_sent": 3, "vigil_icmp_packets_received": 3, "vigil_icmp_packet_loss_ratio": 0} {
		if v, ok := valueOf(r, name); !ok || v != want {
			t.Errorf("%s = %v (%v), want %v", name, v, ok, want)
		}
	}
	if v, ok := valueOf(r, "vigil_icmp_rtt_avg_seconds"); !ok || v <= 0 || v > 0.1 {
		t.Errorf("avg rtt %v", v)
	}
	// IPv6 loopback, chosen by ip_protocol.
	cfg6 := newICMPConfig("::1")
	cfg6.IPProtocol = "ip6"
	if r := probeICMP(t, cfg6, 3*time.Second); !r.Success {
		t.Errorf("::1: %q %s", r.Reason, r.Message)
	}
	// Loopback never takes a second, but a nanosecond budget is exceeded.
	cfg := newICMPConfig("localhost")
	cfg.IPProtocol, cfg.MaxRTT = "ip4", model.Duration(time.Nanosecond)
	r = probeICMP(t, cfg, 3*time.Second)
	if r.Reason != probes.ReasonHighLatency || !strings.Contains(r.Message, "average round trip") {
		t.Errorf("max_rtt: %q %s", r.Reason, r.Message)
	}
}

func TestICMPValidate(t *testing.T) {
	c := newICMPConfig("")
	c.Count, c.PacketSize, c.TTL, c.IPProtocol, c.MaxLoss = 0, 8, 0, "ipx", 2
	var got []string
	for _, e := range confkit.FlattenErrors(c.Validate()) {
		got = append(got, e.Error())
	}
	want := []string{
		"host: required",
		"count: must be between 1 and 100, got 0",
		"packet_size: must be between 24 and 65000, got 8",
		"ttl: must be between 1 and 255, got 0",
		`ip_protocol: must be ip4, ip6 or auto, got "ipx"`,
		"max_loss: must be between 0 and 1, got 2",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
