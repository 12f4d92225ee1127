"""Publishing model directories as signed bundles, and exporting them."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from licensing.export import verify_exported_bundle
from portal.bundles import service
from portal.bundles.models import Bundle, Channel
from portal.errors import (
    BundleConflictError,
    BundleNotFoundError,
    InvalidInputError,
    InvalidModelDirectoryError,
)
from portal.events.service import list_events
from tests.portal.support import ACTOR

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from sqlalchemy.orm import Session

    from licensing.repository import Repository


@pytest.fixture
def publish(
    session: Session, repository: Repository, make_model_dir: Callable[..., Path]
) -> Callable[..., Bundle]:
    def factory(
        version: str = "2026.11.0",
        *,
        channel: Channel = Channel.STABLE,
        name: str | None = None,
        model_dir: Path | None = None,
    ) -> Bundle:
        return service.publish_bundle(
            session,
            repository,
            model_dir or make_model_dir(),
            version=version,
            channel=channel,
            name=name,
            actor=ACTOR,
        )

    return factory


def test_published_bundle_is_a_signed_target_on_its_channel(
    session: Session, repository: Repository, publish: Callable[..., Bundle]
) -> None:
    bundle = publish("2026.11.0", name="reference")
    assert (bundle.label, bundle.channel) == ("reference-2026.11.0", Channel.STABLE)
    assert bundle.target_path == "bundles/stable/reference-2026.11.0.tar"
    target = repository.published_targets()[bundle.target_path]
    assert (target.length, target.hashes["sha256"]) == (bundle.length, bundle.sha256)
    index = repository.channel_index("stable")
    assert index is not None
    assert index.bundle_version == "2026.11.0"
    assert bundle.published_by == ACTOR
    event = list_events(session, subject_id="2026.11.0")[0]
    assert (event.tag, event.payload["sha256"]) == ("bundle:published", bundle.sha256)


def test_bundle_manifest_is_the_model_manifest_named_and_versioned(
    publish: Callable[..., Bundle],
) -> None:
    bundle = publish("2026.11.0")
    assert bundle.name == "vigil"  # the model manifest's name, when none is given
    assert bundle.manifest["version"] == "2026.11.0"
    assert bundle.manifest["recommended_threshold"] == 0.8
    assert bundle.manifest["prevalence"] == 0.05  # model fields the library does not know
    assert set(bundle.manifest["files"]) == {"model.skops", "MODEL_CARD.md"}


def test_publishing_a_version_twice_is_refused(publish: Callable[..., Bundle]) -> None:
    publish("2026.11.0")
    with pytest.raises(BundleConflictError, match="already published") as raised:
        publish("2026.11.0", channel=Channel.BETA)
    assert raised.value.exit_code == 4


def test_a_version_older_than_the_channel_s_is_refused(publish: Callable[..., Bundle]) -> None:
    publish("2026.11.0")
    with pytest.raises(BundleConflictError, match="not newer"):
        publish("2026.9.3")
    assert publish("2026.9.3", channel=Channel.BETA).channel is Channel.BETA


@pytest.mark.parametrize("missing", ["model.skops", "manifest.json", "MODEL_CARD.md"])
def test_a_model_directory_missing_a_file_is_refused(
    publish: Callable[..., Bundle], make_model_dir: Callable[..., Path], missing: str
) -> None:
    model_dir = make_model_dir()
    (model_dir / missing).unlink()
    with pytest.raises(InvalidModelDirectoryError, match=missing) as raised:
        publish(model_dir=model_dir)
    assert raised.value.exit_code == 2


def test_a_model_manifest_without_bundle_fields_is_refused(
    publish: Callable[..., Bundle], make_model_dir: Callable[..., Path]
) -> None:
    model_dir = make_model_dir()
    manifest = json.loads((model_dir / "manifest.json").read_text())
    del manifest["recommended_threshold"]
    (model_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InvalidModelDirectoryError, match="recommended_threshold"):
        publish(model_dir=model_dir)


@pytest.mark.parametrize(
    ("version", "name"), [("v1", None), ("2026.11.0", "Bad Name"), ("2026.11.0", "../x")]
)
def test_malformed_version_or_name_is_refused(
    publish: Callable[..., Bundle], version: str, name: str | None
) -> None:
    with pytest.raises(InvalidInputError):
        publish(version, name=name)


def test_export_verifies_against_the_trusted_root(
    session: Session, repository: Repository, publish: Callable[..., Bundle], tmp_path: Path
) -> None:
    bundle = publish("2026.11.0")
    out = tmp_path / "export.tar"
    service.export_bundle(session, repository, "2026.11.0", out, actor=ACTOR)
    verified = verify_exported_bundle(out, repository.root_bytes(1), tmp_path / "engine")
    assert verified.bundle.manifest.label == bundle.label
    assert verified.bundle.sha256 == bundle.sha256
    assert verified.license_keys.keys
    assert list_events(session, subject_id="2026.11.0")[0].tag == "bundle:exported"


def test_exporting_an_unknown_version_is_a_bundle_problem(
    session: Session, repository: Repository, tmp_path: Path
) -> None:
    with pytest.raises(BundleNotFoundError) as raised:
        service.export_bundle(session, repository, "1.0", tmp_path / "x.tar", actor=ACTOR)
    assert raised.value.exit_code == 4


def test_a_publish_whose_database_work_was_lost_can_be_repeated(
    session: Session,
    repository: Repository,
    publish: Callable[..., Bundle],
    make_model_dir: Callable[..., Path],
) -> None:
    model_dir = make_model_dir()
    nested = session.begin_nested()
    first = publish("2026.11.0", model_dir=model_dir)
    sha256 = first.sha256
    nested.rollback()  # the repository published it; the database never recorded it

    again = publish("2026.11.0", model_dir=model_dir)
    assert again.sha256 == sha256
    assert repository.channel_index("stable").bundle_version == "2026.11.0"  # type: ignore[union-attr]
