package network

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/icmp"

	"github.com/vigil-project/vigil/internal/testenv"
	"github.com/vigil-project/vigil/probes"
)

// requireRawICMP skips (or, in CI, fails) when raw ICMP sockets are not allowed.
func requireRawICMP(t *testing.T) {
	t.Helper()
	c, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
	if err == nil {
		c.Close()
		return
	}
	testenv.Missingf(t, "raw ICMP sockets", "not allowed here (%v): run as root or with CAP_NET_RAW", err)
}

func TestTracerouteLoopback(t *testing.T) {
	requireRawICMP(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hops, err := traceroute(ctx, net.IPv4(127, 0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	if len(hops) != 1 || !hops[0].Reached || hops[0].Addr != "127.0.0.1" || hops[0].TTL != 1 {
		t.Fatalf("hops = %+v", hops)
	}
	if s := hops[0].String(); !strings.Contains(s, "127.0.0.1") || !strings.Contains(s, "(destination)") {
		t.Errorf("hop renders as %q", s)
	}
}

// TestDiagnoseAttachesTraceroute: a refused HTTP connection gets the path.
func TestDiagnoseAttachesTraceroute(t *testing.T) {
	requireRawICMP(t)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	h := newHTTPProber(t, func(c *HTTPConfig) { c.URL = "http://" + addr + "/" })
	ctx := context.Background()
	failed := h.Probe(ctx, discard)
	if failed.Reason != probes.ReasonConnectionRefused {
		t.Fatalf("reason %q", failed.Reason)
	}
	d := h.Diagnose(ctx, discard, failed)
	hops, ok := d["traceroute"].([]Hop)
	if !ok || len(hops) == 0 || !hops[len(hops)-1].Reached || d["traceroute_target"] != "127.0.0.1" {
		t.Fatalf("diagnostics = %#v", d)
	}
	// Not for failures of a server that answered, nor when switched off.
	if d := h.Diagnose(ctx, discard, probes.Result{Reason: probes.ReasonStatusMismatch}); d != nil {
		t.Errorf("traceroute for a status mismatch: %v", d)
	}
	h.cfg.TracerouteOnFailure = false
	if d := h.Diagnose(ctx, discard, failed); d != nil {
		t.Errorf("traceroute although traceroute_on_failure is false: %v", d)
	}
}

func TestQuotedEcho(t *testing.T) {
	// An IPv4 header (IHL 5, protocol ICMP) followed by our echo request.
	hdr := make([]byte, 20)
	hdr[0], hdr[9] = 0x45, 1
	echo := []byte{8, 0, 0, 0, 0x12, 0x34, 0, 7}
	tests := []struct {
		name string
		data []byte
		want bool
	}{
		{"ours", append(append([]byte{}, hdr...), echo...), true},
		{"other id", append(append([]byte{}, hdr...), 8, 0, 0, 0, 0x12, 0x35, 0, 7), false},
		{"other seq", append(append([]byte{}, hdr...), 8, 0, 0, 0, 0x12, 0x34, 0, 8), false},
		{"truncated", hdr[:10], false},
		{"udp inside", func() []byte { h := append([]byte{}, hdr...); h[9] = 17; return append(h, echo...) }(), false},
	}
	for _, tt := range tests {
		if got := quotedEcho(tt.data, 0x1234, 7); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestTracerouteErrors(t *testing.T) {
	_, err := resolveIPv4(context.Background(), "::1")
	if err == nil || !strings.Contains(err.Error(), "IPv4 only") {
		t.Errorf("IPv6 target: %v", err)
	}
	if !strings.Contains(errNoRawSocket.Error(), "CAP_NET_RAW") {
		t.Error("the permission error must name CAP_NET_RAW")
	}
}
