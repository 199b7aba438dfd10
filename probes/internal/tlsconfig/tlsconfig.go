// Package tlsconfig is the `tls_config:` block shared by the check families
// that speak TLS (http, tcp, databases): files are checked at validation
// and loaded when the check is built, so a reload picks up renewed ones.
package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"time"

	"github.com/vigil-project/vigil/internal/confkit"
	"github.com/vigil-project/vigil/probes"
)

// Config is the `tls_config:` block.
type Config struct {
	// CAFile verifies the server against these CAs instead of the system pool.
	CAFile string `yaml:"ca_file,omitempty"`
	// CertFile and KeyFile are the client certificate for mTLS.
	CertFile string `yaml:"cert_file,omitempty"`
	KeyFile  string `yaml:"key_file,omitempty"`
	// ServerName overrides SNI and the name verified (default: the target host).
	ServerName         string `yaml:"server_name,omitempty"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify,omitempty"`
	// MinVersion is TLS10, TLS11, TLS12 or TLS13 (default TLS12).
	MinVersion string `yaml:"min_version,omitempty"`
}

// Metrics documents the series Values adds, for the families that call it.
var Metrics = []probes.Metric{
	{Name: "vigil_tls_version_info", Help: "1 for the TLS version the connection negotiated."},
	{Name: "vigil_tls_cert_expiry_timestamp_seconds", Help: "Earliest NotAfter of the certificate chain the server presented, Unix time."},
}

var tlsVersions = map[string]uint16{
	"TLS10": tls.VersionTLS10, "TLS11": tls.VersionTLS11, "TLS12": tls.VersionTLS12, "TLS13": tls.VersionTLS13,
}

// Validate reports problems as FieldErrors under prefix (e.g. "tls_config.").
// A nil Config is the zero one (no tls_config block).
func (c *Config) Validate(prefix string) []error {
	if c == nil {
		return nil
	}
	var errs []error
	for _, f := range []struct{ field, path string }{{"ca_file", c.CAFile}, {"cert_file", c.CertFile}, {"key_file", c.KeyFile}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			errs = append(errs, confkit.FieldErrorf(prefix+f.field, "%v", err))
		}
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, confkit.FieldErrorf(prefix+"cert_file", "cert_file and key_file must be set together"))
	}
	if _, ok := tlsVersions[c.MinVersion]; c.MinVersion != "" && !ok {
		errs = append(errs, confkit.FieldErrorf(prefix+"min_version", "unknown TLS version %q (use TLS10, TLS11, TLS12 or TLS13)", c.MinVersion))
	}
	return errs
}

// Build loads the files; host is the default server name ("" lets the
// client derive it from the URL it dials). A nil Config is the zero one.
func (c *Config) Build(host string) (*tls.Config, error) {
	if c == nil {
		c = &Config{}
	}
	cfg := &tls.Config{
		ServerName:         host,
		InsecureSkipVerify: c.InsecureSkipVerify,
		MinVersion:         tls.VersionTLS12,
	}
	if c.ServerName != "" {
		cfg.ServerName = c.ServerName
	}
	if v, ok := tlsVersions[c.MinVersion]; ok {
		cfg.MinVersion = v
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls_config.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls_config.ca_file %s: no PEM certificates found", c.CAFile)
		}
		cfg.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Values exports the negotiated version and the earliest expiry of the
// presented chain, and checks it against min (0 disables).
func Values(res *probes.Result, state *tls.ConnectionState, min time.Duration) (probes.Reason, string) {
	if state == nil {
		return probes.ReasonNone, ""
	}
	res.AddValue("vigil_tls_version_info", 1, probes.Label{Name: "version", Value: tls.VersionName(state.Version)})
	if len(state.PeerCertificates) == 0 {
		return probes.ReasonNone, ""
	}
	earliest := state.PeerCertificates[0]
	for _, c := range state.PeerCertificates[1:] {
		if c.NotAfter.Before(earliest.NotAfter) {
			earliest = c
		}
	}
	res.AddKeyValue("vigil_tls_cert_expiry_timestamp_seconds", float64(earliest.NotAfter.Unix()))
	if left := time.Until(earliest.NotAfter); min > 0 && left < min {
		return probes.ReasonCertExpiring, fmt.Sprintf("certificate %q expires %s (in %s, less than %s)",
			earliest.Subject.CommonName, earliest.NotAfter.UTC().Format(time.RFC3339), left.Round(time.Hour), min)
	}
	return probes.ReasonNone, ""
}
