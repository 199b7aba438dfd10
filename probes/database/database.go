// Package database holds the checks of checklist step 2 — postgres, mysql,
// redis and sqlite: each run connects, pings, writes a canary with a unique
// token, reads it back byte for byte and deletes it, then reads the
// server's replication state and connection headroom and runs the
// operator's own queries. A `SELECT 1` would not prove invoices can be
// stored; this does.
package database

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"github.com/vigil-project/vigil/internal/confkit"
	"github.com/vigil-project/vigil/probes"
	"github.com/vigil-project/vigil/probes/internal/tlsconfig"
)

// Server are the connection settings of the families that dial a server.
type Server struct {
	// DSN comes from the environment ("${INVOICE_DB_DSN}"); DSNFile from a
	// file. Exactly one is set. Neither is ever shown.
	DSN       confkit.Secret    `yaml:"dsn,omitempty"`
	DSNFile   string            `yaml:"dsn_file,omitempty"`
	TLSConfig *tlsconfig.Config `yaml:"tls_config,omitempty"`
}

func (s *Server) validate() []error {
	var errs []error
	switch {
	case s.DSN.IsSet() && s.DSNFile != "":
		errs = append(errs, confkit.FieldErrorf("dsn_file", "set only one of dsn and dsn_file"))
	case !s.DSN.IsSet() && s.DSNFile == "":
		errs = append(errs, confkit.FieldErrorf("dsn", "required: dsn (as ${ENV_VAR}) or dsn_file"))
	case s.DSNFile != "":
		if _, err := os.Stat(s.DSNFile); err != nil {
			errs = append(errs, confkit.FieldErrorf("dsn_file", "%v", err))
		}
	}
	if s.TLSConfig != nil {
		errs = append(errs, s.TLSConfig.Validate("tls_config.")...)
	}
	return errs
}

// dsn returns the secret DSN, read from dsn_file when that is used.
func (s *Server) dsn() (confkit.Secret, error) {
	if s.DSNFile != "" {
		return confkit.ReadSecretFile(s.DSNFile)
	}
	return s.DSN, nil
}

// tls builds the TLS client config, nil when none is configured (the DSN's
// own TLS settings then apply).
func (s *Server) tls(host string) (*tls.Config, error) {
	if s.TLSConfig == nil {
		return nil, nil
	}
	return s.TLSConfig.Build(host)
}

// Metrics documents the series every database family exports.
var Metrics = []probes.Metric{
	{Name: "vigil_db_phase_duration_seconds", Help: "Duration of each phase of the last run (connect, ping, canary_write, canary_read, canary_delete, health, queries)."},
	{Name: "vigil_db_replication_lag_seconds", Help: "Replication lag the server reports."},
	{Name: "vigil_db_is_replica", Help: "1 when the server is a standby or replica."},
	{Name: "vigil_db_replicas", Help: "Replicas connected to the primary."},
	{Name: "vigil_db_connections_used", Help: "Client connections in use on the server."},
	{Name: "vigil_db_connections_max", Help: "Client connections the server allows."},
	{Name: "vigil_db_connections_used_ratio", Help: "Connections in use / connections allowed."},
	{Name: "vigil_sql_value", Help: "The number each configured query returned, by query."},
}

// Common are the settings every database family shares.
type Common struct {
	// ReadOnly skips the canary write (for replicas and read-only users).
	ReadOnly bool `yaml:"readonly"`
	// MaxReplicationLag fails with replication_lag when exceeded (0 disables).
	MaxReplicationLag model.Duration `yaml:"max_replication_lag"`
	// MaxConnectionsRatio fails with too_many_connections above it (1 disables).
	MaxConnectionsRatio float64 `yaml:"max_connections_ratio"`
	// Queries each return one number, exported as vigil_sql_value.
	Queries []Query `yaml:"queries,omitempty"`
}

// Query is an operator's own health query.
type Query struct {
	Name string `yaml:"name"`
	// SQL returns one row with one numeric column (Redis: a command whose
	// reply is a number, e.g. "LLEN invoice:sync:queue").
	SQL string   `yaml:"sql"`
	Min *float64 `yaml:"min,omitempty"`
	Max *float64 `yaml:"max,omitempty"`
}

func defaultCommon() Common {
	return Common{MaxReplicationLag: model.Duration(30 * time.Second), MaxConnectionsRatio: 0.9}
}

var queryNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

func (c *Common) validate() []error {
	var errs []error
	if c.MaxReplicationLag < 0 {
		errs = append(errs, confkit.FieldErrorf("max_replication_lag", "must not be negative"))
	}
	if c.MaxConnectionsRatio <= 0 || c.MaxConnectionsRatio > 1 {
		errs = append(errs, confkit.FieldErrorf("max_connections_ratio", "must be in (0, 1], got %g", c.MaxConnectionsRatio))
	}
	seen := map[string]bool{}
	for i, q := range c.Queries {
		field := fmt.Sprintf("queries.%d", i)
		switch {
		case !queryNameRE.MatchString(q.Name):
			errs = append(errs, confkit.FieldErrorf(field+".name", "must match [a-zA-Z_][a-zA-Z0-9_]*, got %q", q.Name))
		case seen[q.Name]:
			errs = append(errs, confkit.FieldErrorf(field+".name", "duplicate query name %q", q.Name))
		}
		seen[q.Name] = true
		if strings.TrimSpace(q.SQL) == "" {
			errs = append(errs, confkit.FieldErrorf(field+".sql", "required"))
		}
		if q.Min != nil && q.Max != nil && *q.Min > *q.Max {
			errs = append(errs, confkit.FieldErrorf(field+".min", "min %g is greater than max %g", *q.Min, *q.Max))
		}
	}
	return errs
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$`)

// validateTable checks a canary table name: it is put into SQL text, so it
// must be a plain (optionally schema-qualified) identifier.
func validateTable(name string) error {
	if !identRE.MatchString(name) {
		return confkit.FieldErrorf("canary_table", "must be an identifier like vigil_canary or ops.vigil_canary, got %q", name)
	}
	return nil
}

// newToken returns a unique canary token and the payload stored with it.
// The payload mixes multi-byte text and bytes that trip naive encodings,
// so a read back that is not byte-for-byte equal is noticed.
func newToken() (token, payload string) {
	b := make([]byte, 16)
	rand.Read(b)
	token = "vigil-" + hex.EncodeToString(b)
	return token, token + "|发票✓|'\"\\|" + time.Now().UTC().Format(time.RFC3339Nano)
}

// scrub removes a password from text that may reach logs or the API:
// driver errors sometimes quote what they were given.
func scrub(s, password string) string {
	if password == "" {
		return s
	}
	return strings.ReplaceAll(s, password, "<secret>")
}

// checkQueryValue applies a query's thresholds.
func checkQueryValue(q Query, v float64) error {
	switch {
	case q.Min != nil && v < *q.Min:
		return fmt.Errorf("query %s = %g, below min %g", q.Name, v, *q.Min)
	case q.Max != nil && v > *q.Max:
		return fmt.Errorf("query %s = %g, above max %g", q.Name, v, *q.Max)
	}
	return nil
}

// health is what a server says about itself.
type health struct {
	// replica is true on a standby / replica.
	replica bool
	// lag is the replication delay in seconds, when known: the standby's own
	// lag, or on a primary the largest lag among its replicas.
	lag *float64
	// replicas connected to a primary, when known.
	replicas *float64
	// connections in use and allowed; max 0 when unknown.
	used, max float64
	// stopped names a replication stream that is not running.
	stopped string
	// note says what could not be read, for diagnostics.
	note string
}

// judgeHealth exports health values and applies the thresholds.
func judgeHealth(res *probes.Result, h health, c *Common) (probes.Reason, string) {
	if h.note != "" {
		res.Diagnostics = map[string]any{"health_note": h.note}
	} else {
		res.AddValue("vigil_db_is_replica", boolFloat(h.replica))
	}
	if h.replicas != nil {
		res.AddValue("vigil_db_replicas", *h.replicas)
	}
	if h.lag != nil {
		res.AddKeyValue("vigil_db_replication_lag_seconds", *h.lag)
	}
	if h.max > 0 {
		ratio := h.used / h.max
		res.AddValue("vigil_db_connections_used", h.used)
		res.AddValue("vigil_db_connections_max", h.max)
		res.AddKeyValue("vigil_db_connections_used_ratio", ratio)
		if ratio > c.MaxConnectionsRatio {
			return probes.ReasonTooManyConnections, fmt.Sprintf("%.0f of %.0f connections in use (%.0f%% > %.0f%%)", h.used, h.max, ratio*100, c.MaxConnectionsRatio*100)
		}
	}
	if h.stopped != "" {
		return probes.ReasonReplicationLag, "replication stopped: " + h.stopped
	}
	if h.lag != nil && c.MaxReplicationLag > 0 && *h.lag > time.Duration(c.MaxReplicationLag).Seconds() {
		return probes.ReasonReplicationLag, fmt.Sprintf("replication lag %.1fs > %s", *h.lag, c.MaxReplicationLag)
	}
	return probes.ReasonNone, ""
}

// conclude judges a run that got through every phase: server health first
// (it says more about invoices going missing), then the query thresholds.
func conclude(res *probes.Result, h health, c *Common, target string, thresholdErr error) {
	if r, msg := judgeHealth(res, h, c); r != probes.ReasonNone {
		res.Reason, res.Message = r, target+": "+msg
		return
	}
	if thresholdErr != nil {
		res.Reason, res.Message = probes.ReasonQueryThreshold, target+": "+thresholdErr.Error()
		return
	}
	res.Success = true
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// phases records per-phase timings both as the core phase series and as
// vigil_db_phase_duration_seconds.
type phases struct {
	res   *probes.Result
	start time.Time
	name  string
}

func (p *phases) begin(name string) {
	p.end()
	p.name, p.start = name, time.Now()
}

func (p *phases) end() {
	if p.name == "" {
		return
	}
	d := time.Since(p.start)
	p.res.Phases = append(p.res.Phases, probes.Phase{Name: p.name, Duration: d})
	p.res.AddValue("vigil_db_phase_duration_seconds", d.Seconds(), probes.Label{Name: "phase", Value: p.name})
	p.name = ""
}

var errCanaryMismatch = errors.New("canary mismatch")
