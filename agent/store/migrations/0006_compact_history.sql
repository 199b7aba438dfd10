-- Compact check history (issue 21). At 10,000 checks every minute the
-- 0001 layout took ~750 bytes per run (check name and type in every row and
-- again in the index, phase and value names as JSON in every row): 75 GB
-- for seven days. Now:
--   * a check's name is stored once, in checks, and rows carry its id;
--   * what repeats run after run (the type, phase names, value names,
--     labels and flags) is stored once per distinct set, in result_shapes;
--     rows carry the shape's id and only the numbers, as varints;
--   * rows are clustered by (check, start): one check's history is a
--     contiguous key range, so a history read is one range scan, and the
--     retention sweep deletes one range per check instead of touching
--     entries of every check in every index page. No other index is needed.

CREATE TABLE checks (
    id   INTEGER PRIMARY KEY,
    name TEXT    NOT NULL UNIQUE
);

-- AUTOINCREMENT: a shape id is never reused after its shape is deleted, so
-- a reader's cache of id -> shape cannot go stale.
CREATE TABLE result_shapes (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    type      TEXT    NOT NULL,
    -- JSON {"phases":[names],"values":[{name,labels,key,counter}]}; ''
    -- for rows copied from before this migration, whose phases and vals
    -- are the old JSON text
    shape     TEXT    NOT NULL,
    -- unix ms, refreshed by the writer at least hourly while in use; the
    -- sweep deletes shapes unused for longer than the retention
    last_used INTEGER NOT NULL,
    UNIQUE (type, shape)
);

CREATE TABLE check_results_v6 (
    check_id    INTEGER NOT NULL,
    started_at  INTEGER NOT NULL, -- unix milliseconds
    seq         INTEGER NOT NULL, -- 0; k for the k+1th row of a check with the same start
    -- the check's write number: one more than its newest row's, so the
    -- newest n minus the oldest n plus one counts a check's rows in two
    -- lookups (the sweep's per-check cap), without a counter to update
    n           INTEGER NOT NULL,
    duration_ns INTEGER NOT NULL,
    success     INTEGER NOT NULL,
    reason      TEXT    NOT NULL DEFAULT '',
    message     TEXT    NOT NULL DEFAULT '',
    shape_id    INTEGER NOT NULL,
    phases      BLOB,             -- varint nanoseconds in the shape's phase order
    vals        BLOB,             -- values in the shape's order (see encode.go)
    diagnostics TEXT,             -- JSON object, NULL for none
    PRIMARY KEY (check_id, started_at, seq)
) WITHOUT ROWID;

INSERT INTO checks (name)
    SELECT DISTINCT check_name FROM check_results ORDER BY check_name;

INSERT INTO result_shapes (type, shape, last_used)
    SELECT check_type, '', max(started_at) FROM check_results GROUP BY check_type;

INSERT INTO check_results_v6
    (check_id, started_at, seq, n, duration_ns, success, reason, message, shape_id, phases, vals, diagnostics)
    SELECT c.id, r.started_at,
           row_number() OVER (PARTITION BY r.check_name, r.started_at ORDER BY r.id) - 1,
           row_number() OVER (PARTITION BY r.check_name ORDER BY r.started_at, r.id),
           r.duration_ns, r.success, r.reason, r.message, s.id, r.phases, r.vals,
           nullif(r.diagnostics, '{}')
    FROM check_results r
    JOIN checks c ON c.name = r.check_name
    JOIN result_shapes s ON s.type = r.check_type AND s.shape = ''
    ORDER BY c.id, r.started_at, r.id;

DROP TABLE check_results;
ALTER TABLE check_results_v6 RENAME TO check_results;
