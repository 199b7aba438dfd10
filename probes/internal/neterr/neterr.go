// Package neterr maps dial, TLS and I/O errors to the reason vocabulary,
// for every family that talks to a server over the network.
package neterr

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"syscall"

	"github.com/vigil-project/vigil/probes"
)

// Classify maps a dial, TLS or I/O error to the reason vocabulary;
// anything it does not recognise is probe_error.
func Classify(err error) probes.Reason {
	var (
		dnsErr      *net.DNSError
		certInvalid x509.CertificateInvalidError
		hostErr     x509.HostnameError
		unknownAuth x509.UnknownAuthorityError
		verifyErr   *tls.CertificateVerificationError
		recordErr   tls.RecordHeaderError
		alertErr    tls.AlertError
		netErr      net.Error
		opErr       *net.OpError
	)
	switch {
	case err == nil:
		return probes.ReasonNone
	case errors.As(err, &dnsErr):
		if dnsErr.IsTimeout {
			return probes.ReasonTimeout
		}
		return probes.ReasonDNSError
	case errors.As(err, &verifyErr), errors.As(err, &certInvalid), errors.As(err, &hostErr),
		errors.As(err, &unknownAuth), errors.As(err, &recordErr), errors.As(err, &alertErr),
		// A TLS alert from the peer (e.g. "certificate required") surfaces as
		// an OpError with this Op; its error type is unexported.
		errors.As(err, &opErr) && opErr.Op == "remote error":
		return probes.ReasonTLSError
	case errors.Is(err, syscall.ECONNREFUSED):
		return probes.ReasonConnectionRefused
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return probes.ReasonUnreachable
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		return probes.ReasonTimeout
	}
	return probes.ReasonError
}
