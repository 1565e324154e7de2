"""`veriml chain ...`: deploy veriml's contracts, register nodes and models, anchor, show status, build evidence."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from veriml.cli.errors import one_line_errors
from veriml.errors import InvalidInput, NotFound

chain_app = typer.Typer(
    help="The chain: node registry and stake, log anchoring, slashing, models and their verifiers.",
    no_args_is_help=True,
)
console = Console()

Rpc = Annotated[str, typer.Option("--rpc", envvar="VERIML_CHAIN_RPC", help="the chain's JSON-RPC URL")]
DeploymentFile = Annotated[
    Path,
    typer.Option("--deployment", envvar="VERIML_CHAIN_DEPLOYMENT", help="JSON from `veriml chain deploy`"),
]
KeyFile = Annotated[
    Path | None,
    typer.Option(
        "--key-file", envvar="VERIML_CHAIN_KEY_FILE", help="Ethereum key file (hex, 0600) [or VERIML_CHAIN_KEY]"
    ),
]
ETHER = 10**18
EMBEDDED_CHAIN_ID = 131277322940537  # eth-tester's (the embedded chain of `veriml devnet up`)
ANVIL_CHAIN_ID = 31337
LOCAL_CHAIN_IDS = (EMBEDDED_CHAIN_ID, ANVIL_CHAIN_ID)


def _home():  # type: ignore[no-untyped-def]
    from veriml.cli.app import home

    return home()


def _contracts(rpc: str, deployment: Path) -> Any:
    from veriml.chain import Chain, Contracts, Deployment

    loaded = Deployment.load(deployment)
    return Contracts(Chain.connect(rpc, loaded.chain_id), loaded)


def _ether(text: str, what: str) -> int:
    """'0.1' (ether) or '100000000000000000wei' to wei."""
    try:
        if text.endswith("wei"):
            return int(text[:-3])
        from decimal import Decimal

        return int(Decimal(text) * ETHER)
    except (ValueError, ArithmeticError) as exc:
        raise InvalidInput(f"{what} {text!r}: expected ether (0.1) or wei (100wei)") from exc


@chain_app.command("deploy")
@one_line_errors
def deploy(
    rpc: Rpc,
    key_file: KeyFile = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="where to write the deployment JSON")] = Path("chain.json"),
    chain_id: Annotated[int | None, typer.Option(help="refuse a chain with another id")] = None,
    min_stake: Annotated[str, typer.Option(help="minimum node stake, in ether")] = "0.1",
    exit_delay: Annotated[int, typer.Option(help="seconds between an exit request and the withdrawal")] = 7 * 86400,
    reporter_share: Annotated[float, typer.Option(help="share of a slashed stake paid to the reporter")] = 0.5,
    max_anchor_gap: Annotated[
        int, typer.Option(help="seconds a node may go without anchoring before anyone can report it stale")
    ] = 86400,
) -> None:
    """Build the Vyper contracts from source and deploy the model registry and the node registry.

    Example: veriml chain deploy --rpc http://127.0.0.1:8545 --key-file deployer.key --out chain.json
    """
    from veriml.chain import Chain, load_account
    from veriml.chain import deploy as deploy_contracts

    if not 0 <= reporter_share <= 1:
        raise InvalidInput(f"--reporter-share {reporter_share}: must be between 0 and 1")
    chain = Chain.connect(rpc, chain_id)
    account = load_account(key_file=key_file)
    with console.status("compiling and deploying the contracts"):
        deployment = deploy_contracts(
            chain,
            account,
            _ether(min_stake, "--min-stake"),
            exit_delay,
            round(reporter_share * 10000),
            max_anchor_gap,
        )
    deployment.save(out)
    console.print(f"node registry:  {deployment.node_registry}")
    console.print(f"model registry: {deployment.model_registry}")
    console.print(f"chain id {deployment.chain_id}; written to {out}")


@chain_app.command("register")
@one_line_errors
def register(
    rpc: Rpc,
    endpoint: Annotated[str, typer.Option(help="the node's public URL")],
    deployment: DeploymentFile = Path("chain.json"),
    key_file: KeyFile = None,
    stake: Annotated[str, typer.Option(help="stake, in ether")] = "0.1",
) -> None:
    """Register this home's node (its Ed25519 key and log origin) with a stake, from an Ethereum account.

    A node with `chain_rpc` in its config does this itself when it starts.

    Example: veriml chain register --rpc http://127.0.0.1:8545 --endpoint https://node1.example --stake 0.5
    """
    from veriml.chain import load_account
    from veriml.identity import SigningKey

    home = _home()
    if not home.node_key_path.is_file():
        raise InvalidInput(f"no node key at {home.node_key_path}: create one with `veriml keygen --node`")
    key = SigningKey.load(home.node_key_path)
    contracts = _contracts(rpc, deployment)
    account = load_account(key_file=key_file)
    contracts.register(account, key, endpoint, _ether(stake, "--stake"))
    console.print(f"registered {key.public.name} from {account.address} with {stake} ether at {endpoint}")


@chain_app.command("register-model")
@one_line_errors
def register_model(
    ref: Annotated[str, typer.Argument(help="owner/name@N or a manifest id held in this home")],
    rpc: Rpc,
    deployment: DeploymentFile = Path("chain.json"),
    key_file: KeyFile = None,
    verifier: Annotated[str | None, typer.Option(help="address of the model's EZKL verifier contract")] = None,
) -> None:
    """Register a model version on chain from its signed manifest, which must name this key's account (publish
    with a chain account): the contract hashes the manifest into its id and reads the account and exactness
    from it. Optionally its EZKL verifier. Slashing for equivocation applies to exact-policy models only.

    Example: veriml chain register-model alice/mnist@1 --rpc http://127.0.0.1:8545 --verifier 0x5FbD...
    """
    from veriml.chain import load_account
    from veriml.service import Service

    with Service(_home()) as service:
        manifest = service.resolve(ref)
    exact = manifest.body.policy.kind == "exact"
    contracts = _contracts(rpc, deployment)
    contracts.register_model(load_account(key_file=key_file), manifest, verifier)
    console.print(f"registered {manifest.body.ref} ({manifest.id}) as {'exact' if exact else 'tolerance'}")


@chain_app.command("anchor")
@one_line_errors
def anchor(
    rpc: Rpc,
    node: Annotated[str, typer.Option("--node", help="the node's URL: its checkpoint and tiles are read")],
    deployment: DeploymentFile = Path("chain.json"),
    key_file: KeyFile = None,
) -> None:
    """Anchor a node's latest checkpoint now, with the consistency proof from its previous anchor (computed from
    the node's tiles). Nodes on a chain do this on their own cadence.

    Example: veriml chain anchor --rpc http://127.0.0.1:8545 --node http://127.0.0.1:8700 --key-file node.key
    """
    from veriml.chain import load_account
    from veriml.chain.anchor import AnchorSource, anchor_once
    from veriml.tlog.tile_reader import TileLog

    contracts = _contracts(rpc, deployment)
    account = load_account(key_file=key_file)
    on_chain = contracts.node(account.address)
    with TileLog(node, 0) as reader:
        latest = reader.checkpoint()
        if latest.checkpoint.origin != on_chain.origin:
            raise InvalidInput(f"{node} serves log {latest.checkpoint.origin}, not {on_chain.origin} of this account")

        def consistency(old: int, new: int) -> list[bytes]:
            with TileLog(node, new) as sized:
                return sized.consistency_proof(old)

        done = anchor_once(contracts, account, AnchorSource(lambda: latest, consistency))
    if done is None:
        console.print(f"nothing to anchor: {on_chain.anchored_size} entries anchored already")
    else:
        console.print(f"anchored tree size {done[1]} (previous anchor {done[0]})")


@chain_app.command("status")
@one_line_errors
def status(
    rpc: Rpc,
    deployment: DeploymentFile = Path("chain.json"),
    as_json: Annotated[bool, typer.Option("--json", help="print chain id, contracts and nodes as JSON")] = False,
) -> None:
    """List the registered nodes: account, log origin, endpoint, stake, anchored size, state.

    Example: veriml chain status --rpc http://127.0.0.1:8545 --deployment chain.json --json
    """
    contracts = _contracts(rpc, deployment)
    nodes = list(contracts.nodes())
    if as_json:
        print(json.dumps({
            "chain_id": contracts.deployment.chain_id,
            "node_registry": contracts.deployment.node_registry,
            "model_registry": contracts.deployment.model_registry,
            "nodes": [{"account": n.account, "origin": n.origin, "endpoint": n.endpoint, "stake_wei": n.stake,
                       "anchored_size": n.anchored_size, "active": n.active} for n in nodes],
        }, indent=2))  # fmt: skip
        return
    # Fits 80 columns: origin and endpoint share a cell, accounts are shortened; --json prints them whole.
    table = Table("node: log origin, endpoint", "account", "stake", "anchored", "state")
    for column in table.columns[1:]:
        column.no_wrap = True
    table.columns[0].overflow = "fold"
    for node in nodes:
        state = "active" if node.active else "exiting"
        table.add_row(Text(f"{node.origin}\n{node.endpoint}"), f"{node.account[:6]}…{node.account[-4:]}",
                      f"{node.stake / ETHER:g} ETH", str(node.anchored_size), state)  # fmt: skip
    console.print(f"chain id {contracts.deployment.chain_id}")
    console.print(f"node registry {contracts.deployment.node_registry}")
    console.print(table)


key_app = typer.Typer(help="Ethereum keys for a node or a user on the chain.", no_args_is_help=True)
chain_app.add_typer(key_app, name="key")


@key_app.command("new")
@one_line_errors
def key_new(
    out: Annotated[Path, typer.Option("--out", "-o", help="where to write the key (hex, mode 0600)")] = Path("eth.key"),
) -> None:
    """Create an Ethereum key in a 0600 file (refusing to overwrite one) and print its address; fund it with
    `veriml chain fund`, and give it to a node as `chain_key`.

    Example: veriml chain key new --out node1/eth.key
    """
    from veriml.chain.connection import new_account_file

    if out.exists():
        raise InvalidInput(f"key file {out}: already exists (refusing to overwrite a key)")
    account = new_account_file(out)
    console.print(f"wrote {out}", markup=False)
    print(f"address: {account.address}")


@chain_app.command("fund")
@one_line_errors
def fund(
    to: Annotated[str, typer.Argument(help="a 0x address, or a key file made by `veriml chain key new`")],
    rpc: Rpc,
    amount: Annotated[str, typer.Option(help="ether to send (1.5) or wei (100wei)")] = "1",
    key_file: KeyFile = None,
) -> None:
    """Send ether to an account, from --key-file (or VERIML_CHAIN_KEY); on a local chain (the embedded one of
    `veriml devnet up`, or anvil) without either, from the chain's public faucet account.

    Example: veriml chain fund node1/eth.key --rpc http://127.0.0.1:8545 --amount 1
    """
    import os

    from veriml.chain import Chain, load_account
    from veriml.chain.connection import ANVIL_KEY, EMBEDDED_KEYS

    wei = _ether(amount, "--amount")
    address = to
    if not to.startswith("0x"):
        address = load_account(key_file=Path(to)).address
    chain = Chain.connect(rpc)
    if key_file is not None or os.environ.get("VERIML_CHAIN_KEY"):
        payer = load_account(key_file=key_file)
    elif chain.chain_id in LOCAL_CHAIN_IDS:
        payer = load_account(EMBEDDED_KEYS[0] if chain.chain_id == EMBEDDED_CHAIN_ID else ANVIL_KEY)
    else:
        raise InvalidInput(f"chain id {chain.chain_id} is not a local chain: pass --key-file (the paying account)")
    chain.fund(payer, address, wei)
    balance = chain.w3.eth.get_balance(chain.w3.to_checksum_address(address))
    print(f"funded {address} with {wei / ETHER:g} ether from {payer.address}; balance {balance / ETHER:g} ether")


@chain_app.command("evidence")
@one_line_errors
def evidence(
    first: Annotated[Path, typer.Argument(help="a bundle from the node")],
    second: Annotated[Path, typer.Argument(help="another bundle from the same node: same input, other output")],
    rpc: Rpc,
    deployment: DeploymentFile = Path("chain.json"),
    out: Annotated[Path, typer.Option("--out", "-o", help="where to write the evidence")] = Path("evidence.json"),
    submit: Annotated[bool, typer.Option("--submit", help="send it to the contract: slash the node")] = False,
    key_file: KeyFile = None,
) -> None:
    """Build slashing evidence from two bundles of one node (same exact-policy model, input and runtime, different
    outputs): inclusion proofs under the node's anchored root, checked here; with --submit, slash.

    Example: veriml chain evidence a.bundle.json b.bundle.json --rpc http://127.0.0.1:8545 --submit
    """
    from veriml.chain import load_account
    from veriml.chain.evidence import build_evidence
    from veriml.receipts import Bundle

    contracts = _contracts(rpc, deployment)
    built = build_evidence(contracts, Bundle.load(first), Bundle.load(second))
    built.save(out)
    console.print(f"evidence against {built.node} written to {out} (entries {built.first.index} and"
                  f" {built.second.index} under anchored size {built.first.tree_size})")  # fmt: skip
    if submit:
        receipt = built.submit(contracts, load_account(key_file=key_file))
        console.print(f"slashed {built.node} (gas {receipt['gasUsed']:,})")


@chain_app.command("shadow-evidence")
@one_line_errors
def shadow_evidence(
    bundle: Annotated[Path, typer.Argument(help="a bundle whose log proof names a checkpoint the node signed")],
    rpc: Rpc,
    deployment: DeploymentFile = Path("chain.json"),
    submit: Annotated[bool, typer.Option("--submit", help="send it to the contract: slash the node")] = False,
    key_file: KeyFile = None,
) -> None:
    """Check a bundle's signed checkpoint against what its node anchored; if they contradict (same size and
    another root, or another entry at the bundle's index in the anchored tree), build the evidence and, with
    --submit, slash the node for a shadow history.

    Example: veriml chain shadow-evidence a.bundle.json --rpc http://127.0.0.1:8545 --submit
    """
    from veriml.chain import load_account
    from veriml.chain.evidence import build_shadow_evidence
    from veriml.receipts import Bundle

    contracts = _contracts(rpc, deployment)
    built = build_shadow_evidence(contracts, Bundle.load(bundle))
    console.print(f"shadow history of {built.node}: signed size {built.checkpoint.size}, anchored size"
                  f" {built.fork.anchored_size}")  # fmt: skip
    if submit:
        receipt = built.submit(contracts, load_account(key_file=key_file))
        console.print(f"slashed {built.node} (gas {receipt['gasUsed']:,})")


@chain_app.command("report-stale")
@one_line_errors
def report_stale(
    node: Annotated[str, typer.Argument(help="the node's 0x account")],
    rpc: Rpc,
    deployment: DeploymentFile = Path("chain.json"),
    key_file: KeyFile = None,
) -> None:
    """Report a node that has not anchored within the registry's max anchor gap: it is delisted and its exit
    starts (its stake stays slashable for the exit delay).

    Example: veriml chain report-stale 0x70997970C51812dc3A010C7d01b50e0d17dc79C8 --rpc http://127.0.0.1:8545
    """
    from veriml.chain import load_account

    contracts = _contracts(rpc, deployment)
    contracts.report_stale(load_account(key_file=key_file), node)
    console.print(f"reported {node} stale: delisted, exit started")


@chain_app.command("deploy-verifier")
@one_line_errors
def deploy_verifier(
    ref: Annotated[str, typer.Argument(help="owner/name@N, set up with `veriml zk setup`")],
    rpc: Rpc,
    deployment: DeploymentFile = Path("chain.json"),
    key_file: KeyFile = None,
    register: Annotated[
        bool, typer.Option("--register/--no-register", help="also register the model with this verifier")
    ] = True,
) -> None:
    """Deploy EZKL's Solidity verifier for a model version (compiled here with solcjs) and register it beside the
    model's manifest id, so contracts can accept the model's outputs with a proof.

    Example: veriml chain deploy-verifier alice/mnist@1 --rpc http://127.0.0.1:8545 --key-file publisher.key
    """
    import tempfile

    from veriml.chain import load_account
    from veriml.chain.proofs import deploy_verifier as deploy_verifier_contract
    from veriml.service import Service

    contracts = _contracts(rpc, deployment)
    account = load_account(key_file=key_file)
    with Service(_home()) as service, tempfile.TemporaryDirectory() as tmp:
        manifest = service.resolve(ref)
        source = service.zk_evm_verifier(ref, Path(tmp) / "Verifier.sol")
        with console.status("compiling (solcjs) and deploying the verifier"):
            address = deploy_verifier_contract(contracts.chain, account, source)
    console.print(f"verifier for {manifest.body.ref}: {address}")
    if register:
        try:
            contracts.model(manifest.id)
        except NotFound:
            contracts.register_model(account, manifest, address)
        else:
            contracts.set_verifier(account, manifest.id, address)
        console.print(f"registered beside manifest {manifest.id}")


from veriml.cli.dispute_commands import dispute_app  # noqa: E402  (it reads this module's options)

chain_app.add_typer(dispute_app, name="dispute")
