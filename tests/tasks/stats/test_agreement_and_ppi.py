"""The statistics behind labels: kappa and the corrected estimate against hand-computed values,
queue weights that recover a planted judge error rate, and the coverage of prediction-powered
intervals when the judge is biased."""

from statistics import NormalDist

import numpy as np
import pytest

from tasks.labels.draw import Judged, allocate, draw
from tasks.stats.agreement import Pair, agreement, cohen_kappa, suggest_threshold
from tasks.stats.ppi import corrected_rate


def pairs_from_table(a: int, b: int, c: int, d: int) -> list[Pair]:
    """a: both pass, b: judge passes and the person fails, c: the reverse, d: both fail."""
    cells = [(True, True)] * a + [(True, False)] * b + [(False, True)] * c + [(False, False)] * d
    return [Pair(f"l{i}", j, None, h, None, 1.0) for i, (j, h) in enumerate(cells)]


def test_kappa_and_the_failure_metrics_match_the_hand_computed_table() -> None:
    # 50 labels: po = 35/50 = 0.7; judge passes 25/50, people 30/50: pe = 0.5; kappa = 0.4.
    found = agreement(pairs_from_table(20, 5, 10, 15), "faithfulness", "v1")
    assert found.kappa.value == pytest.approx(0.4)
    assert found.accuracy.value == pytest.approx(0.7)
    assert found.precision_on_failures.value == pytest.approx(15 / 25)
    assert found.recall_on_failures.value == pytest.approx(15 / 20)
    assert found.tpr.value == pytest.approx(20 / 30) and found.tnr.value == pytest.approx(0.75)
    assert found.kappa.low < 0.4 < found.kappa.high
    assert cohen_kappa([True, True, False, False], [True, False, False, False]) == pytest.approx(
        0.5
    )


def test_too_few_labels_give_no_number() -> None:
    found = agreement(pairs_from_table(5, 1, 1, 5), "faithfulness", "v1", min_labels=20)
    assert not found.enough and found.kappa.value is None
    assert found.verdict() == "not enough labels (12 of 20)"


def test_the_corrected_estimate_matches_the_hand_computed_value() -> None:
    # Judge over 4 logs: 0.75. Labelled: judge [1, 1, 0], people [1, 0, 0]: bias 1/3.
    # Variance: 0.1875 / 3 (judge) + (2/9) / 2 (bias) = 0.0625 + 0.1111.
    found = corrected_rate(np.array([1, 1, 1, 0]), np.ones(4), np.array([1, 1, 0]),
                           np.array([1, 0, 0]), np.ones(3))  # fmt: skip
    assert found.estimate == pytest.approx(0.75 - 1 / 3)
    half = NormalDist().inv_cdf(0.975) * np.sqrt(0.0625 + 1 / 9)
    assert found.high == pytest.approx(min(1.0, found.estimate + half))
    assert found.low == pytest.approx(max(0.0, found.estimate - half))
    assert found.labels == 3 and found.bias == pytest.approx(1 / 3)


def test_corrected_intervals_cover_the_truth_when_the_judge_is_biased_by_ten_points() -> None:
    """True pass rate 70%; the judge passes a third of the true failures (it says 80%). 200
    simulated label samples of 200 labels, each beside 2,000 judged logs."""
    rng = np.random.default_rng(2023)
    truth, covered, judge_only = 0.7, 0, 0
    z = NormalDist().inv_cdf(0.975)
    for _ in range(200):
        human = rng.random(2000) < truth
        judge = human | (rng.random(2000) < 1 / 3)
        labelled = rng.choice(2000, size=200, replace=False)
        found = corrected_rate(judge, np.ones(2000), judge[labelled], human[labelled],
                               np.ones(200))  # fmt: skip
        covered += found.low <= truth <= found.high
        rate = judge.mean()
        half = z * np.sqrt(rate * (1 - rate) / 2000)
        judge_only += rate - half <= truth <= rate + half
    assert covered / 200 >= 0.92
    assert judge_only / 200 <= 0.02


def test_allocation_is_equal_and_gives_away_what_a_small_stratum_cannot_take() -> None:
    assert allocate({"pass": 1000, "fail": 30}, 100) == {"pass": 70, "fail": 30}
    assert allocate({"a": 5, "b": 5}, 100) == {"a": 5, "b": 5}


def test_queue_weights_recover_a_planted_judge_error_rate() -> None:
    """2,000 judge passes (10% wrong) and 200 judge failures (half of them wrong): the judge is
    wrong on about 13.6% of all logs. An equal-allocation queue of 200 over-represents failures:
    unweighted it says about 30%; weighted, it recovers the population's rate."""
    rng = np.random.default_rng(5)
    population = [Judged(f"p{i}", True, 0.9, None) for i in range(2000)]
    population += [Judged(f"f{i}", False, 0.1, None) for i in range(200)]
    wrong = {j.log_id: rng.random() < (0.1 if j.passed else 0.5) for j in population}
    truth = sum(wrong.values()) / len(population)
    drawn, design = draw(population, 200, seed="planted")
    assert {k: (s.population, s.sample) for k, s in design.items()} == {
        "fail": (200, 100), "pass": (2000, 100)}  # fmt: skip
    pairs = [Pair(d.log_id, bool(d.judge_passed), None, bool(d.judge_passed) != wrong[d.log_id],
                  None, 1 / d.inclusion_probability) for d in drawn]  # fmt: skip
    weighted = agreement(pairs, "faithfulness", "v1")
    unweighted = agreement([p._replace(weight=1.0) for p in pairs], "faithfulness", "v1")
    assert weighted.accuracy.low <= 1 - truth <= weighted.accuracy.high
    assert (1 - unweighted.accuracy.value) - truth > 0.08  # type: ignore[operator]
    assert len({d.position for d in drawn}) == 200  # a shuffled order, no run of one verdict


def test_an_uncertain_share_is_its_own_weighted_stratum() -> None:
    population = [Judged(f"l{i}", i % 3 != 0, (i % 100) / 100, None) for i in range(3000)]
    drawn, design = draw(population, 100, seed="u", threshold=0.5, uncertain_share=0.3)
    assert design["uncertain"].sample == 30
    uncertain = [d for d in drawn if d.stratum == "uncertain"]
    assert all(abs(d.judge_score - 0.5) <= 0.1 for d in uncertain)  # type: ignore[operator]
    assert uncertain[0].inclusion_probability == pytest.approx(30 / design["uncertain"].population)


def test_the_suggested_threshold_maximises_kappa() -> None:
    # People pass exactly the logs the judge scored 0.6 or more; the judge's threshold is 0.8.
    scores = [0.1, 0.3, 0.5, 0.6, 0.7, 0.75, 0.9, 0.95]
    pairs = [Pair(f"l{i}", s >= 0.8, s, s >= 0.6, None, 1.0) for i, s in enumerate(scores)]
    found = suggest_threshold(pairs, current=0.8)
    assert found is not None and found.suggested == pytest.approx(0.6)
    assert found.suggested_kappa == pytest.approx(1.0)
    assert found.current_kappa is not None and found.current_kappa < 1.0
