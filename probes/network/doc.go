// Package network holds the reachability checks of checklist step 4 —
// http, tcp, dns and icmp — and the traceroute attached to their failures,
// so an operator sees where the path to the tax authority breaks, not only
// that it does.
package network
