-- Runbook journal: every run and every step transition, written before and
-- after it happens; and the local backend's runbook state (cooldowns,
-- acknowledgements, the pause switch).
CREATE TABLE runbook_runs (
    id          TEXT    PRIMARY KEY,
    runbook     TEXT    NOT NULL,
    target      TEXT    NOT NULL,
    trigger     TEXT    NOT NULL, -- "alert AlertName" or "manual by <who>"
    labels      TEXT    NOT NULL, -- JSON object
    alert       TEXT    NOT NULL DEFAULT '', -- "<fingerprint>@<startsAt ms>" of the triggering alert
    mode        TEXT    NOT NULL,
    state       TEXT    NOT NULL, -- waiting_approval | running | blocked | interrupted | a result
    error       TEXT    NOT NULL DEFAULT '',
    fencing     INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL, -- unix milliseconds
    finished_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runbook_runs_created ON runbook_runs (created_at);
CREATE INDEX runbook_runs_state ON runbook_runs (state);

CREATE TABLE runbook_events (
    run_id   TEXT    NOT NULL,
    seq      INTEGER NOT NULL,
    at       INTEGER NOT NULL,
    kind     TEXT    NOT NULL, -- created | approved | rejected | step_start | step_end | planned | finished | interrupted | aborted | resumed
    phase    TEXT    NOT NULL DEFAULT '',
    step     INTEGER NOT NULL DEFAULT -1,
    name     TEXT    NOT NULL DEFAULT '',
    attempt  INTEGER NOT NULL DEFAULT 0,
    detail   TEXT    NOT NULL DEFAULT '', -- JSON: rendered step, outcome, who
    error    TEXT    NOT NULL DEFAULT '',
    took_ms  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE runbook_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
