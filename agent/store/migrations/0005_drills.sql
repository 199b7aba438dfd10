-- Incident drills: one row per drill run with its report (JSON), kept for
-- `vigil drill history` percentiles.
CREATE TABLE drill_runs (
    id          TEXT    PRIMARY KEY,
    drill       TEXT    NOT NULL,
    state       TEXT    NOT NULL, -- running | passed | failed | aborted | interrupted
    started_at  INTEGER NOT NULL, -- unix milliseconds
    finished_at INTEGER NOT NULL DEFAULT 0,
    spec        TEXT    NOT NULL, -- the drill file as run (YAML)
    report      TEXT    NOT NULL DEFAULT '' -- JSON report
);
CREATE INDEX drill_runs_drill ON drill_runs (drill, started_at);
