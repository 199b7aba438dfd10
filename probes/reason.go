package probes

import "fmt"

// Reason says why a check failed. The set is fixed so that
// vigil_check_failure_info{reason} stays bounded and rules can match on it.
type Reason string

// The reason vocabulary. Families add constants here, not ad-hoc strings.
const (
	ReasonNone              Reason = ""
	ReasonTimeout           Reason = "timeout"
	ReasonPanic             Reason = "panic"
	ReasonError             Reason = "probe_error"
	ReasonConnectionRefused Reason = "connection_refused"
	ReasonDNSError          Reason = "dns_error"
	ReasonTLSError          Reason = "tls_error"
	ReasonStatusMismatch    Reason = "status_mismatch"
	ReasonQRMismatch        Reason = "qr_mismatch"

	// network
	ReasonCertExpiring     Reason = "cert_expiring"
	ReasonBodyMismatch     Reason = "body_mismatch"
	ReasonResponseTooLarge Reason = "response_too_large"
	ReasonExpectMismatch   Reason = "expect_mismatch"
	ReasonRcodeMismatch    Reason = "rcode_mismatch"
	ReasonAnswerMismatch   Reason = "answer_mismatch"
	ReasonPacketLoss       Reason = "packet_loss"
	ReasonHighLatency      Reason = "high_latency"
	ReasonUnreachable      Reason = "unreachable"

	// ReasonDependencyFailed: the check failed while a check it depends on
	// (depends_on) failed; its own reason is in the message.
	ReasonDependencyFailed Reason = "dependency_failed"

	// database
	ReasonAuthFailed         Reason = "auth_failed"
	ReasonCanaryMismatch     Reason = "canary_mismatch"
	ReasonReplicationLag     Reason = "replication_lag"
	ReasonTooManyConnections Reason = "too_many_connections"
	ReasonQueryError         Reason = "query_error"
	ReasonQueryThreshold     Reason = "query_threshold"
	ReasonReadonlyViolation  Reason = "readonly_violation"

	// invoice
	ReasonIssueError              Reason = "issue_error"
	ReasonQRMissing               Reason = "qr_missing"
	ReasonQRUnreadable            Reason = "qr_unreadable"
	ReasonPDFMissingQR            Reason = "pdf_missing_qr"
	ReasonOFDMissingQR            Reason = "ofd_missing_qr"
	ReasonDocumentMismatch        Reason = "document_mismatch"
	ReasonReadbackMismatch        Reason = "readback_mismatch"
	ReasonVoidFailed              Reason = "void_failed"
	ReasonInvoicesMissingUpstream Reason = "invoices_missing_upstream"
	ReasonUpstreamMismatch        Reason = "upstream_mismatch"
	ReasonUpstreamUnreachable     Reason = "upstream_unreachable"
	ReasonSourceError             Reason = "source_error"

	// logscan
	ReasonPatternThreshold Reason = "pattern_threshold"
	ReasonLogUnreadable    Reason = "log_unreadable"
	ReasonLogMissing       Reason = "log_missing"

	// host
	ReasonCPUHigh        Reason = "cpu_high"
	ReasonMemoryHigh     Reason = "memory_high"
	ReasonDiskLow        Reason = "disk_low"
	ReasonInodesLow      Reason = "inodes_low"
	ReasonProcessMissing Reason = "process_missing"
)

var knownReasons = map[Reason]bool{
	ReasonTimeout: true, ReasonPanic: true, ReasonError: true,
	ReasonConnectionRefused: true, ReasonDNSError: true, ReasonTLSError: true,
	ReasonStatusMismatch: true, ReasonQRMismatch: true,
	ReasonCertExpiring: true, ReasonBodyMismatch: true, ReasonResponseTooLarge: true,
	ReasonExpectMismatch: true, ReasonRcodeMismatch: true, ReasonAnswerMismatch: true,
	ReasonPacketLoss: true, ReasonHighLatency: true, ReasonUnreachable: true,
	ReasonAuthFailed: true, ReasonCanaryMismatch: true, ReasonReplicationLag: true,
	ReasonTooManyConnections: true, ReasonQueryError: true, ReasonQueryThreshold: true,
	ReasonReadonlyViolation: true,
	ReasonIssueError:        true, ReasonQRMissing: true, ReasonQRUnreadable: true, ReasonPDFMissingQR: true, ReasonOFDMissingQR: true, ReasonDocumentMismatch: true,
	ReasonReadbackMismatch: true, ReasonVoidFailed: true, ReasonInvoicesMissingUpstream: true,
	ReasonUpstreamMismatch: true, ReasonUpstreamUnreachable: true, ReasonSourceError: true,
	ReasonPatternThreshold: true, ReasonLogUnreadable: true, ReasonLogMissing: true,
	ReasonCPUHigh: true, ReasonMemoryHigh: true, ReasonDiskLow: true,
	ReasonInodesLow: true, ReasonProcessMissing: true,
	ReasonDependencyFailed: true,
}

// Known reports whether r belongs to the vocabulary.
func (r Reason) Known() bool { return knownReasons[r] }

// Reasons returns the whole vocabulary (for documentation and tests).
func Reasons() []Reason {
	out := make([]Reason, 0, len(knownReasons))
	for r := range knownReasons {
		out = append(out, r)
	}
	return out
}

func sprintf(format string, args ...any) string {
	if len(args) == 0 {
		return format
	}
	return fmt.Sprintf(format, args...)
}
