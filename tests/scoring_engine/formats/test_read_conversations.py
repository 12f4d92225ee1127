import gzip
import logging
import shutil

import pytest

from scoring_engine.errors import BadInputError, ExitCode
from scoring_engine.formats import (
    FORMATS,
    InputFormatError,
    ReadStats,
    RecordError,
    detect_format,
    read_conversations,
)

from .support import FIXTURES, good, read_all, write_lines


def test_gzipped_jsonl_reads_like_the_plain_file(tmp_path):
    compressed = tmp_path / "valid.jsonl.gz"
    compressed.write_bytes(gzip.compress((FIXTURES / "valid.jsonl").read_bytes()))

    assert read_all(compressed).conversations == read_all(FIXTURES / "valid.jsonl").conversations


def test_gzipped_csv_reads_like_the_plain_file(tmp_path):
    compressed = tmp_path / "valid.csv.gz"
    compressed.write_bytes(gzip.compress((FIXTURES / "valid.csv").read_bytes()))

    assert read_all(compressed).conversations == read_all(FIXTURES / "valid.csv").conversations


def test_gzip_is_recognised_by_its_magic_bytes_whatever_the_name(tmp_path):
    disguised = write_lines(tmp_path / "plain-looking.jsonl", good("a"), compress=True)

    assert read_all(disguised).ids == ["a"]


def test_truncated_gzip_is_reported_at_the_line_reached_and_the_next_file_is_read(tmp_path):
    lines = [good(f"c{index}") for index in range(2000)]
    truncated = write_lines(tmp_path / "cut.jsonl.gz", *lines, compress=True)
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    later = write_lines(tmp_path / "later.jsonl", good("after"))

    result = read_all(truncated, later)

    read_before_the_cut = len(result.ids) - 1
    assert 0 < read_before_the_cut < 2000
    assert result.ids[-1] == "after"
    assert result.error_places == [(read_before_the_cut + 1, "file")]
    assert "truncated" in result.errors[0].reason


def test_truncated_gzip_csv_is_reported_and_its_last_conversation_dropped(tmp_path):
    rows = [f"c{index // 3},u{index % 3},message {index}" for index in range(3000)]
    truncated = write_lines(
        tmp_path / "cut.csv.gz", "conversation_id,author,text", *rows, compress=True
    )
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])

    result = read_all(truncated)

    assert 0 < len(result.ids) < 1000
    assert all(len(c.messages) == 3 for c in result.conversations)
    assert [error.field for error in result.errors] == ["file"]


@pytest.mark.parametrize(
    "name", ["empty.jsonl", "empty.csv", "empty.xml", "empty.jsonl.gz", "empty"]
)
def test_empty_file_yields_nothing_and_reports_nothing(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(gzip.compress(b"") if name.endswith(".gz") else b"")

    result = read_all(path)

    assert result.conversations == []
    assert result.errors == []
    assert result.stats.files == 1


def test_file_that_cannot_be_opened_is_reported_and_the_next_path_read(tmp_path):
    later = write_lines(tmp_path / "later.jsonl", good("a"))

    result = read_all(tmp_path / "absent.jsonl", tmp_path, later)

    assert result.ids == ["a"]
    assert [(error.line, error.field) for error in result.errors] == [(0, "file"), (0, "file")]
    assert "cannot open" in result.errors[0].reason
    assert result.stats == ReadStats(read=1, rejected=2, files=1)


def test_strict_mode_raises_on_the_first_bad_record(tmp_path):
    path = write_lines(tmp_path / "bad.jsonl", good("a"), "{oops", '{"id": 3}', good("b"))
    stats = ReadStats()
    seen = []

    with pytest.raises(InputFormatError) as raised:
        seen.extend(c.id for c in read_conversations([path], strict=True, stats=stats))

    assert seen == ["a"]
    assert raised.value.error == RecordError(str(path), 2, "record", raised.value.error.reason)
    assert raised.value.exit_code == ExitCode.BAD_INPUT
    assert str(raised.value).startswith(f"{path}:2: record: invalid JSON")
    assert stats.rejected == 1


def test_strict_mode_raises_for_a_file_that_cannot_be_opened(tmp_path):
    with pytest.raises(InputFormatError, match="cannot open"):
        list(read_conversations([tmp_path / "absent.jsonl"], strict=True))


def test_reading_is_lazy_until_the_bad_line_is_reached(tmp_path):
    path = write_lines(tmp_path / "late.jsonl", good("a"), good("b"), "{broken")

    conversations = read_conversations([path], strict=True)
    first = next(conversations)
    second = next(conversations)

    assert (first.id, second.id) == ("a", "b")
    with pytest.raises(InputFormatError):
        next(conversations)


def test_files_are_opened_only_when_reached(tmp_path):
    first = write_lines(tmp_path / "first.jsonl", good("a"))
    later = tmp_path / "created-later.jsonl"

    conversations = read_conversations([first, later], strict=True)
    assert next(conversations).id == "a"
    write_lines(later, good("b"))

    assert [c.id for c in conversations] == ["b"]


def test_stats_count_read_rejected_and_files(tmp_path):
    stats = ReadStats()
    paths = [FIXTURES / "valid.jsonl", FIXTURES / "mixed.jsonl", FIXTURES / "valid.csv"]

    list(read_conversations(paths, stats=stats, on_error=lambda _error: None))

    assert stats == ReadStats(read=7, rejected=4, files=3)


def test_errors_are_logged_when_no_handler_is_given(caplog):
    with caplog.at_level(logging.WARNING, logger="scoring_engine.formats"):
        ids = [c.id for c in read_conversations([FIXTURES / "mixed.jsonl"])]

    assert ids == ["m-1", "m-5"]
    assert len(caplog.records) == 4
    assert ":2: record: invalid JSON" in caplog.records[0].getMessage()


def test_unknown_format_name_is_refused_at_once():
    with pytest.raises(BadInputError, match="unknown input format"):
        read_conversations([FIXTURES / "valid.jsonl"], "xlsx")


def test_a_single_path_is_read_as_one_input():
    assert [c.id for c in read_conversations(FIXTURES / "valid.jsonl")] == ["c-1", "c-2", "c-3"]
    assert [c.id for c in read_conversations(str(FIXTURES / "valid.csv"))] == ["k-1", "k-2"]


def test_forced_format_overrides_the_extension(tmp_path):
    misnamed = shutil.copy(FIXTURES / "valid.csv", tmp_path / "messages.txt.jsonl")

    assert read_all(misnamed, fmt="csv").ids == ["k-1", "k-2"]


def test_auto_reads_each_file_in_its_own_format(tmp_path):
    paths = [
        FIXTURES / "valid.jsonl",
        FIXTURES / "valid.csv",
        FIXTURES / "pan12" / "conversations.xml",
    ]

    result = read_all(*paths, fmt="auto")

    assert result.ids == ["c-1", "c-2", "c-3", "k-1", "k-2", "aaa111", "bbb222", "ccc333"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.jsonl", "jsonl"),
        ("a.JSONL.gz", "jsonl"),
        ("a.ndjson", "jsonl"),
        ("a.json", "jsonl"),
        ("a.csv", "csv"),
        ("a.csv.gz", "csv"),
        ("a.xml", "pan12"),
    ],
)
def test_format_is_detected_by_extension(tmp_path, name, expected):
    assert detect_format(tmp_path / name) == expected


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'\n  {"id": "a", "messages": []}\n', "jsonl"),
        (b"\xef\xbb\xbf<conversations></conversations>", "pan12"),
        (b'<?xml version="1.0"?><conversations/>', "pan12"),
        (b"author,conversation_id,text,ts\nu1,a,hi,\n", "csv"),
        (b"", "jsonl"),
    ],
)
def test_format_is_detected_by_content_when_the_name_says_nothing(tmp_path, content, expected):
    path = tmp_path / "export.dat"
    path.write_bytes(content)
    compressed = tmp_path / "export.gz"
    compressed.write_bytes(gzip.compress(content))

    assert detect_format(path) == expected
    assert detect_format(compressed) == expected


def test_file_whose_format_cannot_be_told_is_reported(tmp_path):
    unknown = tmp_path / "notes.txt"
    unknown.write_text("just some words\n")
    later = write_lines(tmp_path / "later.jsonl", good("a"))

    result = read_all(unknown, later)

    assert result.ids == ["a"]
    assert result.error_places == [(1, "format")]


def test_formats_lists_the_choices_of_the_command_line():
    assert FORMATS == ("auto", "jsonl", "csv", "pan12")
