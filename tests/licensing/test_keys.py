"""Signing keys: storage, identifiers and exports."""

from __future__ import annotations

import hashlib
import stat

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from joserfc.jwk import OKPKey
from tuf.api.metadata import Metadata, Root

from licensing.exceptions import SigningKeyError
from licensing.keys import (
    UnencryptedKeyWarning,
    generate_private_key,
    key_id,
    load_private_key,
    private_key_from_pem,
    public_key_from_jwk,
    public_key_from_pem,
    public_key_to_jwk,
    public_key_to_pem,
    save_private_key,
    tuf_public_key,
    tuf_signer,
)


def test_private_key_is_stored_encrypted_and_owner_only(tmp_path):
    key = generate_private_key()
    path = tmp_path / "keys" / "timestamp.pem"
    save_private_key(key, path, "correct horse battery staple")
    assert b"ENCRYPTED PRIVATE KEY" in path.read_bytes()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_private_key(path, "correct horse battery staple")
    assert key_id(loaded) == key_id(key)


def test_wrong_passphrase_is_rejected_without_echoing_it(tmp_path):
    path = tmp_path / "k.pem"
    save_private_key(generate_private_key(), path, b"right")
    with pytest.raises(SigningKeyError) as raised:
        load_private_key(path, b"wrong-secret-value")
    assert "wrong-secret-value" not in str(raised.value)


def test_missing_passphrase_for_encrypted_key_is_rejected(tmp_path):
    path = tmp_path / "k.pem"
    save_private_key(generate_private_key(), path, b"right")
    with pytest.raises(SigningKeyError):
        load_private_key(path, None)


def test_unencrypted_storage_needs_explicit_permission(tmp_path):
    with pytest.raises(SigningKeyError, match="without a passphrase"):
        save_private_key(generate_private_key(), tmp_path / "k.pem", None)
    assert not (tmp_path / "k.pem").exists()


def test_unencrypted_storage_when_allowed_warns(tmp_path):
    key = generate_private_key()
    with pytest.warns(UnencryptedKeyWarning):
        save_private_key(key, tmp_path / "k.pem", None, allow_unencrypted=True)
    assert key_id(load_private_key(tmp_path / "k.pem", None)) == key_id(key)


def test_existing_key_file_is_never_overwritten(tmp_path):
    path = tmp_path / "k.pem"
    save_private_key(generate_private_key(), path, b"pw")
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        save_private_key(generate_private_key(), path, b"pw")
    assert path.read_bytes() == before


def test_non_ed25519_keys_are_refused():
    ec_key = ec.generate_private_key(ec.SECP256R1())
    pem = ec_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    with pytest.raises(SigningKeyError, match="Ed25519"):
        private_key_from_pem(pem, None)
    public_pem = ec_key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(SigningKeyError, match="Ed25519"):
        public_key_from_pem(public_pem)


def test_key_id_is_sha256_of_raw_public_key():
    key = generate_private_key()
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert key_id(key) == hashlib.sha256(raw).hexdigest()
    assert key_id(key.public_key()) == key_id(key)


def test_public_key_exports_round_trip():
    public = generate_private_key().public_key()
    assert key_id(public_key_from_pem(public_key_to_pem(public))) == key_id(public)
    jwk = public_key_to_jwk(public)
    assert jwk["kid"] == key_id(public)
    assert key_id(public_key_from_jwk(jwk)) == key_id(public)
    # joserfc reads the same JWK.
    assert OKPKey.import_key(jwk).as_dict(private=False)["x"] == jwk["x"]


def test_jwk_with_wrong_kid_is_refused():
    jwk = public_key_to_jwk(generate_private_key().public_key())
    jwk["kid"] = key_id(generate_private_key())
    with pytest.raises(SigningKeyError, match="kid"):
        public_key_from_jwk(jwk)


def test_jwk_carrying_a_private_key_is_refused():
    jwk = OKPKey.import_key(generate_private_key()).as_dict(private=True)
    with pytest.raises(SigningKeyError, match="private"):
        public_key_from_jwk(jwk)


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "OKP", "crv": "Ed448", "x": "AA"},
        {"kty": "EC", "crv": "P-256", "x": "AA"},
        {"kty": "OKP", "crv": "Ed25519", "x": "AAAA"},
        {"kty": "OKP", "crv": "Ed25519"},
    ],
)
def test_malformed_jwks_are_refused(jwk):
    with pytest.raises(SigningKeyError):
        public_key_from_jwk(jwk)


def test_tuf_signer_signs_metadata_its_public_key_verifies():
    key = generate_private_key()
    public = tuf_public_key(key)
    root = Root()
    root.add_key(public, "root")
    md = Metadata(root)
    md.sign(tuf_signer(key))
    root.verify_delegate("root", md.signed_bytes, md.signatures)
    assert public.keytype == "ed25519"
    assert public.keyid != key_id(key)  # TUF key ids are securesystemslib's, not ours
