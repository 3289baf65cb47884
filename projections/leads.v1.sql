-- The `leads` read model, version 1: the lead card (a snapshot of the domain state), the
-- registry row with every filterable column, and the kanban counters per funnel column.
-- A new version of this file rebuilds the read model from the log.

CREATE TABLE lead_cards (
    lead_id TEXT PRIMARY KEY,
    state   TEXT NOT NULL            -- the domain's Lead as JSON
) WITHOUT ROWID;

CREATE TABLE leads (
    lead_id                 TEXT PRIMARY KEY,
    funnel                  TEXT NOT NULL,
    stage                   TEXT NOT NULL,
    maturity                TEXT NOT NULL,
    title                   TEXT NOT NULL,
    budget_minor            INTEGER,
    responsible             TEXT,
    created_by              TEXT NOT NULL,
    source                  TEXT,
    channel                 TEXT,
    region                  TEXT,
    quality                 TEXT NOT NULL,
    advertising             INTEGER NOT NULL,
    contact_name            TEXT,
    phone                   TEXT,
    email                   TEXT,
    account_name            TEXT,
    disqualification_reason TEXT,
    created_at              INTEGER NOT NULL,   -- business time of registration, µs since epoch
    updated_at              INTEGER NOT NULL,   -- business time of the last event, µs
    last_position           INTEGER NOT NULL
);
CREATE INDEX leads_by_column ON leads(funnel, stage, updated_at, lead_id);
CREATE INDEX leads_by_created ON leads(funnel, created_at, lead_id);
CREATE INDEX leads_by_updated ON leads(funnel, updated_at, lead_id);
CREATE INDEX leads_by_responsible ON leads(funnel, responsible, created_at);
CREATE INDEX leads_by_budget ON leads(funnel, budget_minor, lead_id);
CREATE INDEX leads_by_phone ON leads(phone);

-- Kept in step with `leads` in the same transaction, so the kanban header is one index read.
CREATE TABLE board (
    funnel       TEXT NOT NULL,
    stage        TEXT NOT NULL,
    leads        INTEGER NOT NULL,
    budget_minor INTEGER NOT NULL,
    PRIMARY KEY (funnel, stage)
) WITHOUT ROWID;
