"""The drift figure's estimator: KL over the union of both sides' listed tokens."""

from __future__ import annotations

import math

import pytest
from scipy.stats import entropy

from prefloop_server.qa.drift import kl_top_k


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
