"""Plain metric functions over numpy arrays, in the manner of ``sklearn.metrics``."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator

import numpy as np
from scipy.stats import ks_2samp, rankdata


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half); NaN without both classes."""
    labels = np.asarray(labels, dtype=bool)
    positives, negatives = labels.sum(), (~labels).sum()
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def stratified_auroc(labels: np.ndarray, scores: np.ndarray, strata: np.ndarray) -> float:
    """AUROC with each positive ranked only against negatives of its own stratum: the share of within-stratum
    (positive, negative) pairs in the right order, ties half. What a score knows beyond the strata; NaN when no
    stratum holds both classes."""
    labels, scores, strata = np.asarray(labels, dtype=bool), np.asarray(scores), np.asarray(strata)
    concordant, pairs = 0.0, 0
    for stratum in np.unique(strata):
        members = strata == stratum
        positives, negatives = int(labels[members].sum()), int((~labels[members]).sum())
        if positives and negatives:
            ranks = rankdata(scores[members])
            concordant += ranks[labels[members]].sum() - positives * (positives + 1) / 2
            pairs += positives * negatives
    return float(concordant / pairs) if pairs else float("nan")


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate, threshold), from the strictest threshold down."""
    labels = np.asarray(labels, dtype=bool)
    order = np.argsort(-np.asarray(scores), kind="mergesort")
    sorted_scores, sorted_labels = np.asarray(scores)[order], labels[order]
    distinct = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(sorted_scores) - 1]
    tps = np.cumsum(sorted_labels)[distinct]
    fps = (distinct + 1) - tps
    tpr = np.r_[0.0, tps / max(1, labels.sum())]
    fpr = np.r_[0.0, fps / max(1, (~labels).sum())]
    thresholds = np.r_[1.0, sorted_scores[distinct]]
    return fpr, tpr, thresholds


def group_resamples(groups: np.ndarray, n: int = 1000, seed: int = 0) -> Iterator[np.ndarray]:
    """``n`` bootstrap resamples of whole groups, as index arrays into ``groups``.

    A group is drawn with all of its members (a cluster bootstrap): with the participant of each recording as
    its group, a person with five recordings counts as one draw, not five, and the spread is that of people.
    Groups are taken in sorted order, so the resamples depend on the group labels only through their order.
    """
    _, codes = np.unique(np.asarray(groups), return_inverse=True)
    order = np.argsort(codes, kind="stable")
    members = np.split(order, np.flatnonzero(np.diff(codes[order])) + 1)
    rng = np.random.default_rng(seed)
    for _ in range(n):
        yield np.concatenate([members[g] for g in rng.integers(0, len(members), len(members))])


def bootstrap_ci(
    statistic: Callable[[np.ndarray], float],
    groups: np.ndarray,
    n: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of ``statistic(indices)`` over resamples of whole ``groups`` (see
    :func:`group_resamples`; give every item its own group for the plain bootstrap). Resamples where the
    statistic is undefined (NaN: a resample without both classes) are left out; with none left, a warning
    and (NaN, NaN)."""
    values = np.array([statistic(pick) for pick in group_resamples(groups, n, seed)], dtype=float)
    values = values[~np.isnan(values)]
    if not len(values):
        warnings.warn("the statistic is undefined in every resample: no confidence interval", stacklevel=2)
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    return float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))


def auroc_ci(
    labels: np.ndarray, scores: np.ndarray, groups: np.ndarray, n: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Confidence interval of the AUROC over resamples of whole groups (participants)."""
    labels, scores = np.asarray(labels), np.asarray(scores)
    return bootstrap_ci(lambda pick: roc_auc(labels[pick], scores[pick]), groups, n, level, seed)


def threshold_at_specificity(labels: np.ndarray, scores: np.ndarray, specificity: float) -> float:
    """The lowest threshold whose specificity is at least ``specificity``."""
    fpr, _, thresholds = roc_curve(labels, scores)
    allowed = np.flatnonzero(fpr <= 1 - specificity + 1e-9)  # 1 - 0.9 is 0.0999...98 in floating point
    return float(thresholds[allowed[-1]])


def sensitivity_specificity(labels: np.ndarray, scores: np.ndarray, threshold: float) -> tuple[float, float]:
    labels = np.asarray(labels, dtype=bool)
    predicted = np.asarray(scores) >= threshold
    sensitivity = predicted[labels].mean() if labels.any() else float("nan")
    specificity = (~predicted[~labels]).mean() if (~labels).any() else float("nan")
    return float(sensitivity), float(specificity)


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, n_classes: int = 2) -> np.ndarray:
    matrix = np.zeros((n_classes, n_classes), dtype=int)
    np.add.at(matrix, (np.asarray(labels, dtype=int), np.asarray(predicted, dtype=int)), 1)
    return matrix


def brier_score(labels: np.ndarray, scores: np.ndarray) -> float:
    return float(np.mean((np.asarray(scores) - np.asarray(labels, dtype=float)) ** 2))


def expected_calibration_error(labels: np.ndarray, scores: np.ndarray, bins: int = 10) -> float:
    labels, scores = np.asarray(labels, dtype=float), np.asarray(scores)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(scores, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += members.mean() * abs(labels[members].mean() - scores[members].mean())
    return float(error)


def population_stability_index(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """PSI over quantile bins of the reference (0.1: some shift, 0.2 and above: a shift worth acting on)."""
    reference, current = np.asarray(reference, dtype=float), np.asarray(current, dtype=float)
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    expected = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1) / len(reference)
    actual = np.bincount(np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1) / len(current)
    expected, actual = np.clip(expected, 1e-4, None), np.clip(actual, 1e-4, None)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def kolmogorov_smirnov(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Two-sample KS statistic and p-value."""
    result = ks_2samp(reference, current)
    return float(result.statistic), float(result.pvalue)
