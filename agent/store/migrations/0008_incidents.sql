-- Incidents (issue 22): one row per firing episode of an alert, opened
-- when it fires and closed when it resolves. The timeline of an incident
-- (check failures, pages, runbook runs, silences) is read from the other
-- tables when it is shown; this row keeps what they may not keep as long:
-- when the check first failed, when the alert fired and resolved, and the
-- root cause a dependency gave.
CREATE TABLE incidents (
    id               INTEGER PRIMARY KEY,
    fingerprint      TEXT    NOT NULL,
    alertname        TEXT    NOT NULL,
    labels           TEXT    NOT NULL, -- JSON object
    annotations      TEXT    NOT NULL, -- JSON object
    check_name       TEXT    NOT NULL DEFAULT '',
    root_cause       TEXT    NOT NULL DEFAULT '', -- the failing dependency, if any
    started_at       INTEGER NOT NULL, -- unix ms: the alert became active (pending)
    firing_at        INTEGER NOT NULL, -- unix ms: first seen firing
    first_failure_at INTEGER NOT NULL DEFAULT 0, -- unix ms: the check's first failed run of the streak
    paged_at         INTEGER NOT NULL DEFAULT 0, -- unix ms: first page delivered, set on close
    resolved_at      INTEGER NOT NULL DEFAULT 0  -- unix ms; 0 while open
);
CREATE INDEX incidents_open ON incidents (resolved_at, fingerprint);
CREATE INDEX incidents_firing ON incidents (firing_at);
