-- Uptime and SLO attainment (issue 22). Each check's runs and successful
-- runs per hour, kept longer than the raw history (Options.HourRetention,
-- 35 days by default): 24h, 7d and 30d uptime and a 30-day SLO read at
-- most 720 rows per check, however often the check runs, and outlive a
-- 7-day history. The writer adds to a check's current hour in the same
-- transaction as its results, so the two never disagree.
CREATE TABLE check_hours (
    check_id INTEGER NOT NULL,
    hour     INTEGER NOT NULL, -- unix seconds / 3600 of the runs' start
    runs     INTEGER NOT NULL,
    ok       INTEGER NOT NULL, -- successful runs
    PRIMARY KEY (check_id, hour)
) WITHOUT ROWID;

-- The history this migration starts from, so uptime covers it at once.
INSERT INTO check_hours (check_id, hour, runs, ok)
    SELECT check_id, started_at / 3600000, count(*), sum(success)
    FROM check_results GROUP BY check_id, started_at / 3600000;
