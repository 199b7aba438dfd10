package database

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"

	"github.com/vigil-project/vigil/probes"
	"github.com/vigil-project/vigil/probes/internal/neterr"
)

func init() {
	probes.Register(probes.Family{
		Type: "mysql", Step: probes.StepDatabase,
		NewConfig: func() probes.Config {
			return &MySQLConfig{Common: defaultCommon(), CanaryTable: "vigil_canary"}
		},
		New:     newMySQL,
		Metrics: Metrics,
	})
}

// MySQLConfig is the `mysql:` section of a check (MySQL, MariaDB, TiDB and
// other MySQL-protocol servers). The DSN is go-sql-driver's
// ("user:password@tcp(host:3306)/invoices").
type MySQLConfig struct {
	Server      `yaml:",inline"`
	Common      `yaml:",inline"`
	CanaryTable string `yaml:"canary_table"`
}

// Validate reports every problem as a FieldError.
func (c *MySQLConfig) Validate() error {
	errs := append(c.Server.validate(), c.Common.validate()...)
	if err := validateTable(c.CanaryTable); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func newMySQL(c probes.Config, _ probes.Options) (probes.Prober, error) {
	cfg, ok := c.(*MySQLConfig)
	if !ok {
		return nil, fmt.Errorf("mysql: config of type %T", c)
	}
	secret, err := cfg.dsn()
	if err != nil {
		return nil, err
	}
	mc, err := mysql.ParseDSN(secret.Reveal())
	if err != nil {
		return nil, errors.New(scrub(fmt.Sprintf("mysql dsn: %v", err), secret.Reveal()))
	}
	host, _, _ := strings.Cut(mc.Addr, ":")
	tlsCfg, err := cfg.tls(host)
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil {
		mc.TLS = tlsCfg
	}
	// The driver talks utf8mb4 unless the DSN says otherwise; a DSN with a
	// narrower charset mangles the canary's multi-byte text, and the check
	// says so (canary_mismatch), as it would mangle invoice data.
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, errors.New(scrub(fmt.Sprintf("mysql dsn: %v", err), mc.Passwd))
	}
	return &sqlCheck{
		common:   &cfg.Common,
		table:    cfg.CanaryTable,
		password: mc.Passwd,
		target:   fmt.Sprintf("mysql://%s@%s/%s", mc.User, mc.Addr, mc.DBName),
		d:        mysqlDialect{connector: connector},
	}, nil
}

type mysqlDialect struct{ connector driver.Connector }

func (m mysqlDialect) open() (*sql.DB, error) { return sql.OpenDB(m.connector), nil }

func (mysqlDialect) createTable(t string) string {
	return `CREATE TABLE IF NOT EXISTS ` + quoteTable(t, "`") + ` (
		token VARCHAR(64) NOT NULL PRIMARY KEY,
		payload TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
		created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)`
}

func (mysqlDialect) insert(t string) string {
	return "INSERT INTO " + quoteTable(t, "`") + " (token, payload) VALUES (?, ?)"
}

func (mysqlDialect) selectPayload(t string) string {
	return "SELECT payload FROM " + quoteTable(t, "`") + " WHERE token = ?"
}

func (mysqlDialect) remove(t string) string {
	return "DELETE FROM " + quoteTable(t, "`") + " WHERE token = ? OR created_at < NOW() - INTERVAL 1 HOUR"
}

// health reads connection use and, on a replica, its lag and whether both
// replication threads run. SHOW REPLICA STATUS is MySQL 8.0.22+ and
// MariaDB 10.5+; older servers know SHOW SLAVE STATUS.
func (mysqlDialect) health(ctx context.Context, conn *sql.Conn) (health, error) {
	var h health
	var name string
	if err := conn.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE 'Threads_connected'").Scan(&name, &h.used); err != nil {
		return h, fmt.Errorf("threads connected: %w", err)
	}
	if err := conn.QueryRowContext(ctx, "SELECT @@max_connections").Scan(&h.max); err != nil {
		return h, fmt.Errorf("max_connections: %w", err)
	}
	status, err := showRow(ctx, conn, "SHOW REPLICA STATUS")
	if err != nil && !isDenied(err) {
		status, err = showRow(ctx, conn, "SHOW SLAVE STATUS")
	}
	switch {
	case isDenied(err):
		// A monitoring user without the privilege still gets the rest.
		h.note = "replication state not readable: grant REPLICATION CLIENT (MySQL) or SLAVE MONITOR (MariaDB) to this user"
		return h, nil
	case err != nil:
		return h, fmt.Errorf("replica status: %w", err)
	}
	if status == nil {
		return h, nil // not a replica
	}
	h.replica = true
	pick := func(keys ...string) string {
		for _, k := range keys {
			if v, ok := status[k]; ok {
				return v
			}
		}
		return ""
	}
	io, sqlThread := pick("Replica_IO_Running", "Slave_IO_Running"), pick("Replica_SQL_Running", "Slave_SQL_Running")
	if io != "Yes" || sqlThread != "Yes" {
		h.stopped = fmt.Sprintf("IO thread %s, SQL thread %s (%s)", io, sqlThread, pick("Last_Error", "Last_SQL_Error", "Last_IO_Error"))
	}
	if v, err := strconv.ParseFloat(pick("Seconds_Behind_Source", "Seconds_Behind_Master"), 64); err == nil {
		h.lag = &v
	}
	return h, nil
}

// showRow returns the first row of a SHOW statement by column name; nil
// when it has no rows.
func showRow(ctx context.Context, conn *sql.Conn, stmt string) (map[string]string, error) {
	rows, err := conn.QueryContext(ctx, stmt)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	if !rows.Next() {
		return nil, rows.Err()
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(cols))
	for i, c := range cols {
		out[c] = vals[i].String
	}
	return out, nil
}

func (mysqlDialect) classify(err error) probes.Reason {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1045, 1044, 1698:
			return probes.ReasonAuthFailed
		case 1040, 1203:
			return probes.ReasonTooManyConnections
		case 1290, 1142, 1036, 1792:
			return probes.ReasonReadonlyViolation
		case 1969, 3024:
			return probes.ReasonTimeout
		}
	}
	return neterr.Classify(err)
}

func (mysqlDialect) queryOnly(ctx context.Context, conn *sql.Conn) (*sql.Tx, error) {
	return conn.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
}

// isDenied reports a missing privilege (1227).
func isDenied(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1227
}
