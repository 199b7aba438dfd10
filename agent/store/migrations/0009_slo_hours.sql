-- Events of SLOs with a PromQL SLI (issue 22), per hour: the SLI's total
-- and bad events, from its queries' per-second rates times the seconds.
-- Checks' SLOs read check_hours instead. Pruned with check_hours.
CREATE TABLE slo_hours (
    slo    TEXT    NOT NULL,
    hour   INTEGER NOT NULL, -- unix seconds / 3600
    total  INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    PRIMARY KEY (slo, hour)
) WITHOUT ROWID;
