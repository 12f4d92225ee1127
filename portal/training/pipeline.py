"""Training a Vigil model from labelled conversations, with the evidence to trust it.

What it measures, and why:

- **Grouped cross-validation.** Windows of one transcript are near-duplicates, so folds
  are grouped by ``case`` (the conversation id when there is none): no transcript
  is ever on both sides of a split. The model's calibration is fitted on these
  out-of-fold decision values, and the model card's figures come from them.
- **Leave one normal source out.** The product is judged on a chat source it has never
  seen. For each normal source, a model trained without it (and without one grouped
  fold of grooming cases) scores that source; its flag rate at the operating point says
  how the model treats a style of chat it never saw.
- **The operating point** is the lowest threshold at which no normal source is flagged
  above ``max_source_flag_rate`` out of fold and no left-out source above
  ``max_unseen_source_flag_rate`` (see :func:`operating_point`).

Normal sources are weighted to the same total weight, so no single source defines
"normal" for the model.

**Moderator feedback** (``vigil-portal models retrain --with-feedback``) joins as rows of
its own kind: hashed feature vectors with the moderators' verdicts, weighted
``feedback_weight`` each (outside the source balancing), fitted on by every model the
cross-validation trains and never held out, measured, calibrated on or used for the
operating point (:mod:`portal.training.classifier`). The research rows keep exactly the
folds they would have without feedback.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from sklearn.model_selection import GroupKFold

from portal.training.classifier import OutsideFoldsClassifier
from scoring_engine import __version__ as engine_version
from scoring_engine.conversation import Conversation
from scoring_engine.evaluation import EvaluationAccumulator
from scoring_engine.model.classifier import CalibratedLinearClassifier, source_balanced_weights
from scoring_engine.model.features import FEATURE_VERSION, N_HASH_FEATURES, featurize
from scoring_engine.model.lexicon import CHARACTERISTICS
from scoring_engine.model.scorer import GroomingModel

Progress = Callable[[str, int, int], None]
FloatArray = npt.NDArray[np.float64]
FEATURIZE_CHUNK = 5_000
ENGINE_RANGE = f">={engine_version},<1.0"


def _quiet(_step: str, _done: int, _total: int) -> None:
    return


@dataclass(frozen=True)
class TrainingConfig:
    C: float = 0.3
    folds: int = 5
    min_positive_groups: int = 10
    max_source_flag_rate: float = 0.01
    max_unseen_source_flag_rate: float = 0.02
    leave_one_source_out: bool = True
    # Extra grooming windows cut from whole transcripts: fitted on, never measured on.
    windows_per_conversation: int = 20
    window_weight: float = 0.3
    # Training weight of each moderator feedback row (a research normal averages 1).
    feedback_weight: float = 1.0
    seed: int = 0
    name: str = "vigil"


@dataclass
class TrainingData:
    """Features and labels of a labelled corpus (no text is kept)."""

    X: sp.csr_matrix
    labels: npt.NDArray[np.bool_]
    groups: npt.NDArray[Any]
    sources: list[str | None]
    lengths: npt.NDArray[np.int64]
    digest: str
    source_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    # True for rows that only train the model (extra windows); metrics, calibration and
    # the operating point use the others.
    fit_only: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))
    # True for moderator feedback rows (also fit-only): in every training fold, never held
    # out, weighted ``TrainingConfig.feedback_weight``. Empty means none.
    feedback: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))

    @property
    def measured(self) -> npt.NDArray[np.bool_]:
        return ~self.fit_only

    @property
    def feedback_rows(self) -> npt.NDArray[np.bool_]:
        if self.feedback.size == self.labels.size:
            return self.feedback
        return np.zeros(self.labels.size, dtype=bool)

    @property
    def extra_windows(self) -> int:
        return int((self.fit_only & ~self.feedback_rows).sum())

    def with_feedback(
        self, X: sp.csr_matrix, labels: npt.NDArray[np.bool_], ids: Sequence[str]
    ) -> TrainingData:
        """These rows plus feedback rows ``X`` (in the same feature space) labelled ``labels``;
        each is its own group, so no two feedback rows are tied to each other or to a case."""
        if X.shape[0] == 0:
            return self
        if X.shape[1] != self.X.shape[1]:
            raise ValueError(f"feedback rows have {X.shape[1]} features, not {self.X.shape[1]}")
        n = X.shape[0]
        return TrainingData(
            X=sp.vstack([self.X, X], format="csr"),
            labels=np.concatenate([self.labels, np.asarray(labels, dtype=bool)]),
            groups=np.concatenate(
                [self.groups, np.array([f"feedback:{i}" for i in ids], dtype=object)]
            ),
            sources=[*self.sources, *(["feedback"] * n)],
            lengths=np.concatenate([self.lengths, np.zeros(n, dtype=np.int64)]),
            digest=self.digest,
            source_counts=self.source_counts,
            fit_only=np.concatenate([self.fit_only, np.ones(n, dtype=bool)]),
            feedback=np.concatenate([self.feedback_rows, np.ones(n, dtype=bool)]),
        )

    @classmethod
    def from_conversations(
        cls,
        conversations: Sequence[Conversation],
        digest: str,
        progress: Progress = _quiet,
        fit_only: Sequence[Conversation] = (),
    ) -> TrainingData:
        n_measured = len(conversations)
        conversations = [*conversations, *fit_only]
        blocks = []
        total = len(conversations)
        for start in range(0, total, FEATURIZE_CHUNK):
            chunk = conversations[start : start + FEATURIZE_CHUNK]
            blocks.append(featurize(chunk).features())
            progress("features", min(start + FEATURIZE_CHUNK, total), total)
        X = sp.vstack(blocks, format="csr") if blocks else sp.csr_matrix((0, 0))
        counts: dict[str, Counter[str]] = {}
        for c in conversations[:n_measured]:
            counts.setdefault(c.source or "unknown", Counter())[c.label or "unlabelled"] += 1
        return cls(
            X=X,
            labels=np.array([c.label == "grooming" for c in conversations], dtype=bool),
            groups=np.array([c.case or c.id for c in conversations], dtype=object),
            sources=[c.source for c in conversations],
            lengths=np.array([len(c.messages) for c in conversations], dtype=np.int64),
            digest=digest,
            source_counts={s: dict(v) for s, v in sorted(counts.items())},
            fit_only=np.arange(total) >= n_measured,
        )


def cut_windows(
    transcripts: Sequence[Conversation],
    reference_lengths: Sequence[int],
    per_conversation: int,
    seed: int = 0,
) -> list[Conversation]:
    """Windows of consecutive messages from labelled transcripts, the way evaluation
    windows are built: one at the start and the rest at random places, each as long as a
    randomly drawn reference conversation, so that length does not give the label away."""
    rng = np.random.default_rng(seed)
    lengths = np.asarray([n for n in reference_lengths if n > 0] or [20])
    windows = []
    for transcript in transcripts:
        n = len(transcript.messages)
        if n == 0:
            continue
        for k in range(per_conversation):
            length = int(min(n, rng.choice(lengths)))
            start = 0 if k == 0 else int(rng.integers(0, n - length + 1))
            windows.append(
                Conversation(
                    id=f"{transcript.id}#w{k}",
                    messages=transcript.messages[start : start + length],
                    label=transcript.label,
                    source=transcript.source,
                    case=transcript.case or transcript.id,
                    ordered=transcript.ordered,
                )
            )
    return windows


@dataclass
class TrainingResult:
    model: GroomingModel
    manifest: dict[str, Any]
    metrics: dict[str, Any]
    out_of_fold_scores: FloatArray


def data_digest(paths: Sequence[Path]) -> str:
    """sha256 over the training files' names and bytes, in the order given."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _classifier(config: TrainingConfig) -> CalibratedLinearClassifier:
    return CalibratedLinearClassifier(
        C=config.C,
        calibration_folds=config.folds,
        min_positive_groups=config.min_positive_groups,
        filtered_columns=N_HASH_FEATURES,
    )


def choose_threshold(
    scores: FloatArray,
    labels: npt.NDArray[np.bool_],
    sources: Sequence[str | None],
    max_source_flag_rate: float,
) -> float:
    """Lowest threshold (0.001 steps) at which no normal source is flagged above the cap."""
    source_array = np.array([s or "" for s in sources], dtype=object)
    negatives = ~labels
    cap = 0.0
    for name in np.unique(source_array[negatives]):
        source_scores = np.sort(scores[negatives & (source_array == name)])
        allowed = int(np.floor(max_source_flag_rate * source_scores.size))
        # Flagging is score >= t, so t must exceed the (allowed+1)-th highest score.
        if source_scores.size > allowed:
            cap = max(cap, float(source_scores[source_scores.size - allowed - 1]))
    return float(min(0.999, np.floor(cap * 1000.0) / 1000.0 + 0.001))


def _report(scores: FloatArray, data: TrainingData, threshold: float) -> dict[str, Any]:
    accumulator = EvaluationAccumulator()
    for i in np.flatnonzero(data.measured).tolist():
        accumulator.add(
            score=float(scores[i]),
            label=bool(data.labels[i]),
            flagged_at=None,
            n_messages=int(data.lengths[i]),
            source=data.sources[i],
        )
    report = accumulator.report(threshold).to_dict()
    report.pop("early_warning", None)
    return report


def _fit(
    config: TrainingConfig, data: TrainingData, rows: npt.NDArray[np.bool_], **params: Any
) -> CalibratedLinearClassifier:
    """Fit on the selected rows: normal sources balanced, extra windows down-weighted,
    feedback rows at ``feedback_weight`` in every fold."""
    labels = data.labels[rows]
    indices = np.flatnonzero(rows)
    feedback = data.feedback_rows[rows]
    weights = np.full(labels.size, config.feedback_weight)
    research = ~feedback
    weights[research] = source_balanced_weights(
        labels[research], [data.sources[i] for i in indices[research]]
    )
    weights[data.fit_only[rows] & research] = config.window_weight
    if not feedback.any():
        classifier: CalibratedLinearClassifier = _classifier(config).set_params(**params)
        return classifier.fit(
            data.X[rows],
            labels,
            sample_weight=weights,
            groups=data.groups[rows],
            calibration_mask=data.measured[rows],
        )
    with_feedback: OutsideFoldsClassifier = OutsideFoldsClassifier(
        **_classifier(config).get_params()
    ).set_params(**params)
    with_feedback.fit(
        data.X[rows],
        labels,
        sample_weight=weights,
        groups=data.groups[rows],
        calibration_mask=data.measured[rows],
        outside_folds=feedback,
    )
    return with_feedback.as_engine_classifier()


@dataclass
class HeldOutSource:
    """Decision values of a model trained without one normal source."""

    unseen: FloatArray  # the left-out source's conversations
    seen_normals: FloatArray  # held-out fold, normal sources the model saw
    grooming: FloatArray  # held-out fold, grooming

    def at_fpr(self, fpr: float) -> dict[str, float]:
        """Flag rates when the cut flags ``fpr`` of the seen sources' held-out normals."""
        cut = float(np.quantile(self.seen_normals, 1.0 - fpr))
        return {
            "flag_rate": round(float(np.mean(self.unseen > cut)), 4),
            "recall_held_out_grooming": round(float(np.mean(self.grooming > cut)), 4),
            "n": int(self.unseen.size),
        }


def leave_one_source_out(
    data: TrainingData, config: TrainingConfig, progress: Progress = _quiet
) -> dict[str, HeldOutSource]:
    """For each normal source, a model trained without it (and without the first grouped
    fold) scores that source and the held-out fold: how it treats chat it never saw."""
    source_array = np.array([s or "" for s in data.sources], dtype=object)
    normals = ~data.labels & data.measured
    names = [str(n) for n in np.unique(source_array[normals])]
    results: dict[str, HeldOutSource] = {}
    if len(names) < 2:
        return results
    # The first fold of the research rows (feedback rows are never held out).
    inside = np.flatnonzero(~data.feedback_rows)
    _, test_pos = next(
        GroupKFold(n_splits=config.folds).split(
            np.zeros((inside.size, 1)), data.labels[inside], data.groups[inside]
        )
    )
    held_out = np.zeros(data.labels.size, dtype=bool)
    held_out[inside[test_pos]] = True
    for done, name in enumerate(names, start=1):
        unseen = (source_array == name) & normals
        classifier = _fit(config, data, ~held_out & ~unseen, calibration_folds=2)
        decisions = classifier.linear_decision(data.X)
        results[name] = HeldOutSource(
            unseen=decisions[unseen],
            seen_normals=decisions[held_out & normals & ~unseen],
            grooming=decisions[held_out & data.labels & data.measured],
        )
        progress("leave-one-source-out", done, len(names))
    return results


# False-positive rates (on seen sources) tried for the operating point, largest first.
FPR_GRID = tuple(float(f) for f in np.geomspace(0.02, 0.0002, 41))


def operating_point(
    oof: FloatArray, data: TrainingData, config: TrainingConfig, held_out: dict[str, HeldOutSource]
) -> tuple[float, float]:
    """The recommended threshold and the false-positive rate it was chosen at.

    It is the higher of two thresholds: the lowest that keeps every normal source at or
    below ``max_source_flag_rate`` out of fold, and the lowest that keeps every source
    left out of training at or below ``max_unseen_source_flag_rate`` (the product meets
    chat it never saw: this bounds how often that chat is flagged).
    """
    measured = data.measured
    scores = oof[measured]
    labels = data.labels[measured]
    sources = [s for s, m in zip(data.sources, measured, strict=True) if m]
    threshold = choose_threshold(scores, labels, sources, config.max_source_flag_rate)
    fpr = float(np.mean(scores[~labels] >= threshold))
    if held_out:
        unseen_fpr = next(
            (
                f
                for f in FPR_GRID
                if max(h.at_fpr(f)["flag_rate"] for h in held_out.values())
                <= config.max_unseen_source_flag_rate
            ),
            FPR_GRID[-1],
        )
        if unseen_fpr < fpr:
            cut = float(np.quantile(scores[~labels], 1.0 - unseen_fpr))
            threshold = float(min(0.999, np.ceil(cut * 1000.0) / 1000.0))
            fpr = float(np.mean(scores[~labels] >= threshold))
    return threshold, max(fpr, 1e-4)


def train_model(
    data: TrainingData, config: TrainingConfig, progress: Progress = _quiet
) -> TrainingResult:
    measured_labels = data.labels[data.measured]
    if measured_labels.all() or not measured_labels.any():
        raise ValueError("training needs both grooming and normal conversations")
    progress("fit", 0, 1)
    everything = np.ones(data.labels.size, dtype=bool)
    classifier = _fit(config, data, everything)
    progress("fit", 1, 1)
    oof = classifier.calibrate(classifier.out_of_fold_decisions_)
    held_out = leave_one_source_out(data, config, progress) if config.leave_one_source_out else {}
    threshold, fpr = operating_point(oof, data, config, held_out)
    metrics: dict[str, Any] = {
        "cross_validation": {
            "scheme": f"{config.folds}-fold, grouped by case",
            **_report(oof, data, threshold),
        },
    }
    if held_out:
        metrics["leave_one_source_out"] = {
            name: source.at_fpr(fpr) for name, source in held_out.items()
        }
    model = GroomingModel(classifier=classifier, recommended_threshold=threshold)
    # The out-of-fold decisions are for the metrics above; the shipped model keeps only
    # what scoring needs.
    del classifier.out_of_fold_decisions_
    manifest = {
        "name": config.name,
        "version": None,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "engine_version": ENGINE_RANGE,
        "feature_version": FEATURE_VERSION,
        "training_data_digest": f"sha256:{data.digest}",
        "training_data": data.source_counts,
        "prevalence": round(float(measured_labels.mean()), 4),
        "recommended_threshold": threshold,
        "characteristics": list(CHARACTERISTICS),
        "metrics": _headline(metrics),
        "training": {
            "C": config.C,
            "folds": config.folds,
            "min_positive_groups": config.min_positive_groups,
            "max_source_flag_rate": config.max_source_flag_rate,
            "max_unseen_source_flag_rate": config.max_unseen_source_flag_rate,
            "conversations": int(data.measured.sum()),
            "grooming": int(measured_labels.sum()),
            "extra_windows": data.extra_windows,
            "extra_window_weight": config.window_weight,
            "windows_per_conversation": config.windows_per_conversation,
            "leave_one_source_out": config.leave_one_source_out,
            "feedback_rows": int(data.feedback_rows.sum()),
            "feedback_weight": config.feedback_weight,
        },
    }
    return TrainingResult(model=model, manifest=manifest, metrics=metrics, out_of_fold_scores=oof)


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    cv = metrics["cross_validation"]
    headline = {
        "pr_auc": cv["pr_auc"],
        "roc_auc": cv["roc_auc"],
        "recall_at_fpr_0.01": cv["recall_at_fpr"]["0.01"],
        "recall_at_fpr_0.001": cv["recall_at_fpr"]["0.001"],
        "precision": cv["precision"],
        "recall": cv["recall"],
        "ece": cv["ece"],
        "max_normal_source_flag_rate": max(
            (s["flag_rate"] for s in cv["per_source"].values() if s.get("flag_rate") is not None),
            default=None,
        ),
    }
    if "leave_one_source_out" in metrics:
        headline["max_unseen_source_flag_rate"] = max(
            (s["flag_rate"] for s in metrics["leave_one_source_out"].values()), default=None
        )
    return headline
