"""Bundles: building, verifying and the attacks on extraction."""

from __future__ import annotations

import gzip
import hashlib
import json
import tarfile
from dataclasses import replace

import pytest

from licensing.bundles import (
    BundleManifest,
    build_bundle,
    check_engine_compatible,
    check_not_rollback,
    parse_version,
    read_bundle,
    version_in_range,
)
from licensing.config import LicensingConfig
from licensing.exceptions import (
    BundleRollbackError,
    BundleVerificationError,
    IncompatibleEngineError,
    UnsafeBundleError,
)

from .tarfiles import members_of, regular, rewrite, tar_bytes


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_bundle_round_trips_with_its_manifest(make_bundle, tmp_path, model_dir):
    bundle_path = make_bundle()
    bundle = read_bundle(
        bundle_path,
        tmp_path / "out",
        expected_length=bundle_path.stat().st_size,
        expected_hashes={"sha256": sha256(bundle_path)},
    )
    assert bundle.manifest.name == "reference"
    assert bundle.manifest.version == "2026.11.0"
    assert bundle.manifest.label == "reference-2026.11.0"
    assert bundle.model_path.read_bytes() == (model_dir / "model.skops").read_bytes()
    assert bundle.manifest.files["model.skops"].sha256 == sha256(model_dir / "model.skops")
    assert sorted(p.name for p in bundle.directory.iterdir()) == [
        "MODEL_CARD.md",
        "manifest.json",
        "model.skops",
    ]


def test_bundle_is_reproducible_and_has_neutral_member_metadata(model_dir, make_manifest, tmp_path):
    first, second = tmp_path / "a.tar", tmp_path / "b.tar"
    build_bundle(model_dir, first, make_manifest())
    build_bundle(model_dir, second, make_manifest())
    assert first.read_bytes() == second.read_bytes()
    with tarfile.open(first, "r:") as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["MODEL_CARD.md", "manifest.json", "model.skops"]
    assert all((m.mtime, m.uid, m.gid, m.uname, m.mode) == (0, 0, 0, "", 0o644) for m in members)


def test_tampered_model_file(make_bundle, tmp_path):
    tampered = tmp_path / "tampered.tar"
    rewrite(make_bundle(), tampered, {"model.skops": b"PK\x03\x04 malicious pickle"})
    with pytest.raises(BundleVerificationError, match=r"model\.skops"):
        read_bundle(tampered, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_tampered_manifest(make_bundle, tmp_path):
    original = make_bundle()
    members = members_of(original)
    manifest = json.loads(members["manifest.json"])
    manifest["recommended_threshold"] = 0.99
    tampered = tmp_path / "tampered.tar"
    rewrite(original, tampered, {"manifest.json": json.dumps(manifest).encode()})
    with pytest.raises(BundleVerificationError, match="sha256"):
        read_bundle(
            tampered,
            tmp_path / "out",
            expected_length=None,
            expected_hashes={"sha256": sha256(original)},
        )


def test_length_differing_from_signed_length_is_rejected(make_bundle, tmp_path):
    bundle_path = make_bundle()
    with pytest.raises(BundleVerificationError, match="length"):
        read_bundle(bundle_path, tmp_path / "out", expected_length=bundle_path.stat().st_size + 1)


def test_unknown_hash_algorithm_is_refused(make_bundle, tmp_path):
    with pytest.raises(BundleVerificationError, match="unsupported"):
        read_bundle(make_bundle(), tmp_path / "out", expected_hashes={"md5": "00"})


def test_tar_member_escaping_folder(tmp_path, make_bundle):
    members = members_of(make_bundle())
    evil = tmp_path / "evil.tar"
    evil.write_bytes(
        tar_bytes([regular("../escaped", b"x"), *(regular(n, d) for n, d in members.items())])
    )
    with pytest.raises(UnsafeBundleError, match="unsafe"):
        read_bundle(evil, tmp_path / "out" / "bundle")
    assert not (tmp_path / "out" / "escaped").exists()


@pytest.mark.parametrize("name", ["/etc/cron.d/vigil", "a/../../x", "./model.skops", ".hidden"])
def test_absolute_and_dotted_member_names_are_rejected(tmp_path, name):
    evil = tmp_path / "evil.tar"
    evil.write_bytes(tar_bytes([regular(name, b"x")]))
    with pytest.raises(UnsafeBundleError):
        read_bundle(evil, tmp_path / "out")


def test_symlink_member(tmp_path, make_bundle):
    members = members_of(make_bundle())
    link = tarfile.TarInfo("model.skops")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    evil = tmp_path / "evil.tar"
    others = [regular(n, d) for n, d in members.items() if n != "model.skops"]
    evil.write_bytes(tar_bytes([*others, (link, None)]))
    with pytest.raises(UnsafeBundleError, match="link"):
        read_bundle(evil, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_hard_link_member(tmp_path):
    link = tarfile.TarInfo("model.skops")
    link.type = tarfile.LNKTYPE
    link.linkname = "manifest.json"
    evil = tmp_path / "evil.tar"
    evil.write_bytes(tar_bytes([regular("manifest.json", b"{}"), (link, None)]))
    with pytest.raises(UnsafeBundleError, match="link"):
        read_bundle(evil, tmp_path / "out")


@pytest.mark.parametrize("kind", [tarfile.DIRTYPE, tarfile.FIFOTYPE, tarfile.CHRTYPE])
def test_non_regular_members_are_rejected(tmp_path, kind):
    info = tarfile.TarInfo("model.skops")
    info.type = kind
    evil = tmp_path / "evil.tar"
    evil.write_bytes(tar_bytes([(info, None)]))
    with pytest.raises(UnsafeBundleError, match="regular file"):
        read_bundle(evil, tmp_path / "out")


def test_unexpected_extra_member_is_rejected(tmp_path, make_bundle):
    members = members_of(make_bundle())
    evil = tmp_path / "evil.tar"
    evil.write_bytes(
        tar_bytes([*(regular(n, d) for n, d in members.items()), regular("run.py", b"x")])
    )
    with pytest.raises(UnsafeBundleError):
        read_bundle(evil, tmp_path / "out")


def test_missing_member_is_rejected(tmp_path, make_bundle):
    members = members_of(make_bundle())
    del members["MODEL_CARD.md"]
    evil = tmp_path / "evil.tar"
    evil.write_bytes(tar_bytes([regular(n, d) for n, d in members.items()]))
    with pytest.raises(UnsafeBundleError, match="lacks"):
        read_bundle(evil, tmp_path / "out")


def test_duplicate_member_is_rejected(tmp_path, make_bundle):
    members = members_of(make_bundle())
    evil = tmp_path / "evil.tar"
    evil.write_bytes(
        tar_bytes(
            [
                regular("model.skops", b"first copy"),
                *(regular(n, d) for n, d in members.items() if n != "MODEL_CARD.md"),
            ]
        )
    )
    with pytest.raises(UnsafeBundleError, match="twice"):
        read_bundle(evil, tmp_path / "out")


def test_oversized_bundle(make_bundle, tmp_path):
    bundle_path = make_bundle()
    small = LicensingConfig(max_bundle_bytes=bundle_path.stat().st_size - 1)
    with pytest.raises(UnsafeBundleError, match="larger than"):
        read_bundle(bundle_path, tmp_path / "out", config=small)


def test_oversized_member(make_bundle, tmp_path):
    small = LicensingConfig(max_member_bytes=8)
    with pytest.raises(UnsafeBundleError, match="larger than"):
        read_bundle(make_bundle(), tmp_path / "out", config=small)


def test_compressed_archive_is_refused(make_bundle, tmp_path):
    gz = tmp_path / "bundle.tar.gz"
    gz.write_bytes(gzip.compress(make_bundle().read_bytes()))
    with pytest.raises(UnsafeBundleError, match="uncompressed"):
        read_bundle(gz, tmp_path / "out")


def test_extraction_into_non_empty_directory_is_refused(make_bundle, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "existing").write_text("x")
    with pytest.raises(UnsafeBundleError, match="not empty"):
        read_bundle(make_bundle(), out)
    assert (out / "existing").read_text() == "x"


def test_manifest_with_bad_fields_is_rejected(make_bundle, tmp_path):
    original = make_bundle()
    manifest = json.loads(members_of(original)["manifest.json"])
    manifest["recommended_threshold"] = "high"
    tampered = tmp_path / "bad.tar"
    rewrite(original, tampered, {"manifest.json": json.dumps(manifest).encode()})
    with pytest.raises(BundleVerificationError, match="manifest"):
        read_bundle(tampered, tmp_path / "out")


def test_manifest_round_trips_and_keeps_unknown_keys(make_manifest):
    manifest = replace(make_manifest(), extra={"prevalence": 0.002})
    assert BundleManifest.from_bytes(manifest.to_bytes()) == manifest


def test_rollback_to_older_version():
    with pytest.raises(BundleRollbackError):
        check_not_rollback("2026.9.3", "2026.11.0")


def test_newer_or_same_version_is_not_a_rollback():
    check_not_rollback("2026.11.0", "2026.9.3")
    check_not_rollback("2026.11.0", "2026.11.0")
    check_not_rollback("2026.11.0", None)


def test_bundle_needing_newer_engine(make_manifest):
    manifest = make_manifest(engine_version=">=0.3,<1.0")
    with pytest.raises(IncompatibleEngineError, match="needs engine"):
        check_engine_compatible(manifest, "0.2.5")


def test_bundle_for_older_major_engine_is_incompatible(make_manifest):
    with pytest.raises(IncompatibleEngineError):
        check_engine_compatible(make_manifest(engine_version=">=0.1,<1.0"), "1.0.0")


def test_compatible_engine_passes(make_manifest):
    check_engine_compatible(make_manifest(engine_version=">=0.1,<1.0"), "0.1.0")
    check_engine_compatible(make_manifest(engine_version=">=0.1,<1.0"), "0.9.9.dev3")


@pytest.mark.parametrize(
    ("left", "right"),
    [("2026.11.0", "2026.9.3"), ("1.0.1", "1.0"), ("10.0", "9.99"), ("0.10", "0.9")],
)
def test_versions_compare_numerically(left, right):
    assert parse_version(left) > parse_version(right)


def test_trailing_zeros_do_not_matter():
    assert parse_version("1.0.0") == parse_version("1")
    assert version_in_range("1.0.0", "==1.0")


@pytest.mark.parametrize("bad", ["", "1.x", "v1.0", "1..2", "-1", "1.0-rc1"])
def test_malformed_versions_are_refused(bad):
    with pytest.raises(ValueError, match="version"):
        parse_version(bad)


@pytest.mark.parametrize("bad", ["", ">=", "~=1.0", ">=0.1;<1.0", "0.1"])
def test_malformed_ranges_are_refused(make_manifest, bad):
    with pytest.raises(ValueError, match="engine version"):
        make_manifest(engine_version=bad)
