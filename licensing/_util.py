# Copyright 2026 Vigil contributors
# SPDX-License-Identifier: Apache-2.0
"""Small helpers shared by the licensing modules (not public API).

- Files are replaced atomically: written to a temporary file in the same
  directory, flushed to disk, then renamed over the target.
- JSON read from untrusted input rejects duplicate keys and the non-standard
  constants ``NaN``/``Infinity``, so one document cannot mean two things.
- Digests are compared in constant time.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

_CHUNK = 64 * 1024


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` so readers see the old or the new file only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        Path(tmp_name).chmod(mode)
        Path(tmp_name).replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(tmp_name).unlink()
        raise


def sha256_file(handle: IO[bytes]) -> tuple[int, str]:
    """Return (length, sha256 hex) of an open binary file from its current position."""
    digest = hashlib.sha256()
    length = 0
    while chunk := handle.read(_CHUNK):
        length += len(chunk)
        digest.update(chunk)
    return length, digest.hexdigest()


def digests_equal(left: str, right: str) -> bool:
    return hmac.compare_digest(left.lower().encode("ascii"), right.lower().encode("ascii"))


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON: sorted keys, no insignificant whitespace, UTF-8."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def pretty_json(value: Any) -> bytes:
    """Deterministic, human-readable JSON (for files people open)."""
    text = json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def strict_json_loads(data: bytes) -> Any:
    """Parse UTF-8 JSON, refusing duplicate keys and NaN/Infinity.

    Raises:
        ValueError: ``data`` is not such a document.
    """
    return json.loads(
        data.decode("utf-8"),
        object_pairs_hook=_reject_duplicates,
        parse_constant=_reject_constant,
    )


def require_aware(moment: datetime, name: str) -> datetime:
    """Return ``moment`` in UTC; naive datetimes are a programming error."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return moment.astimezone(UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)


def isoformat_z(moment: datetime) -> str:
    """RFC 3339 UTC timestamp with a ``Z`` suffix and second precision."""
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_isoformat(value: str) -> datetime:
    """Parse an RFC 3339 timestamp that carries a time zone.

    Raises:
        ValueError: The string is not such a timestamp.
    """
    moment = datetime.fromisoformat(value)
    return require_aware(moment, "timestamp")
