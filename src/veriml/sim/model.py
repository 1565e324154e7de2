"""The rules of contracts/Disputes.vy as a vectorized Monte Carlo model, and their closed forms.

A cheating node serves `inferences` results over the horizon and cheats on each with probability `cheat_prob`
(gaining `gain` ether each: compute saved, or a bribe). Every result is re-executed by an auditor with
probability `audit_rate` (the HMAC sample of veriml.node.audit: secret, so a cheater's guess of which requests
are audited is right no more often than `predict_advantage` says). An audited cheat becomes a dispute; a
committee of K nodes drawn uniformly from all nodes votes: honest members reveal the true output (each missing
its reveal with probability `miss_rate`), members of a colluding cartel reveal the node's claim. As in `resolve`:
more than K/2 true outputs slash the node's whole stake; more than K/2 claims make it "node right" (the
challenger's bond goes to the node and the majority); anything else is no verdict. A slashed node serves no
more. Gas comes from benchmarks/bench_chain.py (anvil)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

# Gas per step, measured with benchmarks/bench_chain.py --chain anvil --no-zk (committee of 5, 16-hash proofs).
GAS = {
    "commit_open": 44_099,
    "open": 371_893,
    "draw": 308_167,
    "commit_vote": 63_089,
    "reveal_vote": 80_496,
    "resolve": 357_454,
    "claim": 28_711,
    "anchor": 117_585,  # 1000 -> 2000, a 9-hash consistency proof
    "heartbeat": 52_934,
}


@dataclass(frozen=True)
class Economy:
    nodes: int = 10_000
    cheat_share: float = 0.10  # share of nodes that cheat (and, for a cartel, collude)
    audit_rate: float = 0.05  # p: chance that a given result is re-executed by some auditor
    committee: int = 5  # K
    stake: float = 0.1  # ether at stake per node (the registry's minimum)
    bond: float = 0.01  # ether a challenger posts
    reporter_share: float = 0.50  # of a slashed stake, to the challenger
    committee_share: float = 0.25  # of a slashed stake, shared by the majority
    absent_share: float = 0.10  # of the minimum stake, from a member missing its reveal or voting against a verdict
    node_share: float = 0.50  # of a lost bond, to the disputed node
    gain: float = 2e-5  # ether a cheat gains per cheated inference
    inferences: int = 100_000  # results each node serves over the horizon
    latency: int = 600  # results served between a cheat and its slash (audit lag and dispute windows)
    miss_rate: float = 0.01  # chance an honest member misses its reveal
    predict_advantage: float = 0.0  # how much a cheater's guess lowers the audit chance of its cheats (0: HMAC)
    gas_price_gwei: float = 1.0

    def gas_ether(self, gas: float) -> float:
        return gas * self.gas_price_gwei * 1e-9


@dataclass(frozen=True)
class Strategy:
    name: str
    cheat_prob: float  # q: share of results cheated
    targeted: bool = False  # cheats only where it guesses no audit (gains predict_advantage)
    colluding: bool = False  # the cheaters form a cartel that votes for each other on committees


STRATEGIES = (
    Strategy("always", 1.0),
    Strategy("sometimes (10%)", 0.1),
    Strategy("unaudited-looking (10%)", 0.1, targeted=True),
    Strategy("colluding cartel, always", 1.0, colluding=True),
)


def detection_analytic(audit_rate: float, cheats: np.ndarray | int) -> np.ndarray:
    """1 - (1 - p)^n: the chance that at least one of n cheats is audited."""
    return 1.0 - (1.0 - audit_rate) ** np.asarray(cheats, dtype=float)


def detection_simulated(audit_rate: float, cheats: np.ndarray, trials: int, rng: np.random.Generator) -> np.ndarray:
    """For each n in `cheats`: the share of `trials` nodes, each cheating n times with every result audited
    independently with probability p, of which at least one cheat was audited."""
    cheats = np.asarray(cheats)
    audited = rng.random((trials, int(cheats.max()))) < audit_rate
    first = np.where(audited.any(axis=1), audited.argmax(axis=1), np.iinfo(np.int64).max)  # first audited cheat
    return (first[None, :] < cheats[:, None]).mean(axis=1)


def verdict_probabilities(committee: int, cartel: float, miss_rate: float) -> tuple[float, float, float]:
    """(node wrong, node right, no verdict) for a dispute on a wrong node: each member is a cartel member with
    probability `cartel` (reveals the node's claim), else honest (reveals the true output unless it misses)."""
    wrong = right = 0.0
    honest_reveal = (1 - cartel) * (1 - miss_rate)
    honest_miss = (1 - cartel) * miss_rate
    for c in range(committee + 1):
        for h in range(committee - c + 1):
            m = committee - c - h
            chance = math.factorial(committee) / (math.factorial(c) * math.factorial(h) * math.factorial(m))
            chance *= cartel**c * honest_reveal**h * honest_miss**m
            if 2 * h > committee:
                wrong += chance
            elif 2 * c > committee:
                right += chance
    return wrong, right, 1.0 - wrong - right


def _committee_votes(economy: Economy, disputes: int, cartel: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Draw `disputes` committees from all nodes (uniformly; nodes 0..cartel-1 are the cartel) and return
    (node wrong, node right) per dispute, as `resolve` decides."""
    members = rng.integers(0, economy.nodes, size=(disputes, economy.committee))
    colluders = members < cartel
    revealed = ~colluders & (rng.random(members.shape) >= economy.miss_rate)
    true_votes, claims = revealed.sum(axis=1), colluders.sum(axis=1)
    return 2 * true_votes > economy.committee, 2 * claims > economy.committee


def simulate_strategy(economy: Economy, strategy: Strategy, rng: np.random.Generator, rounds: int = 64) -> dict:
    """Monte Carlo over every cheating node of the network: its cheats, whether it was slashed, its profit."""
    n = max(1, int(economy.nodes * economy.cheat_share))
    q = strategy.cheat_prob
    p = economy.audit_rate * (1 - economy.predict_advantage if strategy.targeted else 1.0)
    hit_rate = q * p  # chance that a given result is a cheat that gets audited
    q_unaudited = q * (1 - p) / (1 - hit_rate)  # chance of a cheat, given the result was not an audited cheat
    cartel = n if strategy.colluding else 0
    served = np.zeros(n, dtype=np.int64)
    cheats = np.zeros(n, dtype=np.int64)
    slashed = np.zeros(n, dtype=bool)
    disputes = np.zeros(n, dtype=np.int64)
    node_right = np.zeros(n, dtype=np.int64)
    active = np.ones(n, dtype=bool)
    for _ in range(rounds):
        idx = np.flatnonzero(active)
        if idx.size == 0 or hit_rate == 0:
            break
        until = served[idx] + rng.geometric(hit_rate, size=idx.size)  # the next audited cheat
        hit = until <= economy.inferences
        before = np.minimum(until, economy.inferences + 1) - 1 - served[idx]
        cheats[idx] += rng.binomial(before, q_unaudited) + hit
        wrong = np.zeros(idx.size, dtype=bool)
        right = np.zeros(idx.size, dtype=bool)
        if hit.any():
            w, r = _committee_votes(economy, int(hit.sum()), cartel, rng)
            wrong[hit], right[hit] = w, r
        disputes[idx] += hit
        node_right[idx] += right
        # slashed after the dispute's latency, serving (and cheating) meanwhile
        tail = np.where(wrong, np.minimum(economy.latency, economy.inferences - until), 0)
        cheats[idx] += rng.binomial(np.maximum(tail, 0), q)
        slashed[idx] |= wrong
        served[idx] = np.where(hit, until, economy.inferences)
        active[idx] = hit & ~wrong & (served[idx] < economy.inferences)
    profit = economy.gain * cheats - economy.stake * slashed + economy.bond * node_right
    return {"strategy": strategy.name, "nodes": n, "cheats": cheats.mean(), "caught": (disputes > 0).mean(),
            "slashed": slashed.mean(), "profit": profit.mean(), "profit_std": profit.std(),
            "analytic": profit_analytic(economy, strategy)}  # fmt: skip


def profit_analytic(economy: Economy, strategy: Strategy) -> float:
    """Expected profit of one cheating node: each result is an audited cheat with probability h = q p, which
    slashes it with probability P(wrong), so it serves min(Geometric(h P(wrong)), T) results, cheating on q
    of them, plus q * latency while its dispute runs; a cartel also gets the bond of each node-right verdict."""
    q = strategy.cheat_prob
    p = economy.audit_rate * (1 - economy.predict_advantage if strategy.targeted else 1.0)
    cartel = economy.cheat_share if strategy.colluding else 0.0
    wrong, right, _ = verdict_probabilities(economy.committee, cartel, economy.miss_rate)
    x = q * p * wrong
    horizon = economy.inferences
    served = horizon if x == 0 else (1 - (1 - x) ** horizon) / x
    slashed = 1 - (1 - x) ** horizon
    return float(economy.gain * q * (served + economy.latency * slashed) - economy.stake * slashed
                 + economy.bond * q * p * right * served)  # fmt: skip


def framing_profit(economy: Economy) -> float:
    """A cartel (cheat_share of the nodes) disputes an honest node and votes it wrong: it wins 75% of the stake
    when it holds a committee majority; otherwise it loses the bond, and its members voting against the verdict
    lose absent_share of the minimum stake each."""
    f, k = economy.cheat_share, economy.committee
    majority = sum(math.comb(k, c) * f**c * (1 - f) ** (k - c) for c in range(k // 2 + 1, k + 1))
    members_lost = k * f * economy.absent_share * economy.stake  # expected cartel members on the committee
    win = (economy.reporter_share + economy.committee_share) * economy.stake
    gas = economy.gas_ether(GAS["commit_open"] + GAS["open"] + k * f * (GAS["commit_vote"] + GAS["reveal_vote"]))
    return majority * win - (1 - majority) * (economy.bond + members_lost) - gas


def honest_roles(economy: Economy) -> dict[str, float]:
    """Net ether per dispute for each honest role, gas included."""
    k = economy.committee
    vote_gas = economy.gas_ether(GAS["commit_vote"] + GAS["reveal_vote"])
    open_gas = economy.gas_ether(GAS["commit_open"] + GAS["open"] + GAS["claim"])
    return {
        "challenger, node wrong": economy.reporter_share * economy.stake - open_gas,
        "frivolous challenger (node right)": -economy.bond - open_gas,
        "committee member in the majority, node wrong": economy.committee_share * economy.stake / k - vote_gas,
        "committee member in the majority, node right": (1 - economy.node_share) * economy.bond / k - vote_gas,
        "member that does not reveal": -economy.absent_share * economy.stake,
        "lazy member voting the node's claim, node wrong": -economy.absent_share * economy.stake - vote_gas,
    }


def dispute_gas(committee: int) -> int:
    return (GAS["commit_open"] + GAS["open"] + GAS["draw"] + committee * (GAS["commit_vote"] + GAS["reveal_vote"])
            + GAS["resolve"] + 2 * GAS["claim"])  # fmt: skip


def chain_cost_per_inference(economy: Economy, rate: np.ndarray, anchor_interval: float,
                             disputes_per_day: float = 0.0) -> np.ndarray:  # fmt: skip
    """Gas per inference for one node serving `rate` inferences/s: an anchor at each interval in which its log
    grew (1 - e^(-rate I) of them), a heartbeat twice a day, and `disputes_per_day` whole disputes. A cheater is
    slashed at its first lost dispute, so disputes grow with the number of cheaters, not with the load."""
    rate = np.asarray(rate, dtype=float)
    anchors = (1 - np.exp(-rate * anchor_interval)) / anchor_interval * GAS["anchor"] + 2 / 86400 * GAS["heartbeat"]
    disputes = disputes_per_day / 86400 * dispute_gas(economy.committee)
    return (anchors + disputes) / rate


def break_even_audit_rate(economy: Economy, strategy: Strategy = STRATEGIES[1]) -> float:
    """The smallest audit rate at which the strategy's expected profit is not positive (bisection)."""
    low, high = 1e-7, 1.0
    if profit_analytic(replace(economy, audit_rate=high), strategy) > 0:
        return float("nan")
    for _ in range(60):
        mid = math.sqrt(low * high)
        if profit_analytic(replace(economy, audit_rate=mid), strategy) > 0:
            low = mid
        else:
            high = mid
    return high
