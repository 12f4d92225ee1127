"""The engine's local database: review queue, usage counts and the report outbox.

One SQLite file in the engine home (``local.sqlite3``, mode 0600): it holds the text of
flagged conversations, which never leaves the adopting company unless the organisation
turned text sharing on and a moderator confirmed it for that conversation (SPEC §8).

Tables (each owned by one module):

- ``review_items`` (:mod:`scoring_engine.review`): one flagged conversation each, with its
  text, its SPEC §3 score line, its feature vector and, once reviewed, the verdict.
- ``usage_days`` (:mod:`scoring_engine.usage`): counts per day and bundle not yet moved
  into the outbox.
- ``outbox`` (:mod:`scoring_engine.outbox`): batches waiting to be sent, each with the
  idempotency key the portal accepts once.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from scoring_engine.home import EngineHome

DB_NAME: Final = "local.sqlite3"
SCHEMA_VERSION: Final = 1

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS review_items (
    item_id TEXT PRIMARY KEY,          -- random id; also the feedback id sent to the portal
    conversation_id TEXT NOT NULL,     -- the adopter's id (local only, never sent)
    source_file TEXT,                  -- where it was read from (local only)
    queued_at TEXT NOT NULL,           -- ISO 8601 UTC
    bundle TEXT NOT NULL,
    score REAL NOT NULL,
    threshold REAL NOT NULL,
    score_line TEXT NOT NULL,          -- the SPEC section 3 JSON line (no text)
    conversation TEXT,                 -- JSON: messages and participants; NULL once deleted
    features TEXT NOT NULL,            -- JSON FeatureVector.to_dict()
    verdict TEXT,                      -- not_grooming | grooming | imminent_threat
    note TEXT,
    moderator TEXT,
    reviewed_at TEXT,
    share_text INTEGER NOT NULL DEFAULT 0,  -- the moderator confirmed sharing this text
    feedback_queued_at TEXT,           -- when its feedback went into the outbox
    text_deleted_at TEXT
);
CREATE INDEX IF NOT EXISTS ix_review_items_pending ON review_items (verdict, queued_at);
CREATE UNIQUE INDEX IF NOT EXISTS uq_review_items_conversation
    ON review_items (conversation_id, bundle);

CREATE TABLE IF NOT EXISTS usage_days (
    day TEXT NOT NULL,                 -- YYYY-MM-DD, UTC
    bundle TEXT NOT NULL,
    scored INTEGER NOT NULL DEFAULT 0,
    flagged INTEGER NOT NULL DEFAULT 0,
    reviewed INTEGER NOT NULL DEFAULT 0,
    not_grooming INTEGER NOT NULL DEFAULT 0,
    grooming INTEGER NOT NULL DEFAULT 0,
    imminent_threat INTEGER NOT NULL DEFAULT 0,
    histogram TEXT NOT NULL,           -- JSON list of HISTOGRAM_BINS counts of scores
    PRIMARY KEY (day, bundle)
);

CREATE TABLE IF NOT EXISTS outbox (
    batch_id TEXT PRIMARY KEY,         -- the idempotency key (uuid4)
    kind TEXT NOT NULL,                -- usage | feedback
    created_at TEXT NOT NULL,
    payload TEXT NOT NULL,             -- the JSON body, exactly as sent every time
    records INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    sent_at TEXT                       -- NULL until the portal accepted it
);
CREATE INDEX IF NOT EXISTS ix_outbox_pending ON outbox (sent_at, created_at);
"""


def database_path(home: EngineHome) -> Path:
    return home.path / DB_NAME


@contextmanager
def connect(home: EngineHome) -> Iterator[sqlite3.Connection]:
    """A connection in one transaction: committed on success, rolled back on error."""
    path = database_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # Created private before SQLite opens it (its -wal and -shm files take this mode),
        # so the text of flagged conversations is never readable by others, even briefly.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    connection = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    try:
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA foreign_keys=ON")
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version < SCHEMA_VERSION:
            connection.executescript(SCHEMA)
            connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
    finally:
        connection.close()
