// Package einvoice holds the formats of Chinese electronic invoices that both
// the invoice checks and the demo invoice platform speak: the QR payload
// (DESIGN.md §6), unified social credit codes (GB 32100-2015) and amounts in
// fen. It is deliberately free of I/O so it can be fuzzed and unit-tested.
package einvoice
