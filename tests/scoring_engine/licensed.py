"""A portal in a temporary directory, built with the licensing library, for engine tests.

It does what the real portal does for an adopter (publish signed bundles, issue and revoke
licenses, export bundles, hand out the root) and also what an attacker might (forge tokens,
craft malicious archives), so the engine's CLI can be tested as an adopter would use it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import tarfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from licensing.bundles import BundleManifest, build_bundle
from licensing.export import export_bundle
from licensing.keys import generate_private_key, key_id, raw_public_key
from licensing.repository import Repository
from licensing.targets import bundle_target_path
from licensing.tokens import LicenseClaims, issue_license
from scoring_engine.model.directory import write_model_dir
from scoring_engine.model.lexicon import CHARACTERISTICS

if TYPE_CHECKING:
    from pathlib import Path

    from click.testing import Result

    from scoring_engine.model.scorer import GroomingModel

ROLES = ("root", "targets", "snapshot", "timestamp")
BUNDLE_NAME = "reference"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def write_model(directory: Path, model: GroomingModel) -> Path:
    """A model directory as ``vigil-portal models train`` writes it."""
    write_model_dir(
        directory,
        model,
        {
            "name": "vigil",
            "version": None,
            "created": "2026-11-01T00:00:00+00:00",
            "engine_version": ">=0.1,<1.0",
            "training_data_digest": "sha256:" + "ab" * 32,
            "recommended_threshold": 0.5,
            "characteristics": list(CHARACTERISTICS),
            "metrics": {"pr_auc": 0.9},
        },
        "# Test model\n\nTrained on synthetic conversations.\n",
        {"pr_auc": 0.9},
    )
    return directory


@dataclass
class FakePortal:
    """A TUF repository and a license key, as ``vigil-portal init`` creates them."""

    repo: Repository
    license_key: Ed25519PrivateKey
    model_dir: Path
    workdir: Path
    targets: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, workdir: Path, model_dir: Path) -> FakePortal:
        workdir.mkdir(parents=True, exist_ok=True)
        repo = Repository.create(
            workdir / "repository", {role: [generate_private_key()] for role in ROLES}
        )
        license_key = generate_private_key()
        repo.set_license_keys([license_key.public_key()])
        repo.publish()
        return cls(repo=repo, license_key=license_key, model_dir=model_dir, workdir=workdir)

    def root_file(self) -> Path:
        path = self.workdir / "root.json"
        path.write_bytes(self.repo.root_bytes())
        return path

    #### Licenses ####

    def claims(self, **overrides: Any) -> LicenseClaims:
        now = datetime.now(UTC)
        values: dict[str, Any] = {
            "iss": "https://portal.example",
            "sub": "org-42",
            "jti": "lic-0001",
            "iat": now - timedelta(days=1),
            "nbf": now - timedelta(days=1),
            "exp": now + timedelta(days=365),
            "org_name": "Example Chat Ltd",
            "channels": ("stable",),
            "max_engines": 3,
            "features": ("review_queue",),
        }
        values.update(overrides)
        return LicenseClaims(**values)

    def issue(self, name: str = "license.jwt", **overrides: Any) -> Path:
        return self.write_token(issue_license(self.claims(**overrides), self.license_key), name)

    def write_token(self, token: str, name: str) -> Path:
        path = self.workdir / name
        path.write_text(token + "\n", encoding="ascii")
        return path

    def revoke(self, license_id: str) -> None:
        self.repo.revoke_license(license_id, "organisation closed")
        self.repo.publish()

    #### Bundles ####

    def manifest(self, version: str, **overrides: Any) -> BundleManifest:
        model_manifest = json.loads((self.model_dir / "manifest.json").read_text())
        values: dict[str, Any] = {
            "name": BUNDLE_NAME,
            "version": version,
            "created": datetime.now(UTC),
            "engine_version": ">=0.1,<1.0",
            "training_data_digest": "sha256:" + "ab" * 32,
            "metrics": {"pr_auc": 0.9},
            "recommended_threshold": 0.5,
            "characteristics": ("secrecy", "isolation"),
            "extra": {"model_sha256": model_manifest["model_sha256"]},
        }
        values.update(overrides)
        return BundleManifest(**values)

    def publish(self, version: str, *, channel: str = "stable", **overrides: Any) -> str:
        bundle_file = self.workdir / "built" / f"{BUNDLE_NAME}-{version}.tar"
        build_bundle(self.model_dir, bundle_file, self.manifest(version, **overrides))
        target = self.repo.add_bundle(bundle_file, channel=channel)
        self.repo.publish()
        self.targets[version] = target
        return target

    def publish_raw_bundle(self, version: str, tar_bytes: bytes, *, channel: str = "stable") -> str:
        """Sign an arbitrary tar as a bundle, as a compromised or buggy portal could."""
        source = self.workdir / "built" / f"raw-{version}.tar"
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_bytes(tar_bytes)
        target = bundle_target_path(channel, BUNDLE_NAME, version)
        custom = {"kind": "bundle", "channel": channel, "name": BUNDLE_NAME, "version": version}
        self.repo.add_target(target, source, custom)
        self.repo.publish()
        self.targets[version] = target
        return target

    def export(self, version: str, name: str | None = None) -> Path:
        out = self.workdir / "exports" / (name or f"{BUNDLE_NAME}-{version}.vigil")
        out.parent.mkdir(parents=True, exist_ok=True)
        self.repo.refresh_timestamp()
        export_bundle(self.repo, self.targets[version], out)
        return out


#### Forged tokens ####


def with_altered_claims(token: str, **changes: Any) -> str:
    """The same header and signature over claims changed after signing."""
    header, payload, signature = token.split(".")
    claims = {**json.loads(_unb64(payload)), **changes}
    return ".".join([header, _b64(json.dumps(claims).encode()), signature])


def _signing_input(header: dict[str, Any], token: str) -> str:
    return _b64(json.dumps(header).encode()) + "." + token.split(".")[1]


def signed_by_foreign_key_claiming_real_kid(token: str, real_kid: str) -> str:
    """Valid Ed25519 signature, but by another key, under the portal key's ``kid``."""
    foreign = generate_private_key()
    header = {"alg": "Ed25519", "typ": "vigil-license+jwt", "kid": real_kid}
    signing_input = _signing_input(header, token)
    return signing_input + "." + _b64(foreign.sign(signing_input.encode("ascii")))


def with_alg_none(token: str, real_kid: str) -> str:
    header = {"alg": "none", "typ": "vigil-license+jwt", "kid": real_kid}
    return _signing_input(header, token) + "."


def hs256_with_public_key(token: str, license_key: Ed25519PrivateKey) -> str:
    """HMAC "signed" with the portal's public key as the secret (algorithm confusion)."""
    header = {"alg": "HS256", "typ": "vigil-license+jwt", "kid": key_id(license_key)}
    signing_input = _signing_input(header, token)
    mac = hmac.new(raw_public_key(license_key), signing_input.encode("ascii"), hashlib.sha256)
    return signing_input + "." + _b64(mac.digest())


#### Malicious archives ####


def tar_with(members: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    """An uncompressed tar holding ``members`` and ``symlinks`` verbatim (nothing sanitised)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, target in (symlinks or {}).items():
            link = tarfile.TarInfo(name)
            link.type = tarfile.SYMTYPE
            link.linkname = target
            tar.addfile(link)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def tar_members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, mode="r:") as tar:
        result = {}
        for member in tar.getmembers():
            extracted = tar.extractfile(member)
            assert extracted is not None
            result[member.name] = extracted.read()
        return result


#### What a user sees ####


def assert_ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def assert_fails(result: Result, code: int, message: str) -> None:
    """The command failed with exit ``code`` and one clear line on stderr naming ``message``."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: "), lines
    assert message in lines[0], lines
