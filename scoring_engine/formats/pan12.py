"""PAN 2012 Sexual Predator Identification XML reader.

``<conversations><conversation id="..."><message line="1"><author>hash</author><time>03:20</time>
<text>...</text></message>...</conversation>...</conversations>``

- Streamed with expat (the parser under ``xml.etree.ElementTree.iterparse``), driven directly so
  that each conversation's line number is the line of its ``<conversation>`` start tag; only the
  conversation being read is held in memory.
- Messages are kept in document order. Authors are the corpus's hashed ids, kept as they are.
  ``<time>`` is a clock time without a date, so messages get no ``ts``. An empty ``<text/>`` is
  an empty string; a message without ``<author>`` or ``<text>`` rejects its conversation.
- Labels come from a predator id list: a conversation is ``grooming`` when any of its authors is
  listed, else ``normal``. The list is the one given, or else the ``.txt`` files next to the XML
  that the corpus names as predator lists (see :func:`find_predator_lists`); without a list the
  label is None.
- Conversation ids are unique in a file. The corpus repeats some conversations whole under the
  same id (the training sample does): such an exact repeat is skipped silently and counted in
  ``ReadStats.repeats``; a repeated id with other messages is reported as a duplicate.
- Malformed XML is reported at the line expat stops at, and the rest of that file is not read
  (the conversations before it have been yielded). DOCTYPE declarations are refused, so entity
  expansion and external entities cannot be used against the reader.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING
from xml.parsers import expat

from scoring_engine.conversation import Conversation, Label, Message
from scoring_engine.formats.base import (
    READ_FAILURES,
    ReaderLimits,
    ReadStats,
    RecordError,
    RecordReporter,
    excerpt,
    read_failure_reason,
)

if TYPE_CHECKING:
    import io
    from collections.abc import Iterator
    from pathlib import Path

_CHUNK_BYTES = 1 << 16

# "predators-2012-05-01.txt", "predator-ids.txt" and "groundtruth-problem1.txt" are lists of
# predator ids; the corpus's "predator-identification-diff.txt" and "groundtruth-problem2.txt"
# are lists of (conversation, line) pairs and must not be read as such.
_PREDATOR_LIST_NAME = re.compile(r"groundtruth-problem1|predators\b|predator[-_]ids?\b")


def find_predator_lists(directory: Path) -> list[Path]:
    """The predator id lists of the PAN 2012 corpus found in ``directory``, sorted by name."""
    try:
        candidates = sorted(directory.glob("*.txt"))
    except OSError:
        return []
    return [path for path in candidates if _PREDATOR_LIST_NAME.search(path.name.lower())]


def load_predator_ids(path: Path) -> frozenset[str]:
    """The author ids of a predator list: the first word of each non-blank line."""
    with path.open(encoding="utf-8") as lines:
        return frozenset(words[0] for line in lines if (words := line.split()))


class _NotReadable(Exception):  # noqa: N818 - stops the file; the reason is reported by the reader
    pass


class _ConversationBuilder:
    """expat handlers that assemble one conversation at a time.

    Finished conversations and rejected ones (as RecordError) queue in ``ready`` in document
    order; the reader drains the queue after each chunk it feeds.
    """

    def __init__(
        self,
        parser: expat.XMLParserType,
        path: str,
        limits: ReaderLimits,
        predators: frozenset[str] | None,
        stats: ReadStats,
    ) -> None:
        self.parser = parser
        self.stats = stats
        self.path = path
        self.limits = limits
        self.predators = predators
        self.ready: list[Conversation | RecordError] = []
        # id -> (line of its first <conversation>, digest of its messages or None if rejected)
        self.first_seen: dict[str, tuple[int, bytes | None]] = {}
        self.depth = 0
        self.in_conversation = False
        self.in_message = False
        self._reset_conversation()
        self._reset_message()

    def _reset_conversation(self) -> None:
        self.conversation_id = ""
        self.line = 0
        self.start_byte = 0
        self.messages: list[Message] = []
        self.message_count = 0
        self.authors: set[str] = set()
        self.problem: tuple[str, str] | None = None

    def _reset_message(self) -> None:
        self.author: str | None = None
        self.text: str | None = None
        self.capture: list[str] | None = None
        self.captured_chars = 0

    def _reject(self, field: str, reason: str) -> None:
        if self.problem is None:
            self.problem = (field, reason)
        self.messages.clear()  # nothing of a rejected conversation is kept while it is read
        self.capture = None

    def start(self, name: str, attributes: dict[str, str]) -> None:
        self.depth += 1
        if self.depth == 1:
            if name != "conversations":
                raise _NotReadable(f"root element is <{name[:40]}>, not <conversations>")
        elif self.depth == 2 and name == "conversation":
            self._start_conversation(attributes)
        elif self.depth == 3 and name == "message" and self.in_conversation:
            self.in_message = True
            self._reset_message()
        elif (
            self.depth == 4
            and self.in_message
            and name in ("author", "text")
            and self.problem is None
        ):
            self.capture = []
            self.captured_chars = 0

    def _start_conversation(self, attributes: dict[str, str]) -> None:
        self.in_conversation = True
        self._reset_conversation()
        self.line = self.parser.CurrentLineNumber
        self.start_byte = self.parser.CurrentByteIndex
        conversation_id = attributes.get("id", "").strip()
        self.conversation_id = conversation_id
        if not conversation_id:
            self._reject("id", "missing <conversation> attribute")
            return
        # A repeated id is settled at the end tag, when the two contents can be compared.

    def data(self, text: str) -> None:
        capture = self.capture
        if capture is None:
            return
        self.captured_chars += len(text)
        if self.captured_chars > self.limits.max_text_chars:
            self._reject(
                f"messages[{self.message_count}]",
                f"<author> or <text> longer than {self.limits.max_text_chars} characters "
                "(max_text_chars)",
            )
            return
        capture.append(text)

    def end(self, name: str) -> None:
        depth = self.depth
        self.depth -= 1
        if depth == 4 and self.in_message:
            if self.capture is not None:
                value = "".join(self.capture)
                self.capture = None
                if name == "author":
                    self.author = value.strip()
                elif name == "text":
                    self.text = value
        elif depth == 3 and name == "message" and self.in_message:
            self.in_message = False
            self._end_message()
        elif depth == 2 and name == "conversation" and self.in_conversation:
            self.in_conversation = False
            self._end_conversation()

    def _end_message(self) -> None:
        index = self.message_count
        self.message_count += 1
        if self.problem is not None:
            return
        if self.parser.CurrentByteIndex - self.start_byte > self.limits.max_record_bytes:
            self._reject(
                f"messages[{index}]",
                f"conversation longer than {self.limits.max_record_bytes} bytes (max_record_bytes)",
            )
        elif self.message_count > self.limits.max_messages:
            self._reject(f"messages[{index}]", f"more than {self.limits.max_messages} messages")
        elif not self.author:
            self._reject(f"messages[{index}].author", "missing or empty <author>")
        elif self.text is None:
            self._reject(f"messages[{index}].text", "missing <text>")
        else:
            self.messages.append(Message(self.author, self.text))
            self.authors.add(self.author)

    def _end_conversation(self) -> None:
        digest = None if self.problem is not None else _digest(self.messages)
        first = self.first_seen.get(self.conversation_id) if self.conversation_id else None
        if first is None:
            if self.conversation_id:
                self.first_seen[self.conversation_id] = (self.line, digest)
        elif digest is not None and digest == first[1]:
            self.stats.repeats += 1
            self._reset_conversation()
            return
        elif self.problem is None:
            other = " with other messages" if first[1] is not None else ""
            self._reject(
                "id",
                f"duplicate id {excerpt(self.conversation_id)}{other} (first on line {first[0]})",
            )
        if self.problem is not None:
            field, reason = self.problem
            self.ready.append(RecordError(self.path, self.line, field, reason))
        else:
            label: Label | None = None
            if self.predators is not None:
                label = "normal" if self.authors.isdisjoint(self.predators) else "grooming"
            self.ready.append(
                Conversation(id=self.conversation_id, messages=tuple(self.messages), label=label)
            )
        self._reset_conversation()


def _digest(messages: list[Message]) -> bytes:
    digest = hashlib.blake2b(digest_size=16)
    for message in messages:
        digest.update(message.author.encode("utf-8", "surrogatepass") + b"\x00")
        digest.update(message.text.encode("utf-8", "surrogatepass") + b"\x00")
    return digest.digest()


def _refuse_doctype(*_args: object) -> None:
    raise _NotReadable("DOCTYPE declarations are not allowed")


def read_pan12(
    stream: io.BufferedIOBase,
    path: str,
    reporter: RecordReporter,
    limits: ReaderLimits,
    predators: frozenset[str] | None,
) -> Iterator[Conversation]:
    parser = expat.ParserCreate()
    parser.buffer_text = True
    builder = _ConversationBuilder(parser, path, limits, predators, reporter.stats)
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    parser.StartDoctypeDeclHandler = _refuse_doctype

    seen_content = False
    failure: RecordError | None = None
    while failure is None:
        try:
            chunk = stream.read(_CHUNK_BYTES)
        except READ_FAILURES as exc:
            failure = RecordError(path, parser.CurrentLineNumber, "file", read_failure_reason(exc))
            break
        seen_content = seen_content or bool(chunk.strip())
        if not chunk and not seen_content:
            return  # an empty file holds no conversations; it is not an error
        try:
            parser.Parse(chunk, not chunk)
        except expat.ExpatError as exc:
            failure = RecordError(
                path, exc.lineno, "xml", f"malformed XML: {expat.ErrorString(exc.code)}"
            )
        except _NotReadable as exc:
            failure = RecordError(path, parser.CurrentLineNumber, "xml", str(exc))
        yield from _drain(builder, reporter)
        if not chunk:
            break
    if failure is not None:
        reporter.report(failure)


def _drain(builder: _ConversationBuilder, reporter: RecordReporter) -> Iterator[Conversation]:
    ready = builder.ready
    builder.ready = []
    for item in ready:
        if isinstance(item, RecordError):
            reporter.report(item)
        else:
            yield item
