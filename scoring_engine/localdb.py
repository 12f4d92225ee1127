"""The engine's local database: review queue, usage counts and the report outbox.

One SQLite file in the engine home (``local.sqlite3``, mode 0600): it holds the text of
flagged conversations, which never leaves the adopting company unless the organisation
turned text sharing on and a moderator confirmed it for that conversation (SPEC §8).

Tables (each owned by one module):

- ``review_items`` (:mod:`scoring_engine.review`): one flagged conversation each, with its
  text, its SPEC §3 score line, its feature vector and, once reviewed, the verdict. The
  small columns come first and the text last: a row is read up to the last column asked
  for, so what only needs the verdict or the vector never reads through the text.
- ``feedback_queued`` (:mod:`scoring_engine.outbox`): the reviewed items whose feedback is
  in the outbox (a row of their own, so queuing 100,000 of them never rewrites the large
  ``review_items`` rows); a new verdict deletes the item's row: its feedback is pending.
- ``usage_days`` (:mod:`scoring_engine.usage`): counts per day and bundle not yet moved
  into the outbox.
- ``outbox`` (:mod:`scoring_engine.outbox`): batches waiting to be sent, each with the
  idempotency key the portal accepts once.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Final

from scoring_engine.home import EngineHome

DB_NAME: Final = "local.sqlite3"
_MMAP_BYTES: Final = 1024**3
SCHEMA_VERSION: Final = 2
# Version 1 kept the queue state in review_items.feedback_queued_at (the column stays in
# such a database, unused).
_FROM_VERSION_1: Final = """
INSERT OR IGNORE INTO feedback_queued (item_id, queued_at)
    SELECT item_id, feedback_queued_at FROM review_items WHERE feedback_queued_at IS NOT NULL;
"""

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS review_items (
    item_id TEXT PRIMARY KEY,          -- random id; also the feedback id sent to the portal
    conversation_id TEXT NOT NULL,     -- the adopter's id (local only, never sent)
    queued_at TEXT NOT NULL,           -- ISO 8601 UTC
    bundle TEXT NOT NULL,
    score REAL NOT NULL,
    threshold REAL NOT NULL,
    verdict TEXT,                      -- not_grooming | grooming | imminent_threat
    moderator TEXT,
    reviewed_at TEXT,
    share_text INTEGER NOT NULL DEFAULT 0,  -- the moderator confirmed sharing this text
    text_deleted_at TEXT,
    source_file TEXT,                  -- where it was read from (local only)
    note TEXT,
    score_line TEXT NOT NULL,          -- the SPEC section 3 JSON line (no text)
    features TEXT NOT NULL,            -- JSON FeatureVector.to_dict()
    conversation TEXT                  -- JSON: messages and participants; NULL once deleted
);
CREATE INDEX IF NOT EXISTS ix_review_items_pending ON review_items (verdict, queued_at);
CREATE UNIQUE INDEX IF NOT EXISTS uq_review_items_conversation
    ON review_items (conversation_id, bundle);

CREATE TABLE IF NOT EXISTS feedback_queued (
    item_id TEXT PRIMARY KEY REFERENCES review_items (item_id) ON DELETE CASCADE,
    queued_at TEXT NOT NULL            -- when its feedback went into the outbox
) WITHOUT ROWID;

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
    payload TEXT NOT NULL,             -- the JSON body, exactly as sent every time; '' once sent
    records INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    sent_at TEXT                       -- NULL until the portal accepted it
);
CREATE INDEX IF NOT EXISTS ix_outbox_pending ON outbox (sent_at, created_at);
"""


def database_path(home: EngineHome) -> Path:
    return home.path / DB_NAME


_WRITERS_GUARD = threading.Lock()
_WRITERS: dict[Path, threading.RLock] = {}


def _writer_lock(path: Path) -> threading.RLock:
    """The lock this process's writers of ``path`` take turns on.

    SQLite lets one writer in at a time and makes the others poll, sleeping up to 100 ms
    between tries; threads of one process (``report`` queues in one while others record
    what they sent) wait on this lock instead and go in as soon as it is free. Other
    processes still wait through SQLite's busy timeout.
    """
    key = path.resolve()
    with _WRITERS_GUARD:
        return _WRITERS.setdefault(key, threading.RLock())


@contextmanager
def connect(home: EngineHome, *, write: bool = True) -> Iterator[sqlite3.Connection]:
    """A connection in one transaction: committed on success, rolled back on error.

    ``write=False``: a transaction that only reads, which never waits for a writer (WAL).
    """
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
        # In WAL mode NORMAL is consistent across crashes; a power cut may only undo the
        # last commits, and every step here is safe to redo (a batch re-sent is a duplicate
        # the portal recognises). FULL would cost an fsync per sent batch.
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA foreign_keys=ON")
        # Statement journals in memory: a statement that may fail halfway (an UPDATE
        # freeing a sent batch's megabytes, say) copies each page it changes into one,
        # which is otherwise a temporary file written a page at a time.
        connection.execute("PRAGMA temp_store=MEMORY")
        # Read the database through a memory map, not a read call per 4 KiB page: the
        # outbox's batch bodies and the vectors span hundreds of megabytes.
        connection.execute(f"PRAGMA mmap_size={_MMAP_BYTES}")
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version < SCHEMA_VERSION:
            connection.executescript(SCHEMA)
            if version == 1:
                connection.executescript(_FROM_VERSION_1)
            connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        with _writer_lock(path) if write else nullcontext():
            connection.execute("BEGIN IMMEDIATE" if write else "BEGIN DEFERRED")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
    finally:
        connection.close()


@contextmanager
def held_open(home: EngineHome) -> Iterator[None]:
    """Keep the database open (no transaction) for a run of many short ``connect`` calls.

    The last connection to close checkpoints the WAL into the database and deletes it;
    with this one open the others close cheaply (``report`` makes two or three
    transactions per batch it sends: 10 ms each otherwise).
    """
    path = database_path(home)
    if not path.exists():
        yield
        return
    keeper = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    try:
        yield
    finally:
        keeper.close()
