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
  in the outbox, by their ``seq`` (a row of their own, so queuing 100,000 of them never
  rewrites the large ``review_items`` rows); a new verdict deletes the item's row: its
  feedback is pending.
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
SCHEMA_VERSION: Final = 4

# Column by column, what ``review_items`` holds (in both SCHEMA and _TO_VERSION_3).
_REVIEW_ITEMS_COLUMNS: Final = """
    seq INTEGER PRIMARY KEY,           -- its place in the queue (SQLite's rowid, kept by VACUUM)
    item_id TEXT NOT NULL UNIQUE,      -- random id; also the feedback id sent to the portal
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
    conversation TEXT                  -- JSON: messages and participants, NULL once deleted
"""
_COPIED_COLUMNS: Final = (
    "item_id, conversation_id, queued_at, bundle, score, threshold, verdict, moderator,"
    " reviewed_at, share_text, text_deleted_at, source_file, note, score_line, features,"
    " conversation"
)
_FEEDBACK_QUEUED_COLUMNS: Final = """
    seq INTEGER PRIMARY KEY REFERENCES {review_items} (seq) ON DELETE CASCADE,
    queued_at TEXT NOT NULL            -- when its feedback went into the outbox
"""


def _to_version_3(version: int) -> str:
    """Versions 1 and 2 keyed review items by their random id alone, so the rows marking
    them queued went into random places of their table: queuing 1,000 of them rewrote
    some 700 of its pages. Version 3 gives each item its place in the queue (its rowid
    until now), which the marks are keyed by: a step's marks go at the end.
    Version 1 kept the marks in ``review_items.feedback_queued_at``; version 2 in
    ``feedback_queued`` by item id."""
    marks = (
        "SELECT rowid, feedback_queued_at FROM review_items WHERE feedback_queued_at IS NOT NULL"
        if version == 1
        else "SELECT items.seq, queued.queued_at FROM feedback_queued AS queued"
        " JOIN review_items_v3 AS items ON items.item_id = queued.item_id"
    )
    return f"""
CREATE TABLE review_items_v3 ({_REVIEW_ITEMS_COLUMNS});
INSERT INTO review_items_v3 (seq, {_COPIED_COLUMNS})
    SELECT rowid, {_COPIED_COLUMNS} FROM review_items;
CREATE TABLE feedback_queued_v3 ({_FEEDBACK_QUEUED_COLUMNS.format(review_items="review_items_v3")});
INSERT INTO feedback_queued_v3 (seq, queued_at) {marks};
DROP TABLE IF EXISTS feedback_queued;
DROP TABLE review_items;
ALTER TABLE review_items_v3 RENAME TO review_items;
ALTER TABLE feedback_queued_v3 RENAME TO feedback_queued;
"""  # noqa: S608 - constants


SCHEMA: Final = f"""
CREATE TABLE IF NOT EXISTS review_items ({_REVIEW_ITEMS_COLUMNS});
CREATE INDEX IF NOT EXISTS ix_review_items_pending ON review_items (verdict, queued_at);
CREATE UNIQUE INDEX IF NOT EXISTS uq_review_items_conversation
    ON review_items (conversation_id, bundle);

CREATE TABLE IF NOT EXISTS feedback_queued (
    {_FEEDBACK_QUEUED_COLUMNS.format(review_items="review_items")});

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
    refused_status INTEGER,            -- the portal refused the batch itself (400/409/413/422)
    sent_at TEXT                       -- NULL until the portal accepted it
);
CREATE INDEX IF NOT EXISTS ix_outbox_pending ON outbox (sent_at, created_at);
"""


def _to_version_4(connection: sqlite3.Connection) -> None:
    """Version 4 records which unsent batches the portal refused (``refused_status``), so
    that ``vigil-engine outbox`` can tell them from batches that wait for the portal."""
    columns = {row[1] for row in connection.execute("PRAGMA table_info(outbox)")}
    if "refused_status" not in columns:
        connection.execute("ALTER TABLE outbox ADD COLUMN refused_status INTEGER")


def _statements(script: str) -> Iterator[str]:
    """The SQL statements of ``script``, one by one (each can then run in one transaction,
    which ``executescript`` would commit first)."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            yield statement
            statement = ""
    if statement.strip():
        yield statement


def _migrate(connection: sqlite3.Connection, path: Path) -> None:
    """Create the schema, or bring an older one up to ``SCHEMA_VERSION``, in one
    transaction (another process opening the database at the same time waits, then
    finds it done)."""
    with _writer_lock(path):
        connection.execute("BEGIN IMMEDIATE")
        try:
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version < SCHEMA_VERSION:
                script = (_to_version_3(version) if version in (1, 2) else "") + SCHEMA
                for statement in _statements(script):
                    connection.execute(statement)
                _to_version_4(connection)
                connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")


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
        # What is deleted is overwritten with zeros, whatever SQLite's build defaults to:
        # text purged at the end of its retention is gone from the file, not left in free
        # pages (``outbox`` turns this off for one statement, see ``_record_attempts``).
        connection.execute("PRAGMA secure_delete=ON")
        # Statement journals in memory: a statement that may fail halfway (an UPDATE
        # freeing a sent batch's megabytes, say) copies each page it changes into one,
        # which is otherwise a temporary file written a page at a time.
        connection.execute("PRAGMA temp_store=MEMORY")
        # Read the database through a memory map, not a read call per 4 KiB page: the
        # outbox's batch bodies and the vectors span hundreds of megabytes.
        connection.execute(f"PRAGMA mmap_size={_MMAP_BYTES}")
        if connection.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
            _migrate(connection, path)
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
