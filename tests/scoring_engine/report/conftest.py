"""Fixtures for ``vigil-engine report``: an engine online at the fake portal, local rows.

Review items and usage rows are written straight into the local database (the review CLI
is tested on its own); their message texts are synthetic markers that tests search for in
every byte the portal received.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from scoring_engine import outbox, usage
from scoring_engine.home import EngineHome
from scoring_engine.localdb import connect
from scoring_engine.model.lexicon import CHARACTERISTICS
from scoring_engine.model.vectors import FEATURE_DIM, FeatureVector
from tests.scoring_engine.licensed import assert_ok

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from tests.scoring_engine.conftest import Engine

BUNDLE = "reference-2026.11.0"
DAY = "2026-12-02"


def vector(seed: int, nnz: int = 40) -> dict[str, Any]:
    """A feature vector in the feedback encoding, as the queue stores it."""
    rng = np.random.default_rng(seed)
    indices = np.sort(rng.choice(FEATURE_DIM, size=nnz, replace=False)).astype("<i4")
    values = rng.random(nnz).astype("<f4")
    return FeatureVector(indices=indices, values=values).to_dict()


def add_item(
    home: Path | EngineHome,
    *,
    texts: Sequence[str] = ("hello there",),
    verdict: str | None = "grooming",
    share_text: bool = False,
    reviewed_at: str = "2026-12-02T10:00:00Z",
    score: float = 0.93,
    text_deleted: bool = False,
    features: dict[str, Any] | None = None,
) -> str:
    """A review item (reviewed unless ``verdict`` is None); its id."""
    item_id = uuid.uuid4().hex
    characteristics = dict.fromkeys(CHARACTERISTICS, 0.0) | {"secrecy": 0.6}
    score_line = {
        "id": f"conv-{item_id[:8]}",
        "score": score,
        "flagged": True,
        "threshold": 0.5,
        "characteristics": characteristics,
        "evidence": [{"message": 0, "author": "u2", "characteristic": "secrecy", "weight": 0.4}],
        "first_flag_message": 0,
        "bundle": BUNDLE,
    }
    conversation = {
        "platform": None,
        "participants": {"u1": {"declared_age": 13}, "u2": {}},
        "messages": [
            {"author": f"u{i % 2 + 1}", "text": text, "ts": "2026-12-01T09:00:00Z"}
            for i, text in enumerate(texts)
        ],
    }
    engine_home = home if isinstance(home, EngineHome) else EngineHome(home)
    with connect(engine_home) as connection:
        connection.execute(
            "INSERT INTO review_items (item_id, conversation_id, source_file, queued_at, bundle,"
            " score, threshold, score_line, conversation, features, verdict, moderator,"
            " reviewed_at, share_text, text_deleted_at) VALUES"
            " (?, ?, 'chats.jsonl', '2026-12-01T12:00:00Z', ?, ?, 0.5, ?, ?, ?, ?, 'mod', ?, ?, ?)",
            (
                item_id,
                score_line["id"],
                BUNDLE,
                score,
                json.dumps(score_line),
                None if text_deleted else json.dumps(conversation),
                json.dumps(features or vector(int(item_id[:6], 16)), separators=(",", ":")),
                verdict,
                None if verdict is None else reviewed_at,
                int(share_text),
                "2026-12-02T11:00:00Z" if text_deleted else None,
            ),
        )
    return item_id


def add_usage(home: Path, *, scored: int = 120, day: str = DAY, bundle: str = BUNDLE) -> None:
    """A day of counts, recorded as ``score`` and ``review verdict`` record them."""
    tally = usage.ScoreTally()
    for i in range(scored):
        tally.add((i % 10) / 10 + 0.05, flagged=i % 40 == 0)
    with connect(EngineHome(home)) as connection:
        usage.record_tally(connection, day, bundle, tally)
        usage.record_verdict(connection, day, bundle, "grooming")


def outbox_rows(home: Path) -> list[dict[str, Any]]:
    with connect(EngineHome(home)) as connection:
        rows = connection.execute("SELECT * FROM outbox ORDER BY created_at, rowid").fetchall()
    return [dict(row) for row in rows]


def _init(engine: Engine, portal: Any, url: str) -> None:
    assert_ok(
        engine("init", "--root", portal.root_file(), "--license", portal.issue(), "--portal", url)
    )


@pytest.fixture
def online(engine: Engine, portal: Any, portal_url: str) -> Engine:
    """An engine initialised with --portal and updated once (activated, lease verified)."""
    _init(engine, portal, portal_url)
    assert_ok(engine("update"))
    return engine


@dataclass
class Delays:
    """The retry delays ``report`` waited (instantly)."""

    waited: list[float]


@pytest.fixture(autouse=True)
def delays(monkeypatch: pytest.MonkeyPatch) -> Delays:
    waited: list[float] = []
    monkeypatch.setattr(
        outbox, "DEFAULT_RETRY", outbox.RetryPolicy(sleep=waited.append, jitter=lambda: 0.0)
    )
    return Delays(waited)
