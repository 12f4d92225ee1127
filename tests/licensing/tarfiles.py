"""Helpers that hand-craft tar archives, including malicious ones."""

from __future__ import annotations

import io
import tarfile
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


def tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def regular(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def members_of(archive: Path | bytes) -> dict[str, bytes]:
    fileobj = io.BytesIO(archive if isinstance(archive, bytes) else archive.read_bytes())
    with tarfile.open(fileobj=fileobj, mode="r:") as tar:
        result = {}
        for member in tar.getmembers():
            extracted = tar.extractfile(member)
            assert extracted is not None
            result[member.name] = extracted.read()
        return result


def rewrite(archive: Path, out: Path, changes: dict[str, bytes]) -> None:
    """Copy ``archive`` to ``out`` with some members' content replaced or added."""
    members = {**members_of(archive), **changes}
    out.write_bytes(tar_bytes([regular(name, data) for name, data in members.items()]))
