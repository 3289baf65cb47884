-- The `history` read model, version 1: every event of a lead with its actor, business time
-- and a readable summary, for the lead card's feed (newest first).

CREATE TABLE history (
    position    INTEGER PRIMARY KEY,
    lead_id     TEXT NOT NULL,
    revision    INTEGER NOT NULL,
    event_type  TEXT NOT NULL,
    actor_user  TEXT NOT NULL,
    actor_role  TEXT NOT NULL,
    occurred_at INTEGER NOT NULL,       -- µs since epoch
    summary     TEXT NOT NULL,
    data        TEXT NOT NULL           -- the event payload, JSON
);
CREATE INDEX history_by_lead ON history(lead_id, position);
