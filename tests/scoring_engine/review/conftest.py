"""Synthetic conversations and a queue filled by ``score --queue``, for the review CLI tests."""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING, Any

import pytest

from scoring_engine.cli import review as review_cli
from tests.factories import GROOMING_LINES, NORMAL_LINES
from tests.scoring_engine.licensed import assert_ok

if TYPE_CHECKING:
    from pathlib import Path

    from tests.scoring_engine.conftest import Engine

ADULT, CHILD = "u1", "u2"


def grooming_chat(conversation_id: str, *, extra: str | None = None) -> dict[str, Any]:
    """Unmistakable grooming by the adult ``u1`` of the 13-year-old ``u2``, with times."""
    texts = ["have you seen the new space movie", *GROOMING_LINES[:12]]
    texts += [extra] if extra else []
    return {
        "id": conversation_id,
        "platform": "ExampleChat",
        "participants": {ADULT: {"declared_age": 34}, CHILD: {"declared_age": 13}},
        "messages": [
            {
                "author": CHILD if i % 2 else ADULT,
                "text": text,
                "ts": f"2026-11-30T20:{i:02d}:00Z",
            }
            for i, text in enumerate(texts)
        ],
    }


def normal_chat(conversation_id: str) -> dict[str, Any]:
    texts = NORMAL_LINES["cooking"] + NORMAL_LINES["support"]
    return {
        "id": conversation_id,
        "messages": [{"author": f"u{1 + i % 2}", "text": t} for i, t in enumerate(texts)],
    }


def write_lines(path: Path, records: list[dict[str, Any] | str]) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write((record if isinstance(record, str) else json.dumps(record)) + "\n")
    return path


@pytest.fixture
def chats(tmp_path: Path) -> Path:
    """Two grooming and two normal conversations."""
    return write_lines(
        tmp_path / "chats.jsonl",
        [normal_chat("n-1"), grooming_chat("g-1"), normal_chat("n-2"), grooming_chat("g-2")],
    )


def score_lines(result: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def database(engine: Engine) -> sqlite3.Connection:
    connection = sqlite3.connect(engine.home / "local.sqlite3")
    connection.row_factory = sqlite3.Row
    return connection


def rows(engine: Engine, sql: str, *args: Any) -> list[sqlite3.Row]:
    connection = database(engine)
    try:
        return connection.execute(sql, args).fetchall()
    finally:
        connection.close()


def execute(engine: Engine, sql: str, *args: Any) -> None:
    connection = database(engine)
    try:
        with connection:
            connection.execute(sql, args)
    finally:
        connection.close()


def items(engine: Engine, *extra: str) -> list[dict[str, Any]]:
    return json.loads(assert_ok(engine("review", "list", "--json", *extra)).stdout)


def item_id(engine: Engine, conversation_id: str) -> str:
    """The review item of a conversation, by its first 8 characters (as `list` shows it)."""
    found = [i["id"] for i in items(engine, "--all") if i["conversation_id"] == conversation_id]
    assert len(found) == 1, found
    return found[0][:8]


@pytest.fixture
def queued(installed: Engine, chats: Path) -> Engine:
    """An engine whose queue holds g-1 and g-2 from one ``score --queue`` run."""
    result = assert_ok(installed("score", chats, "--queue"))
    flagged = {line["id"] for line in score_lines(result) if line["flagged"]}
    assert flagged == {"g-1", "g-2"}, score_lines(result)
    return installed


@pytest.fixture
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    """A terminal wide enough that table cells are not wrapped mid-word."""
    monkeypatch.setattr(review_cli.console, "width", 200)
