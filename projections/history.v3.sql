-- The `history` read model, version 2: every event of a lead with its actor, business time
-- and a readable summary, for the lead card's feed (newest first).
-- v2: no copy of the payload (the log has it; the API reads it from there when asked), which
-- halves the model's size.

CREATE TABLE history (
    position    INTEGER PRIMARY KEY,
    lead_id     TEXT NOT NULL,
    revision    INTEGER NOT NULL,
    event_type  TEXT NOT NULL,
    actor_user  TEXT NOT NULL,
    actor_role  TEXT NOT NULL,
    occurred_at INTEGER NOT NULL,       -- µs since epoch
    summary     TEXT NOT NULL
);
CREATE INDEX history_by_lead ON history(lead_id, position);
