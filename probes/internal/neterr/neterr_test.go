package neterr

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"

	"github.com/vigil-project/vigil/probes"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		err  error
		want probes.Reason
	}{
		{&net.DNSError{Err: "no such host", Name: "tax.invalid", IsNotFound: true}, probes.ReasonDNSError},
		{&net.DNSError{Err: "i/o timeout", Name: "tax.example", IsTimeout: true}, probes.ReasonTimeout},
		{fmt.Errorf("dial: %w", context.DeadlineExceeded), probes.ReasonTimeout},
		{&net.OpError{Op: "remote error", Err: errors.New("tls: certificate required")}, probes.ReasonTLSError},
		{fmt.Errorf("dial: %w", syscall.ECONNREFUSED), probes.ReasonConnectionRefused},
		{fmt.Errorf("dial: %w", syscall.EHOSTUNREACH), probes.ReasonUnreachable},
		{errors.New("something else"), probes.ReasonError},
		{nil, probes.ReasonNone},
	}
	for _, tt := range tests {
		if got := Classify(tt.err); got != tt.want {
			t.Errorf("Classify(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
