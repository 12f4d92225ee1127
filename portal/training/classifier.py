"""Fitting the engine's classifier with rows that belong to no cross-validation fold.

Moderator feedback arrives as single feature vectors from the adopters' platforms, not as
research conversations: it must train every model the cross-validation fits, and it must
never be held out, because the out-of-fold decision values calibrate the model and give
the model card its figures, and those are measured on the research data only (feedback
rows are a biased sample: every one of them was flagged first).

Rules kept here:

- The folds are those the research rows alone would get (``GroupKFold`` over their cases),
  so a retrained candidate is measured on exactly the folds of the base model it came from.
- Rows outside the folds are appended to every fold's training rows; their own out-of-fold
  decision value is NaN (they are never measured, nor calibrated on).
- The fitted estimator is handed back as a plain
  :class:`~scoring_engine.model.classifier.CalibratedLinearClassifier`: the engine loads
  model files with a fixed type allow-list, and this subclass is not on it (nor should be).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from scoring_engine.model.classifier import CalibratedLinearClassifier

FloatArray = npt.NDArray[np.float64]


class OutsideFoldsClassifier(CalibratedLinearClassifier):
    """A :class:`CalibratedLinearClassifier` whose ``fit`` takes ``outside_folds``: rows in
    every training fold and in no held-out one."""

    def fit(  # type: ignore[override]
        self,
        X: Any,
        y: Any,
        sample_weight: Any = None,
        groups: Any = None,
        calibration_mask: Any = None,
        outside_folds: Any = None,
    ) -> OutsideFoldsClassifier:
        n_rows = X.shape[0]
        self._outside_folds = (
            np.zeros(n_rows, dtype=bool)
            if outside_folds is None
            else np.asarray(outside_folds, dtype=bool)
        )
        try:
            super().fit(
                X,
                y,
                sample_weight=sample_weight,
                groups=groups,
                calibration_mask=calibration_mask,
            )
        finally:
            del self._outside_folds
        return self

    def _rows_outside_folds(self) -> npt.NDArray[np.intp]:
        outside = getattr(self, "_outside_folds", None)
        if outside is None:
            return super()._rows_outside_folds()
        return np.flatnonzero(outside)

    def as_engine_classifier(self) -> CalibratedLinearClassifier:
        """The same fitted model as the class the engine is allowed to load."""
        plain = CalibratedLinearClassifier(**self.get_params())
        for name, value in vars(self).items():
            if name.endswith("_") and not name.startswith("_"):
                setattr(plain, name, value)
        return plain
