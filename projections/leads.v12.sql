-- The `leads` read model, version 12: the lead card (a snapshot of the domain state), the
-- registry row with every filterable column, and the kanban counters per funnel column.
-- A new version of this file rebuilds the read model from the log.
-- v2: sortable columns are NOT NULL ('' and -1 stand for "none"), so that an index can serve
-- ORDER BY ... LIMIT and keyset comparisons directly; text search uses a trigram index.
-- v3: cards are keyed by the registry row's integer id, so a rebuild appends them in order
-- instead of inserting 1.5 KB rows at random places of a tree keyed by UUID text; the row id
-- is declared, so VACUUM cannot renumber it under the cards and the search index, and it
-- breaks ties in sort orders (every index ends in it, 1-9 bytes instead of 36).
-- v4: the kanban counters per scope as well (SPEC 3.7: a manager sees the leads they are
-- responsible for or created), so a manager's board is an index read like a supervisor's;
-- an index on the creator for a manager's table.
-- v5: lead counts per budget bucket as well (`budget_counts`), so the table's exact total under
-- a budget range is a sum of counters and a scan of the two edge buckets, not a count of a
-- quarter of a million index entries.
-- v6 (issue 20): the data subjects each lead holds data of (`lead_subjects`), so an erasure
-- finds its leads; the search index deletes for good ('secure-delete'), so an erased name
-- leaves no token behind.
-- v7 (issue 20): blind-index tokens of each lead's phones, e-mails and contact name
-- (`lead_tokens`: HMAC under a secret derived from the master key), so a person is found by a
-- phone, an e-mail or a name without the model holding a searchable copy an outsider could
-- brute-force; an erasure removes them.
-- v8: the tokens are keyed by lead first, so a rebuild appends them in lead order instead of
-- writing each at a random place of a tree keyed by a hash (the by-token index is built in
-- bulk once caught up), and a lead's tokens are replaced through the key.
-- v9 (issue 11): each lead's historical columns over business time (`lead_spans`), so the
-- table as of a time is an index range of rows that held then, not a fold of every lead's
-- history per query; maturity and quality are historical too.
-- v10: a blind-index token is kept as the HMAC's 32 bytes, not as its 64 hex digits: half
-- the table and half its by-token index, which a rebuild builds in bulk at the end.
-- v11: no index on the first phone. Nothing looks a lead up by it: a person is found through
-- the blind-index tokens, and the text filter goes through the search index. It cost every
-- registration an index write and a rebuild 0.8 s of its end at 1 M leads.
-- v12: the card is the domain's Lead in postcard (ids in 16 bytes, no field names), not JSON:
-- a third of the size. Cards were more than half the file's bytes at 1 M leads, written page
-- by page through every rebuild.

CREATE TABLE leads (
    row_id                  INTEGER PRIMARY KEY,
    lead_id                 TEXT NOT NULL UNIQUE,
    funnel                  TEXT NOT NULL,
    stage                   TEXT NOT NULL,
    maturity                TEXT NOT NULL,
    title                   TEXT NOT NULL,
    budget_minor            INTEGER NOT NULL DEFAULT -1,   -- -1: no budget
    responsible             TEXT NOT NULL DEFAULT '',
    created_by              TEXT NOT NULL,
    source                  TEXT NOT NULL DEFAULT '',
    channel                 TEXT NOT NULL DEFAULT '',
    region                  TEXT NOT NULL DEFAULT '',
    quality                 TEXT NOT NULL,
    advertising             INTEGER NOT NULL,
    contact_name            TEXT NOT NULL DEFAULT '',
    phone                   TEXT NOT NULL DEFAULT '',
    email                   TEXT NOT NULL DEFAULT '',
    account_name            TEXT NOT NULL DEFAULT '',
    disqualification_reason TEXT NOT NULL DEFAULT '',
    created_at              INTEGER NOT NULL,   -- business time of registration, µs since epoch
    updated_at              INTEGER NOT NULL,   -- business time of the last event, µs
    last_position           INTEGER NOT NULL
);
CREATE TABLE lead_cards (
    row_id INTEGER PRIMARY KEY,      -- leads.row_id
    state  BLOB NOT NULL             -- the domain's Lead, postcard-encoded
);

CREATE INDEX leads_by_column ON leads(funnel, stage, updated_at);
CREATE INDEX leads_by_created ON leads(funnel, created_at);
CREATE INDEX leads_by_updated ON leads(funnel, updated_at);
CREATE INDEX leads_by_responsible ON leads(funnel, responsible, updated_at);
CREATE INDEX leads_by_creator ON leads(funnel, created_by, updated_at);
-- Owners ride along so a manager's budget range is counted and paged from the index alone.
CREATE INDEX leads_by_budget ON leads(funnel, budget_minor, responsible, created_by);

-- Substring search over title, contact name, phone and e-mail; rowid = leads.row_id.
CREATE VIRTUAL TABLE lead_search USING fts5(text, tokenize = 'trigram');
INSERT INTO lead_search(lead_search, rank) VALUES ('secure-delete', 1);

CREATE TABLE lead_tokens (
    token   BLOB NOT NULL,     -- HMAC-SHA256, 32 bytes
    row_id  INTEGER NOT NULL,  -- leads.row_id
    subject BLOB NOT NULL,     -- the lead's data subject, the UUID's 16 bytes
    PRIMARY KEY (row_id, token)
) WITHOUT ROWID;
CREATE INDEX lead_tokens_by_token ON lead_tokens(token);

-- Whose personal data each lead holds: the subject it was registered with, and any that took
-- over after an erasure.
CREATE TABLE lead_subjects (
    subject BLOB NOT NULL,     -- the UUID's 16 bytes
    row_id  INTEGER NOT NULL,  -- leads.row_id
    PRIMARY KEY (subject, row_id)
) WITHOUT ROWID;

-- Kept in step with `leads` in the same transaction, so the kanban header is one index read.
-- `scope` is '' for every lead, 'r:<user>' for the leads a user is responsible for,
-- 'c:<user>' for those they created, 'b:<user>' for those both: a manager's column is
-- r + c - b.
CREATE TABLE board (
    funnel       TEXT NOT NULL,
    scope        TEXT NOT NULL,
    stage        TEXT NOT NULL,
    leads        INTEGER NOT NULL,
    budget_minor INTEGER NOT NULL,
    PRIMARY KEY (funnel, scope, stage)
) WITHOUT ROWID;

-- Leads with a budget, per funnel, scope (as in `board`), stage and budget bucket: the top
-- five significant bits of the amount in minor units (16 buckets per doubling, ~4 % wide; see
-- `query::budget_bucket`). Kept in step with `leads` in the same transaction.
CREATE TABLE budget_counts (
    funnel TEXT NOT NULL,
    scope  TEXT NOT NULL,
    stage  TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    leads  INTEGER NOT NULL,
    PRIMARY KEY (funnel, scope, bucket, stage)
) WITHOUT ROWID;

-- What the registry's historical columns held over business time: one row per lead and span
-- [from_at, to_at) in µs (to_at 9223372036854775807 while it holds). An event at time t of
-- the lead splits the span holding t and sets what it changed on every span from t on: the
-- value in force at time T is then the one of the last event in log order at or before T, as
-- the `transitions` model folds it, imports of the past included.
CREATE TABLE lead_spans (
    row_id                  INTEGER NOT NULL,   -- leads.row_id
    from_at                 INTEGER NOT NULL,
    to_at                   INTEGER NOT NULL,
    funnel                  TEXT NOT NULL,
    stage                   TEXT NOT NULL,
    maturity                TEXT NOT NULL,
    responsible             TEXT NOT NULL,      -- '' for none
    budget_minor            INTEGER NOT NULL,   -- -1: no budget
    quality                 TEXT NOT NULL,
    disqualification_reason TEXT NOT NULL,      -- '' unless Disqualified
    PRIMARY KEY (row_id, from_at)
) WITHOUT ROWID;
-- A page sorted by budget or stage as of T walks one of these in order and keeps the spans
-- that held at T (from_at rides along as part of the key).
CREATE INDEX lead_spans_by_budget ON lead_spans(funnel, budget_minor, row_id, to_at);
CREATE INDEX lead_spans_by_stage ON lead_spans(funnel, stage, row_id, to_at);
