// Package platform is the demo e-invoice platform vigil's invoice checks,
// rules, runbooks and drills run against: issuers (primary and standby) that
// issue fully digital invoices with a QR code and a PDF, a gateway that routes
// clients to the active issuer, and an upstream that plays the tax platform.
// Faults can be injected through loopback-only admin listeners.
package platform
