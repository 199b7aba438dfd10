-- Results are written in the order they arrive and merged into the
-- check-ordered history in bulk (issue 21). check_results is clustered by
-- check, so a run of each of 10,000 checks changed a different leaf page
-- of it and of check_hours: every commit wrote dozens of pages to the WAL,
-- the checkpoint copied them, and on a long history they were read back
-- from disk first. New runs now go to recent_results, a rowid table that
-- grows at its end: a commit changes one or two pages. The writer moves
-- them into check_results and check_hours every few minutes, a range of
-- checks per transaction, so each check's newest page is changed once for
-- several runs. Readers see the union of both tables.
--
-- No index: a table of minutes of runs is scanned (a few milliseconds at
-- 50,000 rows) instead of paying a page per run on the way in.
CREATE TABLE recent_results (
    id          INTEGER PRIMARY KEY, -- write order: later ids are newer among equal starts
    check_id    INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,    -- unix milliseconds
    duration_ns INTEGER NOT NULL,
    success     INTEGER NOT NULL,
    reason      TEXT    NOT NULL DEFAULT '',
    message     TEXT    NOT NULL DEFAULT '',
    shape_id    INTEGER NOT NULL,
    phases      BLOB,
    vals        BLOB,
    diagnostics TEXT
);
