"""The `veriml` command: a thin skin over the library. Each command parses, calls one library function, and
renders the result."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from veriml.cli import chat_command, mcp_command, network_commands, render
from veriml.cli.chain_commands import chain_app
from veriml.cli.errors import fail, one_line_errors
from veriml.cli.input_files import load_input_file
from veriml.cli.log_commands import log_app
from veriml.cli.network_commands import devnet_app, node_app
from veriml.cli.options import Privacy, PublisherPins
from veriml.cli.zk_commands import zk_app
from veriml.codec import Digest, tensors_to_json
from veriml.errors import InvalidInput
from veriml.hub import BlobStore, ComparisonPolicy
from veriml.identity import SigningKey
from veriml.receipts import Bundle, check_privacy
from veriml.service import Home, Service
from veriml.service.home import DEFAULT_PUBLISHER_NAME
from veriml.verify import LEVELS, verify_bundle

app = typer.Typer(
    help="veriml: publish models, run verifiable inference, and check results offline.\n\n"
    "Example: veriml publish mlp.onnx --name alice/mlp --node http://127.0.0.1:8700",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
models_app = typer.Typer(
    help="List, search and show published models: this home's, or a network's with --node.", no_args_is_help=True
)
app.add_typer(models_app, name="models")
app.add_typer(log_app, name="log")
app.add_typer(node_app, name="node")
app.add_typer(devnet_app, name="devnet")
app.add_typer(zk_app, name="zk")
app.add_typer(chain_app, name="chain")
app.command("pin")(network_commands.pin)
app.command("chat")(chat_command.chat)
app.command("mcp")(mcp_command.mcp)

console = Console()
_state: dict[str, Home] = {}


def home() -> Home:
    return _state.get("home") or Home.default()


HomeOption = Annotated[
    Path | None,
    typer.Option("--home", envvar="VERIML_HOME", help="veriml home: keys, blobs, registry [default: ~/.veriml]"),
]


def _print_version(value: bool) -> None:
    if value:
        from veriml import __version__

        print(f"veriml {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    home_dir: HomeOption = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    """Example: veriml --home ./my-home models list"""
    _state["home"] = Home(home_dir) if home_dir is not None else Home.default()


NodeUrl = Annotated[str | None, typer.Option("--node", help="a node's URL: its hub instead of this home's")]


@app.command()
@one_line_errors
def keygen(
    name: Annotated[str, typer.Option(help="key name (C2SP note key name: no spaces or '+')")] = DEFAULT_PUBLISHER_NAME,
    node: Annotated[bool, typer.Option("--node", help="create this home's node key instead")] = False,
    force: Annotated[bool, typer.Option(help="replace an existing key file")] = False,
) -> None:
    """Create an Ed25519 key (mode 0600) and print its verifier key.

    Example: veriml keygen --name alice
    """
    target = home().node_key_path if node else home().publisher_key_path
    key = SigningKey.generate(name)
    key.save(target, overwrite=force)
    console.print(f"wrote {target}")
    console.print(f"key id:       {key.key_id}")
    console.print(f"verifier key: {key.public.vkey}", soft_wrap=True)


@app.command()
@one_line_errors
def publish(
    model: Annotated[Path, typer.Argument(help="the ONNX model file")],
    name: Annotated[str, typer.Option("--name", help="owner/name to publish under")],
    tolerance: Annotated[
        float | None, typer.Option(help="compare outputs within this absolute error instead of bitwise")
    ] = None,
    rtol: Annotated[float, typer.Option(help="relative error allowed, with --tolerance")] = 0.0,
    allow_nan: Annotated[bool, typer.Option("--allow-nan", help="accept NaN in inputs")] = False,
    description: Annotated[str, typer.Option(help="what the model does (default: the ONNX doc string)")] = "",
    license: Annotated[str, typer.Option("--license", help="license of the weights, e.g. Apache-2.0")] = "",
    format: Annotated[
        str | None, typer.Option("--format", help="onnx or gguf [default: told apart by the file's first bytes]")
    ] = None,
    chain_account: Annotated[
        str | None, typer.Option("--chain-account", help="0x account that alone may register it on chain")
    ] = None,
    node: Annotated[
        str | None,
        typer.Option("--node", help="publish to this node (signed here with your publisher key; no admin token)"),
    ] = None,
) -> None:
    """Check an ONNX model or a GGUF language model, sign its manifest with your publisher key, and store it as
    the next version: in this home, or with --node on a network's node (open publishing: the node checks the
    signature, that your key owns the name, the version and your quotas, then takes the bytes).

    Example: veriml publish mnist.onnx --name alice/mnist --license Apache-2.0
    Example: veriml publish mnist.onnx --name alice/mnist --node http://127.0.0.1:8700
    Example: veriml publish SmolLM2-135M-Instruct.Q4_1.gguf --name smol/lm --license Apache-2.0
    """
    if tolerance is None and rtol:
        raise InvalidInput("--rtol needs --tolerance")
    policy = (
        ComparisonPolicy(allow_nan=allow_nan)
        if tolerance is None
        else ComparisonPolicy.tolerance(tolerance, rtol, allow_nan)
    )
    if not model.is_file():
        raise InvalidInput(f"{model}: no such file")
    account = None if chain_account is None else chain_account.lower()
    if node is not None:
        _publish_to_node(model, name, node, policy, description, license, format, account)
        return
    with Service(home()) as service, _progress(f"storing {model.name}", model.stat().st_size) as advance:
        published = service.publish(
            model,
            name=name,
            policy=policy,
            description=description,
            license=license,
            progress=advance,
            format=format,
            chain_account=account,
        )
    verb = "published" if published.created else "already published (same bytes)"
    console.print(f"{verb}: [bold]{published.manifest.body.ref}[/]")
    console.print(render.manifest_table(published.manifest))


def _publish_to_node(
    model: Path, name: str, node: str, policy: ComparisonPolicy, description: str, license: str,
    format: str | None, chain_account: str | None,
) -> None:  # fmt: skip
    from veriml.client import Client

    publisher = home().publisher_key()
    with Client([node]) as client:
        signed = client.sign_next(model, name, publisher, node=node, policy=policy, description=description,
                                  license=license, chain_account=chain_account, format=format)  # fmt: skip
        with _progress(f"uploading {model.name}", model.stat().st_size) as advance:
            stored = client.push(signed, model, node, progress=advance)
    verb = "published" if stored.id == signed.id else "already published (same bytes)"
    console.print(f"{verb} on {node}: [bold]{escape(stored.body.ref)}[/]")
    console.print(render.manifest_table(stored))


@models_app.command("list")
@one_line_errors
def models_list(
    node: NodeUrl = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the list as JSON, digests and keys in full")] = False,
) -> None:
    """List the models in this home, or on a network's node with --node, with their latest versions.

    Example: veriml models list
    Example: veriml models list --node http://127.0.0.1:8700
    """
    _print_models(_model_entries("", node), as_json, node)


@models_app.command("search")
@one_line_errors
def models_search(
    query: Annotated[str, typer.Argument(help="text to find in a model's name or description")],
    node: NodeUrl = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="print the matches as JSON, digests and keys in full")
    ] = False,
) -> None:
    """Find models whose name or description contains QUERY (case-insensitive), here or on a node.

    Example: veriml models search mnist --node http://127.0.0.1:8700
    """
    _print_models(_model_entries(query, node), as_json, node, query)


def _model_entries(query: str, node: str | None) -> list[dict[str, Any]]:
    if node is not None:
        from veriml.client import Client

        with Client([node]) as client:
            return client.models(query, node=node, limit=500)
    wanted, entries = query.lower(), []
    with Service(home()) as service:
        registry = service.hub.registry
        for name in registry.names():
            body = (signed := registry.get(name)).body
            if wanted and wanted not in name.lower() and wanted not in body.description.lower():
                continue
            entries.append({"name": name, "version": body.version, "manifest_id": str(signed.id),
                            "blob": str(body.blob), "size": body.size, "format": body.format,
                            "publisher": body.publisher.vkey, "license": body.license,
                            "description": body.description[:200],
                            "inputs": ", ".join(f"{s.name}: {s.describe()}" for s in body.inputs)})  # fmt: skip
    return entries


def _print_models(entries: list[dict[str, Any]], as_json: bool, node: str | None, query: str = "") -> None:
    if as_json:
        print(json.dumps(entries, indent=2))
        return
    if not entries:
        where = f"on {node}" if node else "in this home"
        hint = "" if query or node else ": publish one with `veriml publish MODEL.onnx --name owner/name`"
        console.print(f"no models {('matching ' + repr(query) + ' ') if query else ''}{where}{hint}", markup=False)
        return
    from veriml.identity import VerifyingKey

    # Fits 80 columns: names and key ids fold, the short columns and the (shortened) digest never wrap.
    table = render.Table("model", "latest", "format", "blob", "publisher")
    for column in table.columns[1:4]:
        column.no_wrap = True
    table.columns[0].overflow = table.columns[4].overflow = "fold"
    for entry in entries:
        publisher = VerifyingKey.parse(entry["publisher"], "publisher key").key_id
        table.add_row(render.plain(entry["name"]), f"@{entry['version']}", entry["format"],
                      render.short(entry["blob"], 8), render.plain(publisher))  # fmt: skip
    console.print(table)


@models_app.command("show")
@one_line_errors
def models_show(
    ref: Annotated[str, typer.Argument(help="owner/name, owner/name@N, or a manifest id")],
    as_json: Annotated[bool, typer.Option("--json", help="print the signed manifest as JSON")] = False,
    node: NodeUrl = None,
) -> None:
    """Show one model version's signed manifest (its signature checked), from this home or from a node.

    Example: veriml models show alice/mnist@2
    Example: veriml models show alice/mnist --node http://127.0.0.1:8700 --json
    """
    if node is not None:
        from veriml.client import Client

        with Client([node]) as client:
            signed = client.manifest(ref)
    else:
        with Service(home()) as service:
            signed = service.resolve(ref)
    if as_json:
        print(json.dumps(signed.to_json(), indent=2))
        return
    console.print(render.manifest_table(signed))


@app.command()
@one_line_errors
def infer(
    ref: Annotated[str, typer.Argument(help="owner/name, owner/name@N, or a manifest id")],
    input: Annotated[Path, typer.Option("--input", "-i", help="inputs: .json ({name: nested lists}) or .npz")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="where to write the bundle")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print outputs as JSON tensors")] = False,
    node: Annotated[
        list[str] | None, typer.Option("--node", help="run on these nodes instead of locally (repeatable URL)")
    ] = None,
    verify: Annotated[
        str, typer.Option(help="with --node: signed, logged, quorum:K or proven (waits for a ZK proof)")
    ] = "signed",
    timeout: Annotated[float, typer.Option(help="with --node: seconds to wait for a proof or a checkpoint")] = 600.0,
    publisher: PublisherPins = None,
    privacy: Privacy = "auditable",
) -> None:
    """Run a model on inputs and write the bundle that proves it: here (signed, appended to this home's log,
    with its inclusion proof) or, with --node, on a network of nodes at a verification level.

    Example: veriml infer alice/mnist --input digit.json --out result.bundle.json
    Example: veriml infer alice/mnist -i digit.json --node http://127.0.0.1:8700 --verify proven --privacy private
    """
    inputs = load_input_file(input)
    check_privacy(privacy)
    if node:
        bundle = _infer_on_nodes(ref, inputs, node, verify, timeout, publisher or [], privacy)
    elif verify != "signed":
        raise InvalidInput("--verify needs --node: a local run is signed and logged in this home")
    else:
        with Service(home()) as service:
            bundle = service.infer(ref, inputs, prove=True, privacy=privacy)
    target = out or Path(f"veriml-{bundle.receipt.body.request_id}.bundle.json")
    bundle.save(target)
    if as_json:
        print(json.dumps(tensors_to_json(bundle.outputs)))
        return
    console.print(render.tensors_table("outputs", bundle.outputs))
    console.print(render.receipt_table(bundle))
    console.print(f"bundle written to [bold]{target}[/]")


def _infer_on_nodes(
    ref: str, inputs: dict[str, Any], nodes: list[str], verify: str, timeout: float, publishers: list[str],
    privacy: str,
) -> Bundle:  # fmt: skip
    from veriml.client import Client

    with Client(nodes, log_wait=timeout, proof_wait=timeout, publishers=publishers) as client:
        if verify != "proven":
            return client.infer(ref, inputs, verify=verify, privacy=privacy)
        # Proving takes seconds to minutes: show the job's status and the time spent while waiting.
        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=Console(stderr=True)
        ) as progress:
            task = progress.add_task("proof job: submitted", total=None)
            return client.infer(
                ref,
                inputs,
                verify="proven",
                privacy=privacy,
                progress=lambda status: progress.update(task, description=f"proof job: {status}"),
            )


@app.command()
@one_line_errors
def verify(
    bundle_path: Annotated[Path, typer.Argument(metavar="BUNDLE", help="a bundle file from `veriml infer`")],
    reexec: Annotated[bool, typer.Option("--reexec", help="also re-run the model here and compare")] = False,
    level: Annotated[
        str | None, typer.Option(help=f"one of: {', '.join(LEVELS)} [default: logged, or reexecuted with --reexec]")
    ] = None,
    blob: Annotated[Path | None, typer.Option(help="the model file, if this home does not hold it")] = None,
    from_node: Annotated[
        list[str] | None,
        typer.Option("--from-node", help="fetch the model or a proof's keys and SRS, checked by hash, from this "
                     "node when this home does not hold them (repeatable)"),
    ] = None,
    publisher: Annotated[
        list[str] | None, typer.Option("--publisher", help="trusted publisher verifier key (repeatable)")
    ] = None,
    node: Annotated[list[str] | None, typer.Option("--node", help="trusted node verifier key (repeatable)")] = None,
    witness: Annotated[
        list[str] | None, typer.Option("--witness", help="trusted witness cosigner key, type 0x04 (repeatable)")
    ] = None,
    quorum: Annotated[
        int | None, typer.Option(help="witness cosignatures required [default: 1 if --witness is given, else 0]")
    ] = None,
    agreeing_nodes: Annotated[
        int, typer.Option(help="require a quorum bundle: this many distinct nodes (count --node keys) agreeing")
    ] = 1,
    require_ceremony_srs: Annotated[
        bool, typer.Option("--require-ceremony-srs", help="refuse proofs resting on a development SRS")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Check a bundle offline: signatures, digests, the log inclusion proof, and with --reexec a local re-run.

    Exits 0 when verified against the keys you name (--publisher, --node, --witness), 1 when a check failed, a
    required check could not run, or no key was named (verdict "not anchored"), 2 on bad input.

    Example: veriml verify result.bundle.json --reexec --publisher alice+1a2b3c4d+AB... --witness w1+5e6f7a8b+BB...

    A proven bundle in a fresh home: veriml verify proven.json --level proven --from-node http://127.0.0.1:8700
    """
    level = level or ("reexecuted" if reexec else "logged")
    bundle = Bundle.load(bundle_path)
    report = verify_bundle(
        bundle,
        level=level,
        load_blob=_blob_loader(blob, from_node or []),
        trusted_publishers=_keys(publisher),
        trusted_nodes=_keys(node),
        trusted_witnesses=witness or [],
        witness_quorum=quorum,
        agreeing_nodes=agreeing_nodes,
        require_ceremony_srs=require_ceremony_srs,
    )
    if as_json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        console.print(render.report_table(report))
        render.print_verdict(console, report)
    if not report.verified:
        raise typer.Exit(1)


@app.command()
@one_line_errors
def demo(
    home_dir: Annotated[
        Path | None, typer.Option("--home", help="directory to use (default: a fresh temporary one)")
    ] = None,
    local: Annotated[bool, typer.Option("--local", help="one process, no network: the core flow only")] = False,
) -> None:
    """Run the main job end to end: a devnet of 3 nodes, publish, replicate, infer with quorum:3, wait for
    the cosigned checkpoint, and verify the bundle offline, printing each step.

    Example: veriml demo
    """
    if local:
        from veriml.cli.demo import run_demo

        ok = run_demo(console, home_dir)
    else:
        from veriml.cli.demo_network import run_network_demo

        ok = run_network_demo(console, home_dir)
    console.print("[bold green]demo complete[/]" if ok else "[bold red]demo did not go as expected[/]")
    if not ok:
        raise typer.Exit(1)


def _keys(texts: list[str] | None) -> list[str]:
    from veriml.identity import VerifyingKey

    return [VerifyingKey.parse(text, "trusted key").vkey for text in texts or []]


def _blob_loader(blob: Path | None, nodes: list[str]):  # type: ignore[no-untyped-def]
    """Where a check finds a blob: the file given, else this home's store, else the nodes named (hash-checked)."""
    if blob is not None:
        data = blob.read_bytes()
        return lambda _digest: data
    blobs_dir = home().hub_dir / "blobs"
    store = BlobStore(blobs_dir) if blobs_dir.is_dir() else None
    if store is None and not nodes:
        return None

    def load(digest: Digest) -> bytes:
        if store is not None and (store.has(digest) or not nodes):
            return store.read_verified(digest)
        import httpx

        from veriml.client.blob_fetch import fetch_blob

        with httpx.Client(timeout=httpx.Timeout(30.0, read=300.0)) as http:
            return fetch_blob(http, nodes, digest)

    return load


class _progress:
    """A rich progress bar for bytes moving into the store; silent when stderr is not a terminal."""

    def __init__(self, label: str, total: int) -> None:
        self.bar = Progress(
            "[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
            console=Console(file=sys.stderr), transient=True, disable=not sys.stderr.isatty(),
        )  # fmt: skip
        self.task = self.bar.add_task(label, total=total)

    def __enter__(self):  # type: ignore[no-untyped-def]
        self.bar.__enter__()
        return lambda n: self.bar.advance(self.task, n)

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(None, None, None)


__all__ = ["app", "fail"]
