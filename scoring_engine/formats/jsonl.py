"""JSON Lines reader: one conversation per line (SPEC §2).

A record is valid when it is a JSON object with:

- ``id``: a non-empty string, unique in the file (an id counts as taken even when the rest of its
  record is rejected, so a later record with the same id is reported as a duplicate);
- ``messages``: an array (may be empty) of objects, each with ``author`` (a string; an integer is
  accepted and turned into a string) and ``text`` (a string), and optionally ``ts`` (an ISO 8601
  string or null);
- optionally ``participants`` (an object of objects), ``label`` (``"grooming"``, ``"normal"`` or
  null), ``platform`` (string), and the development fields ``source`` and ``case`` (strings) and
  ``ordered`` (boolean). Any other key is kept in the line and ignored.

Blank lines are skipped silently. Error fields are paths such as ``messages[3].text``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

from scoring_engine.conversation import LABELS, Conversation, Label, Message
from scoring_engine.formats.base import (
    UTF8_BOM,
    ReaderLimits,
    RecordError,
    RecordRejected,
    RecordReporter,
    StreamReadError,
    excerpt,
    iter_lines,
    json_type,
    timestamp_problem,
)

if TYPE_CHECKING:
    import io
    from collections.abc import Iterator

_MISSING: Any = object()


def read_jsonl(
    stream: io.BufferedIOBase, path: str, reporter: RecordReporter, limits: ReaderLimits
) -> Iterator[Conversation]:
    first_line_of: dict[str, int] = {}
    lines = iter_lines(stream, limits.max_record_bytes)
    try:
        for line_number, raw, oversized in lines:
            if oversized:
                reporter.report(
                    RecordError(
                        path,
                        line_number,
                        "record",
                        f"line longer than {limits.max_record_bytes} bytes (max_record_bytes)",
                    )
                )
                continue
            try:
                conversation = _parse_line(raw, line_number, first_line_of, limits)
            except RecordRejected as rejected:
                reporter.report(RecordError(path, line_number, rejected.field, rejected.reason))
                continue
            if conversation is not None:
                yield conversation
    except StreamReadError as failure:
        reporter.report(RecordError(path, failure.line, "file", failure.reason))


def _parse_line(
    raw: bytes, line_number: int, first_line_of: dict[str, int], limits: ReaderLimits
) -> Conversation | None:
    if line_number == 1 and raw.startswith(UTF8_BOM):
        raw = raw[len(UTF8_BOM) :]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordRejected(
            "record", f"invalid UTF-8 at byte {exc.start + 1} of the line"
        ) from None
    if not text.strip():
        return None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordRejected("record", f"invalid JSON: {exc.msg} at column {exc.colno}") from None
    if type(record) is dict:
        conversation_id = record.get("id")
        if type(conversation_id) is str and conversation_id:
            first = first_line_of.get(conversation_id)
            if first is not None:
                raise RecordRejected(
                    "id", f"duplicate id {excerpt(conversation_id)} (first on line {first})"
                )
            first_line_of[conversation_id] = line_number
    return conversation_from_json(record, limits)


def conversation_from_json(record: Any, limits: ReaderLimits = ReaderLimits()) -> Conversation:
    """Validates one decoded JSON record; raises :class:`RecordRejected` naming the bad field."""
    if type(record) is not dict:
        raise RecordRejected("record", f"must be a JSON object, not {json_type(record)}")

    conversation_id = record.get("id", _MISSING)
    if type(conversation_id) is not str:
        raise RecordRejected("id", _required_problem(conversation_id, "a string"))
    if not conversation_id:
        raise RecordRejected("id", "must not be empty")

    raw_messages = record.get("messages", _MISSING)
    if type(raw_messages) is not list:
        raise RecordRejected("messages", _required_problem(raw_messages, "an array"))
    if len(raw_messages) > limits.max_messages:
        raise RecordRejected(
            "messages",
            f"{len(raw_messages)} messages, more than {limits.max_messages} (max_messages)",
        )
    messages = _messages_from_json(raw_messages, limits.max_text_chars)

    participants = record.get("participants")
    if participants is None:
        participants = {}
    elif type(participants) is not dict:
        raise RecordRejected("participants", f"must be an object, not {json_type(participants)}")
    else:
        for user, facts in participants.items():
            if type(facts) is not dict:
                raise RecordRejected(
                    f"participants.{user}", f"must be an object, not {json_type(facts)}"
                )

    label = record.get("label")
    if label is not None and (type(label) is not str or label not in LABELS):
        raise RecordRejected("label", _label_problem(label))

    return Conversation(
        id=conversation_id,
        messages=messages,
        participants=participants,
        label=cast("Label | None", label),
        platform=_optional_string(record, "platform"),
        source=_optional_string(record, "source"),
        case=_optional_string(record, "case"),
        ordered=_optional_ordered(record),
    )


def _messages_from_json(raw_messages: list[Any], max_text_chars: int) -> tuple[Message, ...]:
    # The hot loop of the engine's input: exact type checks and no helper calls on the valid path.
    messages: list[Message] = []
    append = messages.append
    for index, item in enumerate(raw_messages):
        if type(item) is not dict:
            raise RecordRejected(f"messages[{index}]", f"must be an object, not {json_type(item)}")
        author = item.get("author", _MISSING)
        if type(author) is not str:
            if type(author) is not int:
                raise RecordRejected(
                    f"messages[{index}].author", _required_problem(author, "a string")
                )
            author = str(author)
        if len(author) > max_text_chars:
            raise RecordRejected(
                f"messages[{index}].author",
                f"longer than {max_text_chars} characters (max_text_chars)",
            )
        text = item.get("text", _MISSING)
        if type(text) is not str:
            raise RecordRejected(f"messages[{index}].text", _required_problem(text, "a string"))
        if len(text) > max_text_chars:
            raise RecordRejected(
                f"messages[{index}].text",
                f"{len(text)} characters, more than {max_text_chars} (max_text_chars)",
            )
        ts = item.get("ts")
        if ts is not None:
            if type(ts) is not str:
                raise RecordRejected(
                    f"messages[{index}].ts", f"must be a string, not {json_type(ts)}"
                )
            problem = timestamp_problem(ts)
            if problem is not None:
                raise RecordRejected(f"messages[{index}].ts", f"{problem}: {excerpt(ts)}")
        append(Message(author, text, ts))
    return tuple(messages)


def _required_problem(value: Any, expected: str) -> str:
    if value is _MISSING:
        return "missing"
    return f"must be {expected}, not {json_type(value)}"


def _label_problem(label: Any) -> str:
    allowed = "must be 'grooming', 'normal' or null"
    if type(label) is str:
        return f"{allowed}, not {excerpt(label, 20)}"
    return f"{allowed}, not {json_type(label)}"


def _optional_string(record: dict[str, Any], key: str) -> str | None:
    value = record.get(key)
    if value is None or type(value) is str:
        return value
    raise RecordRejected(key, f"must be a string, not {json_type(value)}")


def _optional_ordered(record: dict[str, Any]) -> bool:
    value = record.get("ordered")
    if value is None:
        return True
    if type(value) is bool:
        return value
    raise RecordRejected("ordered", f"must be a boolean, not {json_type(value)}")
