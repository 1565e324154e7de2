"""Economics of the dispute game at scale: a vectorized (numpy) Monte Carlo model of many nodes under the rules of
contracts/Disputes.vy and NodeRegistry.vy — audit sampling, committee draws, majority verdicts, stakes, bonds,
rewards and gas. It models the contracts' rules; it runs no consensus of its own (benchmarks/simulate_network.py
draws the figures, docs/economics.md reads them)."""

from veriml.sim.model import (
    GAS,
    Economy,
    Strategy,
    chain_cost_per_inference,
    detection_analytic,
    detection_simulated,
    honest_roles,
    profit_analytic,
    simulate_strategy,
    verdict_probabilities,
)

__all__ = [
    "GAS",
    "Economy",
    "Strategy",
    "chain_cost_per_inference",
    "detection_analytic",
    "detection_simulated",
    "honest_roles",
    "profit_analytic",
    "simulate_strategy",
    "verdict_probabilities",
]
