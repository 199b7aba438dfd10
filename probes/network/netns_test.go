package network

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/internal/testenv"
	"github.com/vigil-project/vigil/probes"
)

// topology is a small routed network built with iproute2 for a test:
//
//	this host 10.213.1.1 ── 10.213.1.2 router 10.213.2.1 ── 10.213.2.2 target
//
// plus 10.214.0.0/24 routed as unreachable. nft rules in the target's
// namespace drop what a test wants lost.
type topology struct {
	t              *testing.T
	router, target string
}

const (
	routerAddr = "10.213.1.2"
	targetAddr = "10.213.2.2"
	blackhole  = "10.214.0.1"
)

func requireNetns(t *testing.T) {
	t.Helper()
	requireRawICMP(t)
	testenv.NeedBinary(t, "ip", "iproute2")
	testenv.NeedBinary(t, "nft", "nftables")
	testenv.NeedRoot(t, "network namespace tests need root")
}

func (tp *topology) sh(args ...string) {
	tp.t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		tp.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (tp *topology) in(ns string, args ...string) {
	tp.t.Helper()
	tp.sh(append([]string{"ip", "netns", "exec", ns}, args...)...)
}

func newTopology(t *testing.T) *topology {
	requireNetns(t)
	id := os.Getpid() % 10000
	tp := &topology{t: t, router: fmt.Sprintf("vgr%d", id), target: fmt.Sprintf("vgt%d", id)}
	ha, ra := fmt.Sprintf("vgh%d", id), fmt.Sprintf("vgrh%d", id)
	rb, ta := fmt.Sprintf("vgrt%d", id), fmt.Sprintf("vgtr%d", id)
	cleanup := func() {
		exec.Command("ip", "netns", "del", tp.router).Run()
		exec.Command("ip", "netns", "del", tp.target).Run()
		exec.Command("ip", "link", "del", ha).Run()
		exec.Command("ip", "route", "del", "10.213.2.0/24").Run()
		exec.Command("ip", "route", "del", "unreachable", "10.214.0.0/24").Run()
	}
	cleanup() // what a killed earlier run may have left
	t.Cleanup(cleanup)
	tp.sh("ip", "netns", "add", tp.router)
	tp.sh("ip", "netns", "add", tp.target)
	tp.sh("ip", "link", "add", ha, "type", "veth", "peer", "name", ra)
	tp.sh("ip", "link", "set", ra, "netns", tp.router)
	tp.sh("ip", "addr", "add", "10.213.1.1/24", "dev", ha)
	tp.sh("ip", "link", "set", ha, "up")
	tp.sh("ip", "route", "add", "10.213.2.0/24", "via", routerAddr)
	tp.sh("ip", "route", "add", "unreachable", "10.214.0.0/24")
	tp.in(tp.router, "ip", "link", "set", "lo", "up")
	tp.in(tp.router, "ip", "addr", "add", routerAddr+"/24", "dev", ra)
	tp.in(tp.router, "ip", "link", "set", ra, "up")
	tp.in(tp.router, "ip", "link", "add", rb, "type", "veth", "peer", "name", ta)
	tp.in(tp.router, "ip", "link", "set", ta, "netns", tp.target)
	tp.in(tp.router, "ip", "addr", "add", "10.213.2.1/24", "dev", rb)
	tp.in(tp.router, "ip", "link", "set", rb, "up")
	tp.in(tp.router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	tp.in(tp.target, "ip", "link", "set", "lo", "up")
	tp.in(tp.target, "ip", "addr", "add", targetAddr+"/24", "dev", ta)
	tp.in(tp.target, "ip", "link", "set", ta, "up")
	tp.in(tp.target, "ip", "route", "add", "default", "via", "10.213.2.1")
	tp.in(tp.target, "nft", "add", "table", "inet", "vigil")
	tp.in(tp.target, "nft", "add chain inet vigil input { type filter hook input priority 0 ; }")
	return tp
}

// drop adds an nft rule in the target namespace (e.g. "icmp type echo-request drop").
func (tp *topology) drop(rule string) {
	tp.t.Helper()
	tp.in(tp.target, "nft", "add rule inet vigil input "+rule)
}

func TestNetnsPaths(t *testing.T) {
	tp := newTopology(t)
	ctx := context.Background()

	t.Run("traceroute through a router", func(t *testing.T) {
		hops, err := traceroute(ctx, mustIP(targetAddr))
		if err != nil {
			t.Fatal(err)
		}
		if len(hops) != 2 || hops[0].Addr != routerAddr || hops[0].Reached || hops[1].Addr != targetAddr || !hops[1].Reached {
			t.Fatalf("hops = %+v", hops)
		}
	})

	t.Run("icmp passes", func(t *testing.T) {
		r := probeICMP(t, newICMPConfig(targetAddr), 3*time.Second)
		if !r.Success {
			t.Fatalf("%q %s", r.Reason, r.Message)
		}
	})

	t.Run("icmp unreachable", func(t *testing.T) {
		r := probeICMP(t, newICMPConfig(blackhole), 3*time.Second)
		if r.Reason != probes.ReasonUnreachable {
			t.Fatalf("%q %s", r.Reason, r.Message)
		}
	})

	t.Run("http unreachable, traceroute says so", func(t *testing.T) {
		h := newHTTPProber(t, func(c *HTTPConfig) { c.URL = "http://" + blackhole + "/" })
		r := h.Probe(ctx, discard)
		if r.Reason != probes.ReasonUnreachable {
			t.Fatalf("%q %s", r.Reason, r.Message)
		}
		d := h.Diagnose(ctx, discard, r)
		if e, _ := d["traceroute_error"].(string); !strings.Contains(e, "no route to host") {
			t.Errorf("diagnostics %v", d)
		}
	})

	// From here on the target drops every other echo request, then all
	// traffic: loss, and a path that ends after the router.
	t.Run("icmp partial loss", func(t *testing.T) {
		tp.drop("icmp type echo-request numgen inc mod 2 == 0 drop")
		cfg := newICMPConfig(targetAddr)
		cfg.Count, cfg.MaxLoss = 4, 0.25
		r := probeICMP(t, cfg, 3*time.Second)
		if r.Reason != probes.ReasonPacketLoss || !strings.Contains(r.Message, "2 of 4 echo requests answered (50% loss > 25%)") {
			t.Fatalf("%q %s", r.Reason, r.Message)
		}
		if v, _ := valueOf(r, "vigil_icmp_packet_loss_ratio"); v != 0.5 {
			t.Errorf("loss ratio %v", v)
		}
	})

	t.Run("partition: tcp times out, traceroute stops at the router", func(t *testing.T) {
		tp.drop("drop")
		r := probeTCP(t, 300*time.Millisecond, &TCPConfig{Address: targetAddr + ":443", TracerouteOnFailure: true})
		if r.Reason != probes.ReasonTimeout {
			t.Fatalf("%q %s", r.Reason, r.Message)
		}
		// A short budget: the router answers hop 1, the target never does.
		dctx, cancel := context.WithTimeout(ctx, 2500*time.Millisecond)
		defer cancel()
		p, _ := newTCP(&TCPConfig{Address: targetAddr + ":443", TracerouteOnFailure: true}, probes.Options{})
		d := p.(*TCP).Diagnose(dctx, discard, r)
		hops, _ := d["traceroute"].([]Hop)
		if len(hops) < 2 || hops[0].Addr != routerAddr || hops[1].Addr != "" {
			t.Fatalf("diagnostics %#v", d)
		}
	})
}

func mustIP(s string) []byte {
	ip, err := resolveIPv4(context.Background(), s)
	if err != nil {
		panic(err)
	}
	return ip
}
