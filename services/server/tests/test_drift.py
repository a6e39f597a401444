"""The drift figure's estimator: KL over the union of both sides' listed tokens."""

from __future__ import annotations

import math

import pytest
from scipy.stats import entropy

from test_gate_rule import paired

from prefloop_server.qa.drift import Measured, kl_top_k, with_drift
from prefloop_server.qa.gate import compare


def logs(probs: dict[int, float]) -> dict[int, float]:
    return {t: math.log(p) for t, p in probs.items()}


def test_identical_distributions_have_no_drift() -> None:
    p = logs({1: 0.7, 2: 0.2, 3: 0.1})
    assert kl_top_k(p, dict(p)) == pytest.approx(0.0, abs=1e-12)


def test_with_every_token_listed_it_is_the_exact_kl() -> None:
    p, q = {1: 0.7, 2: 0.2, 3: 0.1}, {1: 0.4, 2: 0.35, 3: 0.25}
    assert kl_top_k(logs(p), logs(q)) == pytest.approx(entropy([0.7, 0.2, 0.1], [0.4, 0.35, 0.25]))
    assert kl_top_k(logs(q), logs(p)) == pytest.approx(entropy([0.4, 0.35, 0.25], [0.7, 0.2, 0.1]))


def test_a_token_one_side_does_not_list_gets_its_smallest_listed_probability() -> None:
    # The candidate no longer lists live's second token: it counts at the candidate's smallest listed probability.
    live, candidate = logs({1: 0.6, 2: 0.3}), logs({1: 0.5, 3: 0.2})
    support_p = [0.6, 0.3, 0.3]  # tokens 1, 2, 3: live does not list 3, so it gets live's 0.3
    support_q = [0.5, 0.2, 0.2]  # the candidate does not list 2: 0.2
    expected = entropy(support_p, support_q)  # scipy renormalizes both, as the estimator does
    assert kl_top_k(live, candidate) == pytest.approx(expected)
    assert kl_top_k(live, candidate) > kl_top_k(live, logs({1: 0.55, 2: 0.25}))  # a smaller move drifts less


def test_a_probability_of_zero_gives_a_finite_drift_not_an_error() -> None:
    """llama-server sends a probability of 0 as the lowest float; it counts as e^-100 on either side."""
    lowest = -3.4e38
    moved = kl_top_k({1: 0.0, 2: lowest}, {1: lowest, 2: 0.0})
    assert math.isfinite(moved) and moved == pytest.approx(100.0, rel=1e-6)
    assert kl_top_k({1: 0.0, 2: lowest}, {1: 0.0, 2: lowest}) == pytest.approx(0.0, abs=1e-12)


def test_a_drift_that_compared_no_token_is_left_out_not_reported_as_zero() -> None:
    live, candidate = paired(fixed=2, regressed=0, right=1)
    verdict = compare(live, candidate)
    assert with_drift(verdict, Measured({r.question_id: (0.0, 0) for r in live}, 32)).drift is None
    measured = with_drift(verdict, Measured({r.question_id: (0.5, 10) for r in live}, 32)).drift
    assert measured is not None and measured.mean_kl == pytest.approx(0.05) and measured.tokens == 30
