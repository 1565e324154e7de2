"""The dispute economics model (veriml.sim) against its closed forms, on small runs: detection matches
1 - (1 - p)^n, the committee draw matches the multinomial verdict probabilities, the Monte Carlo profit matches
the analytic one, and the default parameters make every cheating strategy lose money."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from veriml.sim.model import (
    STRATEGIES,
    Economy,
    _committee_votes,
    break_even_audit_rate,
    chain_cost_per_inference,
    detection_analytic,
    detection_simulated,
    framing_profit,
    profit_analytic,
    simulate_strategy,
    verdict_probabilities,
)


def test_detection_matches_the_analytic_rate():
    rng = np.random.default_rng(1)
    cheats = np.array([1, 5, 20, 60])
    for p in (0.02, 0.1):
        simulated = detection_simulated(p, cheats, 20_000, rng)
        assert np.allclose(simulated, detection_analytic(p, cheats), atol=0.01)


def test_committee_draws_match_the_verdict_probabilities():
    economy = Economy(nodes=10_000, committee=5, miss_rate=0.05)
    wrong, right = _committee_votes(economy, 50_000, cartel=3_000, rng=np.random.default_rng(2))
    expected = verdict_probabilities(5, 0.3, 0.05)
    assert abs(wrong.mean() - expected[0]) < 0.01 and abs(right.mean() - expected[1]) < 0.01
    assert sum(expected) == pytest.approx(1.0)
    assert verdict_probabilities(3, 0.0, 0.0) == (1.0, 0.0, 0.0)


def test_monte_carlo_profit_matches_the_closed_form_and_cheating_loses_at_the_defaults():
    economy = Economy(nodes=2_000)
    rng = np.random.default_rng(3)
    for strategy in STRATEGIES:
        result = simulate_strategy(economy, strategy, rng)
        assert result["profit"] == pytest.approx(result["analytic"], rel=0.05), strategy.name
        assert result["profit"] < 0 and result["slashed"] > 0.99, strategy.name
    assert framing_profit(economy) < 0


def test_safety_breaks_where_the_gain_outweighs_the_expected_slash():
    economy = Economy()
    assert profit_analytic(replace(economy, gain=0.01), STRATEGIES[1]) > 0  # gain 1e-2 per cheat, stake 0.1
    assert framing_profit(replace(economy, cheat_share=0.45)) > 0  # a cartel holding most committees
    p = break_even_audit_rate(economy)
    assert profit_analytic(replace(economy, audit_rate=p * 0.8), STRATEGIES[1]) > 0
    assert profit_analytic(replace(economy, audit_rate=p * 1.25), STRATEGIES[1]) < 0


def test_chain_cost_per_inference_falls_with_the_rate():
    cost = chain_cost_per_inference(Economy(), np.array([0.1, 1.0, 10.0, 100.0, 1000.0]), 10.0, 0.1)
    assert np.all(np.diff(cost) < 0) and cost[-1] < cost[0] / 1000
