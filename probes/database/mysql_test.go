package database

import (
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/internal/testenv"
	"github.com/vigil-project/vigil/probes"
)

const myAddr = "127.0.0.1:3306"

func myConfig(t *testing.T, dsn string, mutate func(*MySQLConfig)) *MySQLConfig {
	f, _ := probes.Lookup("mysql")
	cfg := f.NewConfig().(*MySQLConfig)
	cfg.DSNFile = dsnFile(t, dsn)
	if mutate != nil {
		mutate(cfg)
	}
	return cfg
}

func myExec(t *testing.T, stmts ...string) {
	t.Helper()
	db, err := sql.Open("mysql", "root@tcp("+myAddr+")/")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func TestMySQL(t *testing.T) {
	testenv.NeedService(t, "MariaDB", myAddr)
	myExec(t,
		"CREATE DATABASE IF NOT EXISTS vigil_test",
		"DROP TABLE IF EXISTS vigil_test.invoices",
		"CREATE TABLE vigil_test.invoices (no VARCHAR(20), synced BOOL)",
		"INSERT INTO vigil_test.invoices VALUES ('1', false), ('2', true)",
		"CREATE USER IF NOT EXISTS 'vigil_ro'@'127.0.0.1' IDENTIFIED BY 'ro-pass'",
		"CREATE USER IF NOT EXISTS 'vigil_ro'@'localhost' IDENTIFIED BY 'ro-pass'",
		"GRANT SELECT ON vigil_test.* TO 'vigil_ro'@'127.0.0.1'",
		"GRANT SELECT ON vigil_test.* TO 'vigil_ro'@'localhost'",
	)
	const dsn = "root@tcp(" + myAddr + ")/vigil_test"
	tests := []struct {
		name    string
		dsn     string
		mutate  func(*MySQLConfig)
		timeout time.Duration
		reason  probes.Reason
		message string
	}{
		{"canary round trip and health", dsn, nil, 5 * time.Second, probes.ReasonNone, ""},
		{"custom query", dsn, func(c *MySQLConfig) {
			c.Queries = []Query{{Name: "unsynced", SQL: "SELECT COUNT(*) FROM invoices WHERE NOT synced", Min: ptr(1), Max: ptr(1)}}
		}, 5 * time.Second, probes.ReasonNone, ""},
		{"custom query under min", dsn, func(c *MySQLConfig) {
			c.Queries = []Query{{Name: "unsynced", SQL: "SELECT COUNT(*) FROM invoices WHERE NOT synced", Min: ptr(5)}}
		}, 5 * time.Second, probes.ReasonQueryThreshold, "query unsynced = 1, below min 5"},
		{"custom query error", dsn, func(c *MySQLConfig) {
			c.Queries = []Query{{Name: "bad", SQL: "SELECT nope FROM invoices"}}
		}, 5 * time.Second, probes.ReasonQueryError, "Unknown column"},
		{"custom queries cannot write", dsn, func(c *MySQLConfig) {
			c.Queries = []Query{{Name: "sneaky", SQL: "UPDATE invoices SET synced = true"}}
		}, 5 * time.Second, probes.ReasonReadonlyViolation, "READ ONLY"},
		{"statement timeout", dsn, func(c *MySQLConfig) {
			c.Queries = []Query{{Name: "slow", SQL: "SELECT SLEEP(10)"}}
		}, 1500 * time.Millisecond, probes.ReasonTimeout, "query slow"},
		{"read-only user", "vigil_ro:ro-pass@tcp(" + myAddr + ")/vigil_test", nil, 5 * time.Second, probes.ReasonReadonlyViolation, "command denied"},
		{"read-only user with readonly: true", "vigil_ro:ro-pass@tcp(" + myAddr + ")/vigil_test", func(c *MySQLConfig) { c.ReadOnly = true }, 5 * time.Second, probes.ReasonNone, ""},
		{"wrong password", "vigil_ro:wrong-pass-456@tcp(" + myAddr + ")/vigil_test", nil, 5 * time.Second, probes.ReasonAuthFailed, "Access denied"},
		{"nothing listening", "root@tcp(" + closedPort(t) + ")/vigil_test", nil, 2 * time.Second, probes.ReasonConnectionRefused, "connect"},
		{"hanging listener", "root@tcp(" + hangingListener(t) + ")/vigil_test", nil, 500 * time.Millisecond, probes.ReasonTimeout, "connect"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			begin := time.Now()
			r := run(t, "mysql", myConfig(t, tt.dsn, tt.mutate), tt.timeout)
			if r.Success != (tt.reason == probes.ReasonNone) || r.Reason != tt.reason || !strings.Contains(r.Message, tt.message) {
				t.Fatalf("got success=%v reason=%q message=%q; want reason=%q containing %q", r.Success, r.Reason, r.Message, tt.reason, tt.message)
			}
			if strings.Contains(r.Message, "wrong-pass-456") || strings.Contains(r.Message, "ro-pass") {
				t.Errorf("password in message: %s", r.Message)
			}
			if took := time.Since(begin); took > tt.timeout+time.Second {
				t.Errorf("run took %s with a %s timeout", took, tt.timeout)
			}
		})
	}
	r := run(t, "mysql", myConfig(t, dsn, nil), 5*time.Second)
	if v, ok := valueOf(r, "vigil_db_connections_used_ratio"); !ok || v <= 0 {
		t.Errorf("connections ratio %v %v", v, ok)
	}
	if v, _ := valueOf(r, "vigil_db_is_replica"); v != 0 {
		t.Errorf("is_replica %v", v)
	}
}
