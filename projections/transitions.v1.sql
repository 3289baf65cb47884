-- The `transitions` read model, version 1 (issue 11): each lead's way through the stages,
-- compact, so a funnel audit is a scan of small rows rather than a decode of the log. Ids are
-- the UUIDs' 16 bytes; times are business times in µs since the epoch; every row carries the
-- log position it came from, so an audit can stop at a position as well as at a time, and
-- ties between one lead's events are broken by it. Nothing here is personal (stages, codes,
-- ids, times), so an erasure changes nothing.

-- A lead as registered: the cohort an audit filters and groups by.
CREATE TABLE transition_leads (
    lead          BLOB PRIMARY KEY,
    funnel        TEXT NOT NULL,
    source        TEXT NOT NULL DEFAULT '',
    channel       TEXT NOT NULL DEFAULT '',
    created_by    BLOB NOT NULL,
    responsible   BLOB,              -- at registration; NULL: unassigned
    quality       TEXT NOT NULL,
    advertising   INTEGER NOT NULL,
    registered_at INTEGER NOT NULL,
    position      INTEGER NOT NULL
) WITHOUT ROWID;

-- Each stage a lead entered: its registration (from '') and every change after it.
CREATE TABLE transitions (
    lead       BLOB NOT NULL,
    revision   INTEGER NOT NULL,     -- the event's revision in the lead's stream
    position   INTEGER NOT NULL,
    at         INTEGER NOT NULL,     -- business time
    from_stage TEXT NOT NULL,        -- '' for the registration
    to_stage   TEXT NOT NULL,
    via        TEXT NOT NULL,        -- registered, qualified, jump, disqualified, converted, ...
    jump       INTEGER NOT NULL,     -- 1: a jump, or a step over a working stage
    reason     TEXT NOT NULL DEFAULT '', -- the disqualification reason's code
    actor      BLOB NOT NULL,
    PRIMARY KEY (lead, revision)
) WITHOUT ROWID;
CREATE INDEX transitions_by_position ON transitions(position);

-- Who was responsible from when: grouping by manager "as of T".
CREATE TABLE assignments (
    lead     BLOB NOT NULL,
    revision INTEGER NOT NULL,
    position INTEGER NOT NULL,
    at       INTEGER NOT NULL,
    user     BLOB NOT NULL,
    PRIMARY KEY (lead, revision)
) WITHOUT ROWID;

-- A disqualification's reason, from its event until the stage change of the same command.
CREATE TABLE pending_reasons (
    lead   BLOB PRIMARY KEY,
    reason TEXT NOT NULL
) WITHOUT ROWID;
