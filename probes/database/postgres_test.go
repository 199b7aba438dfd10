package database

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigil-project/vigil/internal/testenv"
	"github.com/vigil-project/vigil/probes"
	"github.com/vigil-project/vigil/probes/internal/tlsconfig"
)

const pgAddr = "127.0.0.1:5432"

func pgConfig(t *testing.T, dsn string, mutate func(*PostgresConfig)) *PostgresConfig {
	f, _ := probes.Lookup("postgres")
	cfg := f.NewConfig().(*PostgresConfig)
	cfg.DSNFile = dsnFile(t, dsn)
	if mutate != nil {
		mutate(cfg)
	}
	return cfg
}

// pgExec runs setup SQL as the superuser.
func pgExec(t *testing.T, sqls ...string) {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, "postgres://postgres@"+pgAddr+"/test")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	for _, s := range sqls {
		if _, err := c.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func TestPostgres(t *testing.T) {
	testenv.NeedService(t, "PostgreSQL", pgAddr)
	pgExec(t,
		`DROP TABLE IF EXISTS vigil_test_invoices`,
		`CREATE TABLE vigil_test_invoices (no text, issued_at timestamptz, synced bool)`,
		`INSERT INTO vigil_test_invoices VALUES ('1', now() - interval '1 hour', false), ('2', now(), false), ('3', now() - interval '2 hours', true)`,
		`DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'vigil_ro') THEN CREATE ROLE vigil_ro LOGIN; END IF; END $$`,
		`ALTER ROLE vigil_ro SET default_transaction_read_only = on`,
		`GRANT SELECT ON ALL TABLES IN SCHEMA public TO vigil_ro`,
	)
	const dsn = "postgres://postgres@" + pgAddr + "/test?sslmode=disable"
	unsynced := `SELECT count(*) FROM vigil_test_invoices WHERE NOT synced AND issued_at < now() - interval '15 minutes'`
	tests := []struct {
		name    string
		dsn     string
		mutate  func(*PostgresConfig)
		timeout time.Duration
		reason  probes.Reason
		message string
	}{
		{"canary round trip and health", dsn, nil, 5 * time.Second, probes.ReasonNone, ""},
		{"schema-qualified canary table", dsn, func(c *PostgresConfig) { c.CanaryTable = "public.vigil_canary_q" }, 5 * time.Second, probes.ReasonNone, ""},
		{"custom query within thresholds", dsn, func(c *PostgresConfig) {
			c.Queries = []Query{{Name: "unsynced_invoices", SQL: unsynced, Max: ptr(1)}}
		}, 5 * time.Second, probes.ReasonNone, ""},
		{"custom query over max", dsn, func(c *PostgresConfig) {
			c.Queries = []Query{{Name: "unsynced_invoices", SQL: unsynced, Max: ptr(0)}}
		}, 5 * time.Second, probes.ReasonQueryThreshold, "query unsynced_invoices = 1, above max 0"},
		{"custom query fails", dsn, func(c *PostgresConfig) {
			c.Queries = []Query{{Name: "broken", SQL: "SELECT count(*) FROM no_such_table"}}
		}, 5 * time.Second, probes.ReasonQueryError, `relation "no_such_table" does not exist`},
		{"custom queries cannot write", dsn, func(c *PostgresConfig) {
			c.Queries = []Query{{Name: "sneaky", SQL: "WITH d AS (DELETE FROM vigil_test_invoices RETURNING 1) SELECT count(*) FROM d"}}
		}, 5 * time.Second, probes.ReasonReadonlyViolation, "read-only transaction"},
		{"statement timeout", dsn, func(c *PostgresConfig) {
			c.Queries = []Query{{Name: "slow", SQL: "SELECT 1 FROM pg_sleep(10)"}}
		}, 1500 * time.Millisecond, probes.ReasonTimeout, "query slow"},
		{"read-only role", "postgres://vigil_ro@" + pgAddr + "/test?sslmode=disable", nil, 5 * time.Second, probes.ReasonReadonlyViolation, "read-only transaction"},
		{"read-only role with readonly: true", "postgres://vigil_ro@" + pgAddr + "/test?sslmode=disable", func(c *PostgresConfig) { c.ReadOnly = true }, 5 * time.Second, probes.ReasonNone, ""},
		{"connections ratio", dsn, func(c *PostgresConfig) { c.MaxConnectionsRatio = 0.0001 }, 5 * time.Second, probes.ReasonTooManyConnections, "connections in use"},
		{"nothing listening", "postgres://postgres@" + closedPort(t) + "/test?sslmode=disable", nil, 2 * time.Second, probes.ReasonConnectionRefused, "connect"},
		{"hanging listener", "postgres://postgres@" + hangingListener(t) + "/test?sslmode=disable", nil, 500 * time.Millisecond, probes.ReasonTimeout, "connect"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			begin := time.Now()
			r := run(t, "postgres", pgConfig(t, tt.dsn, tt.mutate), tt.timeout)
			if r.Success != (tt.reason == probes.ReasonNone) || r.Reason != tt.reason || !strings.Contains(r.Message, tt.message) {
				t.Fatalf("got success=%v reason=%q message=%q; want reason=%q containing %q", r.Success, r.Reason, r.Message, tt.reason, tt.message)
			}
			if took := time.Since(begin); took > tt.timeout+time.Second {
				t.Errorf("run took %s with a %s timeout", took, tt.timeout)
			}
		})
	}

	r := run(t, "postgres", pgConfig(t, dsn, func(c *PostgresConfig) {
		c.Queries = []Query{{Name: "unsynced_invoices", SQL: unsynced}}
	}), 5*time.Second)
	if got := phaseNames(r); got != "connect,ping,canary_write,canary_read,canary_delete,health,queries" {
		t.Errorf("phases %s", got)
	}
	for _, name := range []string{"vigil_db_connections_used_ratio", "vigil_db_is_replica", "vigil_db_replicas"} {
		if _, ok := valueOf(r, name); !ok {
			t.Errorf("no %s in %+v", name, r.Values)
		}
	}
	if v, _ := valueOf(r, "vigil_sql_value", "unsynced_invoices"); v != 1 {
		t.Errorf("vigil_sql_value = %v, want 1", v)
	}
	if v, _ := valueOf(r, "vigil_db_phase_duration_seconds", "canary_read"); v <= 0 {
		t.Errorf("no canary_read phase value")
	}
	// The canary cleans up after itself.
	var left int
	c, _ := pgx.Connect(context.Background(), "postgres://postgres@"+pgAddr+"/test")
	defer c.Close(context.Background())
	c.QueryRow(context.Background(), "SELECT count(*) FROM vigil_canary").Scan(&left)
	if left != 0 {
		t.Errorf("%d canary rows left behind", left)
	}
}

// TestPostgresAuth needs a role that must give a password. This machine's
// pg_hba.conf trusts loopback, so the test puts a scram-sha-256 line for
// that one role first and reloads the server (idempotent).
func TestPostgresAuth(t *testing.T) {
	testenv.NeedService(t, "PostgreSQL", pgAddr)
	ctx := context.Background()
	c, err := pgx.Connect(ctx, "postgres://postgres@"+pgAddr+"/test")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var hbaFile string
	if err := c.QueryRow(ctx, "SHOW hba_file").Scan(&hbaFile); err != nil {
		t.Fatal(err)
	}
	const line = "host all vigil_pw 127.0.0.1/32 scram-sha-256"
	hba, err := os.ReadFile(hbaFile)
	if err != nil {
		requireWritable(t, err)
	}
	if !strings.Contains(string(hba), line) {
		if err := os.WriteFile(hbaFile, append([]byte(line+"\n"), hba...), 0o640); err != nil {
			requireWritable(t, err)
		}
	}
	pgExec(t,
		`DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'vigil_pw') THEN CREATE ROLE vigil_pw LOGIN; END IF; END $$`,
		`ALTER ROLE vigil_pw PASSWORD 'right-horse-battery'`,
		`GRANT CREATE ON SCHEMA public TO vigil_pw`,
		`SELECT pg_reload_conf()`,
	)
	// The postmaster rereads hba asynchronously: until it has, loopback is
	// trusted and the wrong password gets in.
	var r probes.Result
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r = run(t, "postgres", pgConfig(t, "postgres://vigil_pw:wrong-password-123@"+pgAddr+"/test?sslmode=disable", nil), 5*time.Second)
		if r.Reason == probes.ReasonAuthFailed || time.Now().After(deadline) {
			break
		}
	}
	if r.Reason != probes.ReasonAuthFailed || strings.Contains(r.Message, "wrong-password-123") {
		t.Errorf("wrong password: %q %s", r.Reason, r.Message)
	}
	r = run(t, "postgres", pgConfig(t, "postgres://vigil_pw:right-horse-battery@"+pgAddr+"/test?sslmode=disable",
		func(c *PostgresConfig) { c.CanaryTable = "vigil_canary_pw" }), 5*time.Second)
	if !r.Success {
		t.Errorf("right password: %q %s", r.Reason, r.Message)
	}
}

func requireWritable(t *testing.T, err error) {
	t.Helper()
	testenv.Missingf(t, "write access to pg_hba.conf", "cannot set up password authentication (%v); CI runs this as root", err)
}

// TestPostgresNoLeakAndTLS: runs leave no connection behind, and
// tls_config is used for the connection when given.
func TestPostgresNoLeakAndTLS(t *testing.T) {
	testenv.NeedService(t, "PostgreSQL", pgAddr)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, "postgres://postgres@"+pgAddr+"/test")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	for range 5 {
		if r := run(t, "postgres", pgConfig(t, "postgres://postgres@"+pgAddr+"/test?sslmode=disable", nil), 5*time.Second); !r.Success {
			t.Fatalf("%q %s", r.Reason, r.Message)
		}
	}
	var left int
	// The server notices a closed connection within milliseconds.
	for range 50 {
		admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'vigil'").Scan(&left)
		if left == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if left != 0 {
		t.Errorf("%d vigil connections left open after the runs", left)
	}

	var ssl string
	admin.QueryRow(ctx, "SHOW ssl").Scan(&ssl)
	if ssl != "on" {
		testenv.SkipOptional(t, "PostgreSQL with ssl on", "the server has ssl off; TLS part skipped")
	}
	r := run(t, "postgres", pgConfig(t, "postgres://postgres@"+pgAddr+"/test?sslmode=disable", func(c *PostgresConfig) {
		c.TLSConfig = &tlsconfig.Config{InsecureSkipVerify: true}
		c.Queries = []Query{{Name: "tls", SQL: "SELECT count(*) FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl"}}
	}), 5*time.Second)
	if v, _ := valueOf(r, "vigil_sql_value", "tls"); !r.Success || v != 1 {
		t.Errorf("connection over TLS: %q %s, ssl=%v", r.Reason, r.Message, v)
	}
	r = run(t, "postgres", pgConfig(t, "postgres://postgres@"+pgAddr+"/test", func(c *PostgresConfig) {
		c.TLSConfig = &tlsconfig.Config{} // verify against system CAs: the snakeoil cert fails
	}), 5*time.Second)
	if r.Reason != probes.ReasonTLSError {
		t.Errorf("unverifiable server certificate: %q %s", r.Reason, r.Message)
	}
}
