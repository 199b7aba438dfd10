-- Check-result history: one row per completed run.
CREATE TABLE check_results (
    id          INTEGER PRIMARY KEY,
    check_name  TEXT    NOT NULL,
    check_type  TEXT    NOT NULL,
    started_at  INTEGER NOT NULL, -- unix milliseconds
    duration_ns INTEGER NOT NULL,
    success     INTEGER NOT NULL,
    reason      TEXT    NOT NULL DEFAULT '',
    message     TEXT    NOT NULL DEFAULT '',
    phases      TEXT    NOT NULL DEFAULT '[]', -- JSON [{name, duration_ns}]
    vals        TEXT    NOT NULL DEFAULT '[]', -- JSON [{name, labels, value, key}]
    diagnostics TEXT    NOT NULL DEFAULT '{}'  -- JSON object
);
CREATE INDEX check_results_check_time ON check_results (check_name, started_at);
CREATE INDEX check_results_time ON check_results (started_at);
