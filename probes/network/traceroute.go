package network

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"

	"github.com/vigil-project/vigil/probes"
)

// Traceroute bounds (the issue's: at most 30 hops and 10 s).
const (
	maxHops        = 30
	hopTimeout     = time.Second
	TracerouteTime = 10 * time.Second
)

// Hop is one step of a traceroute.
type Hop struct {
	TTL int `json:"ttl"`
	// Addr answered for this TTL; empty when nothing did (shown as *).
	Addr       string  `json:"addr,omitempty"`
	RTTSeconds float64 `json:"rtt_seconds,omitempty"`
	// Reached marks the destination itself answering.
	Reached bool `json:"reached,omitempty"`
}

func (h Hop) String() string {
	switch {
	case h.Addr == "":
		return fmt.Sprintf("%2d  *", h.TTL)
	case h.Reached:
		return fmt.Sprintf("%2d  %s  %.1f ms  (destination)", h.TTL, h.Addr, h.RTTSeconds*1000)
	}
	return fmt.Sprintf("%2d  %s  %.1f ms", h.TTL, h.Addr, h.RTTSeconds*1000)
}

// tracerouteWorthy says whether a failure is about the path, where hops
// help: not for TLS, status or body problems of a server that answered.
func tracerouteWorthy(r probes.Reason) bool {
	switch r {
	case probes.ReasonTimeout, probes.ReasonConnectionRefused, probes.ReasonUnreachable,
		probes.ReasonPacketLoss, probes.ReasonHighLatency:
		return true
	}
	return false
}

// traceDiagnostics resolves host and traces the path to it, for Diagnose.
func traceDiagnostics(ctx context.Context, log *slog.Logger, host string) map[string]any {
	ctx, cancel := context.WithTimeout(ctx, TracerouteTime)
	defer cancel()
	ip, err := resolveIPv4(ctx, host)
	if err != nil {
		return map[string]any{"traceroute_error": err.Error()}
	}
	hops, err := traceroute(ctx, ip)
	out := map[string]any{"traceroute_target": ip.String()}
	if len(hops) > 0 {
		out["traceroute"] = hops
	}
	if err != nil {
		log.Debug("traceroute incomplete", "target", ip, "err", err)
		out["traceroute_error"] = err.Error()
	}
	return out
}

func resolveIPv4(ctx context.Context, host string) (net.IP, error) {
	if ip := net.ParseIP(host); ip != nil {
		if ip4 := ip.To4(); ip4 != nil {
			return ip4, nil
		}
		return nil, fmt.Errorf("traceroute supports IPv4 only, got %s", host)
	}
	addrs, err := net.DefaultResolver.LookupIP(ctx, "ip4", host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	return addrs[0], nil
}

// errNoRawSocket explains what to change when tracing is not allowed.
var errNoRawSocket = errors.New("traceroute needs a raw ICMP socket: run as root or grant CAP_NET_RAW (setcap cap_net_raw+ep vigil, or AmbientCapabilities=CAP_NET_RAW in systemd)")

// traceroute sends ICMP echo requests with TTL 1, 2, ... and records who
// answers: routers with Time Exceeded, the destination with Echo Reply.
// Unprivileged datagram ICMP sockets do not receive Time Exceeded messages
// as reads on Linux, so a raw socket is required.
func traceroute(ctx context.Context, dst net.IP) ([]Hop, error) {
	conn, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return nil, errNoRawSocket
		}
		return nil, fmt.Errorf("open ICMP socket: %w", err)
	}
	defer conn.Close()
	pc := conn.IPv4PacketConn()
	// A random ID keeps concurrent traceroutes of one agent apart.
	id := rand.IntN(0xffff) + 1
	buf := make([]byte, 1500)
	var hops []Hop
	for ttl := 1; ttl <= maxHops; ttl++ {
		if ctx.Err() != nil {
			return hops, fmt.Errorf("stopped at hop %d: %w", ttl, ctx.Err())
		}
		if err := pc.SetTTL(ttl); err != nil {
			return hops, fmt.Errorf("set TTL: %w", err)
		}
		msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: ttl, Data: []byte("vigil-traceroute")}}
		wb, err := msg.Marshal(nil)
		if err != nil {
			return hops, err
		}
		sent := time.Now()
		if _, err := conn.WriteTo(wb, &net.IPAddr{IP: dst}); err != nil {
			return hops, fmt.Errorf("send hop %d: %w", ttl, err)
		}
		deadline := sent.Add(hopTimeout)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		hop := Hop{TTL: ttl}
		for {
			conn.SetReadDeadline(deadline)
			n, peer, err := conn.ReadFrom(buf)
			if err != nil {
				break // no answer for this TTL: "*"
			}
			addr, reached, ok := matchReply(buf[:n], id, ttl)
			if !ok {
				continue // someone else's ICMP traffic
			}
			if addr == "" {
				addr = peer.String()
			}
			hop.Addr, hop.Reached, hop.RTTSeconds = addr, reached, time.Since(sent).Seconds()
			break
		}
		hops = append(hops, hop)
		if hop.Reached {
			return hops, nil
		}
	}
	return hops, fmt.Errorf("destination not reached within %d hops", maxHops)
}

// matchReply recognises the answer to our probe with this sequence number.
func matchReply(b []byte, id, seq int) (addr string, reached, ok bool) {
	m, err := icmp.ParseMessage(1, b)
	if err != nil {
		return "", false, false
	}
	switch body := m.Body.(type) {
	case *icmp.Echo:
		return "", true, m.Type == ipv4.ICMPTypeEchoReply && body.ID == id && body.Seq == seq
	case *icmp.TimeExceeded:
		return "", false, quotedEcho(body.Data, id, seq)
	case *icmp.DstUnreach:
		// The destination (or a router) refused: the end of the path.
		return "", true, quotedEcho(body.Data, id, seq)
	}
	return "", false, false
}

// quotedEcho checks the original datagram quoted in an ICMP error: an IPv4
// header followed by at least the first 8 bytes of our echo request.
func quotedEcho(data []byte, id, seq int) bool {
	if len(data) < ipv4.HeaderLen {
		return false
	}
	ihl := int(data[0]&0x0f) * 4
	if len(data) < ihl+8 || data[9] != 1 { // protocol 1 = ICMP
		return false
	}
	e := data[ihl:]
	return e[0] == 8 && int(e[4])<<8|int(e[5]) == id && int(e[6])<<8|int(e[7]) == seq
}
