"""`veriml zk setup|prove`: zero-knowledge proofs of model outputs with EZKL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from veriml.cli.errors import one_line_errors
from veriml.cli.render import short
from veriml.errors import InvalidInput
from veriml.receipts import Bundle
from veriml.service import Service

zk_app = typer.Typer(help="Zero-knowledge proofs of model outputs (EZKL).", no_args_is_help=True)
console = Console()


def _home():  # type: ignore[no-untyped-def]
    from veriml.cli.app import home
    from veriml.zk.ezkl_pipeline import use_repo_path

    found = home()
    use_repo_path(found.ezkl_dir)  # EZKL's cache under this home, not ~/.veriml
    return found


@zk_app.command("setup")
@one_line_errors
def setup(
    ref: Annotated[str, typer.Argument(help="owner/name or owner/name@N")],
    srs: Annotated[Path | None, typer.Option(help="a ceremony SRS file; without it a development SRS is made")] = None,
    private_inputs: Annotated[bool, typer.Option("--private-inputs", help="hash inputs instead of publishing")] = False,
    calibration: Annotated[str, typer.Option(help="resources (smaller circuit) or accuracy")] = "resources",
    as_json: Annotated[bool, typer.Option("--json", help="print the signed ZK document as JSON")] = False,
) -> None:
    """Set up the circuit for a model version and sign its ZK document with your publisher key.

    The verification key commits to the weights. Without --srs the SRS is generated here: fine for development,
    and marked so in the ZK document, so verifiers can refuse it.

    Example: veriml zk setup alice/mnist@1 --srs ceremony-2^17.srs
    """
    with Service(_home()) as service:
        manifest = service.resolve(ref)
        if manifest.body.format != "onnx":
            raise InvalidInput(f"zk setup: {manifest.body.ref} is a {manifest.body.format} model; "
                               "zero-knowledge proofs cover ONNX models only")  # fmt: skip
    with Service(_home()) as service, console.status("setting up the circuit (EZKL): calibrate, compile, keys"):
        signed = service.zk_setup(ref, srs=srs, input_visibility="hashed" if private_inputs else "public",
                                  calibration=calibration)  # fmt: skip
    if as_json:
        print(json.dumps(signed.to_json(), indent=2))
        return
    body = signed.body
    console.print(f"ZK document for {ref}: logrows {body.logrows}, {body.srs_kind} SRS, inputs {body.input_visibility}",
                  markup=False)  # fmt: skip
    for name, blob in body.artifacts.items():  # shortened to fit a line; --json prints them whole
        console.print(f"  {name:9s} {short(blob)}", markup=False)


@zk_app.command("prove")
@one_line_errors
def prove(
    bundle_path: Annotated[Path, typer.Argument(metavar="BUNDLE", help="a bundle from `veriml infer`")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="where to write the proven bundle")] = None,
) -> None:
    """Prove the model's result on a bundle's inputs. A proven result is the circuit's (fixed point): a bundle
    computed by onnxruntime is first recomputed by the circuit and signed by this home's node.

    Example: veriml zk prove result.bundle.json --out result.proven.json
    """
    bundle = Bundle.load(bundle_path)
    with Service(_home()) as service, console.status("proving (EZKL)"):
        if bundle.receipt.body.runtime.fields.get("engine") != "ezkl":
            console.print("the bundle's outputs are onnxruntime's: the circuit recomputes them, this home signs them")
            bundle = service.infer(bundle.manifest, bundle.inputs, prove=True, circuit=True)
        proven = service.prove(bundle)
    target = out or bundle_path
    proven.save(target)
    console.print(f"proof added: {target} (check with `veriml verify {target} --level proven`)")


@zk_app.command("evm-verifier")
@one_line_errors
def evm_verifier(
    ref: Annotated[str, typer.Argument(help="owner/name or owner/name@N, set up with `veriml zk setup`")],
    out: Annotated[Path, typer.Option("--out", "-o", help="directory for Verifier.sol (and calldata.hex)")] = Path(
        "evm-verifier"
    ),
    bundle: Annotated[Path | None, typer.Option(help="a proven bundle: also write its calldata")] = None,
) -> None:
    """Write EZKL's Solidity verifier for a model version, and the calldata for a proven bundle, so a contract
    can check the proof.

    Example: veriml zk evm-verifier alice/mnist@1 --out ./evm --bundle result.proven.json
    """
    with Service(_home()) as service:
        source = service.zk_evm_verifier(ref, out / "Verifier.sol")
        console.print(f"verifier: {source} (contract Halo2Verifier; compile with solc 0.8)")
        if bundle is not None:
            calldata = service.zk_evm_calldata(Bundle.load(bundle))
            (out / "calldata.hex").write_text("0x" + calldata.hex() + "\n")
            console.print(f"calldata: {out / 'calldata.hex'} ({len(calldata):,} bytes)")
