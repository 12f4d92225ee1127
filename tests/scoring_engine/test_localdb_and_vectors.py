"""The feedback vector encoding (SPEC §8: non-reversible features) and the local database."""

from __future__ import annotations

import base64
import sqlite3
import stat
import threading
import zlib

import numpy as np
import pytest

from scoring_engine import localdb
from scoring_engine.conversation import Conversation, Message
from scoring_engine.home import EngineHome
from scoring_engine.localdb import SCHEMA_VERSION, connect, database_path
from scoring_engine.model.features import featurize
from scoring_engine.model.vectors import FEATURE_DIM, FeatureVector, VectorFormatError


def _conversation() -> Conversation:
    lines = ["hi how was school", "fine, you?", "good. are your parents home", "no"]
    return Conversation(
        id="v1",
        messages=tuple(Message(author=f"u{i % 2}", text=t) for i, t in enumerate(lines)),
    )


def test_vector_round_trips_the_classifier_input_without_text():
    row = featurize([_conversation()]).features()[0]
    document = FeatureVector.from_row(row).to_dict()
    assert document["dim"] == FEATURE_DIM
    assert "school" not in str(document)
    decoded = FeatureVector.from_dict(document).to_row()
    assert np.abs((decoded - row).toarray()).max() < 1e-6


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"encoding": "pickle"}, "features.encoding"),
        ({"nnz": -1}, "features.nnz"),
        ({"dim": 0}, "features.dim"),
        ({"data": "not base64!"}, "features.data"),
        ({"nnz": 3}, "features.data"),
    ],
)
def test_malformed_vectors_name_the_field(change, field):
    document = FeatureVector.from_row(featurize([_conversation()]).features()[0]).to_dict()
    with pytest.raises(VectorFormatError, match=field.replace(".", r"\.")):
        FeatureVector.from_dict({**document, **change})


def test_a_compressed_bomb_is_refused_at_the_declared_size():
    bomb = base64.b64encode(zlib.compress(b"\0" * 10_000_000)).decode()
    document = {"version": 2, "dim": FEATURE_DIM, "nnz": 4, "encoding": "zlib+le-int32-float32"}
    with pytest.raises(VectorFormatError, match="length"):
        FeatureVector.from_dict({**document, "data": bomb})


def test_out_of_range_indices_are_refused():
    raw = np.array([5, FEATURE_DIM], dtype="<i4").tobytes() + np.ones(2, "<f4").tobytes()
    document = {
        "version": 2,
        "dim": FEATURE_DIM,
        "nnz": 2,
        "encoding": "zlib+le-int32-float32",
        "data": base64.b64encode(zlib.compress(raw)).decode(),
    }
    with pytest.raises(VectorFormatError, match="indices"):
        FeatureVector.from_dict(document)


def test_local_database_is_private_and_rolls_back_on_error(tmp_path):
    home = EngineHome(tmp_path / "engine")

    def insert_then_fail() -> None:
        with connect(home) as connection:
            connection.execute(
                "INSERT INTO outbox (batch_id, kind, created_at, payload, records) "
                "VALUES ('b', 'usage', 'now', '{}', 0)"
            )
            raise RuntimeError

    with pytest.raises(RuntimeError):
        insert_then_fail()
    with connect(home) as connection:
        assert connection.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0
    assert stat.S_IMODE(database_path(home).stat().st_mode) == 0o600


def _queued_marks(connection: sqlite3.Connection) -> list[tuple[str, str]]:
    """(item id, queued at) of every item whose feedback is in the outbox."""
    rows = connection.execute(
        "SELECT item_id, feedback_queued.queued_at FROM feedback_queued JOIN review_items"
        " USING (seq)"
    )
    return [tuple(row) for row in rows]


def test_a_version_1_database_keeps_which_feedback_is_in_the_outbox(tmp_path):
    home = EngineHome(tmp_path / "engine")
    home.path.mkdir(parents=True)
    # Version 1 kept the queue state in review_items.feedback_queued_at.
    old = sqlite3.connect(database_path(home))
    old.executescript(
        """
        CREATE TABLE review_items (
            item_id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL, source_file TEXT,
            queued_at TEXT NOT NULL, bundle TEXT NOT NULL, score REAL NOT NULL,
            threshold REAL NOT NULL, score_line TEXT NOT NULL, conversation TEXT,
            features TEXT NOT NULL, verdict TEXT, note TEXT, moderator TEXT, reviewed_at TEXT,
            share_text INTEGER NOT NULL DEFAULT 0, feedback_queued_at TEXT,
            text_deleted_at TEXT
        );
        INSERT INTO review_items (item_id, conversation_id, queued_at, bundle, score, threshold,
            score_line, features, verdict, reviewed_at, feedback_queued_at)
        VALUES ('sent', 'c1', 'q', 'b', 0.9, 0.5, '{}', '{}', 'grooming', 'r', 'then'),
               ('pending', 'c2', 'q', 'b', 0.9, 0.5, '{}', '{}', 'grooming', 'r', NULL);
        PRAGMA user_version = 1;
        """
    )
    old.close()

    with connect(home) as connection:
        queued = _queued_marks(connection)
        version = connection.execute("PRAGMA user_version").fetchone()[0]

    assert queued == [("sent", "then")]
    assert version == SCHEMA_VERSION


def test_a_version_2_database_gets_queue_places_and_keeps_its_marks(tmp_path):
    home = EngineHome(tmp_path / "engine")
    home.path.mkdir(parents=True)
    # Version 2 marked queued items by their random id.
    old = sqlite3.connect(database_path(home))
    old.executescript(
        """
        CREATE TABLE review_items (
            item_id TEXT PRIMARY KEY, conversation_id TEXT NOT NULL, queued_at TEXT NOT NULL,
            bundle TEXT NOT NULL, score REAL NOT NULL, threshold REAL NOT NULL, verdict TEXT,
            moderator TEXT, reviewed_at TEXT, share_text INTEGER NOT NULL DEFAULT 0,
            text_deleted_at TEXT, source_file TEXT, note TEXT, score_line TEXT NOT NULL,
            features TEXT NOT NULL, conversation TEXT
        );
        CREATE UNIQUE INDEX uq_review_items_conversation
            ON review_items (conversation_id, bundle);
        CREATE TABLE feedback_queued (
            item_id TEXT PRIMARY KEY REFERENCES review_items (item_id) ON DELETE CASCADE,
            queued_at TEXT NOT NULL
        ) WITHOUT ROWID;
        INSERT INTO review_items (item_id, conversation_id, queued_at, bundle, score, threshold,
            score_line, features, verdict, reviewed_at, conversation)
        VALUES ('ffff', 'c1', 'q', 'b', 0.9, 0.5, '{}', '{}', 'grooming', 'r', '{"messages": []}'),
               ('0000', 'c2', 'q', 'b', 0.8, 0.5, '{}', '{}', 'grooming', 'r', NULL),
               ('8888', 'c3', 'q', 'b', 0.7, 0.5, '{}', '{}', NULL, NULL, NULL);
        INSERT INTO feedback_queued VALUES ('0000', 'then');
        PRAGMA user_version = 2;
        """
    )
    old.close()

    with connect(home) as connection:
        items = connection.execute(
            "SELECT seq, item_id, conversation_id, score, conversation FROM review_items"
            " ORDER BY seq"
        ).fetchall()
        queued = _queued_marks(connection)
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        # Its feedback id stays unique, and deleting an item still drops its mark.
        with pytest.raises(sqlite3.IntegrityError):
            connection.execute(
                "INSERT INTO review_items (item_id, conversation_id, queued_at, bundle, score,"
                " threshold, score_line, features) VALUES ('ffff', 'c9', 'q', 'b', 0, 0, '', '')"
            )
        connection.execute("DELETE FROM review_items WHERE item_id = '0000'")
        marks_left = connection.execute("SELECT COUNT(*) FROM feedback_queued").fetchone()[0]

    # In the order they were queued in, each with everything it held.
    assert [tuple(row) for row in items] == [
        (1, "ffff", "c1", 0.9, '{"messages": []}'),
        (2, "0000", "c2", 0.8, None),
        (3, "8888", "c3", 0.7, None),
    ]
    assert queued == [("0000", "then")]
    assert version == SCHEMA_VERSION
    assert marks_left == 0


def test_a_version_3_outbox_keeps_its_batches_and_learns_refusals(tmp_path):
    home = EngineHome(tmp_path / "engine")
    with connect(home) as connection:
        connection.execute("ALTER TABLE outbox DROP COLUMN refused_status")
        connection.execute(
            "INSERT INTO outbox (batch_id, kind, created_at, payload, records, attempts,"
            " last_error) VALUES ('b1', 'usage', 't', '{}', 1, 2, 'HTTP 422 invalid_batch')"
        )
        connection.execute("PRAGMA user_version = 3")

    with connect(home) as connection:
        row = dict(connection.execute("SELECT * FROM outbox").fetchone())
        version = connection.execute("PRAGMA user_version").fetchone()[0]

    # Which of its batches the portal refused was never recorded: none is taken for one.
    assert row["refused_status"] is None
    assert (row["batch_id"], row["attempts"], row["last_error"]) == (
        "b1",
        2,
        "HTTP 422 invalid_batch",
    )
    assert version == SCHEMA_VERSION == 4


def test_writers_in_one_process_take_turns_instead_of_failing_busy(tmp_path, monkeypatch):
    home = EngineHome(tmp_path)
    # No busy timeout: a writer that found SQLite's lock taken would fail at once.
    opened = sqlite3.connect
    monkeypatch.setattr(
        localdb.sqlite3,
        "connect",
        lambda *args, **kwargs: opened(*args, **{**kwargs, "timeout": 0}),
    )
    with connect(home) as connection:
        connection.execute("CREATE TABLE turns (who TEXT)")
    first_in = threading.Event()
    release = threading.Event()
    errors: list[BaseException] = []

    def first() -> None:
        with connect(home) as connection:
            connection.execute("INSERT INTO turns VALUES ('first')")
            first_in.set()
            release.wait(10)

    def second() -> None:
        try:
            with connect(home) as connection:
                connection.execute("INSERT INTO turns VALUES ('second')")
        except BaseException as error:  # pragma: no cover - the failure being tested
            errors.append(error)

    holder = threading.Thread(target=first)
    holder.start()
    assert first_in.wait(10)
    waiter = threading.Thread(target=second)
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive()  # waiting for its turn, not refused
    release.set()
    holder.join(10)
    waiter.join(10)
    assert errors == []
    with connect(home, write=False) as connection:
        assert [row[0] for row in connection.execute("SELECT who FROM turns")] == [
            "first",
            "second",
        ]
