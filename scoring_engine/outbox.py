"""The report outbox: usage counts and moderator feedback on their way to the portal.

``vigil-engine report`` (SPEC §4, §8; the contract is docs/feedback.md) runs
:func:`run_report`. The rules it keeps:

- Queuing moves records into the outbox in transactions of the local database: every
  ``usage_days`` row becomes a usage record and is deleted; every reviewed item without a
  ``feedback_queued`` row becomes a feedback record and gets one (a new verdict deletes it).
  ``queue_reports`` does it all in one transaction (when the portal is out);
  ``queue_in_steps`` in one per ``max_records`` reviewed items, and ``report`` sends each
  step's batches while the next is queued. Either way an item is queued once: a run
  stopped midway leaves the rest to the next.
  Records are grouped into batches of at most the policy's ``max_records`` records and
  ``max_body_bytes`` bytes of JSON; each batch gets a uuid4 ``batch_id`` and its exact JSON
  body is stored. Nothing rebuilds a body later, so sending a batch again is the same
  request and the portal, which accepts a batch id once, never counts it twice.
- Text: a feedback record's ``text`` is null unless the portal's policy, fetched in this
  run, says ``text_sharing``, the moderator confirmed sharing (``share_text``) and the text
  is still there (retention deletes it; expired text is purged in the same transaction,
  before anything is queued). A policy that cannot be fetched means no text: never guess.
  With sharing off the conversation column is not even read. A text too long for a batch
  of its own is left out (the portal could only refuse that batch, verdict and all).
- Sending (``send_pending``): every unsent batch, oldest first, gzipped, with the license
  as bearer and the lease in ``X-Vigil-Lease``; after the first, up to
  ``SEND_CONCURRENCY`` at once (the portal keeps the latest ``reviewed_at`` of a feedback
  id whatever order batches arrive in). ``201``, or ``200`` with
  ``"duplicate": true``: sent. A connection failure, a timeout, ``5xx`` or ``429`` is
  retried with exponential backoff and jitter, and at least the portal's ``Retry-After``
  (``RetryPolicy``, bounded); if it still fails the portal is out: sending stops, every
  unsent batch stays (exit 5). ``422`` (or another refusal of the batch itself: ``400``,
  ``409``, ``413``): the batch stays with its error, attempts and that status
  (``refused_status``: ``vigil-engine outbox``, ``scoring_engine.refused``), the next
  batch is sent.
  A license refusal (``401``/``403``) stops the run (exit 3); a refused lease is renewed
  once first. ``403 text_sharing_disabled`` (the organisation turned sharing off since the
  batch was made): the batch's texts are removed from its stored body, under the same
  batch id (the portal kept nothing of it), and it is sent again.
- With nothing to send (no usage rows, no reviewed item to queue, no unsent batch) the
  portal is not contacted at all: a scheduler's run needs no network then.
- The lease: the stored one while it has more than ``LEASE_MARGIN`` to run, else renewed
  (or the engine activated) as ``update`` does (``activation.keep_seat``), under the
  home's lock, and verified with the license keys when the engine holds them.
"""

from __future__ import annotations

import json
import queue
import random
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Protocol

from tuf.api.exceptions import DownloadError

from licensing.exceptions import LicensingError
from scoring_engine import localdb, online_state, trust
from scoring_engine.activation import (
    keep_seat,
    portal_failure,
    refusal_context,
    verify_stored_lease,
)
from scoring_engine.errors import BadInputError, VigilError
from scoring_engine.remote import (
    FEEDBACK_PATH,
    NOT_ACTIVATED,
    USAGE_PATH,
    PortalConnectionError,
    PortalResponseError,
    PortalTransport,
    RefusalContext,
    RemoteSettings,
    ReportApi,
)
from scoring_engine.review import Verdict
from scoring_engine.trust import (
    LicenseCheckError,
    PortalUnreachableError,
    check_not_denied,
    engine_error,
    inspect_license,
    isoformat_z,
    read_license_token,
    stored_license_keys,
    stored_trust_root,
)

if TYPE_CHECKING:
    from licensing.tokens import LicenseClaims
    from scoring_engine.home import EngineHome

USAGE: Final = "usage"
FEEDBACK: Final = "feedback"
PATHS: Final = {USAGE: USAGE_PATH, FEEDBACK: FEEDBACK_PATH}

DEFAULT_MAX_RECORDS: Final = 1000
DEFAULT_MAX_BODY_BYTES: Final = 8 * 1024 * 1024
# Bounds on what a portal's policy may ask for (a broken portal must not make the engine
# build one record per request, or one body of a gigabyte).
_RECORDS_RANGE: Final = (1, 100_000)
_BODY_RANGE: Final = (64 * 1024, 256 * 1024 * 1024)
LEASE_MARGIN: Final = timedelta(minutes=10)
TEXT_SHARING_DISABLED: Final = "text_sharing_disabled"
# Answers about the batch itself: it is kept with its error, the next one is sent.
_BATCH_REFUSALS: Final = frozenset({400, 409, 413, 422})
_MAX_ERROR: Final = 500


#### Policy and retries ####


@dataclass(frozen=True)
class ReportPolicy:
    """``GET /api/v1/feedback/policy``; the defaults (no text) when it cannot be fetched."""

    text_sharing: bool = False
    max_records: int = DEFAULT_MAX_RECORDS
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    fetched: bool = False

    @classmethod
    def from_answer(cls, document: dict[str, Any]) -> ReportPolicy:
        """The portal's policy; anything but a JSON ``true`` leaves text sharing off."""

        def bounded(name: str, default: int, low: int, high: int) -> int:
            value = document.get(name)
            if isinstance(value, bool) or not isinstance(value, int):
                return default
            return min(max(value, low), high)

        return cls(
            text_sharing=document.get("text_sharing") is True,
            max_records=bounded("max_records", DEFAULT_MAX_RECORDS, *_RECORDS_RANGE),
            max_body_bytes=bounded("max_body_bytes", DEFAULT_MAX_BODY_BYTES, *_BODY_RANGE),
            fetched=True,
        )


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a batch is re-sent after a transient failure.

    The delay before retry ``n`` (1-based) is ``min(max_delay, base_delay * 2**(n-1))``
    scaled by a random factor in [0.5, 1) (jitter: engines that lost the portal together do
    not come back together). A portal that says how long to wait (``Retry-After`` of a 429
    or 503) is given at least that, up to ``max_retry_after``; asked for longer, the run
    stops as for an outage and leaves the batches for the next. ``sleep`` and ``jitter`` are
    injectable for tests.
    """

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    jitter: Callable[[], float] = random.random  # spreads retries; no secrecy needed

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        ceiling = min(self.max_delay, self.base_delay * 2 ** (retry - 1))
        delay = float(ceiling * (0.5 + self.jitter() / 2))
        return delay if retry_after is None else max(delay, retry_after)

    def waits_for(self, retry_after: float | None) -> bool:
        """Whether a retry waits as long as the portal asked (not if that is too long)."""
        return retry_after is None or retry_after <= self.max_retry_after


# What `report` uses (tests replace it to make the delays instant).
DEFAULT_RETRY = RetryPolicy()


#### Queuing ####


@dataclass(frozen=True)
class Queued:
    """What one ``queue_reports`` moved into the outbox."""

    usage_records: int = 0
    feedback_records: int = 0
    with_text: int = 0
    batches: int = 0
    # Reviewed items left in the queue because their stored score line or features are
    # not JSON (a damaged database): sending them would get the whole batch refused.
    unreadable: int = 0
    texts_purged: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class _Batch:
    batch_id: str
    kind: str
    records: int
    # The body, when it was just queued by this run (committed); else read from the outbox.
    body: str | None = field(default=None, repr=False, compare=False)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _utf8_length(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


class _BatchWriter:
    """Groups record JSON texts into outbox batches within the policy's limits."""

    def __init__(
        self,
        connection: sqlite3.Connection,
        kind: str,
        engine_id: str,
        policy: ReportPolicy,
        created_at: str,
        new_id: Callable[[], str],
        *,
        keep_bodies: bool = False,
    ) -> None:
        self._connection = connection
        # Whether the batches created keep their bodies (for ``queue_in_steps``'s senders).
        self._keep_bodies = keep_bodies
        self._kind = kind
        self._engine = _dumps(engine_id)
        self._policy = policy
        self._created_at = created_at
        self._new_id = new_id
        # The body around the records; a batch id (uuid4) is 36 characters.
        self._overhead = len('{"batch_id":"","engine_id":,"records":[]}') + 36 + len(self._engine)
        self._records: list[str] = []
        self._size = self._overhead
        self.created: list[_Batch] = []

    @property
    def batches(self) -> int:
        return len(self.created)

    def add(self, record: str) -> None:
        size = _utf8_length(record) + 1  # and its comma
        if self._records and (
            len(self._records) >= self._policy.max_records
            or self._size + size > self._policy.max_body_bytes
        ):
            self.flush()
        self._records.append(record)
        self._size += size

    def fits_alone(self, record: str) -> bool:
        """Whether a batch of this one record stays within ``max_body_bytes``."""
        return self._overhead + _utf8_length(record) + 2 <= self._policy.max_body_bytes

    def flush(self) -> None:
        if not self._records:
            return
        batch_id = self._new_id()
        body = (
            f'{{"batch_id":"{batch_id}","engine_id":{self._engine},"records":['
            + ",".join(self._records)
            + "]}"
        )
        self._connection.execute(
            "INSERT INTO outbox (batch_id, kind, created_at, payload, records)"
            " VALUES (?, ?, ?, ?, ?)",
            (batch_id, self._kind, self._created_at, body, len(self._records)),
        )
        self.created.append(
            _Batch(batch_id, self._kind, len(self._records), body if self._keep_bodies else None)
        )
        self._records = []
        self._size = self._overhead


def _usage_record(row: sqlite3.Row) -> str:
    try:
        histogram: Any = json.loads(row["histogram"])
    except ValueError:
        histogram = row["histogram"]  # sent as it is: the portal names the field it refuses
    return _dumps(
        {
            "day": row["day"],
            "bundle": row["bundle"],
            "scored": row["scored"],
            "flagged": row["flagged"],
            "reviewed": row["reviewed"],
            "verdicts": {verdict.value: row[verdict.value] for verdict in Verdict},
            "score_histogram": histogram,
        }
    )


def _feedback_id(item_id: str) -> str:
    """The item id (uuid4 hex) in the canonical UUID form."""
    i = item_id
    if len(i) == 32 and i.isalnum():
        return f"{i[:8]}-{i[8:12]}-{i[12:16]}-{i[16:20]}-{i[20:]}"
    return i


def _shared_text(conversation: str | None) -> str | None:
    """``{"messages": [{"author", "text"}]}`` of a stored conversation (None if unusable)."""
    if conversation is None:
        return None
    try:
        document = json.loads(conversation)
        messages = [
            {"author": str(message["author"]), "text": str(message["text"])}
            for message in document["messages"]
        ]
    except (ValueError, TypeError, KeyError):
        return None
    return _dumps({"messages": messages})


# With sharing off (parameter 0) the conversation is not read at all. A score line that is
# not JSON comes back with ``valid`` 0 (and no characteristics): the loop leaves it.
_FEEDBACK_QUERY: Final = """
SELECT seq, item_id, bundle, score, threshold, verdict, reviewed_at,
       json_valid(score_line) AS valid,
       CASE WHEN json_valid(score_line)
            THEN json_extract(score_line, '$.characteristics') END AS characteristics,
       features,
       CASE WHEN ? AND share_text AND text_deleted_at IS NULL
            THEN conversation END AS conversation
FROM review_items
WHERE verdict IS NOT NULL AND reviewed_at IS NOT NULL
  AND seq NOT IN (SELECT seq FROM feedback_queued)
  AND seq BETWEEN ? AND ?
"""
# The reviewed items to queue, in the order they are queued in (``queue_in_steps``).
_TO_QUEUE_QUERY: Final = """
SELECT seq FROM review_items
WHERE verdict IS NOT NULL AND reviewed_at IS NOT NULL
  AND seq NOT IN (SELECT seq FROM feedback_queued)
ORDER BY seq
"""
_ALL_SEQS: Final = (-(2**63), 2**63 - 1)
# A larger page cache for the one big transaction (KiB, as SQLite's negative sizes).
_QUEUE_CACHE_KIB: Final = 64 * 1024


class _Quoted(dict[str, str]):
    """JSON string literals of the few values that repeat (bundles, verdicts, times)."""

    def __missing__(self, value: str) -> str:
        quoted = self[value] = _dumps(value)
        return quoted


def _queue_usage(connection: sqlite3.Connection, usage: _BatchWriter) -> int:
    rows = connection.execute("SELECT * FROM usage_days ORDER BY day, bundle").fetchall()
    for row in rows:
        usage.add(_usage_record(row))
    usage.flush()
    connection.executemany(
        "DELETE FROM usage_days WHERE day = ? AND bundle = ?",
        [(row["day"], row["bundle"]) for row in rows],
    )
    return len(rows)


def _queue_feedback(
    connection: sqlite3.Connection,
    feedback: _BatchWriter,
    *,
    text_sharing: bool,
    now: str,
    seqs: tuple[int, int] = _ALL_SEQS,
) -> tuple[int, int, int]:
    """Feedback records of every reviewed item not queued yet (of those whose ``seq`` is in
    the closed range ``seqs``): (records, with text, unreadable items left in the
    queue)."""
    marked: list[int] = []
    unreadable = 0
    with_text = 0
    quoted = _Quoted()
    cursor = connection.cursor()
    cursor.row_factory = None  # plain tuples: this loop runs once per reviewed item
    # Rows are read lazily (100,000 vectors do not sit in memory at once); the items are
    # marked after the cursor is exhausted, never while it reads the table.
    rows = cursor.execute(_FEEDBACK_QUERY, (int(text_sharing), *seqs))
    for (
        seq,
        item_id,
        bundle,
        score,
        threshold,
        verdict,
        reviewed_at,
        valid,
        chars,
        features,
        text,
    ) in rows:
        # The engine wrote the vector with json.dumps; a damaged one (cut short, not a
        # string) stays in the queue rather than getting its whole batch refused.
        if (
            not valid
            or not isinstance(features, str)
            or features[:1] != "{"
            or features[-1:] != "}"
        ):
            unreadable += 1
            continue
        head = (
            f'{{"feedback_id":"{_feedback_id(item_id)}","bundle":{quoted[bundle]},'
            f'"score":{float(score)!r},"threshold":{float(threshold)!r},'
            f'"characteristics":{chars if isinstance(chars, str) and chars[:1] == "{" else "{}"},'
            f'"verdict":{quoted[verdict]},"reviewed_at":{quoted[reviewed_at]},'
            f'"features":{features},"text":'
        )
        shared = _shared_text(text) if text_sharing else None
        if shared is not None and not feedback.fits_alone(head + shared):
            # A conversation too long for any batch goes without its text: a batch the
            # portal must refuse would hold the verdict back for good.
            shared = None
        with_text += shared is not None
        feedback.add(f"{head}{shared or 'null'}}}")
        marked.append(seq)
    feedback.flush()
    # One statement for the whole step rather than one per item; a step's items follow
    # each other in the queue, so their marks go at the end of the table.
    connection.execute(
        "INSERT OR REPLACE INTO feedback_queued (seq, queued_at) SELECT value, ? FROM json_each(?)",
        (now, json.dumps(marked)),
    )
    return len(marked), with_text, unreadable


def _queue_usage_step(
    connection: sqlite3.Connection,
    engine_id: str,
    policy: ReportPolicy,
    now: datetime,
    retention: timedelta | None,
    new_id: Callable[[], str],
) -> tuple[Queued, list[_Batch]]:
    """Purge text past ``retention``, then queue the usage rows (the caller's transaction)."""
    # Imported here: the queue module pulls in the model, which only this step needs.
    from scoring_engine.review.queue import purge_expired_text  # noqa: PLC0415

    purged = 0 if retention is None else purge_expired_text(connection, retention, now)
    usage = _BatchWriter(connection, USAGE, engine_id, policy, isoformat_z(now), new_id)
    usage_records = _queue_usage(connection, usage)
    return (
        Queued(usage_records=usage_records, batches=usage.batches, texts_purged=purged),
        usage.created,
    )


def queue_reports(
    connection: sqlite3.Connection,
    engine_id: str,
    policy: ReportPolicy,
    now: datetime,
    *,
    retention: timedelta | None = None,
    new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> Queued:
    """Move usage rows and reviewed items into outbox batches (in the caller's transaction).

    ``retention`` (config ``review_retention_days``): text past it is purged first.
    """
    connection.execute(f"PRAGMA cache_size = -{_QUEUE_CACHE_KIB}")
    created_at = isoformat_z(now)
    first, _ = _queue_usage_step(connection, engine_id, policy, now, retention, new_id)
    feedback = _BatchWriter(connection, FEEDBACK, engine_id, policy, created_at, new_id)
    feedback_records, with_text, unreadable = _queue_feedback(
        connection, feedback, text_sharing=policy.text_sharing, now=created_at
    )
    return _plus(
        first,
        Queued(
            feedback_records=feedback_records,
            with_text=with_text,
            batches=feedback.batches,
            unreadable=int(unreadable),
        ),
    )


def _plus(first: Queued, second: Queued) -> Queued:
    return Queued(
        **{
            name.name: getattr(first, name.name) + getattr(second, name.name)
            for name in fields(Queued)
        }
    )


def queue_in_steps(
    home: EngineHome,
    engine_id: str,
    policy: ReportPolicy,
    now: datetime,
    *,
    retention: timedelta | None = None,
    new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> Iterator[tuple[Queued, list[_Batch]]]:
    """What ``queue_reports`` does, in one transaction per ``max_records`` reviewed items;
    each step's batches are yielded once committed, so they can be sent while the next
    step is queued.

    The first step purges expired text, queues the usage rows and lists the reviewed
    items to queue; each next step queues the items of the next stretch of that list
    (those still not queued then). A run stopped between steps leaves the rest for the
    next one: no item is queued twice, none is lost.
    """
    created_at = isoformat_z(now)
    with localdb.connect(home) as connection:
        usage_step = _queue_usage_step(connection, engine_id, policy, now, retention, new_id)
        seqs = [row[0] for row in connection.execute(_TO_QUEUE_QUERY)]
    yield usage_step  # committed
    step = policy.max_records
    for start in range(0, len(seqs), step):
        stretch = seqs[start : start + step]
        with localdb.connect(home) as connection:
            feedback = _BatchWriter(
                connection, FEEDBACK, engine_id, policy, created_at, new_id, keep_bodies=True
            )
            records, with_text, unreadable = _queue_feedback(
                connection,
                feedback,
                text_sharing=policy.text_sharing,
                now=created_at,
                seqs=(stretch[0], stretch[-1]),
            )
        yield (
            Queued(
                feedback_records=records,
                with_text=with_text,
                batches=feedback.batches,
                unreadable=unreadable,
            ),
            feedback.created,
        )


#### What is pending ####


@dataclass(frozen=True)
class Pending:
    batches: int = 0
    batch_records: int = 0
    usage_rows: int = 0
    feedback_items: int = 0
    refused: int = 0  # of ``batches``: refused by the portal (``vigil-engine outbox``)

    @property
    def total(self) -> int:
        """Unsent batches plus what the next ``report`` will queue (``status``)."""
        return self.batches + self.usage_rows + self.feedback_items


def pending(home: EngineHome) -> Pending:
    """What is waiting to reach the portal (no database yet: nothing)."""
    if not localdb.database_path(home).exists():
        return Pending()
    with localdb.connect(home) as connection:
        batches, records, refused = connection.execute(
            "SELECT COUNT(*), COALESCE(SUM(records), 0), COUNT(refused_status) FROM outbox"
            " WHERE sent_at IS NULL"
        ).fetchone()
        usage_rows = connection.execute("SELECT COUNT(*) FROM usage_days").fetchone()[0]
        feedback_items = connection.execute(
            "SELECT COUNT(*) FROM review_items WHERE verdict IS NOT NULL"
            " AND seq NOT IN (SELECT seq FROM feedback_queued)"
        ).fetchone()[0]
    return Pending(
        int(batches), int(records), int(usage_rows), int(feedback_items), refused=int(refused)
    )


#### Sending ####


class Api(Protocol):
    """What sending needs of ``remote.ReportApi``."""

    def encode(self, body: bytes) -> bytes: ...

    def send(self, path: str, body: bytes, *, encoded: bytes | None = None) -> dict[str, Any]: ...


@dataclass(frozen=True)
class BatchFailure:
    """A batch the portal refused; it stays in the outbox with this error."""

    batch_id: str
    kind: str
    records: int
    attempts: int
    error: str


@dataclass
class Sent:
    """What one ``send_pending`` did."""

    sent: int = 0
    duplicate: int = 0
    records: int = 0
    failed: list[BatchFailure] = field(default_factory=list)
    # Why sending stopped early (an outage, exit 5; a license refusal, exit 3).
    stopped: VigilError | None = None
    seconds: float = 0.0


class _Stop(Exception):  # noqa: N818 - control flow inside send_pending only
    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def _pending_batches(home: EngineHome) -> list[_Batch]:
    with localdb.connect(home, write=False) as connection:
        rows = connection.execute(
            "SELECT batch_id, kind, records FROM outbox WHERE sent_at IS NULL"
            " ORDER BY created_at, rowid"
        ).fetchall()
    return [_Batch(row["batch_id"], row["kind"], int(row["records"])) for row in rows]


def _payload(home: EngineHome, batch_id: str) -> str:
    with localdb.connect(home, write=False) as connection:
        row = connection.execute(
            "SELECT payload FROM outbox WHERE batch_id = ?", (batch_id,)
        ).fetchone()
    return str(row["payload"])


# In a body as ``_queue_feedback`` writes it, a record's ``text`` is an object only when
# it carries a conversation: inside a JSON string every quote is escaped, so these bytes
# can only be that key and its object.
_SHARED_TEXT: Final = b'"text":{'


def _record_attempts(
    home: EngineHome,
    batch_id: str,
    attempts: int,
    error: str | None,
    sent_at: str | None,
    *,
    scrub: bool = True,
    refused: int | None = None,
) -> None:
    """Count the attempts; with ``sent_at``, the batch is sent and its body emptied;
    ``refused``: the status the portal refused the batch itself with (else cleared).

    ``scrub=False`` (the body carries no conversation text): the body's pages are freed
    without being overwritten with zeros first, which for a feedback batch is megabytes
    written to the WAL (scores, verdicts and hashed vectors, all of it now at the portal).
    """
    with localdb.connect(home) as connection:
        if not scrub:
            connection.execute("PRAGMA secure_delete=OFF")
        connection.execute(
            # An accepted batch's body is not needed again: emptied, it is not rewritten
            # (nor kept: feedback bodies are megabytes).
            "UPDATE outbox SET attempts = attempts + ?, last_error = ?, refused_status = ?,"
            " sent_at = ?, payload = CASE WHEN ? IS NULL THEN payload ELSE '' END"
            " WHERE batch_id = ?",
            (
                attempts,
                None if error is None else error[:_MAX_ERROR],
                refused,
                sent_at,
                sent_at,
                batch_id,
            ),
        )


def _without_text(payload: str) -> str:
    """The same batch (same id) with every feedback record's text set to null."""
    document = json.loads(payload)
    for record in document.get("records", []):
        if isinstance(record, dict) and "text" in record:
            record["text"] = None
    return _dumps(document)


def _transient(error: BaseException) -> bool:
    if isinstance(error, PortalResponseError):
        return error.status_code == 429 or error.status_code >= 500
    return isinstance(error, PortalConnectionError)


def _is_lease_refusal(error: PortalResponseError) -> bool:
    return error.status_code in {401, 403} and "lease" in (error.code or "")


class _Sender:
    """Sends batches from several threads: the outcome, the API and the stop are shared."""

    def __init__(
        self,
        home: EngineHome,
        api: Api,
        retry: RetryPolicy,
        renew: Callable[[], Api] | None,
        now: Callable[[], datetime],
    ) -> None:
        self.home = home
        self.api = api
        self.retry = retry
        self.renew = renew
        self.now = now
        self.outcome = Sent()
        self.lock = threading.Lock()
        # Set once a batch stopped the run: the others in flight retry no more.
        self.stopping = threading.Event()
        self.stops: list[_Stop] = []

    def _renewed(self, used: Api) -> Api | None:
        """The API to retry with after ``used`` had its lease refused (renewed once)."""
        with self.lock:
            if self.api is not used:  # another batch renewed it meanwhile
                return self.api
            if self.renew is None:
                return None
            self.api, self.renew = self.renew(), None
            return self.api

    def _failed(self, failure: BatchFailure) -> None:
        with self.lock:
            self.outcome.failed.append(failure)

    def _stop(self, batch: _Batch, tries: int, error: BaseException) -> _Stop:
        _record_attempts(self.home, batch.batch_id, tries, str(error), None)
        stop = _Stop(error)
        with self.lock:
            self.stops.append(stop)
        self.stopping.set()
        return stop

    def deliver(self, batch: _Batch) -> None:
        """Send one batch to the end: sent, refused (kept), or raise ``_Stop``."""
        stored = batch.body if batch.body is not None else _payload(self.home, batch.batch_id)
        body = stored.encode("utf-8")
        api = self.api
        encoded = api.encode(body)
        tries = 0
        retries = 0
        stripped = False
        while True:
            tries += 1
            try:
                answer = api.send(PATHS[batch.kind], body, encoded=encoded)
            except (PortalResponseError, PortalConnectionError) as error:
                if isinstance(error, PortalResponseError):
                    if error.code == TEXT_SHARING_DISABLED and not stripped:
                        payload = _without_text(body.decode("utf-8"))
                        with localdb.connect(self.home) as connection:
                            connection.execute(
                                "UPDATE outbox SET payload = ? WHERE batch_id = ?",
                                (payload, batch.batch_id),
                            )
                        body, stripped = payload.encode("utf-8"), True
                        encoded = api.encode(body)
                        continue
                    if _is_lease_refusal(error):
                        renewed = self._renewed(api)
                        if renewed is not None:
                            api = renewed
                            continue
                    if error.status_code in _BATCH_REFUSALS:
                        _record_attempts(
                            self.home,
                            batch.batch_id,
                            tries,
                            str(error),
                            None,
                            refused=error.status_code,
                        )
                        self._failed(
                            BatchFailure(
                                batch.batch_id, batch.kind, batch.records, tries, str(error)
                            )
                        )
                        return
                retry_after = error.retry_after if isinstance(error, PortalResponseError) else None
                if (
                    _transient(error)
                    and retries + 1 < self.retry.attempts
                    and self.retry.waits_for(retry_after)
                    and not self.stopping.is_set()
                ):
                    retries += 1
                    self.retry.sleep(self.retry.delay(retries, retry_after))
                    continue
                raise self._stop(batch, tries, error) from error
            answered = answer.get("batch_id")
            if answered is not None and answered != batch.batch_id:
                message = f"the portal's answer names batch {answered!r}, not {batch.batch_id}"
                _record_attempts(self.home, batch.batch_id, tries, message, None)
                self._failed(
                    BatchFailure(batch.batch_id, batch.kind, batch.records, tries, message)
                )
                return
            _record_attempts(
                self.home,
                batch.batch_id,
                tries,
                None,
                isoformat_z(self.now()),
                scrub=_SHARED_TEXT in body,
            )
            with self.lock:
                if answer.get("duplicate") is True:
                    self.outcome.duplicate += 1
                else:
                    self.outcome.sent += 1
                self.outcome.records += batch.records
            return


# Batches waiting in a feed that keep the body they were queued with (megabytes each).
_BODIES_IN_MEMORY: Final = 8


class _Feed:
    """The batches to send, oldest first, taken by several senders; more may arrive while
    they send (``run_report`` queues the next step meanwhile) until it is closed."""

    def __init__(self, batches: list[_Batch], *, expected: int = 0) -> None:
        self._queue: queue.SimpleQueue[_Batch | None] = queue.SimpleQueue()
        self._known = 0
        # How many batches there will be, as far as is known before they are queued.
        self._expected = expected
        for batch in batches:
            self.put(batch)

    @classmethod
    def of(cls, batches: list[_Batch]) -> _Feed:
        """Just these batches."""
        feed = cls(batches)
        feed.close()
        return feed

    @property
    def total(self) -> int:
        return max(self._known, self._expected)

    def put(self, batch: _Batch) -> None:
        self._known += 1
        if batch.body is not None and self._queue.qsize() >= _BODIES_IN_MEMORY:
            batch = replace(batch, body=None)  # senders are behind: it waits in the outbox
        self._queue.put(batch)

    def close(self) -> None:
        self._queue.put(None)

    def take(self) -> _Batch | None:
        """The next batch, waiting for one; None once closed and every batch taken."""
        batch = self._queue.get()
        if batch is None:
            self._queue.put(None)  # for the other senders
        return batch


Progress = Callable[[int, int, int], None]  # batches done, batches in all, records done

# Batches in flight at once once the first one went through: the portal decodes one
# while PostgreSQL stores another and the engine compresses a third.
SEND_CONCURRENCY: Final = 3


def send_pending(
    home: EngineHome,
    api: Api,
    *,
    retry: RetryPolicy | None = None,
    renew: Callable[[], Api] | None = None,
    failure: Callable[[BaseException], VigilError] | None = None,
    progress: Progress | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    concurrency: int = SEND_CONCURRENCY,
    feed: _Feed | None = None,
) -> Sent:
    """Send every unsent batch, oldest first (see the module rules).

    The first batch goes alone (a portal that is out costs one batch's retries); then up
    to ``concurrency`` are in flight, taken oldest first. The portal's answer does not
    depend on the order batches arrive in (docs/feedback.md). Once one batch stops the
    run, no other is started and those in flight are not retried.

    Args:
        renew: Called once, if the portal refuses the lease, for an API with a new one.
        failure: Turns the error that stopped sending into the engine error (exit code).
        feed: The batches to send, if not the outbox's unsent ones now.
    """
    with localdb.held_open(home):
        return _send_pending(
            _Sender(home, api, retry or DEFAULT_RETRY, renew, now),
            feed or _Feed.of(_pending_batches(home)),
            failure,
            progress,
            concurrency,
        )


def _send_pending(
    sender: _Sender,
    feed: _Feed,
    failure: Callable[[BaseException], VigilError] | None,
    progress: Progress | None,
    concurrency: int,
) -> Sent:
    outcome = sender.outcome
    done = 0

    def report_progress() -> None:
        if progress is not None:
            progress(done, feed.total, outcome.records)

    def send_each() -> None:
        nonlocal done
        while not sender.stopping.is_set():
            batch = feed.take()
            if batch is None or sender.stopping.is_set():
                return
            try:
                sender.deliver(batch)
            except _Stop:
                return
            with sender.lock:
                done += 1
                report_progress()

    report_progress()
    first = feed.take()
    if first is not None:
        try:
            sender.deliver(first)
            done += 1
            report_progress()
        except _Stop:
            pass
        workers = max(concurrency, 1)
        if workers > 1 and not sender.stopping.is_set():
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vigil-report") as pool:
                for running in [pool.submit(send_each) for _ in range(workers)]:
                    running.result()
        else:
            send_each()
    if sender.stops:
        error = sender.stops[0].error
        mapped = failure(error) if failure is not None else None
        outcome.stopped = mapped or PortalUnreachableError(str(error))
    return outcome


#### The command ####


@dataclass(frozen=True)
class ReportOutcome:
    queued: Queued
    policy: ReportPolicy
    sent: Sent
    pending: Pending
    # Why the run did not finish (exit 3 or 5), or None.
    failure: VigilError | None = None
    nothing_to_report: bool = False

    def to_dict(self) -> dict[str, Any]:
        queued, sent, left = self.queued, self.sent, self.pending
        return {
            "nothing_to_report": self.nothing_to_report,
            "queued": {
                "usage_records": queued.usage_records,
                "feedback_records": queued.feedback_records,
                "feedback_with_text": queued.with_text,
                "batches": queued.batches,
                "unreadable_items": queued.unreadable,
            },
            "policy": {
                "fetched": self.policy.fetched,
                "text_sharing": self.policy.text_sharing,
                "max_records": self.policy.max_records,
                "max_body_bytes": self.policy.max_body_bytes,
            },
            "batches_sent": sent.sent,
            "batches_duplicate": sent.duplicate,
            "batches_failed": len(sent.failed),
            "records_sent": sent.records,
            "failed": [
                {
                    "batch_id": failed.batch_id,
                    "kind": failed.kind,
                    "records": failed.records,
                    "attempts": failed.attempts,
                    "error": failed.error,
                }
                for failed in sent.failed
            ],
            "seconds": {"queue": round(queued.seconds, 3), "send": round(sent.seconds, 3)},
            "pending_batches": left.batches,
            "pending_records": left.batch_records,
            "error": None if self.failure is None else str(self.failure),
        }


class _Portal:
    """The portal side of one run: lease, policy and the API, renewing the lease once."""

    def __init__(
        self,
        home: EngineHome,
        transport: PortalTransport,
        claims: LicenseClaims,
        now: datetime,
    ) -> None:
        self.home = home
        self.transport = transport
        self.claims = claims
        self.now = now
        self.context: RefusalContext = refusal_context(transport.portal_url, claims)

    def failure(self, error: BaseException) -> VigilError:
        """The engine error (exit 3 or 5) for a failed request; refusals are recorded."""
        if isinstance(error, VigilError):
            return error
        mapped = portal_failure(self.home, error, self.context, self.now)
        return mapped or PortalUnreachableError(str(error))

    def stored_lease(self) -> str | None:
        engine = online_state.engine_id(self.home, self.now, create=False)
        record = online_state.read_activation(self.home)
        lease = online_state.read_lease(self.home)
        if (
            engine is None
            or record is None
            or lease is None
            or record.lease_expires_at is None
            or not record.is_active_for(self.transport.portal_url, engine, self.claims.jti)
            or record.lease_expires_at - self.now <= LEASE_MARGIN
        ):
            return None
        return lease

    def new_lease(self) -> str:
        """Renew (or activate) as ``update`` does; raises the engine error (exit 3 or 5)."""
        with self.home.lock():
            seat = keep_seat(self.home, self.transport, self.claims, self.now)
            keys = stored_license_keys(self.home)
            if keys is not None:
                verify_stored_lease(self.home, keys, self.now)
        return seat.lease

    def api(self, *, fresh: bool = False) -> ReportApi:
        lease = None if fresh else self.stored_lease()
        return ReportApi(self.transport, lease or self.new_lease())

    def renewed_api(self) -> ReportApi:
        try:
            return self.api(fresh=True)
        except VigilError as error:
            raise _Stop(error) from error

    def policy(self, api: ReportApi) -> tuple[ReportApi, ReportPolicy]:
        """The policy; the defaults (no text) if the portal cannot give it.

        Raises:
            PortalRefusedError, LicenseCheckError: The license or lease is refused (exit 3).
        """
        renewed = False
        while True:
            try:
                return api, ReportPolicy.from_answer(api.policy())
            except PortalResponseError as error:
                if _is_lease_refusal(error) and not renewed:
                    api, renewed = self.api(fresh=True), True
                    continue
                if error.status_code in {401, 403} or error.code == NOT_ACTIVATED:
                    raise self.failure(error) from None
                return api, ReportPolicy()
            except DownloadError:
                return api, ReportPolicy()


def _license(home: EngineHome) -> tuple[str, str, LicenseClaims]:
    portal_url = home.portal_url()
    if portal_url is None:
        raise BadInputError(
            f"{home.path} names no portal: run `vigil-engine init --root ROOT.json --license "
            "TOKEN_FILE --portal URL` to send reports"
        )
    if not home.is_initialised():
        stored_trust_root(home)  # raises with the hint to run init
        raise LicenseCheckError(f"{home.path} holds no license: run `vigil-engine init`")
    token = read_license_token(home.license_file)
    try:
        claims = inspect_license(token).claims
    except LicensingError as error:
        raise engine_error(error) from None
    return portal_url, token, claims


def run_report(
    home: EngineHome,
    *,
    settings: RemoteSettings | None = None,
    retry: RetryPolicy | None = None,
    progress: Progress | None = None,
) -> ReportOutcome:
    """``vigil-engine report``; see the module docstring.

    Raises:
        BadInputError: No portal configured, or an invalid config.json (exit 2).
        LicenseCheckError: Not initialised, or the license or lease is refused (3);
            nothing is queued then.
    Returns an outcome whose ``failure`` says why sending stopped (exit 3 or 5).
    """
    with home.report_lock():
        return _run_report(home, settings=settings, retry=retry, progress=progress)


def _run_report(
    home: EngineHome,
    *,
    settings: RemoteSettings | None,
    retry: RetryPolicy | None,
    progress: Progress | None,
) -> ReportOutcome:
    portal_url, token, claims = _license(home)
    now = trust.clock()
    check_not_denied(home, claims.jti)
    retention = home.review_retention()
    if settings is None:
        settings = RemoteSettings.with_timeout(home.portal_timeout())
    waiting = pending(home)
    if waiting.total == 0:  # nothing to send: the portal is not asked anything
        return ReportOutcome(Queued(), ReportPolicy(), Sent(), waiting, nothing_to_report=True)
    engine = online_state.engine_id(home, now, create=True)
    assert engine is not None  # created above

    with PortalTransport(portal_url, token, settings) as transport:
        portal = _Portal(home, transport, claims, now)
        outage: VigilError | None = None
        api: ReportApi | None = None
        policy = ReportPolicy()
        try:
            api, policy = portal.policy(portal.api())
        except PortalUnreachableError as error:
            outage = error  # queue anyway: the batches are kept for the next run
        # Queued even if the portal is out: the batches are durable, their ids fixed.
        if outage is not None or api is None:
            started = time.monotonic()
            with localdb.connect(home) as connection:
                queued = queue_reports(connection, engine, policy, now, retention=retention)
            queued = replace(queued, seconds=time.monotonic() - started)
            left = pending(home)
            return ReportOutcome(queued, policy, Sent(), left, _outage(outage, left))
        started = time.monotonic()
        queued, sent = _queue_and_send(
            home,
            api,
            steps=lambda: queue_in_steps(home, engine, policy, now, retention=retention),
            expected=waiting.batches
            + _batches_for(waiting.usage_rows, policy)
            + _batches_for(waiting.feedback_items, policy),
            retry=retry,
            renew=portal.renewed_api,
            failure=portal.failure,
            progress=progress,
        )
        sent.seconds = time.monotonic() - started
    left = pending(home)
    failure = sent.stopped
    if isinstance(failure, PortalUnreachableError):
        failure = _outage(failure, left)
    return ReportOutcome(queued, policy, sent, left, failure)


def _batches_for(records: int, policy: ReportPolicy) -> int:
    return -(-records // policy.max_records)


def _queue_and_send(
    home: EngineHome,
    api: Api,
    *,
    steps: Callable[[], Iterator[tuple[Queued, list[_Batch]]]],
    expected: int,
    retry: RetryPolicy | None,
    renew: Callable[[], Api],
    failure: Callable[[BaseException], VigilError],
    progress: Progress | None,
) -> tuple[Queued, Sent]:
    """Queue (``queue_in_steps``, in a thread of its own) while sending: the unsent
    batches of earlier runs first, then each step's as soon as it is committed.

    Queuing goes on to the end even when sending stops (the portal went out): every
    reviewed item is in the outbox for the next run. An error while queuing is raised
    once sending is over.
    """
    with localdb.held_open(home):
        feed = _Feed(_pending_batches(home), expected=expected)
        queued = Queued()
        errors: list[BaseException] = []

        def produce() -> None:
            nonlocal queued
            started = time.monotonic()
            try:
                for step, batches in steps():
                    queued = _plus(queued, step)
                    for batch in batches:
                        feed.put(batch)
            except BaseException as error:  # raised in the caller's thread, after sending
                errors.append(error)
            finally:
                queued = replace(queued, seconds=time.monotonic() - started)
                feed.close()

        producer = threading.Thread(target=produce, name="vigil-report-queue")
        producer.start()
        try:
            sent = send_pending(
                home,
                api,
                retry=retry,
                renew=renew,
                failure=failure,
                progress=progress,
                now=trust.clock,
                feed=feed,
            )
        finally:
            producer.join()
    if errors:
        raise errors[0]
    return queued, sent


def _outage(error: VigilError | None, left: Pending) -> PortalUnreachableError:
    batches = f"{left.batches} batch{'es' if left.batches != 1 else ''}"
    return PortalUnreachableError(
        f"{error or 'the portal is unreachable'}; {batches} ({left.batch_records} records) "
        "kept in the outbox: run `vigil-engine report` again later"
    )
