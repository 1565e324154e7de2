"""Does cheating pay? The dispute game's economics for a 10,000-node network (veriml.sim models the rules of
contracts/Disputes.vy; gas from benchmarks/bench_chain.py).

1. Detection: the share of cheating nodes caught after n cheats, simulated, against 1 - (1 - p)^n.
2. Expected profit of each cheating strategy at the default parameters (goal: negative for all), simulated over
   every cheating node of the network and in closed form; framing an honest node by a cartel; honest roles.
3. Chain cost per inference as the inference rate grows (batched anchoring: goal -> 0).
4. Where safety breaks: audit rate against gain/stake, and cartel share against committee size.

Plots (matplotlib, Agg) into docs/economics/*.png and the tables into docs/economics/tables.md.
Run: .venv/bin/python benchmarks/simulate_network.py [--nodes 10000] [--seed 7] [--out docs/economics]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from veriml.sim.model import (
    GAS,
    STRATEGIES,
    Economy,
    Strategy,
    break_even_audit_rate,
    chain_cost_per_inference,
    detection_analytic,
    detection_simulated,
    dispute_gas,
    framing_profit,
    honest_roles,
    profit_analytic,
    simulate_strategy,
    verdict_probabilities,
)


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def detection(economy: Economy, rng: np.random.Generator, out: Path) -> str:
    cheats = np.array([1, 2, 5, 10, 20, 50, 100, 200])
    rows = []
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for p, color in ((0.01, "tab:blue"), (0.05, "tab:orange"), (0.1, "tab:green")):
        simulated = detection_simulated(p, cheats, economy.nodes, rng)
        analytic = detection_analytic(p, cheats)
        grid = np.arange(1, 201)
        ax.plot(grid, detection_analytic(p, grid), color=color, label=f"1-(1-p)^n, p={p}")
        ax.plot(cheats, simulated, "o", color=color, label=f"simulated, {economy.nodes:,} nodes")
        rows += [[f"{p}", f"{n}", f"{s:.4f}", f"{a:.4f}", f"{abs(s - a):.4f}"]
                 for n, s, a in zip(cheats, simulated, analytic, strict=True)]  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("cheats n by one node")
    ax.set_ylabel("probability the node is caught")
    ax.set_title("Detection: simulated vs analytic")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "detection.png", dpi=120)
    plt.close(fig)
    return table(["audit rate p", "cheats n", "simulated", "1-(1-p)^n", "difference"], rows)


def profits(economy: Economy, rng: np.random.Generator, out: Path) -> str:
    results = [simulate_strategy(economy, strategy, rng) for strategy in STRATEGIES]
    leaked = replace(economy, predict_advantage=0.9)  # if the audit sample were 90% predictable
    results.append(
        {**simulate_strategy(leaked, STRATEGIES[2], rng), "strategy": "unaudited-looking, sample 90% leaked"}
    )
    framing = framing_profit(economy)
    rows = [[r["strategy"], f"{r['nodes']:,}", f"{r['cheats']:,.1f}", f"{r['caught']:.3f}", f"{r['slashed']:.3f}",
             f"{r['profit']:+.5f}", f"{r['analytic']:+.5f}"] for r in results]  # fmt: skip
    rows.append(["cartel frames an honest node (per attempt)", f"{int(economy.nodes * economy.cheat_share):,}", "-",
                 "-", "-", "-", f"{framing:+.5f}"])  # fmt: skip
    fig, ax = plt.subplots(figsize=(7.4, 4.0))
    names = [r["strategy"] for r in results] + ["cartel framing an honest node"]
    values = [r["profit"] for r in results] + [framing]
    colors = ["tab:red" if v > 0 else "tab:blue" for v in values]
    ax.barh(names, values, color=colors)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("expected profit per cheating node (ether; stake 0.1)")
    ax.set_title(f"Cheating does not pay (p={economy.audit_rate}, K={economy.committee}, "
                 f"{economy.cheat_share:.0%} cheaters)")  # fmt: skip
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    fig.savefig(out / "profit.png", dpi=120)
    plt.close(fig)
    roles = [[name, f"{value:+.5f}"] for name, value in honest_roles(economy).items()]
    return (
        table(
            [
                "strategy",
                "cheating nodes",
                "cheats per node",
                "caught",
                "slashed",
                "profit (sim, ether)",
                "profit (analytic)",
            ],
            rows,
        )
        + "\n\nHonest roles, net ether per dispute (gas at "
        + f"{economy.gas_price_gwei:g} gwei):\n\n"
        + table(["role", "net ether"], roles)
    )


def chain_cost(economy: Economy, out: Path) -> str:
    rates = np.logspace(-3, 3, 61)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    rows = []
    for interval, style in ((10.0, "-"), (60.0, "--"), (600.0, ":")):
        cost = chain_cost_per_inference(economy, rates, interval)
        ax.plot(rates, cost, style, color="tab:blue", label=f"anchors every {interval:g} s")
    with_cheats = chain_cost_per_inference(economy, rates, 10.0, disputes_per_day=economy.cheat_share)
    ax.plot(
        rates, with_cheats, "-", color="tab:red", label=f"10 s, and {economy.cheat_share:.0%} of nodes disputed daily"
    )
    for rate in (0.01, 1.0, 100.0, 1000.0):
        gas = float(chain_cost_per_inference(economy, np.array([rate]), 10.0, economy.cheat_share)[0])
        rows.append([f"{rate:g}", f"{gas:,.1f}", f"{economy.gas_ether(gas):.2e}"])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("inferences per second per node")
    ax.set_ylabel("gas per inference")
    ax.set_title("Chain cost per inference -> 0 with batched anchoring")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "chain_cost.png", dpi=120)
    plt.close(fig)
    return table(["inferences/s per node", "gas per inference", f"ether at {economy.gas_price_gwei:g} gwei"], rows)


def safety(economy: Economy, out: Path) -> str:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    audit = np.logspace(-4, 0, 50)
    ratio = np.logspace(-6, -1, 50)  # gain per cheat / stake
    worst = np.zeros((ratio.size, audit.size))
    for i, r in enumerate(ratio):
        for j, p in enumerate(audit):
            e = replace(economy, audit_rate=float(p), gain=float(r * economy.stake))
            worst[i, j] = max(profit_analytic(e, s) for s in STRATEGIES)
    mesh = left.pcolormesh(audit, ratio, np.sign(worst), cmap="coolwarm", shading="auto", vmin=-1, vmax=1)
    left.contour(audit, ratio, worst, levels=[0], colors="black")
    left.plot([economy.audit_rate], [economy.gain / economy.stake], "k*", ms=12, label="defaults")
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("audit rate p")
    left.set_ylabel("gain per cheat / stake")
    left.set_title("Best cheating strategy: red pays, blue does not")
    left.legend(fontsize=7)
    fig.colorbar(mesh, ax=left, ticks=[-1, 1], label="sign of expected profit")
    shares = np.linspace(0.0, 0.6, 61)
    rows = []
    for k in (3, 5, 7, 9):
        e = replace(economy, committee=k)
        cartel = [profit_analytic(replace(e, cheat_share=float(f)), Strategy("cartel", 1.0, colluding=True))
                  for f in shares]  # fmt: skip
        framing = [framing_profit(replace(e, cheat_share=float(f))) for f in shares]
        line = right.plot(shares, cartel, label=f"K={k}: cartel cheating")[0]
        right.plot(shares, framing, "--", color=line.get_color(), label=f"K={k}: cartel framing")
        breaks = [f for f, a, b in zip(shares, cartel, framing, strict=True) if a > 0 or b > 0]
        rows.append([f"{k}", f"{breaks[0]:.2f}" if breaks else "> 0.6",
                     f"{verdict_probabilities(k, economy.cheat_share, economy.miss_rate)[0]:.5f}"])  # fmt: skip
    right.axhline(0, color="black", lw=0.8)
    right.set_yscale("symlog", linthresh=1e-3)
    right.set_xlabel("share of nodes in the colluding cartel")
    right.set_ylabel("expected profit (ether)")
    right.set_title("Collusion: where committees stop protecting")
    right.legend(fontsize=6, ncol=2)
    right.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "safety.png", dpi=120)
    plt.close(fig)
    stakes = [[f"{s:g}", f"{break_even_audit_rate(replace(economy, stake=s)):.2e}"] for s in (0.01, 0.1, 1.0, 10.0)]
    return (
        table(
            [
                "committee K",
                "cartel share where cheating or framing first pays",
                f"P(wrong node slashed) at {economy.cheat_share:.0%} cartel",
            ],
            rows,
        )
        + "\n\nSmallest audit rate at which cheating 10% of the time does not pay (gain "
        + f"{economy.gain:g} ether per cheat):\n\n"
        + table(["stake (ether)", "break-even audit rate"], stakes)
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("docs/economics"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    economy = Economy(nodes=args.nodes)
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    parts = [
        f"Defaults: {economy}\n\nGas per step (bench_chain.py, anvil): {GAS}; a whole dispute with K="
        f"{economy.committee}: {dispute_gas(economy.committee):,} gas.",
        "### Detection\n\n" + detection(economy, rng, args.out),
        "### Expected profit per strategy\n\n" + profits(economy, rng, args.out),
        "### Chain cost per inference (anchors every 10 s)\n\n" + chain_cost(economy, args.out),
        "### Where safety breaks\n\n" + safety(economy, args.out),
    ]
    text = "\n\n".join(parts) + f"\n\n(simulated in {time.perf_counter() - started:.1f} s, seed {args.seed})\n"
    (args.out / "tables.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
