import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from scoring_engine.errors import BadInputError
from scoring_engine.formats import ReaderLimits, find_predator_lists, load_predator_ids

from .support import FIXTURES, read_all

SAMPLE_XML = FIXTURES / "pan12" / "conversations.xml"
REPO_ROOT = Path(__file__).resolve().parents[3]


def write_xml(path: Path, body: str) -> Path:
    path.write_text(f"<conversations>\n{body}</conversations>\n", encoding="utf-8")
    return path


def message(author: str, text: str | None = "hello") -> str:
    text_element = "" if text is None else f"<text>{text}</text>"
    return (
        f"<message line='1'><author>{author}</author><time>01:00</time>{text_element}</message>\n"
    )


def test_pan12_messages_are_read_in_document_order_without_timestamps(tmp_path):
    xml = shutil.copy(SAMPLE_XML, tmp_path / "conversations.xml")

    result = read_all(xml)

    assert result.errors == []
    assert result.ids == ["aaa111", "bbb222", "ccc333"]
    first = result.conversations[0]
    assert [m.author for m in first.messages] == ["author-one", "author-two", "author-one"]
    assert [m.text for m in first.messages] == ["hello there", "", "fish & chips"]
    assert all(m.ts is None for c in result.conversations for m in c.messages)
    assert result.conversations[2].messages == ()


def test_without_a_predator_list_labels_are_none(tmp_path):
    xml = shutil.copy(SAMPLE_XML, tmp_path / "conversations.xml")

    result = read_all(xml)

    assert [c.label for c in result.conversations] == [None, None, None]


def test_predator_list_next_to_the_xml_turns_into_labels():
    result = read_all(SAMPLE_XML)

    assert [c.label for c in result.conversations] == ["normal", "grooming", "normal"]


def test_given_predator_list_is_used_instead_of_the_one_next_to_the_xml(tmp_path):
    predators = tmp_path / "ids.txt"
    predators.write_text("author-one\n")

    result = read_all(SAMPLE_XML, pan12_predators=predators)

    assert [c.label for c in result.conversations] == ["grooming", "normal", "normal"]


def test_missing_predator_list_given_by_the_caller_is_refused_at_once(tmp_path):
    with pytest.raises(BadInputError, match="predator id list"):
        read_all(SAMPLE_XML, pan12_predators=tmp_path / "absent.txt")


def test_only_predator_id_lists_of_the_corpus_are_picked_up_next_to_the_xml(tmp_path):
    names = [
        "pan12-sexual-predator-identification-training-corpus-predators-2012-05-01.txt",
        "pan12-sexual-predator-identification-groundtruth-problem1.txt",
        "full-training-predator-ids.txt",
        "pan12-sexual-predator-identification-diff.txt",
        "pan12-sexual-predator-identification-groundtruth-problem2.txt",
        "readme.txt",
    ]
    for name in names:
        (tmp_path / name).write_text("x\n")

    found = [path.name for path in find_predator_lists(tmp_path)]

    assert sorted(found) == sorted(names[:3])


def test_predator_list_reads_the_first_word_of_each_non_blank_line(tmp_path):
    path = tmp_path / "predators.txt"
    path.write_text("abc\n\n  def  \nghi")

    assert load_predator_ids(path) == {"abc", "def", "ghi"}


def test_error_names_the_line_of_the_conversation_start_tag(tmp_path):
    body = (
        "<conversation id='one'>\n"
        + message("a")
        + "</conversation>\n"
        + "<conversation id='two'>\n"
        + message("a")
        + message("", "no author")
        + "</conversation>\n"
        + "<conversation id='three'>\n"
        + message("b", None)
        + "</conversation>\n"
        + "<conversation>\n"
        + message("c")
        + "</conversation>\n"
        + "<conversation id='four'>\n"
        + message("d")
        + "</conversation>\n"
    )
    xml = write_xml(tmp_path / "bad.xml", body)

    result = read_all(xml)

    assert result.ids == ["one", "four"]
    assert result.error_places == [
        (5, "messages[1].author"),
        (9, "messages[0].text"),
        (12, "id"),
    ]


def test_exact_repeat_of_a_conversation_is_skipped_and_counted(tmp_path):
    conversation = "<conversation id='same'>\n" + message("a") + "</conversation>\n"
    xml = write_xml(tmp_path / "repeat.xml", conversation + conversation)

    result = read_all(xml)

    assert result.ids == ["same"]
    assert result.errors == []
    assert result.stats.repeats == 1


def test_repeated_id_with_other_messages_is_a_duplicate(tmp_path):
    body = (
        "<conversation id='same'>\n"
        + message("a")
        + "</conversation>\n"
        + "<conversation id='same'>\n"
        + message("b")
        + "</conversation>\n"
    )
    xml = write_xml(tmp_path / "dup.xml", body)

    result = read_all(xml)

    assert result.ids == ["same"]
    assert result.error_places == [(5, "id")]
    assert "first on line 2" in result.errors[0].reason


def test_malformed_xml_is_reported_with_its_line_and_ends_the_file(tmp_path):
    body = (
        "<conversation id='one'>\n"
        + message("a")
        + "</conversation>\n"
        + "<conversation id='two'>\n"
        + "<message><author>b</author><text>unclosed</message>\n"
        + "</conversation>\n"
    )
    xml = write_xml(tmp_path / "broken.xml", body)
    later = shutil.copy(SAMPLE_XML, tmp_path / "later.xml")

    result = read_all(xml, later)

    assert result.ids == ["one", "aaa111", "bbb222", "ccc333"]
    assert result.error_places == [(6, "xml")]
    assert "malformed XML" in result.errors[0].reason


def test_truncated_xml_is_reported(tmp_path):
    xml = tmp_path / "cut.xml"
    xml.write_text("<conversations>\n<conversation id='one'>\n" + message("a"))

    result = read_all(xml)

    assert result.conversations == []
    assert [error.field for error in result.errors] == ["xml"]


def test_doctype_declarations_are_refused(tmp_path):
    xml = tmp_path / "entities.xml"
    xml.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE conversations [<!ENTITY a "aaaaaaaa">]>\n'
        "<conversations><conversation id='x'>" + message("&a;") + "</conversation></conversations>"
    )

    result = read_all(xml)

    assert result.conversations == []
    assert result.error_places == [(2, "xml")]
    assert "DOCTYPE" in result.errors[0].reason


def test_xml_whose_root_is_not_conversations_is_reported(tmp_path):
    xml = tmp_path / "other.xml"
    xml.write_text("<html><body/></html>")

    result = read_all(xml)

    assert result.conversations == []
    assert result.error_places == [(1, "xml")]


def test_text_over_max_text_chars_rejects_the_conversation(tmp_path):
    body = "<conversation id='long'>\n" + message("a", "z" * 50) + "</conversation>\n"
    xml = write_xml(tmp_path / "long.xml", body)

    result = read_all(xml, limits=ReaderLimits(max_text_chars=20))

    assert result.conversations == []
    assert result.error_places == [(2, "messages[0]")]


def test_more_than_max_messages_rejects_the_conversation(tmp_path):
    body = "<conversation id='many'>\n" + message("a") * 4 + "</conversation>\n"
    xml = write_xml(tmp_path / "many.xml", body)

    result = read_all(xml, limits=ReaderLimits(max_messages=3))

    assert result.conversations == []
    assert result.error_places == [(2, "messages[3]")]


def test_conversation_over_max_record_bytes_is_rejected(tmp_path):
    body = "<conversation id='big'>\n" + message("a", "w" * 400) * 5 + "</conversation>\n"
    body += "<conversation id='small'>\n" + message("a") + "</conversation>\n"
    xml = write_xml(tmp_path / "big.xml", body)

    result = read_all(xml, limits=ReaderLimits(max_record_bytes=1000))

    assert result.ids == ["small"]
    assert [error.field for error in result.errors] == ["messages[2]"]


# The real PAN 2012 excerpts: assertions on counts, ids and labels only, never on text.


def pan12_sample_dir() -> Path:
    data_dir = Path(os.environ.get("VIGIL_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))
    sample = data_dir / "pan12-sample"
    if not sample.is_dir():
        pytest.skip(f"PAN 2012 sample not found at {sample} (set VIGIL_DATA_DIR)")
    return sample


def authors_by_conversation(xml: Path) -> list[tuple[str, set[str]]]:
    """An independent reading of the corpus structure (ids and authors only)."""
    root = ET.parse(xml).getroot()  # noqa: S314 - a fixed, checksummed research file
    return [
        (conversation.get("id", ""), {a.text or "" for a in conversation.iter("author")})
        for conversation in root.iter("conversation")
    ]


@pytest.mark.data
@pytest.mark.parametrize(
    ("split", "conversations", "repeats", "grooming"),
    [("train", 16, 1, 3), ("test", 9, 0, 5)],
)
def test_real_pan12_sample_is_read_and_labelled_from_its_predator_list(
    split, conversations, repeats, grooming
):
    sample = pan12_sample_dir() / split
    xml = next(sample.glob("*.xml"))
    predators = set().union(*(load_predator_ids(path) for path in find_predator_lists(sample)))
    expected = {
        conversation_id: "grooming" if authors & predators else "normal"
        for conversation_id, authors in authors_by_conversation(xml)
    }

    result = read_all(xml)

    assert result.errors == []
    assert (result.stats.read, result.stats.repeats) == (conversations, repeats)
    assert len(set(result.ids)) == conversations
    assert {c.id: c.label for c in result.conversations} == expected
    assert sum(c.label == "grooming" for c in result.conversations) == grooming
    assert all(m.ts is None for c in result.conversations for m in c.messages)


@pytest.mark.data
def test_real_pan12_full_predator_list_can_be_given_explicitly():
    sample = pan12_sample_dir()
    xml = next((sample / "train").glob("*.xml"))
    predators = load_predator_ids(sample / "full-training-predator-ids.txt")
    expected_grooming = {
        conversation_id
        for conversation_id, authors in authors_by_conversation(xml)
        if authors & predators
    }

    result = read_all(xml, pan12_predators=sample / "full-training-predator-ids.txt")

    assert expected_grooming
    assert {c.id for c in result.conversations if c.label == "grooming"} == expected_grooming
