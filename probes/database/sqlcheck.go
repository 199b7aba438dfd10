package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/vigil-project/vigil/probes"
)

// dialect is what differs between the SQL engines; the run itself is the
// same for all of them (sqlCheck.Probe).
type dialect interface {
	// open returns a handle that has not connected yet.
	open() (*sql.DB, error)
	// canary statements for the table; placeholders in the engine's style.
	createTable(table string) string
	insert(table string) string
	selectPayload(table string) string
	// remove deletes the canary and any left by runs that died midway.
	remove(table string) string
	health(ctx context.Context, conn *sql.Conn) (health, error)
	// classify maps engine errors (auth, limits, read-only) to reasons.
	classify(err error) probes.Reason
	// queryOnly prepares conn so custom queries cannot write.
	queryOnly(ctx context.Context, conn *sql.Conn) (*sql.Tx, error)
}

// sqlCheck runs connect, ping, canary, health and queries on one fresh
// connection, closed at the end of the run.
type sqlCheck struct {
	common *Common
	table  string
	// password is scrubbed from every message.
	password string
	// target is a redacted description of the server for messages.
	target string
	d      dialect
}

// Probe runs the check.
func (s *sqlCheck) Probe(ctx context.Context, log *slog.Logger) probes.Result {
	var res probes.Result
	ph := &phases{res: &res}
	fail := func(reason probes.Reason, what string, err error) probes.Result {
		ph.end()
		res.Reason = reason
		res.Message = scrub(fmt.Sprintf("%s: %s: %v", s.target, what, err), s.password)
		return res
	}

	ph.begin("connect")
	db, err := s.d.open()
	if err != nil {
		return fail(probes.ReasonError, "open", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(ctx)
	if err != nil {
		return fail(s.d.classify(err), "connect", err)
	}
	defer conn.Close()

	ph.begin("ping")
	if err := conn.PingContext(ctx); err != nil {
		return fail(s.d.classify(err), "ping", err)
	}

	if !s.common.ReadOnly {
		if r, what, err := s.canary(ctx, conn, ph); err != nil {
			return fail(r, what, err)
		}
	}

	ph.begin("health")
	h, err := s.d.health(ctx, conn)
	if err != nil {
		return fail(s.d.classify(err), "server health", err)
	}
	var thresholdErr error
	if len(s.common.Queries) > 0 {
		ph.begin("queries")
		tx, err := s.d.queryOnly(ctx, conn)
		if err != nil {
			return fail(s.d.classify(err), "start read-only transaction", err)
		}
		defer tx.Rollback()
		for _, q := range s.common.Queries {
			var v sql.NullFloat64
			if err := tx.QueryRowContext(ctx, q.SQL).Scan(&v); err != nil {
				r := s.d.classify(err)
				if r == probes.ReasonError {
					r = probes.ReasonQueryError
				}
				return fail(r, "query "+q.Name, err)
			}
			if !v.Valid {
				return fail(probes.ReasonQueryError, "query "+q.Name, errors.New("returned NULL"))
			}
			res.AddValue("vigil_sql_value", v.Float64, probes.Label{Name: "query", Value: q.Name})
			if err := checkQueryValue(q, v.Float64); err != nil && thresholdErr == nil {
				thresholdErr = err
			}
		}
	}
	ph.end()
	conclude(&res, h, s.common, s.target, thresholdErr)
	return res
}

// canary writes a row with a unique token, reads it back and deletes it.
func (s *sqlCheck) canary(ctx context.Context, conn *sql.Conn, ph *phases) (probes.Reason, string, error) {
	token, payload := newToken()
	ph.begin("canary_write")
	if _, err := conn.ExecContext(ctx, s.d.createTable(s.table)); err != nil {
		return s.d.classify(err), "create canary table " + s.table, err
	}
	if _, err := conn.ExecContext(ctx, s.d.insert(s.table), token, payload); err != nil {
		return s.d.classify(err), "write canary", err
	}
	ph.begin("canary_read")
	var got string
	if err := conn.QueryRowContext(ctx, s.d.selectPayload(s.table), token).Scan(&got); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return probes.ReasonCanaryMismatch, "read canary", errors.New("the row just written is not there")
		}
		return s.d.classify(err), "read canary", err
	}
	if got != payload {
		return probes.ReasonCanaryMismatch, "read canary", fmt.Errorf("%w: wrote %q, read %q", errCanaryMismatch, payload, got)
	}
	ph.begin("canary_delete")
	r, err := conn.ExecContext(ctx, s.d.remove(s.table), token)
	if err != nil {
		return s.d.classify(err), "delete canary", err
	}
	if n, err := r.RowsAffected(); err == nil && n < 1 {
		return probes.ReasonCanaryMismatch, "delete canary", errors.New("no row deleted")
	}
	return probes.ReasonNone, "", nil
}

// quoteTable quotes each part of a validated identifier with q.
func quoteTable(table, q string) string {
	parts := strings.Split(table, ".")
	for i, p := range parts {
		parts[i] = q + p + q
	}
	return strings.Join(parts, ".")
}
