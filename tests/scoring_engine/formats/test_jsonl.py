import json

import pytest

from scoring_engine.conversation import Message
from scoring_engine.formats import ReaderLimits

from .support import FIXTURES, good, read_all, write_lines


def test_valid_jsonl_yields_every_conversation_with_its_fields():
    result = read_all(FIXTURES / "valid.jsonl")

    assert result.errors == []
    assert result.ids == ["c-1", "c-2", "c-3"]
    first, second, third = result.conversations
    assert first.platform == "forum"
    assert first.participants == {"u1": {"declared_age": 13}, "u2": {}}
    assert first.label == "normal"
    assert first.messages == (
        Message("u1", "hi", "2024-05-01T10:00:00Z"),
        Message("u2", "hello, how was the match?", "2024-05-01T10:00:30+02:00"),
    )
    assert (second.label, second.source, second.case, second.ordered) == (
        "grooming",
        "synthetic",
        "case-7",
        False,
    )
    assert third.messages == ()
    assert third.label is None
    assert third.ordered is True


def test_integer_author_is_read_as_a_string():
    result = read_all(FIXTURES / "valid.jsonl")

    assert result.conversations[1].messages[0].author == "17"


def test_blank_lines_are_skipped_silently(tmp_path):
    path = write_lines(tmp_path / "blank.jsonl", "", good("a"), "   ", "", good("b"), "\t")

    result = read_all(path)

    assert result.ids == ["a", "b"]
    assert result.errors == []


def test_truncated_json_line_is_reported_and_skipped(tmp_path):
    path = write_lines(tmp_path / "cut.jsonl", good("a"), good("b")[:25], good("c"))

    result = read_all(path)

    assert result.ids == ["a", "c"]
    assert result.error_places == [(2, "record")]
    assert "invalid JSON" in result.errors[0].reason


def test_truncated_last_line_without_newline_is_reported(tmp_path):
    path = tmp_path / "cut.jsonl"
    path.write_text(good("a") + "\n" + good("b")[:30])

    result = read_all(path)

    assert result.ids == ["a"]
    assert result.error_places == [(2, "record")]


def test_valid_records_after_bad_ones_are_still_yielded():
    result = read_all(FIXTURES / "mixed.jsonl")

    assert result.ids == ["m-1", "m-5"]
    assert result.error_places == [
        (2, "record"),
        (3, "messages[0].text"),
        (4, "id"),
        (5, "messages"),
    ]
    assert result.stats.rejected == 4
    assert result.stats.read == 2


def test_error_is_formatted_as_file_line_field_reason():
    path = FIXTURES / "mixed.jsonl"

    result = read_all(path)

    assert str(result.errors[1]) == f"{path}:3: messages[0].text: missing"
    assert str(result.errors[2]) == f"{path}:4: id: duplicate id 'm-1' (first on line 1)"


@pytest.mark.parametrize(
    ("record", "field", "reason"),
    [
        ([1, 2], "record", "must be a JSON object, not array"),
        ({"id": 7, "messages": []}, "id", "must be a string, not number"),
        ({"id": "", "messages": []}, "id", "must not be empty"),
        ({"id": "x", "messages": {}}, "messages", "must be an array, not object"),
        ({"id": "x", "messages": ["hi"]}, "messages[0]", "must be an object, not string"),
        (
            {"id": "x", "messages": [{"author": True, "text": "t"}]},
            "messages[0].author",
            "must be a string, not boolean",
        ),
        (
            {"id": "x", "messages": [{"author": "a", "text": "t"}, {"author": "b", "text": 5}]},
            "messages[1].text",
            "must be a string, not number",
        ),
        (
            {"id": "x", "messages": [{"author": "a", "text": "t", "ts": 5}]},
            "messages[0].ts",
            "must be a string, not number",
        ),
        ({"id": "x", "messages": [], "participants": []}, "participants", "must be an object"),
        ({"id": "x", "messages": [], "participants": {"u1": 13}}, "participants.u1", "object"),
        ({"id": "x", "messages": [], "platform": 3}, "platform", "must be a string"),
        ({"id": "x", "messages": [], "source": ["a"]}, "source", "must be a string"),
        ({"id": "x", "messages": [], "case": 1}, "case", "must be a string"),
        ({"id": "x", "messages": [], "ordered": "yes"}, "ordered", "must be a boolean"),
        ({"id": "x", "messages": [], "label": 1}, "label", "not number"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_field_of_wrong_type_is_reported_with_its_path(tmp_path, record, field, reason):
    path = write_lines(tmp_path / "types.jsonl", json.dumps(record), good("after"))

    result = read_all(path)

    assert result.ids == ["after"]
    assert result.error_places == [(1, field)]
    assert reason in result.errors[0].reason


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({"messages": []}, "id"),
        ({"id": "x"}, "messages"),
        ({"id": "x", "messages": [{"text": "t"}]}, "messages[0].author"),
        ({"id": "x", "messages": [{"author": "a"}]}, "messages[0].text"),
    ],
    ids=["id", "messages", "author", "text"],
)
def test_missing_required_field_is_reported(tmp_path, record, field):
    path = write_lines(tmp_path / "missing.jsonl", json.dumps(record))

    result = read_all(path)

    assert result.conversations == []
    assert [(error.field, error.reason) for error in result.errors] == [(field, "missing")]


def test_duplicate_id_is_reported_with_the_line_of_the_first(tmp_path):
    path = write_lines(tmp_path / "dup.jsonl", good("a"), good("b"), good("a"))

    result = read_all(path)

    assert result.ids == ["a", "b"]
    assert result.error_places == [(3, "id")]
    assert "first on line 1" in result.errors[0].reason


def test_same_id_in_two_files_is_not_a_duplicate(tmp_path):
    first = write_lines(tmp_path / "one.jsonl", good("a"))
    second = write_lines(tmp_path / "two.jsonl", good("a"))

    result = read_all(first, second)

    assert result.ids == ["a", "a"]
    assert result.errors == []


def test_label_other_than_grooming_or_normal_is_rejected(tmp_path):
    record = {"id": "x", "messages": [], "label": "suspicious"}
    path = write_lines(tmp_path / "label.jsonl", json.dumps(record))

    result = read_all(path)

    assert result.conversations == []
    assert result.error_places == [(1, "label")]
    assert "'grooming', 'normal' or null" in result.errors[0].reason


@pytest.mark.parametrize(
    "ts", ["2024-05-01T10:00:00Z", "2024-05-01T10:00:00.250+01:00", "2024-05-01"]
)
def test_iso_8601_timestamps_are_accepted(tmp_path, ts):
    record = {"id": "x", "messages": [{"author": "a", "text": "t", "ts": ts}]}
    path = write_lines(tmp_path / "ts.jsonl", json.dumps(record))

    result = read_all(path)

    assert result.errors == []
    assert result.conversations[0].messages[0].ts == ts


@pytest.mark.parametrize("ts", ["yesterday", "03:20", "2024-13-01T10:00:00Z", ""])
def test_invalid_timestamp_is_rejected_with_a_clear_reason(tmp_path, ts):
    record = {"id": "x", "messages": [{"author": "a", "text": "t", "ts": ts}]}
    path = write_lines(tmp_path / "ts.jsonl", json.dumps(record))

    result = read_all(path)

    assert result.conversations == []
    assert result.error_places == [(1, "messages[0].ts")]
    assert "not an ISO 8601 date-time" in result.errors[0].reason


def test_line_over_max_record_bytes_is_rejected_and_the_next_line_read(tmp_path):
    huge = json.dumps({"id": "big", "messages": [{"author": "a", "text": "x" * 5000}]})
    path = write_lines(tmp_path / "huge.jsonl", good("a"), huge, good("b"))

    result = read_all(path, limits=ReaderLimits(max_record_bytes=1000))

    assert result.ids == ["a", "b"]
    assert result.error_places == [(2, "record")]
    assert "longer than 1000 bytes" in result.errors[0].reason


def test_line_of_exactly_max_record_bytes_is_accepted(tmp_path):
    line = good("a")
    path = write_lines(tmp_path / "edge.jsonl", line, good("b"))

    result = read_all(path, limits=ReaderLimits(max_record_bytes=len(line)))

    assert result.ids == ["a", "b"]


def test_invalid_utf8_line_is_reported_and_skipped(tmp_path):
    bad = good("bad").encode().replace(b"hello", b"hel\xff\xfelo")
    path = write_lines(tmp_path / "latin.jsonl", good("a"), bad, good("b"))

    result = read_all(path)

    assert result.ids == ["a", "b"]
    assert result.error_places == [(2, "record")]
    assert "invalid UTF-8" in result.errors[0].reason


def test_utf8_byte_order_mark_at_the_start_is_ignored(tmp_path):
    path = write_lines(tmp_path / "bom.jsonl", b"\xef\xbb\xbf" + good("a").encode(), good("b"))

    assert read_all(path).ids == ["a", "b"]


def test_conversation_with_more_than_max_messages_is_rejected(tmp_path):
    record = {"id": "x", "messages": [{"author": "a", "text": "t"}] * 4}
    path = write_lines(tmp_path / "long.jsonl", json.dumps(record), good("b"))

    result = read_all(path, limits=ReaderLimits(max_messages=3))

    assert result.ids == ["b"]
    assert result.error_places == [(1, "messages")]


def test_text_over_max_text_chars_is_rejected(tmp_path):
    record = {
        "id": "x",
        "messages": [{"author": "a", "text": "t"}, {"author": "a", "text": "t" * 11}],
    }
    path = write_lines(tmp_path / "text.jsonl", json.dumps(record))

    result = read_all(path, limits=ReaderLimits(max_text_chars=10))

    assert result.error_places == [(1, "messages[1].text")]


def test_error_reasons_never_quote_message_text(tmp_path):
    private_text = "PRIVATE-WORDS-OF-A-CHILD"
    records = [
        {"id": "x1", "messages": [{"author": "a", "text": private_text, "ts": "bad"}]},
        {"id": "x2", "messages": [{"author": "a", "text": private_text * 3}]},
        {"id": "x3", "messages": [{"author": "a", "text": private_text}], "label": 1},
    ]
    lines = [json.dumps(record) for record in records]
    path = write_lines(tmp_path / "private.jsonl", *lines, lines[0][:40] + private_text)

    result = read_all(path, limits=ReaderLimits(max_text_chars=30))

    assert len(result.errors) == 4
    assert not any(private_text in str(error) for error in result.errors)
