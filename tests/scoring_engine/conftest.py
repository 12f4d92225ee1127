"""Fixtures for the licensed engine: a real (tiny) model, a portal, an engine home, the CLI."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pytest
from typer.testing import CliRunner

from scoring_engine.cli import app
from scoring_engine.model.classifier import CalibratedLinearClassifier, source_balanced_weights
from scoring_engine.model.features import N_HASH_FEATURES, featurize
from scoring_engine.model.scorer import GroomingModel
from tests.factories import corpus, write_jsonl
from tests.scoring_engine.licensed import FakePortal, write_model
from tests.scoring_engine.portal_server import PortalServer, running

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from click.testing import Result


@pytest.fixture(autouse=True)
def _no_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    # Durability is not under test; fsync only makes a loaded machine wait.
    monkeypatch.setattr(os, "fsync", lambda _fd: None)


@pytest.fixture(scope="session")
def engine_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real model directory, trained in well under a second on synthetic conversations."""
    conversations = corpus(n_normal=120, n_grooming=40)
    y = np.array([c.label == "grooming" for c in conversations])
    classifier = CalibratedLinearClassifier(
        C=1.0, min_positive_groups=2, filtered_columns=N_HASH_FEATURES
    ).fit(
        featurize(conversations).features(),
        y,
        sample_weight=source_balanced_weights(y, [c.source for c in conversations]),
        groups=[c.case for c in conversations],
    )
    model = GroomingModel(classifier=classifier, recommended_threshold=0.5)
    return write_model(tmp_path_factory.mktemp("model"), model)


@pytest.fixture(scope="session")
def conversations_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jsonl(
        tmp_path_factory.mktemp("inputs") / "conversations.jsonl",
        corpus(n_normal=4, n_grooming=2, seed=7),
    )


@pytest.fixture
def portal(tmp_path: Path, engine_model_dir: Path) -> FakePortal:
    """A portal that published bundle 2026.11.0 on the stable channel."""
    fake = FakePortal.create(tmp_path / "portal", engine_model_dir)
    fake.publish("2026.11.0")
    return fake


@dataclass
class Engine:
    """``vigil-engine`` with its own home, run as an adopter runs it."""

    home: Path
    runner: CliRunner

    def __call__(self, *args: str | Path, input: str | None = None) -> Result:  # noqa: A002
        """``input``: what is typed at the command's prompts."""
        return self.runner.invoke(app, [*map(str, args), "--home", str(self.home)], input=input)


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return Engine(home=tmp_path / "engine-home", runner=CliRunner())


@pytest.fixture
def installed(engine: Engine, portal: FakePortal) -> Engine:
    """An engine initialised with the portal's root and a license, bundle 2026.11.0 installed."""
    assert engine("init", "--root", portal.root_file(), "--license", portal.issue()).exit_code == 0
    result = engine("install", portal.export("2026.11.0"))
    assert result.exit_code == 0, result.stderr
    return engine


@pytest.fixture
def portal_server(portal: FakePortal) -> Iterator[PortalServer]:
    """The portal's engine routes over HTTP on 127.0.0.1, serving ``portal``'s repository."""
    yield from running(portal)


@pytest.fixture
def portal_url(portal_server: PortalServer) -> str:
    """Where engines reach the portal (swap for a ``vigil-portal serve`` URL end to end)."""
    return portal_server.base_url
