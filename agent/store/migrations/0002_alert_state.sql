-- Alert state of the rule engine, so a restart keeps `for` timers and does
-- not page again for alerts already sent. One row per alert instance.
CREATE TABLE alert_state (
    rule_key          TEXT    NOT NULL, -- file, group and rule definition
    labels            TEXT    NOT NULL, -- JSON object, the alert's identity
    annotations       TEXT    NOT NULL DEFAULT '{}',
    state             TEXT    NOT NULL, -- pending | firing | inactive
    value             REAL    NOT NULL,
    active_at         INTEGER NOT NULL, -- unix milliseconds; 0 for none
    fired_at          INTEGER NOT NULL,
    resolved_at       INTEGER NOT NULL,
    last_sent_at      INTEGER NOT NULL,
    keep_firing_since INTEGER NOT NULL,
    PRIMARY KEY (rule_key, labels)
);
