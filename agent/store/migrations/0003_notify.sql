-- Paging: the durable outbox, the notification log that keeps a restart
-- from paging again, and silences.

-- One row per notification and delivery target (receiver integration or
-- Alertmanager peer), written before any send.
CREATE TABLE outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    target      TEXT    NOT NULL, -- e.g. "oncall/pagerduty[0]" or "alertmanager[1]"
    order_key   TEXT    NOT NULL, -- items with the same key are delivered in id order
    payload     BLOB    NOT NULL, -- JSON notify.Message
    state       TEXT    NOT NULL, -- pending | sent | dead
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL, -- unix milliseconds
    next_at     INTEGER NOT NULL,
    done_at     INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX outbox_pending ON outbox (state, target, id);

-- Last notification per receiver and alert group (Alertmanager's nflog).
CREATE TABLE notify_log (
    receiver      TEXT    NOT NULL,
    group_key     TEXT    NOT NULL,
    firing_hash   TEXT    NOT NULL,
    resolved_hash TEXT    NOT NULL,
    sent_at       INTEGER NOT NULL, -- unix milliseconds
    PRIMARY KEY (receiver, group_key)
);

CREATE TABLE silences (
    id         TEXT    PRIMARY KEY,
    matchers   TEXT    NOT NULL, -- JSON list of matcher strings
    starts_at  INTEGER NOT NULL,
    ends_at    INTEGER NOT NULL,
    created_by TEXT    NOT NULL,
    comment    TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
