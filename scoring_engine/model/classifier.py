"""A linear classifier whose probabilities are calibrated on held-out folds.

Grooming is rare and moderators act on the number, so ``predict_proba`` must mean what
it says: among conversations scored 0.8, about 80% are grooming at the training
prevalence. The logistic regression's own probabilities are over-confident on the
training data, so the calibration map (Platt scaling: a logistic curve over the
decision value) is fitted on out-of-fold decision values, with folds grouped by case
when ``groups`` are given, so windows of one transcript never calibrate each other.

The model is linear in its features on purpose: the scoring engine computes the running
score of every prefix of a conversation from running sums of per-message contributions,
which only a linear decision function allows (see :mod:`scoring_engine.model.scorer`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.optimize import minimize
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, StratifiedKFold
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

FloatArray = npt.NDArray[np.float64]


def _sigmoid(values: FloatArray) -> FloatArray:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * values)), dtype=np.float64)


class CalibratedLinearClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """L2-regularised logistic regression with out-of-fold Platt calibration.

    Parameters
    ----------
    C : float
        Inverse regularisation strength of the logistic regression.
    calibration_folds : int
        Folds used to produce the out-of-fold decision values the calibration learns on.
    min_positive_groups : int
        A feature may get a weight only if it occurs in positive samples of at least this
        many distinct groups (cases): the model cannot memorise words of one transcript,
        and its weights say nothing about any single conversation.
    filtered_columns : int or None
        The support rule applies to the first ``filtered_columns`` features (the hashed
        text); later ones (the few dense conversation features) are always kept.
        ``None`` applies it to every feature.
    max_iter : int
        Iteration cap of the solver.
    """

    def __init__(
        self,
        C: float = 1.0,
        calibration_folds: int = 5,
        min_positive_groups: int = 1,
        filtered_columns: int | None = None,
        max_iter: int = 1000,
    ) -> None:
        self.C = C
        self.calibration_folds = calibration_folds
        self.min_positive_groups = min_positive_groups
        self.filtered_columns = filtered_columns
        self.max_iter = max_iter

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        tags.input_tags.sparse = True
        return tags

    def _fit_linear(
        self, X: Any, y: npt.NDArray[np.int64], weights: FloatArray | None
    ) -> tuple[FloatArray, float]:
        """Weighted L2 logistic regression (L-BFGS), the intercept not penalised.

        Columns that are all zero keep a zero weight under the L2 penalty, so the
        optimisation runs over the used columns only (a few percent of the hashed space).
        """
        n_samples, n_total = X.shape
        if sp.issparse(X):
            X = sp.csr_matrix(X)
            used = np.flatnonzero(np.bincount(X.indices, minlength=n_total) > 0)
        else:
            used = np.flatnonzero(np.any(np.asarray(X) != 0, axis=0))
        X = X[:, used]
        n_features = used.size
        sample_weight = np.ones(n_samples) if weights is None else weights
        signs = np.where(y == 1, 1.0, -1.0)
        penalty = 1.0 / self.C

        def loss_and_gradient(params: FloatArray) -> tuple[float, FloatArray]:
            coef, intercept = params[:-1], params[-1]
            margins = signs * (X @ coef + intercept)
            loss = float(sample_weight @ np.logaddexp(0.0, -margins))
            # d/dmargin of log(1 + exp(-m)) is -sigmoid(-m)
            pull = -sample_weight * signs * _sigmoid(-margins)
            gradient = np.empty_like(params)
            gradient[:-1] = X.T @ pull + penalty * coef
            gradient[-1] = pull.sum()
            return loss + 0.5 * penalty * float(coef @ coef), gradient

        result = minimize(
            loss_and_gradient,
            np.zeros(n_features + 1),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": self.max_iter},
        )
        self.n_iter_ = max(getattr(self, "n_iter_", 0), int(result.nit))
        coef = np.zeros(n_total)
        coef[used] = result.x[:-1]
        return coef, float(result.x[-1])

    def fit(
        self,
        X: Any,
        y: Any,
        sample_weight: Any = None,
        groups: Any = None,
        calibration_mask: Any = None,
    ) -> CalibratedLinearClassifier:
        """Fit; ``calibration_mask`` selects the samples the calibration is fitted on.

        Samples outside it (extra training material drawn at another prevalence) still
        train the linear model but do not shape what its probabilities mean.
        """
        X, y = validate_data(self, X, y, accept_sparse="csr", dtype=np.float64)
        check_classification_targets(y)
        target_type = type_of_target(y)
        if target_type != "binary":
            raise ValueError(
                f"Only binary classification is supported. The type of the target is {target_type}."
            )
        self.classes_, encoded = np.unique(y, return_inverse=True)
        self.n_iter_ = 0
        weights = None
        if sample_weight is not None:
            weights = _check_sample_weight(sample_weight, X, ensure_non_negative=True)
            if not weights.any():
                raise ValueError("sample_weight must contain at least one non-zero number")
        self.support_mask_ = self._supported_features(X, encoded, groups)
        X = _mask_columns(X, self.support_mask_)
        out_of_fold = self._out_of_fold_decisions(X, encoded, weights, groups)
        calibrating = (
            np.ones(encoded.size, dtype=bool)
            if calibration_mask is None
            else np.asarray(calibration_mask, dtype=bool)
        )
        calibration = LogisticRegression(C=1e4).fit(
            out_of_fold[calibrating, None], encoded[calibrating]
        )
        self.calibration_slope_ = float(calibration.coef_[0, 0])
        self.calibration_intercept_ = float(calibration.intercept_[0])
        coef, self.intercept_ = self._fit_linear(X, encoded, weights)
        self.coef_ = coef * self.support_mask_
        self.out_of_fold_decisions_ = out_of_fold
        return self

    def _supported_features(
        self, X: Any, encoded: npt.NDArray[np.int64], groups: Any
    ) -> FloatArray:
        """1.0 for features present in positives of enough distinct groups, else 0.0."""
        positives = np.flatnonzero(encoded == 1)
        group_ids = np.arange(positives.size) if groups is None else np.asarray(groups)[positives]
        _, group_codes = np.unique(group_ids, return_inverse=True)
        present = sp.csr_matrix(X[positives] != 0, dtype=np.float64)
        by_group = sp.csr_matrix(
            (np.ones(positives.size), (group_codes, np.arange(positives.size))),
            shape=(int(group_codes.max(initial=-1)) + 1, positives.size),
        )
        groups_per_feature = np.asarray(((by_group @ present) > 0).sum(axis=0)).ravel()
        mask = (groups_per_feature >= self.min_positive_groups).astype(np.float64)
        if self.filtered_columns is not None:
            mask[self.filtered_columns :] = 1.0
        return mask

    def _rows_outside_folds(self) -> npt.NDArray[np.intp]:
        """Rows that train every fold and are never held out (none here; retraining's
        subclass adds moderator feedback this way). Their decision value is NaN."""
        return np.empty(0, dtype=np.intp)

    def _out_of_fold_decisions(
        self,
        X: Any,
        encoded: npt.NDArray[np.int64],
        weights: FloatArray | None,
        groups: Any,
    ) -> FloatArray:
        always = self._rows_outside_folds()
        inside = np.setdiff1d(np.arange(X.shape[0]), always)
        inside_groups = None if groups is None else np.asarray(groups)[inside]
        folds = min(self.calibration_folds, int(np.bincount(encoded[inside], minlength=2).min()))
        if inside_groups is not None:
            folds = min(folds, len(np.unique(inside_groups)))
        decisions = np.full(X.shape[0], np.nan)
        if folds < 2:
            # Too little data to hold any out: calibrate on in-sample decisions.
            coef, intercept = self._fit_linear(X, encoded, weights)
            decisions[inside] = X[inside] @ coef + intercept
            return decisions
        # The splitters look only at the number of rows, the labels and the groups.
        placeholder = np.zeros((inside.size, 1))
        if inside_groups is not None:
            splits = GroupKFold(n_splits=folds).split(placeholder, encoded[inside], inside_groups)
        else:
            splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0).split(
                placeholder, encoded[inside]
            )
        for train_positions, test_positions in splits:
            train = np.concatenate([inside[train_positions], always])
            test = inside[test_positions]
            if np.unique(encoded[train]).size < 2:
                decisions[test] = 0.0
                continue
            coef, intercept = self._fit_linear(
                X[train], encoded[train], None if weights is None else weights[train]
            )
            decisions[test] = X[test] @ coef + intercept
        return decisions

    def linear_decision(self, X: Any) -> FloatArray:
        """The uncalibrated linear decision value ``X @ coef_ + intercept_``."""
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse="csr", reset=False, dtype=np.float64)
        return np.asarray(X @ self.coef_ + self.intercept_, dtype=np.float64).ravel()

    def calibrated_logit(self, linear: FloatArray) -> FloatArray:
        check_is_fitted(self)
        return np.asarray(
            self.calibration_slope_ * linear + self.calibration_intercept_, dtype=np.float64
        )

    def calibrate(self, linear: FloatArray) -> FloatArray:
        """Probability of the positive class for given linear decision values."""
        return _sigmoid(self.calibrated_logit(linear))

    def decision_function(self, X: Any) -> FloatArray:
        """Log-odds of the positive class (calibrated)."""
        return self.calibrated_logit(self.linear_decision(X))

    def predict_proba(self, X: Any) -> FloatArray:
        positive = _sigmoid(self.decision_function(X))
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X: Any) -> npt.NDArray[Any]:
        positive = self.decision_function(X) > 0.0
        return np.asarray(self.classes_[positive.astype(np.int64)])


def source_balanced_weights(labels: npt.NDArray[np.bool_], sources: list[str | None]) -> FloatArray:
    """Sample weights giving each normal source the same total weight.

    Without them the largest normal source decides what "normal" looks like and the
    model learns to flag whatever is unlike it; balanced, it must find what sets
    grooming apart from every source. Positives keep weight 1; the negatives' total
    weight is unchanged.
    """
    weights = np.ones(labels.size)
    source_array = np.array([s or "" for s in sources], dtype=object)
    negatives = ~labels
    names = np.unique(source_array[negatives])
    total = float(negatives.sum())
    for name in names:
        members = negatives & (source_array == name)
        weights[members] = total / names.size / members.sum()
    return weights


def _mask_columns(X: Any, mask: FloatArray) -> Any:
    if mask.all():
        return X
    if sp.issparse(X):
        return sp.csr_matrix(X @ sp.diags(mask))
    return np.asarray(X) * mask
