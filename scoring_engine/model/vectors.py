"""The wire and storage form of one conversation's feature vector (SPEC §8 feedback).

A feedback record carries the model's input for the conversation, not its text: the
hashed word and word-pair counts (2**18 buckets, scaled by 1/sqrt(length)) followed by
the dense features. The encoding is compact and fixed so the engine can store it in its
queue, send 100,000 of them in seconds, and the portal can retrain from them:

``{"version": FEATURE_VERSION, "dim": D, "nnz": N, "encoding": ENCODING, "data": base64}``
where ``data`` is zlib(little-endian int32 indices ‖ little-endian float32 values).
"""

from __future__ import annotations

import base64
import binascii
import zlib
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from scoring_engine.model.features import DENSE_FEATURES, FEATURE_VERSION, N_HASH_FEATURES

ENCODING: Final = "zlib+le-int32-float32"
FEATURE_DIM: Final = N_HASH_FEATURES + len(DENSE_FEATURES)
# A conversation has at most this many distinct features (long ones are windows anyway).
MAX_NNZ: Final = 200_000
MAX_ENCODED_CHARS: Final = 4 * 1024 * 1024


class VectorFormatError(ValueError):
    """A feature vector that is not in the documented encoding."""


@dataclass(frozen=True)
class FeatureVector:
    indices: npt.NDArray[np.int32]
    values: npt.NDArray[np.float32]
    dim: int = FEATURE_DIM
    version: int = FEATURE_VERSION

    @classmethod
    def from_row(cls, row: sp.csr_matrix | sp.csr_array) -> FeatureVector:
        """One row of ``FeatureBatch.features()``."""
        csr = sp.csr_matrix(row)
        if csr.shape != (1, FEATURE_DIM):
            raise VectorFormatError(f"expected a 1 x {FEATURE_DIM} row, got {csr.shape}")
        csr.sum_duplicates()
        csr.sort_indices()
        return cls(indices=csr.indices.astype("<i4"), values=csr.data.astype("<f4"))

    def to_bytes(self) -> bytes:
        return zlib.compress(
            self.indices.astype("<i4").tobytes() + self.values.astype("<f4").tobytes(), 6
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "dim": self.dim,
            "nnz": int(self.indices.size),
            "encoding": ENCODING,
            "data": base64.b64encode(self.to_bytes()).decode("ascii"),
        }

    @classmethod
    def from_dict(cls, document: Any) -> FeatureVector:
        """Decode and validate; raises :class:`VectorFormatError` naming the field."""
        if not isinstance(document, dict):
            raise VectorFormatError("features: must be an object")
        if document.get("encoding") != ENCODING:
            raise VectorFormatError(f"features.encoding: must be {ENCODING!r}")
        version, dim, nnz, data = (document.get(k) for k in ("version", "dim", "nnz", "data"))
        if not isinstance(version, int) or isinstance(version, bool):
            raise VectorFormatError("features.version: must be an integer")
        if not isinstance(dim, int) or isinstance(dim, bool) or not 0 < dim <= 2**24:
            raise VectorFormatError("features.dim: must be a positive integer")
        if not isinstance(nnz, int) or isinstance(nnz, bool) or not 0 <= nnz <= min(dim, MAX_NNZ):
            raise VectorFormatError("features.nnz: out of range")
        if not isinstance(data, str) or len(data) > MAX_ENCODED_CHARS:
            raise VectorFormatError("features.data: must be a base64 string of bounded size")
        return cls.from_bytes(data, dim=dim, nnz=nnz, version=version)

    @classmethod
    def from_bytes(cls, data: str | bytes, *, dim: int, nnz: int, version: int) -> FeatureVector:
        try:
            raw = base64.b64decode(data, validate=True) if isinstance(data, str) else data
            # Bounded decompression: never more than the declared size (a zip bomb stops here).
            decompressor = zlib.decompressobj()
            plain = decompressor.decompress(raw, 8 * nnz + 1)
        except (binascii.Error, zlib.error):
            raise VectorFormatError("features.data: not base64 of zlib data") from None
        if len(plain) != 8 * nnz or decompressor.unconsumed_tail:
            raise VectorFormatError("features.data: length does not match features.nnz")
        indices = np.frombuffer(plain, dtype="<i4", count=nnz)
        values = np.frombuffer(plain, dtype="<f4", count=nnz, offset=4 * nnz)
        if nnz and (indices.min() < 0 or indices.max() >= dim or np.any(np.diff(indices) <= 0)):
            raise VectorFormatError("features.data: indices must be increasing and below dim")
        if not np.all(np.isfinite(values)):
            raise VectorFormatError("features.data: values must be finite")
        return cls(indices=indices, values=values, dim=dim, version=version)

    def to_row(self) -> sp.csr_matrix:
        return sp.csr_matrix(
            (self.values.astype(np.float64), self.indices, np.array([0, self.indices.size])),
            shape=(1, self.dim),
        )
