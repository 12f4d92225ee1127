import pytest

from scoring_engine.conversation import Message
from scoring_engine.formats import ReaderLimits

from .support import FIXTURES, read_all, write_lines

HEADER = "conversation_id,author,text,ts,label"


def test_valid_csv_yields_one_conversation_per_run_of_rows():
    result = read_all(FIXTURES / "valid.csv")

    assert result.errors == []
    assert result.ids == ["k-1", "k-2"]
    first, second = result.conversations
    assert first.messages == (
        Message("u1", "hi there", "2024-05-01T10:00:00Z"),
        Message("u2", "a reply\nthat spans\nthree lines", None),
    )
    assert (first.label, first.platform) == ("normal", "chat")
    assert second.messages[0].text == 'she said "ok"'
    assert (second.label, second.platform) == ("grooming", None)


def test_error_after_a_multi_line_row_names_the_physical_line(tmp_path):
    path = write_lines(
        tmp_path / "lines.csv",
        HEADER,
        'a,u1,"one\ntwo\nthree",,',
        "a,u2,fine,,",
        "b,u1,fine,,",
        "b,u2,bad label,,unsure",
    )

    result = read_all(path)

    assert result.ids == ["a"]
    assert result.error_places == [(7, "label")]


def test_header_without_required_columns_is_reported_once(tmp_path):
    path = write_lines(tmp_path / "header.csv", "id,author,message", "a,u1,hi", "b,u1,hi")

    result = read_all(path)

    assert result.conversations == []
    assert result.error_places == [(1, "header")]
    assert "conversation_id" in result.errors[0].reason
    assert "text" in result.errors[0].reason


def test_non_contiguous_conversation_rows_are_rejected_and_reported_once(tmp_path):
    path = write_lines(
        tmp_path / "split.csv",
        HEADER,
        "a,u1,one,,",
        "b,u1,two,,",
        "a,u2,three,,",
        "a,u2,four,,",
        "c,u1,five,,",
    )

    result = read_all(path)

    assert result.ids == ["a", "b", "c"]
    assert result.conversations[0].messages == (Message("u1", "one"),)
    assert result.error_places == [(4, "conversation_id")]
    assert "contiguous" in result.errors[0].reason
    assert "first seen on line 2" in result.errors[0].reason


def test_conflicting_labels_reject_the_conversation(tmp_path):
    path = write_lines(
        tmp_path / "labels.csv",
        HEADER,
        "a,u1,one,,normal",
        "a,u2,two,,",
        "a,u1,three,,grooming",
        "b,u1,four,,grooming",
    )

    result = read_all(path)

    assert result.ids == ["b"]
    assert result.error_places == [(4, "label")]
    assert "conflicts with 'normal' on line 2" in result.errors[0].reason


def test_bad_row_rejects_its_whole_conversation_reported_once(tmp_path):
    path = write_lines(
        tmp_path / "bad.csv",
        HEADER,
        "a,u1,one,,",
        "a,u2,two,not a time,",
        "a,u1,three,also not a time,",
        "b,u1,four,,",
    )

    result = read_all(path)

    assert result.ids == ["b"]
    assert result.error_places == [(3, "ts")]
    assert result.stats.rejected == 1


def test_row_missing_a_required_cell_is_reported(tmp_path):
    path = write_lines(tmp_path / "short.csv", "conversation_id,author,text", "a,u1", "b,u1,hi")

    result = read_all(path)

    assert result.ids == ["b"]
    assert result.error_places == [(2, "text")]
    assert "missing" in result.errors[0].reason


def test_empty_conversation_id_is_rejected(tmp_path):
    path = write_lines(tmp_path / "empty-id.csv", HEADER, ",u1,hi,,", "b,u1,hi,,")

    result = read_all(path)

    assert result.ids == ["b"]
    assert result.error_places == [(2, "conversation_id")]


def test_invalid_utf8_row_rejects_its_conversation(tmp_path):
    path = write_lines(tmp_path / "latin.csv", HEADER, b"a,u1,caf\xe9,,", "b,u1,hi,,")

    result = read_all(path)

    assert result.ids == ["b"]
    assert result.error_places == [(2, "row")]
    assert "invalid UTF-8" in result.errors[0].reason


def test_malformed_quoting_is_reported_and_reading_goes_on(tmp_path):
    path = write_lines(tmp_path / "quotes.csv", HEADER, 'a,u1,"oops"x,,', "b,u1,hi,,")

    result = read_all(path)

    assert result.ids == ["b"]
    assert result.error_places == [(2, "row")]
    assert "malformed CSV" in result.errors[0].reason


def test_unterminated_quote_at_end_of_file_is_reported(tmp_path):
    path = write_lines(tmp_path / "open.csv", HEADER, "a,u1,hi,,", 'b,u1,"never closed,,')

    result = read_all(path)

    assert result.ids == ["a"]
    assert result.error_places == [(3, "row")]


def test_line_over_max_record_bytes_rejects_its_row_and_later_rows_are_read(tmp_path):
    huge_quoted = 'a,u1,"' + "x" * 5000 + '",,'
    path = write_lines(tmp_path / "huge.csv", HEADER, huge_quoted, "b,u1,hi,,", "b,u2,yo,,")

    result = read_all(path, limits=ReaderLimits(max_record_bytes=1000))

    assert result.ids == ["b"]
    assert len(result.conversations[0].messages) == 2
    assert result.error_places == [(2, "row")]
    assert "longer than 1000 bytes" in result.errors[0].reason


def test_label_outside_grooming_and_normal_is_rejected(tmp_path):
    path = write_lines(tmp_path / "label.csv", HEADER, "a,u1,hi,,maybe")

    result = read_all(path)

    assert result.conversations == []
    assert result.error_places == [(2, "label")]


def test_text_over_max_text_chars_rejects_the_conversation(tmp_path):
    path = write_lines(tmp_path / "text.csv", HEADER, "a,u1,short,,", "a,u2," + "y" * 20 + ",,")

    result = read_all(path, limits=ReaderLimits(max_text_chars=10))

    assert result.conversations == []
    assert result.error_places == [(3, "text")]


def test_more_than_max_messages_rejects_the_conversation(tmp_path):
    rows = [f"a,u1,message {index},," for index in range(4)]
    path = write_lines(tmp_path / "many.csv", HEADER, *rows, "b,u1,hi,,")

    result = read_all(path, limits=ReaderLimits(max_messages=3))

    assert result.ids == ["b"]
    assert result.error_places == [(5, "conversation_id")]


def test_blank_lines_between_rows_are_skipped(tmp_path):
    path = write_lines(tmp_path / "blank.csv", "", HEADER, "a,u1,hi,,", "", "a,u2,yo,,")

    result = read_all(path)

    assert result.errors == []
    assert [len(conversation.messages) for conversation in result.conversations] == [2]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_windows_and_unix_line_endings_read_alike(tmp_path, newline):
    path = tmp_path / "endings.csv"
    path.write_bytes(newline.join([HEADER, "a,u1,hi,,", "a,u2,yo,,", ""]).encode())

    result = read_all(path)

    assert [message.text for message in result.conversations[0].messages] == ["hi", "yo"]
