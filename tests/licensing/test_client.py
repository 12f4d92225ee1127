"""The engine-side TUF client over a local repository directory."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tuf.api import exceptions as tuf_exceptions

from licensing.client import LocalFileFetcher, UpdateClient, local_base_urls
from licensing.exceptions import (
    BundleVerificationError,
    ExpiredMetadataError,
    RepositoryError,
)


def client_for(portal, tmp_path, reference_time, **kwargs):
    metadata_url, targets_url = local_base_urls(portal.repo.directory)
    return UpdateClient(
        trusted_root=portal.repo.root_bytes(1),
        metadata_dir=tmp_path / "client",
        metadata_base_url=metadata_url,
        target_base_url=targets_url,
        fetcher=LocalFileFetcher(portal.repo.directory),
        reference_time=reference_time,
        **kwargs,
    )


def test_latest_bundle_of_a_channel_is_found_and_verified(make_portal, make_bundle, tmp_path, now):
    portal = make_portal(clock=lambda: now)
    portal.repo.add_bundle(make_bundle("2026.11.0"), channel="stable")
    portal.repo.add_bundle(make_bundle("2026.12.0"), channel="beta")
    portal.repo.publish()

    client = client_for(portal, tmp_path, now)
    index = client.channel_index("stable")
    assert index.bundle_version == "2026.11.0"
    bundle = client.fetch_bundle(index.target, tmp_path / "work")
    assert bundle.manifest.version == "2026.11.0"
    assert client.revocations().version == 0
    assert client.license_keys().version == 1


def test_reference_time_governs_expiry_not_the_wall_clock(make_portal, tmp_path, now):
    portal = make_portal(clock=lambda: now)
    client_for(portal, tmp_path / "a", now + timedelta(hours=23)).refresh()
    with pytest.raises(ExpiredMetadataError):
        client_for(portal, tmp_path / "b", now + timedelta(hours=25)).refresh()


def test_bundle_swapped_on_the_server_is_rejected(make_portal, make_bundle, tmp_path, now):
    portal = make_portal(clock=lambda: now)
    target = portal.repo.add_bundle(make_bundle("2026.11.0"), channel="stable")
    portal.repo.publish()
    stored = portal.repo.target_file_path(target)
    stored.write_bytes(make_bundle("2026.12.0").read_bytes())
    with pytest.raises(BundleVerificationError):
        client_for(portal, tmp_path, now).fetch_bundle(target, tmp_path / "work")


def test_non_bundle_target_is_not_installed_as_a_bundle(make_portal, tmp_path, now):
    portal = make_portal(clock=lambda: now)
    with pytest.raises(RepositoryError, match="not a bundle"):
        client_for(portal, tmp_path, now).fetch_bundle("licensing/keys.json", tmp_path / "w")


def test_unknown_channel_is_a_repository_error(make_portal, tmp_path, now):
    portal = make_portal(clock=lambda: now)
    with pytest.raises(RepositoryError, match="not in the signed targets"):
        client_for(portal, tmp_path, now).channel_index("nightly")


def test_invalid_trusted_root_is_refused(make_portal, tmp_path, now):
    portal = make_portal(clock=lambda: now)
    metadata_url, targets_url = local_base_urls(portal.repo.directory)
    with pytest.raises(RepositoryError):
        UpdateClient(
            trusted_root=b'{"signed": {}, "signatures": []}',
            metadata_dir=tmp_path / "client",
            metadata_base_url=metadata_url,
            target_base_url=targets_url,
            fetcher=LocalFileFetcher(portal.repo.directory),
            reference_time=now,
        )


def test_local_fetcher_refuses_paths_outside_its_directory(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    (tmp_path / "secret").write_text("x")
    fetcher = LocalFileFetcher(served)
    with pytest.raises(tuf_exceptions.DownloadError):
        fetcher.download_bytes((served / ".." / "secret").as_uri(), 100)
    with pytest.raises(tuf_exceptions.DownloadError):
        fetcher.download_bytes("https://portal.example/secret", 100)


def test_local_fetcher_reports_missing_files_as_404(tmp_path):
    fetcher = LocalFileFetcher(tmp_path)
    with pytest.raises(tuf_exceptions.DownloadHTTPError) as raised:
        fetcher.download_bytes((tmp_path / "2.root.json").as_uri(), 100)
    assert raised.value.status_code == 404
