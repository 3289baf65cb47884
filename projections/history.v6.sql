-- The `history` read model, version 6: what the lead card's feed needs beside the lead's own
-- stream. The feed itself (every event of a lead, newest first, with its actor, business time
-- and a readable summary) is rendered from the lead's stream when asked for: the log already
-- keeps each lead's events together, in order (`history::feed`).
-- v2: no copy of the payload (the log has it; the API reads it from there when asked), which
-- halves the model's size.
-- v3: lead and actor ids as their 16 bytes instead of 36 characters of text.
-- v5 (issue 20): each entry's summary as it reads once its subject is erased.
-- v6: no row per event. A copy of every event's summary was nine rows per lead (9 M at 1 M
-- leads, a third of every rebuild from zero) and a second place holding personal data in
-- plain text; the summary is now written from the event when the feed is read, through the
-- codec, so a sealed field of an erased subject reads as erased with nothing left to purge.

-- v4: the catalog events as the log has them, so the feed names users, funnels and stages as
-- the catalog stood at each event's position (a rename never rewrites the feed). The read side
-- folds them itself; it never asks the engine.
CREATE TABLE catalog_events (
    position   INTEGER PRIMARY KEY,
    event_type TEXT NOT NULL,
    version    INTEGER NOT NULL,
    data       BLOB NOT NULL
);

-- v6: the data subjects erased, by the position of their `PersonalDataErased`: an event
-- written in plain text (before its log was sealed) reads without its personal fields once
-- its subject is here.
CREATE TABLE erased_subjects (
    subject  BLOB PRIMARY KEY,   -- the UUID's 16 bytes
    position INTEGER NOT NULL
) WITHOUT ROWID;
