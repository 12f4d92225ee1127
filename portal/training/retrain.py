"""Retraining a model with the moderators' feedback (``vigil-portal models retrain``).

The base model directory is the recipe; the feedback received is the new material.

Rules:

- The base manifest's ``training`` block gives every training setting; only the feedback
  weight is new. Its ``training_data_digest`` names the research data, but a manifest
  ships to adopters and stores no paths: the operator gives the data files again (the
  ones ``./dev reference-model`` names for the reference model), in the same order, and
  retraining refuses files whose digest differs. A candidate trained on other data would
  not be "the base plus feedback", and its comparison with the base would mean nothing.
- A feedback record is used only if its vector is in the engine's feature space (same
  feature version and dimension) and its verdict is one of the three verdicts; the others
  are skipped and counted by reason.
- Without any usable feedback nothing is trained (:class:`NoFeedbackError`): the candidate
  would be the base model again under another name.
- The candidate's manifest records ``base`` (what it was retrained from), ``feedback``
  (how much of it, by verdict, organisation count, bundle, what was skipped, and a digest
  of exactly what was used) and ``comparison`` with the base: the cross-validation figures
  on the same folds (feedback rows never enter a held-out fold), and on an evaluation set
  when one is given.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from portal.errors import InvalidInputError
from portal.training.comparison import Comparison, compare_headlines
from portal.training.feedback import POSITIVE_VERDICTS, VERDICTS, FeedbackExample
from portal.training.pipeline import (
    Progress,
    TrainingConfig,
    TrainingData,
    TrainingResult,
    train_model,
)
from scoring_engine.model.features import FEATURE_VERSION
from scoring_engine.model.vectors import FEATURE_DIM

DIGEST_PREFIX = "sha256:"


def _quiet(_step: str, _done: int, _total: int) -> None:
    return


class TrainingDataMismatchError(InvalidInputError):
    """The data files given are not the ones the base model was trained on."""


class NoFeedbackError(InvalidInputError):
    """There is no usable feedback to retrain with."""


def config_from_base(
    manifest: Mapping[str, Any], *, feedback_weight: float = TrainingConfig.feedback_weight
) -> TrainingConfig:
    """The base model's training settings, with ``feedback_weight`` for feedback rows.

    Raises:
        InvalidInputError: The manifest has no usable ``training`` block.
    """
    training = manifest.get("training")
    if not isinstance(training, dict):
        raise InvalidInputError(
            "the base manifest has no 'training' block: it was not written by "
            "'vigil-portal models train'"
        )
    if not feedback_weight > 0:
        raise InvalidInputError("--feedback-weight must be a positive number")
    defaults = TrainingConfig()
    # Settings added after a base was trained take the values it was trained with then.
    leave_one_out = training.get("leave_one_source_out")
    if leave_one_out is None:
        leave_one_out = "max_unseen_source_flag_rate" in (manifest.get("metrics") or {})
    try:
        return TrainingConfig(
            C=float(training["C"]),
            folds=int(training["folds"]),
            min_positive_groups=int(training["min_positive_groups"]),
            max_source_flag_rate=float(training["max_source_flag_rate"]),
            max_unseen_source_flag_rate=float(
                training.get("max_unseen_source_flag_rate", defaults.max_unseen_source_flag_rate)
            ),
            leave_one_source_out=bool(leave_one_out),
            windows_per_conversation=int(
                training.get("windows_per_conversation", defaults.windows_per_conversation)
            ),
            window_weight=float(training.get("extra_window_weight", defaults.window_weight)),
            feedback_weight=feedback_weight,
            name=str(manifest.get("name") or defaults.name),
        )
    except KeyError as error:
        raise InvalidInputError(f"the base manifest's training block lacks {error}") from None
    except (TypeError, ValueError) as error:
        raise InvalidInputError(f"the base manifest's training block: {error}") from None


def check_training_data(manifest: Mapping[str, Any], digest: str) -> None:
    """Refuse data files whose digest is not the base model's (naming both digests)."""
    recorded = manifest.get("training_data_digest")
    given = f"{DIGEST_PREFIX}{digest}"
    if recorded != given:
        raise TrainingDataMismatchError(
            f"the training data given (digest {given}) is not the base model's "
            f"(digest {recorded}); give the same --data and --windows-from files, "
            "in the same order, that the base was trained on"
        )


@dataclass
class FeedbackSet:
    """The usable feedback as training rows, and what the model card says about it."""

    X: sp.csr_matrix
    labels: npt.NDArray[np.bool_]
    ids: list[str]
    verdicts: Counter[str] = field(default_factory=Counter)
    organisations: set[str] = field(default_factory=set)
    bundles: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    digest: str = ""

    @property
    def records(self) -> int:
        return len(self.ids)

    @classmethod
    def collect(cls, examples: Iterable[FeedbackExample]) -> FeedbackSet:
        """Rows of the examples in the engine's feature space; the rest counted as skipped."""
        indices: list[npt.NDArray[np.int32]] = []
        values: list[npt.NDArray[np.float32]] = []
        labels: list[bool] = []
        ids: list[str] = []
        verdicts: Counter[str] = Counter()
        organisations: set[str] = set()
        bundles: Counter[str] = Counter()
        skipped: Counter[str] = Counter()
        digest = hashlib.sha256()
        for example in examples:
            vector = example.vector
            if vector.version != FEATURE_VERSION:
                skipped[f"feature version {vector.version} (engine: {FEATURE_VERSION})"] += 1
                continue
            if vector.dim != FEATURE_DIM:
                skipped[f"dimension {vector.dim} (engine: {FEATURE_DIM})"] += 1
                continue
            if example.verdict not in VERDICTS:
                skipped[f"unknown verdict {example.verdict!r}"] += 1
                continue
            indices.append(vector.indices)
            values.append(vector.values)
            labels.append(example.verdict in POSITIVE_VERDICTS)
            ids.append(example.feedback_id)
            verdicts[example.verdict] += 1
            organisations.add(example.organisation)
            bundles[example.bundle] += 1
            for part in (example.feedback_id, example.verdict):
                digest.update(part.encode() + b"\0")
            digest.update(vector.indices.astype("<i4").tobytes())
            digest.update(vector.values.astype("<f4").tobytes())
        # One CSR matrix built from the vectors' arrays (not one small matrix per record).
        indptr = np.concatenate([[0], np.cumsum([part.size for part in indices])])
        X = sp.csr_matrix(
            (
                np.concatenate(values).astype(np.float64) if values else np.zeros(0),
                np.concatenate(indices) if indices else np.zeros(0, dtype=np.int32),
                indptr,
            ),
            shape=(len(ids), FEATURE_DIM),
        )
        return cls(
            X=X,
            labels=np.array(labels, dtype=bool),
            ids=ids,
            verdicts=verdicts,
            organisations=organisations,
            bundles=bundles,
            skipped=skipped,
            digest=f"{DIGEST_PREFIX}{digest.hexdigest()}",
        )

    def summary(self, weight: float) -> dict[str, Any]:
        """The manifest's ``feedback`` block (no ids, no organisation names)."""
        return {
            "records": self.records,
            "grooming": self.verdicts["grooming"],
            "imminent_threat": self.verdicts["imminent_threat"],
            "not_grooming": self.verdicts["not_grooming"],
            "organisations": len(self.organisations),
            "bundles": dict(sorted(self.bundles.items())),
            "skipped": sum(self.skipped.values()),
            "skipped_reasons": dict(sorted(self.skipped.items())),
            "weight": weight,
            "digest": self.digest,
        }

    def require_some(self) -> None:
        if self.records:
            return
        if self.skipped:
            reasons = ", ".join(f"{n:,} with {why}" for why, n in sorted(self.skipped.items()))
            raise NoFeedbackError(
                f"no usable feedback: every record was skipped ({reasons}); nothing written"
            )
        raise NoFeedbackError(
            "no feedback has been received yet: a candidate would be the base model again; "
            "nothing written"
        )


def base_summary(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The candidate manifest's ``base`` block: what it was retrained from."""
    return {
        "name": manifest.get("name"),
        "version": manifest.get("version"),
        "created": manifest.get("created"),
        "model_sha256": manifest.get("model_sha256"),
        "training_data_digest": manifest.get("training_data_digest"),
    }


def _label(manifest: Mapping[str, Any], fallback: str) -> str:
    name, version = manifest.get("name"), manifest.get("version")
    return f"{name}-{version}" if name and version else fallback


def cross_validation_comparison(
    base_manifest: Mapping[str, Any], result: TrainingResult
) -> Comparison:
    """Candidate against base on the same grouped folds of the same data."""
    cv = result.metrics["cross_validation"]
    return compare_headlines(
        base_manifest.get("metrics") or {},
        result.manifest["metrics"],
        scheme="cross-validation",
        description=f"{cv['scheme']}, the base's folds of the same data; "
        f"{cv['n']:,} conversations, {cv['n_positive']:,} grooming",
        n=int(cv["n"]),
        n_positive=int(cv["n_positive"]),
        base_label=_label(base_manifest, "base"),
        candidate_label="candidate",
    )


def retrain_with_feedback(
    data: TrainingData,
    feedback: FeedbackSet,
    base_manifest: Mapping[str, Any],
    config: TrainingConfig,
    progress: Progress = _quiet,
) -> TrainingResult:
    """Train the candidate on the base's data plus the feedback rows.

    The returned manifest carries ``base``, ``feedback`` and ``comparison`` (the
    cross-validation one; callers add an evaluation-set comparison to the list).
    """
    feedback.require_some()
    with_feedback = data.with_feedback(feedback.X, feedback.labels, feedback.ids)
    result = train_model(with_feedback, config, progress)
    comparison = cross_validation_comparison(base_manifest, result)
    result.manifest.update(
        {
            "base": base_summary(base_manifest),
            "feedback": feedback.summary(config.feedback_weight),
            "comparison": [comparison.to_dict()],
        }
    )
    return result
