package store

import (
	"context"
	"fmt"
)

// AlertRow is one persisted alert of the rule engine. Times are Unix
// milliseconds (0 for unset); Labels and Annotations are JSON objects.
type AlertRow struct {
	Labels, Annotations string
	State               string
	Value               float64
	ActiveAt, FiredAt   int64
	ResolvedAt          int64
	LastSentAt          int64
	KeepFiringSince     int64
}

// SaveAlerts replaces the persisted alerts of one rule.
func (s *Store) SaveAlerts(ctx context.Context, ruleKey string, rows []AlertRow) (err error) {
	defer func() { err = s.track(opAlerts, err) }()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("save alerts: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `DELETE FROM alert_state WHERE rule_key = ?`, ruleKey); err != nil {
		return fmt.Errorf("save alerts: %w", err)
	}
	for _, r := range rows {
		if _, err := tx.ExecContext(ctx, `INSERT INTO alert_state (rule_key, labels, annotations, state, value,
			active_at, fired_at, resolved_at, last_sent_at, keep_firing_since) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			ruleKey, r.Labels, r.Annotations, r.State, r.Value, r.ActiveAt, r.FiredAt, r.ResolvedAt, r.LastSentAt, r.KeepFiringSince); err != nil {
			return fmt.Errorf("save alerts: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("save alerts: %w", err)
	}
	return nil
}

// LoadAlerts returns every persisted alert by rule key.
func (s *Store) LoadAlerts(ctx context.Context) (map[string][]AlertRow, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT rule_key, labels, annotations, state, value, active_at, fired_at,
		resolved_at, last_sent_at, keep_firing_since FROM alert_state`)
	if err != nil {
		return nil, fmt.Errorf("load alerts: %w", err)
	}
	defer rows.Close()
	out := map[string][]AlertRow{}
	for rows.Next() {
		var key string
		var r AlertRow
		if err := rows.Scan(&key, &r.Labels, &r.Annotations, &r.State, &r.Value, &r.ActiveAt, &r.FiredAt,
			&r.ResolvedAt, &r.LastSentAt, &r.KeepFiringSince); err != nil {
			return nil, fmt.Errorf("load alerts: %w", err)
		}
		out[key] = append(out[key], r)
	}
	return out, rows.Err()
}

// KeepAlertRules deletes the alerts of rules no longer configured.
func (s *Store) KeepAlertRules(ctx context.Context, keys []string) (err error) {
	defer func() { err = s.track(opAlerts, err) }()
	current, err := s.LoadAlerts(ctx)
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, k := range keys {
		keep[k] = true
	}
	for k := range current {
		if !keep[k] {
			if _, err := s.w.ExecContext(ctx, `DELETE FROM alert_state WHERE rule_key = ?`, k); err != nil {
				return fmt.Errorf("drop alerts: %w", err)
			}
		}
	}
	return nil
}
