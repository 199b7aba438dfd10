// Package invoice holds the invoice checks: invoice_qr issues a probe
// e-invoice and verifies the QR code on its image and PDF against what was
// asked (checklist step 3), and invoice_sync reconciles recent local invoices
// with the upstream tax platform (the "issued, but the tax system does not
// have it" failure). Both reach the platform through a small adapter of
// paths and JSONPaths, so they work against any service with this API shape.
package invoice
