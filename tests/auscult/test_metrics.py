import numpy as np
import pytest

from auscult import metrics


def test_auroc_known_values():
    assert metrics.roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert metrics.roc_auc(np.array([0, 0, 1, 1]), np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert metrics.roc_auc(np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    assert np.isnan(metrics.roc_auc(np.array([1, 1]), np.array([0.2, 0.3])))


def test_roc_curve_ends_at_the_corners_and_matches_auroc():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    scores = labels * 0.5 + rng.random(200)
    fpr, tpr, _ = metrics.roc_curve(labels, scores)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
    assert np.trapz(tpr, fpr) == pytest.approx(metrics.roc_auc(labels, scores))


def test_bootstrap_interval_contains_the_estimate():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 300)
    scores = labels * 0.4 + rng.random(300)
    low, high = metrics.auroc_ci(labels, scores, np.arange(300), n=300)
    assert low < metrics.roc_auc(labels, scores) < high


def test_the_cluster_bootstrap_draws_people_not_recordings():
    """Participant A has three recordings scoring 1, B one scoring 0. Drawing two people with replacement gives
    AA (mean 1), AB or BA (3 of 4 recordings: 0.75) and BB (0) with probabilities 1/4, 1/2, 1/4. Drawing four
    recordings instead gives a mean of 0 only with probability (1/4)^4."""
    values = np.array([1.0, 1.0, 1.0, 0.0])
    people = np.array(["A", "A", "A", "B"])
    means = np.array([values[pick].mean() for pick in metrics.group_resamples(people, n=4000, seed=0)])
    shares = {v: np.mean(means == v) for v in (1.0, 0.75, 0.0)}
    assert shares == pytest.approx({1.0: 0.25, 0.75: 0.5, 0.0: 0.25}, abs=0.03)
    assert metrics.bootstrap_ci(lambda pick: values[pick].mean(), people, n=4000) == (0.0, 1.0)
    recordings_low, _ = metrics.bootstrap_ci(lambda pick: values[pick].mean(), np.arange(4), n=4000)
    assert recordings_low >= 0.25


def test_a_participant_s_recordings_stay_together_and_their_order_does_not_matter():
    people = np.array(["p2", "p1", "p2", "p3", "p1", "p2"])
    for pick in metrics.group_resamples(people, n=50, seed=1):
        drawn = people[pick]
        for person in set(drawn):
            assert np.sum(drawn == person) % np.sum(people == person) == 0
    # Renaming people in the same order changes nothing: intervals follow data, not pseudonyms.
    renamed = np.array(["b", "a", "b", "c", "a", "b"])
    first = [p.tolist() for p in metrics.group_resamples(people, n=20, seed=5)]
    assert first == [p.tolist() for p in metrics.group_resamples(renamed, n=20, seed=5)]


def test_an_interval_that_cannot_be_had_warns():
    labels = np.array([1, 1, 1])
    with pytest.warns(UserWarning, match="undefined"):
        low, high = metrics.auroc_ci(labels, np.array([0.1, 0.2, 0.3]), np.arange(3), n=20)
    assert np.isnan(low) and np.isnan(high)


def test_threshold_meets_the_specificity():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 500)
    scores = labels * 0.3 + rng.random(500)
    threshold = metrics.threshold_at_specificity(labels, scores, 0.9)
    _, specificity = metrics.sensitivity_specificity(labels, scores, threshold)
    assert specificity >= 0.9


def test_psi_and_ks_see_a_shift_and_not_noise():
    rng = np.random.default_rng(3)
    reference = rng.normal(0, 1, 2000)
    assert metrics.population_stability_index(reference, rng.normal(0, 1, 500)) < 0.1
    assert metrics.population_stability_index(reference, rng.normal(1.5, 1, 500)) > 0.5
    statistic, p_value = metrics.kolmogorov_smirnov(reference, rng.normal(1.5, 1, 500))
    assert statistic > 0.4 and p_value < 1e-10


def test_calibration_measures():
    labels = np.array([0, 1, 0, 1])
    assert metrics.brier_score(labels, labels.astype(float)) == 0
    assert metrics.expected_calibration_error(labels, np.array([0.9, 0.1, 0.9, 0.1])) == pytest.approx(0.9)
    assert metrics.confusion_matrix(labels, np.array([0, 1, 1, 1])).tolist() == [[1, 1], [0, 2]]


def test_a_threshold_for_exactly_the_target_specificity_is_found():
    # Ten negatives: specificity 0.9 means one false positive, which 1 - 0.9 in floating point must allow.
    labels = np.array([0] * 10 + [1] * 10)
    scores = np.r_[np.arange(10) / 10, np.full(10, 0.85)]
    threshold = metrics.threshold_at_specificity(labels, scores, 0.9)
    assert metrics.sensitivity_specificity(labels, scores, threshold) == (1.0, 0.9)


def test_stratified_auroc_ranks_only_within_strata():
    labels = np.array([1, 0, 1, 0, 1, 0])
    strata = np.array(["a", "a", "b", "b", "c", "c"])
    # Every positive outranks the negative of its stratum, though stratum b's scores sit below stratum a's.
    scores = np.array([0.9, 0.8, 0.3, 0.2, 0.5, 0.5])
    assert metrics.stratified_auroc(labels, scores, strata) == pytest.approx(2.5 / 3)
    assert metrics.roc_auc(labels, scores) < metrics.stratified_auroc(labels, scores, strata)
    assert metrics.stratified_auroc(labels, scores, np.zeros(6)) == metrics.roc_auc(labels, scores)
    assert np.isnan(metrics.stratified_auroc(labels, scores, labels))  # no stratum holds both classes
