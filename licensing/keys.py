# Copyright 2026 Vigil contributors
# SPDX-License-Identifier: Apache-2.0
"""Ed25519 signing keys: generation, storage, identifiers and exports.

Rules enforced here:

- Only Ed25519 keys are accepted, for licenses and for TUF roles alike; any
  other key type is refused with ``SigningKeyError`` on load.
- A private key is stored as PKCS#8 PEM encrypted with a passphrase
  (``BestAvailableEncryption``). An unencrypted file is written only when the
  caller passes ``allow_unencrypted=True``, and then a ``UnencryptedKeyWarning``
  is emitted and logged. Key files are created with mode 0600 and an existing
  key file is never overwritten.
- A wrong passphrase, a missing passphrase for an encrypted key, or a corrupt
  file raises ``SigningKeyError`` without revealing the passphrase.
- A license key id (``kid``) is the SHA-256 hex digest of the raw 32-byte
  public key, so a key id always names exactly one key and can be recomputed
  by any verifier. TUF keys use the securesystemslib key id instead
  (``tuf_public_key``), because that is what TUF metadata lists.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import warnings
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)

# Public names, re-exported without ``__all__`` so mypy cannot see them.
from securesystemslib.signer import (  # type: ignore[attr-defined]
    CryptoSigner,
    SSlibKey,
)

from licensing.exceptions import SigningKeyError

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

logger = logging.getLogger(__name__)

_RAW_PUBLIC_KEY_BYTES = 32
_MAX_PEM_BYTES = 16 * 1024

Passphrase = str | bytes


class UnencryptedKeyWarning(UserWarning):
    """A private key was written without passphrase encryption."""


def generate_private_key() -> Ed25519PrivateKey:
    """Generate a new Ed25519 private key."""
    return Ed25519PrivateKey.generate()


def _passphrase_bytes(passphrase: Passphrase | None) -> bytes | None:
    if passphrase is None:
        return None
    data = passphrase.encode("utf-8") if isinstance(passphrase, str) else passphrase
    if not data:
        raise SigningKeyError("the passphrase is empty")
    return data


def private_key_to_pem(
    key: Ed25519PrivateKey,
    passphrase: Passphrase | None,
    *,
    allow_unencrypted: bool = False,
) -> bytes:
    """Serialize ``key`` as PKCS#8 PEM, encrypted with ``passphrase``.

    Raises:
        SigningKeyError: No passphrase was given and ``allow_unencrypted`` is false.
    """
    secret = _passphrase_bytes(passphrase)
    if secret is None:
        if not allow_unencrypted:
            raise SigningKeyError(
                "refusing to store a private key without a passphrase "
                "(pass allow_unencrypted=True to override)"
            )
        message = "private key stored WITHOUT encryption; protect the file by other means"
        logger.warning(message)
        warnings.warn(message, UnencryptedKeyWarning, stacklevel=3)
        encryption: BestAvailableEncryption | NoEncryption = NoEncryption()
    else:
        encryption = BestAvailableEncryption(secret)
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, encryption)


def private_key_from_pem(data: bytes, passphrase: Passphrase | None) -> Ed25519PrivateKey:
    """Load an Ed25519 private key from PEM.

    Raises:
        SigningKeyError: Wrong or missing passphrase, corrupt data, or not Ed25519.
    """
    if len(data) > _MAX_PEM_BYTES:
        raise SigningKeyError("private key file is too large")
    try:
        key = load_pem_private_key(data, password=_passphrase_bytes(passphrase))
    except TypeError as error:
        # cryptography raises TypeError for "encrypted but no password" and
        # for "password given but not encrypted".
        raise SigningKeyError(f"cannot load private key: {error}") from None
    except (ValueError, UnsupportedAlgorithm):
        raise SigningKeyError(
            "cannot load private key: wrong passphrase or corrupt key file"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"expected an Ed25519 private key, got {type(key).__name__}")
    return key


def save_private_key(
    key: Ed25519PrivateKey,
    path: Path,
    passphrase: Passphrase | None,
    *,
    allow_unencrypted: bool = False,
) -> None:
    """Write ``key`` to a new file readable by its owner only.

    Raises:
        SigningKeyError: Unencrypted storage was not allowed.
        FileExistsError: ``path`` exists; keys are never silently replaced.
    """
    pem = private_key_to_pem(key, passphrase, allow_unencrypted=allow_unencrypted)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
        handle.flush()
        os.fsync(handle.fileno())


def load_private_key(path: Path, passphrase: Passphrase | None) -> Ed25519PrivateKey:
    """Read a private key written by ``save_private_key``.

    Raises:
        SigningKeyError: See ``private_key_from_pem``.
        OSError: The file cannot be read.
    """
    return private_key_from_pem(path.read_bytes(), passphrase)


def public_key_to_pem(key: Ed25519PublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM of ``key``."""
    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


def public_key_from_pem(data: bytes) -> Ed25519PublicKey:
    """Load an Ed25519 public key from PEM.

    Raises:
        SigningKeyError: Corrupt data or not an Ed25519 key.
    """
    if len(data) > _MAX_PEM_BYTES:
        raise SigningKeyError("public key is too large")
    try:
        key = load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise SigningKeyError("cannot load public key: corrupt PEM") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"expected an Ed25519 public key, got {type(key).__name__}")
    return key


def _public(key: Ed25519PrivateKey | Ed25519PublicKey) -> Ed25519PublicKey:
    return key.public_key() if isinstance(key, Ed25519PrivateKey) else key


def raw_public_key(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    return _public(key).public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """License key id: SHA-256 hex of the raw 32-byte public key."""
    return hashlib.sha256(raw_public_key(key)).hexdigest()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def public_key_to_jwk(key: Ed25519PublicKey) -> dict[str, str]:
    """RFC 8037 JWK of ``key`` (importable by ``joserfc.jwk.OKPKey``)."""
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": _b64url(raw_public_key(key)),
        "kid": key_id(key),
        "use": "sig",
        "alg": "Ed25519",
    }


def public_key_from_jwk(jwk: Mapping[str, Any]) -> Ed25519PublicKey:
    """Load an Ed25519 public key from its JWK, refusing anything else.

    Private members (``d``) are refused: a public-key document must never
    carry a private key. A ``kid``, when present, must be the key's id.

    Raises:
        SigningKeyError: Not an Ed25519 public JWK, or ``kid`` mismatch.
    """
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise SigningKeyError("JWK is not an Ed25519 OKP key")
    if "d" in jwk:
        raise SigningKeyError("JWK carries a private key")
    x = jwk.get("x")
    if not isinstance(x, str):
        raise SigningKeyError("JWK has no public key value 'x'")
    try:
        raw = base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))
    except (binascii.Error, ValueError):
        raise SigningKeyError("JWK 'x' is not base64url") from None
    if len(raw) != _RAW_PUBLIC_KEY_BYTES:
        raise SigningKeyError("JWK 'x' is not a 32-byte Ed25519 key")
    key = Ed25519PublicKey.from_public_bytes(raw)
    kid = jwk.get("kid")
    if kid is not None and kid != key_id(key):
        raise SigningKeyError("JWK 'kid' does not match its key")
    return key


def tuf_public_key(key: Ed25519PrivateKey | Ed25519PublicKey) -> SSlibKey:
    """The key as listed in TUF root metadata (securesystemslib key id)."""
    return SSlibKey.from_crypto(_public(key))


def tuf_signer(key: Ed25519PrivateKey) -> CryptoSigner:
    """A securesystemslib signer for signing TUF metadata with ``key``."""
    return CryptoSigner(key, tuf_public_key(key))
