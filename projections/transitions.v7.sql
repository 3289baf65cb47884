-- The `transitions` read model, version 7 (issue 11): each lead's way through the stages,
-- compact, so a funnel audit is a scan of small rows rather than a decode of the log. Ids are
-- the UUIDs' 16 bytes; times are business times in µs since the epoch; every row carries the
-- log position it came from, so an audit can stop at a position as well as at a time, and
-- ties between one lead's events are broken by it. Nothing here is personal (stages, codes,
-- ids, times, amounts), so an erasure changes nothing.
-- v2: budgets from when (the board and reports as of a time), each lead's way as it stands
-- (the live conversion report), and one row per command (manager activity).

-- v6: one row per lead holds its cohort, its way as it stands and its path, where v5 had a row
-- per stage move, per budget and per command in tables of their own, and a `lead_reach` row
-- beside. v7: the lead's row also holds what the board by hour counts it by, where a
-- `board_leads` row was written beside it. A rebuild at 1 M leads wrote 9 M rows, now 2.6 M,
-- and an audit reads one row per lead. The path's columns hold postcard-encoded lists (see
-- `rows.rs`), each in log order.

-- A lead: the cohort an audit filters and groups by (as registered), its way as it stands
-- (the live conversion report, which the audit at now must equal), and its path.
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
    position      INTEGER NOT NULL,
    -- The way as it stands: the steps reached in order (bit k: step k of the audit's five)
    -- and which of them by a jump, the stage it is in with its disqualification reason, who
    -- is responsible now, and the command of its last event (so a command of several events
    -- counts once).
    reached         INTEGER NOT NULL,
    by_jump         INTEGER NOT NULL,
    stage           TEXT NOT NULL,
    reason          TEXT NOT NULL DEFAULT '',
    responsible_now BLOB,
    last_command    BLOB,
    -- For the board by hour: the business time of its last change, and whether its events
    -- came out of business-time order (then it is left out of the counters and folded whole
    -- when asked). Where it counts (funnel, column, responsible, creator, budget) is the rest
    -- of the row.
    last_at         INTEGER NOT NULL,
    irregular       INTEGER NOT NULL,
    -- The path. `moves`: each stage it entered, its registration (from '') and every change
    -- after it, with the event's revision, log position, business time, how (registered,
    -- qualified, jump, disqualified, converted, ...), whether a jump (or a step over a
    -- working stage), the disqualification reason's code and the actor. `budgets`: the
    -- budget each event set (none: cleared), the registration's included (the board's and the
    -- reports' budget sums as of a time). `commands`: each command on it, by its first event
    -- (manager activity per day and kind).
    moves    BLOB NOT NULL,
    budgets  BLOB NOT NULL,
    commands BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX transition_leads_irregular ON transition_leads(funnel) WHERE irregular;

-- Who was responsible from when: grouping by manager "as of T", and a manager's scope (the
-- leads they ever held) looked up by key.
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

-- v4: the board's changes summed per business hour (µs / 3 600 000 000), funnel, scope ('',
-- r:<user>, c:<user>, b:<user>, as the live board) and column.
CREATE TABLE board_hours (
    funnel       TEXT NOT NULL,
    scope        TEXT NOT NULL,
    hour         INTEGER NOT NULL,
    stage        TEXT NOT NULL,
    leads        INTEGER NOT NULL,
    budget_minor INTEGER NOT NULL,
    PRIMARY KEY (funnel, scope, hour, stage)
) WITHOUT ROWID;

-- v4: the leads that changed in each hour: the board as of a time folds these of its own hour.
CREATE TABLE board_touched (
    hour INTEGER NOT NULL,
    lead BLOB NOT NULL,
    PRIMARY KEY (hour, lead)
) WITHOUT ROWID;
