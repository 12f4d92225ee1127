# Copyright 2026 Vigil contributors
# SPDX-License-Identifier: Apache-2.0
"""Deterministic tar writing and defensive tar extraction (not public API).

Archives written here are reproducible: members sorted by name, mtime 0,
uid/gid 0, no owner names, mode 0644, ustar format, no compression.

Extraction enforces, before any byte is written to disk:

- The archive is read as an uncompressed tar (``r:``); a compressed stream is
  refused, so no decompression bomb can expand past the size checks.
- At most ``max_members`` members; each is a plain regular file (no
  directories, hard or symbolic links, devices, FIFOs or sparse files).
- Each name is relative, made of ``[A-Za-z0-9._-]`` segments that do not start
  with a dot, so no absolute path, ``..`` or hidden file can appear.
- Each name is allowed by the caller and appears once; each size is within
  the caller's limit for that name, and the total within ``max_total``.

Then the members are extracted with ``tarfile``'s ``"data"`` filter as a
second, independent line of defence, and each extracted file is checked to be
a regular file of the announced size.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import tarfile
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Final

from licensing.exceptions import UnsafeBundleError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import IO

_SAFE_NAME: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*")
_PLAIN_FILE_TYPES: Final = (tarfile.REGTYPE, tarfile.AREGTYPE)
_MAX_NAME_LENGTH: Final = 255


def is_safe_member_name(name: str) -> bool:
    return (
        len(name) <= _MAX_NAME_LENGTH
        and _SAFE_NAME.fullmatch(name) is not None
        and ".." not in name.split("/")
    )


def _member_info(name: str, size: int) -> tarfile.TarInfo:
    if not is_safe_member_name(name):
        raise ValueError(f"unsafe archive member name {name!r}")
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def write_deterministic_tar(path: Path, members: Mapping[str, bytes | Path]) -> None:
    """Write a reproducible uncompressed tar of ``members`` (name to content or
    source file) to ``path``, replacing it atomically.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp_path = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
                for name in sorted(members):
                    source = members[name]
                    if isinstance(source, bytes):
                        tar.addfile(_member_info(name, len(source)), io.BytesIO(source))
                    else:
                        with source.open("rb") as handle:
                            size = os.fstat(handle.fileno()).st_size
                            tar.addfile(_member_info(name, size), handle)
            out.flush()
            os.fsync(out.fileno())
        tmp_path.chmod(0o644)
        tmp_path.replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def prepare_empty_directory(destination: Path) -> None:
    """Create ``destination`` or check it is empty.

    Raises:
        UnsafeBundleError: It holds files (which extraction must never mix with).
    """
    destination.mkdir(parents=True, exist_ok=True)
    if any(destination.iterdir()):
        raise UnsafeBundleError(f"extraction directory {destination} is not empty")


def safe_extract(
    handle: IO[bytes],
    destination: Path,
    *,
    member_limit: Callable[[str], int | None],
    max_total: int,
    max_members: int,
) -> dict[str, Path]:
    """Extract an uncompressed tar from ``handle`` into the empty ``destination``.

    Args:
        handle: The archive, positioned at its start.
        destination: A directory that does not exist yet or is empty.
        member_limit: Largest allowed size for a member name, or ``None`` if
            that name is not allowed at all.
        max_total: Largest allowed sum of member sizes.
        max_members: Most members allowed.

    Returns:
        Member name to extracted path.

    Raises:
        UnsafeBundleError: The archive breaks one of the module's rules.
    """
    prepare_empty_directory(destination)
    try:
        with tarfile.open(fileobj=handle, mode="r:") as tar:
            members = _checked_members(
                tar, member_limit=member_limit, max_total=max_total, max_members=max_members
            )
            tar.extractall(destination, members=members, filter="data")
    except tarfile.TarError as error:
        raise UnsafeBundleError(f"archive is not a valid uncompressed tar: {error}") from None

    extracted: dict[str, Path] = {}
    for member in members:
        path = destination / member.name
        if path.is_symlink() or not path.is_file() or path.stat().st_size != member.size:
            raise UnsafeBundleError(f"member {member.name!r} did not extract as a plain file")
        extracted[member.name] = path
    return extracted


def _checked_members(
    tar: tarfile.TarFile,
    *,
    member_limit: Callable[[str], int | None],
    max_total: int,
    max_members: int,
) -> list[tarfile.TarInfo]:
    members: list[tarfile.TarInfo] = []
    seen: set[str] = set()
    total = 0
    while (member := tar.next()) is not None:
        if len(members) >= max_members:
            raise UnsafeBundleError(f"archive holds more than {max_members} members")
        name = member.name
        if member.issym() or member.islnk():
            raise UnsafeBundleError(f"archive member {name!r} is a link")
        if member.type not in _PLAIN_FILE_TYPES:
            raise UnsafeBundleError(f"archive member {name!r} is not a regular file")
        if not is_safe_member_name(name):
            raise UnsafeBundleError(f"archive member name {name!r} is unsafe")
        if name in seen:
            raise UnsafeBundleError(f"archive member {name!r} appears twice")
        limit = member_limit(name)
        if limit is None:
            raise UnsafeBundleError(f"unexpected archive member {name!r}")
        if member.size > limit:
            raise UnsafeBundleError(f"archive member {name!r} is larger than {limit} bytes")
        total += member.size
        if total > max_total:
            raise UnsafeBundleError(f"archive content is larger than {max_total} bytes")
        seen.add(name)
        members.append(member)
    return members
