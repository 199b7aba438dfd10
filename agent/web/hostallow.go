package web

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
)

// hostAllowList decides which Host header values the agent answers to.
//
// Why: the agent can run commands (exec steps in runbooks and drills), and
// without users configured it accepts state changes from loopback clients.
// A page in the operator's browser can rebind its own name to 127.0.0.1
// (DNS rebinding): the browser then connects to the agent from loopback and
// treats the agent as the page's own origin, so Origin and Sec-Fetch-Site
// say "same-origin" and cross-origin protection lets it through. The one
// thing the page cannot forge is the Host header: it carries the attacker's
// name. So every route but health and readiness answers only to names the
// agent knows.
//
// Known are: localhost (and *.localhost, which resolves to loopback by
// RFC 6761), any IP literal (rebinding needs a name: a browser that sends an
// IP literal as Host connected to that address itself), the names of the
// listen addresses, the machine's hostname (short and as given), and what
// the operator adds with --web.allowed-host ("*.example.com" matches one or
// more labels under example.com). A request without a Host header (HTTP/1.0)
// did not come from a browser and is let through.
type hostAllowList struct {
	mu       sync.RWMutex
	exact    map[string]bool
	suffixes []string // ".example.com" for "*.example.com"
}

// newHostAllowList builds the list from the listen addresses, the machine's
// hostname and the operator's additions.
func newHostAllowList(listen, extra []string) *hostAllowList {
	h := &hostAllowList{exact: map[string]bool{"localhost": true}}
	add := h.add
	for _, addr := range listen {
		if strings.Contains(addr, "://") { // vsock://:PORT has no name
			continue
		}
		if host, _, err := net.SplitHostPort(addr); err == nil {
			add(host)
		}
	}
	if hn, err := os.Hostname(); err == nil {
		add(hn)
		if short, _, ok := strings.Cut(hn, "."); ok {
			add(short)
		}
	}
	for _, e := range extra {
		add(e)
	}
	return h
}

func (h *hostAllowList) add(name string) {
	name = normalizeHost(name)
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case name == "":
	case strings.HasPrefix(name, "*."):
		h.suffixes = append(h.suffixes, name[1:])
	default:
		h.exact[name] = true
	}
}

// hostLookupTimeout bounds the reverse lookups of learnDNSNames.
const hostLookupTimeout = 3 * time.Second

// learnDNSNames adds the names DNS gives this machine's own non-loopback
// addresses (PTR records, as `hostname -f` finds the FQDN): a Prometheus
// that scrapes invoice-db-1.example.internal:9877 keeps working when the
// kernel's hostname is only invoice-db-1. PTR records of the machine's
// addresses are the network owner's, not a web page's, so they are safe to
// trust; loopback is skipped (a rebinding name points there). Run in the
// background at start: a slow resolver must not delay start-up.
func (h *hostAllowList) learnDNSNames(ctx context.Context, log *slog.Logger) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, hostLookupTimeout)
	defer cancel()
	var learned []string
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLoopback() || ipn.IP.IsLinkLocalUnicast() {
			continue
		}
		names, err := net.DefaultResolver.LookupAddr(ctx, ipn.IP.String())
		if err != nil {
			continue
		}
		for _, n := range names {
			n = normalizeHost(n)
			if n == "localhost" || strings.HasSuffix(n, ".localhost") {
				continue
			}
			h.add(n)
			learned = append(learned, n)
		}
	}
	if len(learned) > 0 {
		log.Debug("host names of this machine's addresses are allowed as Host", "names", learned)
	}
}

// normalizeHost lower-cases a host name and drops a trailing dot (the
// absolute form "localhost." names the same host).
func normalizeHost(name string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(name)), ".")
}

// allowed reports whether a request's Host header (with or without port)
// names this agent.
func (h *hostAllowList) allowed(hostHeader string) bool {
	if hostHeader == "" {
		return true
	}
	host := hostHeader
	if hp, _, err := net.SplitHostPort(hostHeader); err == nil {
		host = hp
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	host = normalizeHost(host)
	if host == "" {
		return false
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.exact[host] || strings.HasSuffix(host, ".localhost") {
		return true
	}
	for _, s := range h.suffixes {
		if strings.HasSuffix(host, s) && len(host) > len(s) {
			return true
		}
	}
	return false
}

// ListenAddresses are the configured --web.listen-address values.
func ListenAddresses(flags *web.FlagConfig) []string {
	if flags == nil || flags.WebListenAddresses == nil {
		return nil
	}
	return *flags.WebListenAddresses
}
