package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/vigil-project/vigil/probes"
	"github.com/vigil-project/vigil/probes/internal/neterr"
)

func init() {
	probes.Register(probes.Family{
		Type: "postgres", Step: probes.StepDatabase,
		NewConfig: func() probes.Config {
			return &PostgresConfig{Common: defaultCommon(), CanaryTable: "vigil_canary"}
		},
		New:     newPostgres,
		Metrics: Metrics,
	})
}

// PostgresConfig is the `postgres:` section of a check.
type PostgresConfig struct {
	Server `yaml:",inline"`
	Common `yaml:",inline"`
	// CanaryTable is created if missing (schema-qualified names allowed).
	CanaryTable string `yaml:"canary_table"`
}

// Validate reports every problem as a FieldError.
func (c *PostgresConfig) Validate() error {
	errs := append(c.Server.validate(), c.Common.validate()...)
	if err := validateTable(c.CanaryTable); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func newPostgres(c probes.Config, _ probes.Options) (probes.Prober, error) {
	cfg, ok := c.(*PostgresConfig)
	if !ok {
		return nil, fmt.Errorf("postgres: config of type %T", c)
	}
	secret, err := cfg.dsn()
	if err != nil {
		return nil, err
	}
	pc, err := pgx.ParseConfig(secret.Reveal())
	if err != nil {
		// pgx redacts the password in its parse errors.
		return nil, fmt.Errorf("postgres dsn: %w", err)
	}
	tlsCfg, err := cfg.tls(pc.Host)
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil {
		pc.TLSConfig, pc.Fallbacks = tlsCfg, nil
	}
	if pc.RuntimeParams == nil {
		pc.RuntimeParams = map[string]string{}
	}
	pc.RuntimeParams["application_name"] = "vigil"
	return &sqlCheck{
		common:   &cfg.Common,
		table:    cfg.CanaryTable,
		password: pc.Password,
		target:   fmt.Sprintf("postgres://%s@%s:%d/%s", pc.User, pc.Host, pc.Port, pc.Database),
		d:        postgres{cfg: pc},
	}, nil
}

type postgres struct{ cfg *pgx.ConnConfig }

func (p postgres) open() (*sql.DB, error) { return stdlib.OpenDB(*p.cfg), nil }

func (postgres) createTable(t string) string {
	return `CREATE TABLE IF NOT EXISTS ` + quoteTable(t, `"`) + ` (
		token text PRIMARY KEY,
		payload text NOT NULL,
		created_at timestamptz NOT NULL DEFAULT now())`
}

func (postgres) insert(t string) string {
	return `INSERT INTO ` + quoteTable(t, `"`) + ` (token, payload) VALUES ($1, $2)`
}

func (postgres) selectPayload(t string) string {
	return `SELECT payload FROM ` + quoteTable(t, `"`) + ` WHERE token = $1`
}

func (postgres) remove(t string) string {
	return `DELETE FROM ` + quoteTable(t, `"`) + ` WHERE token = $1 OR created_at < now() - interval '1 hour'`
}

// pgHealthSQL reads the role, lag, replicas and connections in one round trip.
const pgHealthSQL = `SELECT
		pg_is_in_recovery(),
		CASE WHEN pg_is_in_recovery() THEN
			CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
			     ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) END
		ELSE (SELECT max(EXTRACT(EPOCH FROM replay_lag)) FROM pg_stat_replication) END,
		CASE WHEN pg_is_in_recovery() THEN NULL ELSE (SELECT count(*) FROM pg_stat_replication) END,
		(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),
		current_setting('max_connections')::float8`

// health reads the role, replication lag and connection use in one round
// trip. On a standby the lag is replay delay (0 when replay has caught up
// with what was received); on a primary, the largest replay_lag among its
// replicas, NULL without replicas.
func (postgres) health(ctx context.Context, conn *sql.Conn) (health, error) {
	var (
		h              health
		lag, replicas  sql.NullFloat64
		used, maxConns float64
	)
	err := conn.QueryRowContext(ctx, pgHealthSQL).Scan(&h.replica, &lag, &replicas, &used, &maxConns)
	if err != nil {
		return h, err
	}
	if lag.Valid {
		h.lag = &lag.Float64
	}
	if replicas.Valid {
		h.replicas = &replicas.Float64
	}
	h.used, h.max = used, maxConns
	return h, nil
}

func (postgres) classify(err error) probes.Reason {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "28P01", "28000":
			return probes.ReasonAuthFailed
		case "53300":
			return probes.ReasonTooManyConnections
		case "25006", "42501":
			return probes.ReasonReadonlyViolation
		case "57014":
			return probes.ReasonTimeout
		}
	}
	return neterr.Classify(err)
}

func (postgres) queryOnly(ctx context.Context, conn *sql.Conn) (*sql.Tx, error) {
	return conn.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
}
