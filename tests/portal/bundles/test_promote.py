"""`vigil-portal bundles promote`: the evaluation gate between channels (synthetic models)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
from tuf.api import exceptions as tuf_exceptions
from tuf.ngclient.fetcher import FetcherInterface
from tuf.ngclient.updater import Updater

from licensing.targets import ChannelIndex, channel_index_target
from portal.bundles import service
from portal.bundles.models import Bundle, Channel
from portal.events.service import list_events
from portal.repository.service import open_repository
from scoring_engine.model.classifier import CalibratedLinearClassifier, source_balanced_weights
from scoring_engine.model.directory import write_model_dir
from scoring_engine.model.features import N_HASH_FEATURES, featurize
from scoring_engine.model.lexicon import CHARACTERISTICS
from scoring_engine.model.scorer import GroomingModel
from tests.factories import corpus, write_jsonl
from tests.portal.support import ACTOR, MODEL_MANIFEST

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from sqlalchemy.orm import Session

    from licensing.repository import Repository
    from portal.settings import Settings
    from tests.portal.support import PortalCli


def train_model_dir(directory: Path, *, seed: int, random_labels: bool = False) -> Path:
    """A real (tiny) model directory; ``random_labels`` makes one that ranks at random."""
    conversations = corpus(n_normal=120, n_grooming=40, seed=seed)
    y = np.array([c.label == "grooming" for c in conversations])
    if random_labels:
        y = np.random.default_rng(seed).permutation(y)
    classifier = CalibratedLinearClassifier(
        C=1.0, min_positive_groups=2, filtered_columns=N_HASH_FEATURES
    ).fit(
        featurize(conversations).features(),
        y,
        sample_weight=source_balanced_weights(y, [c.source for c in conversations]),
        groups=[c.case for c in conversations],
    )
    manifest = {
        **MODEL_MANIFEST,
        "characteristics": list(CHARACTERISTICS),
        "training_data_digest": f"sha256:{seed:064x}",
    }
    model = GroomingModel(classifier=classifier, recommended_threshold=0.5)
    write_model_dir(directory, model, manifest, "# Synthetic model\n", {})
    return directory


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        "good": train_model_dir(root / "good", seed=1),
        "also_good": train_model_dir(root / "also-good", seed=2),
        "random": train_model_dir(root / "random", seed=3, random_labels=True),
    }


@pytest.fixture(scope="module")
def evaluation_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("eval") / "eval.jsonl", corpus(90, 30, seed=11))


@pytest.fixture
def publish(session: Session, repository: Repository) -> Callable[..., Bundle]:
    def factory(model_dir: Path, version: str, channel: Channel) -> Bundle:
        return service.publish_bundle(
            session, repository, model_dir, version=version, channel=channel, actor=ACTOR
        )

    return factory


class DirectoryFetcher(FetcherInterface):
    """Serves ``file:`` URLs, as the portal serves ``/tuf/`` to engines."""

    def _fetch(self, url: str) -> Iterator[bytes]:
        path = Path(unquote(urlsplit(url).path))
        if not path.is_file():
            raise tuf_exceptions.DownloadHTTPError(f"{url} not found", 404)
        return iter([path.read_bytes()])


def engine_sees(settings: Settings, client_dir: Path, bootstrap: bytes, channel: str) -> str:
    """The bundle version an engine's stock TUF client finds on ``channel``."""
    root = open_repository(settings).directory.resolve()
    updater = Updater(
        str(client_dir),
        (root / "metadata").as_uri() + "/",
        target_dir=str(client_dir / "downloads"),
        target_base_url=(root / "targets").as_uri() + "/",
        fetcher=DirectoryFetcher(),
        bootstrap=bootstrap,
    )
    updater.refresh()
    info = updater.get_targetinfo(channel_index_target(channel))
    assert info is not None
    index = ChannelIndex.from_bytes(Path(updater.download_target(info)).read_bytes())
    assert updater.get_targetinfo(index.target) is not None
    return index.bundle_version


def promoted_events(session: Session) -> list[Any]:
    return [e for e in list_events(session) if e.tag == "bundle:promoted"]


def test_a_worse_candidate_is_refused_and_the_channel_is_unchanged(
    cli: PortalCli,
    session: Session,
    initialised: Settings,
    repository: Repository,
    publish: Callable[..., Bundle],
    models: dict[str, Path],
    evaluation_set: Path,
    tmp_path: Path,
) -> None:
    publish(models["good"], "2026.11.0", Channel.STABLE)
    candidate = publish(models["random"], "2026.12.0", Channel.BETA)
    bootstrap = repository.root_bytes()
    result = cli("bundles", "promote", "2026.12.0", "--to", "stable", "--eval", str(evaluation_set))
    assert result.exit_code == 4, result.output
    # Both figures are printed, and the refusal names the worse ones.
    assert "PR-AUC: vigil-2026.11.0 " in result.stdout
    assert "WORSE by more than 0.01" in result.stdout
    assert "refused: vigil-2026.12.0 is worse than vigil-2026.11.0" in result.stderr
    assert "stable is unchanged" in result.stderr
    assert engine_sees(initialised, tmp_path / "engine", bootstrap, "stable") == "2026.11.0"
    session.refresh(candidate)
    assert candidate.channel is Channel.BETA
    assert promoted_events(session) == []


def test_a_candidate_that_is_not_worse_is_promoted_where_engines_see_it(
    cli: PortalCli,
    session: Session,
    initialised: Settings,
    repository: Repository,
    publish: Callable[..., Bundle],
    models: dict[str, Path],
    evaluation_set: Path,
    tmp_path: Path,
) -> None:
    publish(models["good"], "2026.11.0", Channel.STABLE)
    candidate = publish(models["also_good"], "2026.12.0", Channel.BETA)
    bootstrap = repository.root_bytes()
    assert engine_sees(initialised, tmp_path / "engine", bootstrap, "stable") == "2026.11.0"
    result = cli("bundles", "promote", "2026.12.0", "--to", "stable", "--eval", str(evaluation_set))
    assert result.exit_code == 0, result.output
    assert "promoted vigil-2026.12.0 to stable, replacing 2026.11.0" in result.stdout
    assert "recall at 1% FPR: vigil-2026.11.0 " in result.stdout
    # An engine already following stable updates to it (same client directory).
    assert engine_sees(initialised, tmp_path / "engine", bootstrap, "stable") == "2026.12.0"
    session.refresh(candidate)
    assert candidate.channel is Channel.STABLE
    assert candidate.target_path == "bundles/stable/vigil-2026.12.0.tar"
    [event] = promoted_events(session)
    assert (event.payload["from"], event.payload["to"]) == ("beta", "stable")
    assert event.payload["replaced"] == event.payload["compared_with"] == "2026.11.0"
    assert event.payload["forced"] is False
    comparison = event.payload["comparison"]
    assert comparison["scheme"] == "evaluation"
    assert comparison["worse"] == []
    assert set(comparison["metrics"]) == {"pr_auc", "recall_at_fpr_0.01", "recall_at_fpr_0.001"}
    assert comparison["n"] == 120


def test_a_forced_promotion_needs_a_reason_and_records_it(
    cli: PortalCli,
    session: Session,
    publish: Callable[..., Bundle],
    models: dict[str, Path],
    evaluation_set: Path,
) -> None:
    publish(models["good"], "2026.11.0", Channel.STABLE)
    publish(models["random"], "2026.12.0", Channel.BETA)
    args = ["bundles", "promote", "2026.12.0", "--to", "stable", "--eval", str(evaluation_set)]
    result = cli(*args, "--force")
    assert result.exit_code == 2
    assert "--force needs --reason" in result.stderr
    result = cli(*args, "--force", "--reason", "hotfix for a false-positive storm")
    assert result.exit_code == 0, result.output
    assert "forced past the gate" in result.stderr
    [event] = promoted_events(session)
    assert event.payload["forced"] is True
    assert event.payload["reason"] == "hotfix for a false-positive storm"
    assert "pr_auc" in event.payload["comparison"]["worse"]


def test_without_an_evaluation_set_bundles_of_different_data_are_not_compared(
    cli: PortalCli, publish: Callable[..., Bundle], models: dict[str, Path]
) -> None:
    publish(models["good"], "2026.11.0", Channel.STABLE)
    publish(models["also_good"], "2026.12.0", Channel.BETA)
    result = cli("bundles", "promote", "2026.12.0", "--to", "stable")
    assert result.exit_code == 2
    assert "trained on different data" in result.stderr
    assert "--eval" in result.stderr


def _cv_model(make_model_dir: Callable[..., Path], pr_auc: float, recall: float) -> Path:
    return make_model_dir(
        metrics={"pr_auc": pr_auc, "recall_at_fpr_0.01": recall, "recall_at_fpr_0.001": 0.5},
        training={"conversations": 500, "grooming": 100},
    )


def test_a_retrained_candidate_is_judged_by_the_cross_validation_on_the_same_data(
    session: Session,
    repository: Repository,
    publish: Callable[..., Bundle],
    make_model_dir: Callable[..., Path],
) -> None:
    publish(_cv_model(make_model_dir, 0.90, 0.80), "2026.11.0", Channel.STABLE)
    publish(_cv_model(make_model_dir, 0.895, 0.78), "2026.12.0", Channel.BETA)
    publish(_cv_model(make_model_dir, 0.91, 0.81), "2026.12.1", Channel.BETA)

    gate = service.evaluate_promotion(session, repository, "2026.12.0", channel=Channel.STABLE)
    assert gate.comparison is not None
    assert gate.comparison.scheme == "cross-validation"
    assert gate.worse == ["recall at 1% FPR: vigil-2026.11.0 0.800, vigil-2026.12.0 0.780"]
    # Recall at 0.1% FPR on 400 normal conversations is shown but not judged.
    assert not gate.comparison.metrics[2].gated
    with pytest.raises(service.PromotionRefusedError, match="recall at 1% FPR") as refused:
        service.promote_bundle(session, repository, gate, actor=ACTOR)
    assert refused.value.exit_code == 4

    lenient = service.evaluate_promotion(
        session, repository, "2026.12.0", channel=Channel.STABLE, tolerance=0.05
    )
    assert lenient.worse == []
    better = service.evaluate_promotion(session, repository, "2026.12.1", channel=Channel.STABLE)
    promoted = service.promote_bundle(session, repository, better, actor=ACTOR)
    assert promoted.channel is Channel.STABLE
    index = repository.channel_index("stable")
    assert index is not None
    assert index.bundle_version == "2026.12.1"


def test_promoting_onto_an_empty_channel_has_nothing_to_compare(
    cli: PortalCli, session: Session, publish: Callable[..., Bundle], models: dict[str, Path]
) -> None:
    publish(models["good"], "2026.12.0", Channel.BETA)
    result = cli("bundles", "promote", "2026.12.0", "--to", "stable")
    assert result.exit_code == 0, result.output
    assert "stable has no bundle yet: nothing to compare" in result.stdout
    [event] = promoted_events(session)
    assert event.payload["comparison"] is None
    assert event.payload["replaced"] is None


def test_promotions_that_engines_would_refuse_are_refused_first(
    cli: PortalCli, publish: Callable[..., Bundle], make_model_dir: Callable[..., Path]
) -> None:
    publish(make_model_dir(), "2026.11.0", Channel.STABLE)
    publish(make_model_dir(), "2026.10.0", Channel.BETA)
    result = cli("bundles", "promote", "2026.11.0", "--to", "stable")
    assert result.exit_code == 4
    assert "already on stable" in result.stderr
    result = cli("bundles", "promote", "2026.10.0", "--to", "stable")
    assert result.exit_code == 4
    assert "not newer than 2026.11.0" in result.stderr
    result = cli("bundles", "promote", "2027.1.0", "--to", "stable")
    assert result.exit_code == 4
    assert "no published bundle has version 2027.1.0" in result.stderr


def test_an_evaluation_set_needs_both_labels(
    cli: PortalCli,
    publish: Callable[..., Bundle],
    models: dict[str, Path],
    tmp_path: Path,
) -> None:
    publish(models["good"], "2026.11.0", Channel.STABLE)
    publish(models["also_good"], "2026.12.0", Channel.BETA)
    only_normal = write_jsonl(tmp_path / "normal.jsonl", corpus(20, 0, seed=4))
    result = cli("bundles", "promote", "2026.12.0", "--to", "stable", "--eval", str(only_normal))
    assert result.exit_code == 2
    assert "needs both grooming and normal" in result.stderr
    missing = tmp_path / "missing.jsonl"
    result = cli("bundles", "promote", "2026.12.0", "--to", "stable", "--eval", str(missing))
    assert result.exit_code == 2
    assert "no such evaluation file" in result.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": 1, "messages": []}) + "\n")
    result = cli(
        "bundles", "promote", "2026.12.0", "--to", "stable", "--eval", str(bad), "--strict"
    )
    assert result.exit_code == 2
    assert f"{bad}:1: id" in result.stderr


def test_against_compares_with_another_published_version(
    cli: PortalCli,
    session: Session,
    publish: Callable[..., Bundle],
    models: dict[str, Path],
    evaluation_set: Path,
) -> None:
    publish(models["good"], "2026.11.0", Channel.STABLE)
    publish(models["random"], "2026.12.0", Channel.BETA)
    publish(models["also_good"], "2026.12.1", Channel.BETA)
    args = ["bundles", "promote", "2026.12.1", "--to", "stable", "--eval", str(evaluation_set)]
    result = cli(*args, "--against", "2025.1.0")
    assert result.exit_code == 4
    assert "no published bundle has version 2025.1.0" in result.stderr
    result = cli(*args, "--against", "2026.12.0")
    assert result.exit_code == 0, result.output
    assert "PR-AUC: vigil-2026.12.0 " in result.stdout
    [event] = promoted_events(session)
    assert (event.payload["replaced"], event.payload["compared_with"]) == (
        "2026.11.0",
        "2026.12.0",
    )
