package database

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vigil-project/vigil/probes"
)

const benchDSN = "postgres://postgres@" + pgAddr + "/test?sslmode=disable"

func skipWithoutPG(b *testing.B) {
	c, err := net.DialTimeout("tcp", pgAddr, time.Second)
	if err != nil {
		b.Skipf("PostgreSQL not reachable on %s", pgAddr)
	}
	c.Close()
}

// BenchmarkPostgresCheck is one full postgres check: connect, ping, canary
// write/read/delete, health. Compare with BenchmarkPostgresRawPgx.
func BenchmarkPostgresCheck(b *testing.B) {
	skipWithoutPG(b)
	f, _ := probes.Lookup("postgres")
	cfg := f.NewConfig().(*PostgresConfig)
	path := b.TempDir() + "/dsn"
	writeFile(b, path, benchDSN)
	cfg.DSNFile = path
	p, err := f.New(cfg, probes.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for b.Loop() {
		if r := p.Probe(ctx, discard); !r.Success {
			b.Fatalf("%q %s", r.Reason, r.Message)
		}
	}
}

// BenchmarkPostgresRawPgx issues the same statements directly with pgx on
// a fresh connection per iteration, as the check does.
func BenchmarkPostgresRawPgx(b *testing.B) {
	skipWithoutPG(b)
	ctx := context.Background()
	d := postgres{}
	for b.Loop() {
		conn, err := pgx.Connect(ctx, benchDSN)
		if err != nil {
			b.Fatal(err)
		}
		if err := conn.Ping(ctx); err != nil {
			b.Fatal(err)
		}
		token, payload := newToken()
		if _, err := conn.Exec(ctx, d.createTable("vigil_canary")); err != nil {
			b.Fatal(err)
		}
		if _, err := conn.Exec(ctx, d.insert("vigil_canary"), token, payload); err != nil {
			b.Fatal(err)
		}
		var got string
		if err := conn.QueryRow(ctx, d.selectPayload("vigil_canary"), token).Scan(&got); err != nil || got != payload {
			b.Fatal(err)
		}
		if _, err := conn.Exec(ctx, d.remove("vigil_canary"), token); err != nil {
			b.Fatal(err)
		}
		var (
			replica        bool
			lag, replicas  *float64
			used, maxConns float64
		)
		if err := conn.QueryRow(ctx, pgHealthSQL).Scan(&replica, &lag, &replicas, &used, &maxConns); err != nil {
			b.Fatal(err)
		}
		conn.Close(ctx)
	}
}

func writeFile(b *testing.B, path, s string) {
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		b.Fatal(err)
	}
}
