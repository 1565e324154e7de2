"""`veriml demo`: the main job end to end on embedded defaults, narrated step by step."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.rule import Rule

from veriml import examples
from veriml.cli import render
from veriml.identity import SigningKey
from veriml.receipts import Bundle
from veriml.service import Home, Service
from veriml.tlog import Witness
from veriml.verify import verify_bundle


def run_demo(console: Console, home_dir: Path | None) -> bool:
    """Publish, infer, verify, then show that a tampered bundle fails. True when all went as expected."""
    if home_dir is None:
        with tempfile.TemporaryDirectory(prefix="veriml-demo-") as tmp:
            return _run(console, Path(tmp))
    return _run(console, Path(home_dir))


def _step(console: Console, number: int, title: str) -> None:
    console.print(Rule(f"[bold]{number}. {title}", align="left"))


def _run(console: Console, root: Path) -> bool:
    home = Home(root / "home")
    _step(console, 1, "a publisher key")
    if home.publisher_key_path.exists():
        publisher = home.publisher_key()
    else:
        publisher = SigningKey.generate("demo-publisher")
        publisher.save(home.publisher_key_path)
    console.print(f"publisher {publisher.key_id}, key file {home.publisher_key_path} (mode 0600)")

    _step(console, 2, "a small model")
    model_path = examples.save(examples.mlp((16, 32, 8)), root / "mlp.onnx")
    console.print(f"{model_path}: ReLU MLP 16-32-8, {model_path.stat().st_size:,} bytes, ONNX opset {examples.OPSET}")

    with Service(home) as service:
        _step(console, 3, "publish: check with onnx.checker, hash, sign the manifest, store")
        published = service.publish(model_path, name="demo/mlp", publisher=publisher, license="CC0-1.0")
        console.print(render.manifest_table(published.manifest))

        _step(console, 4, "infer: validate inputs, run in a pinned onnxruntime session, sign a receipt, log it")
        inputs = {"x": np.random.default_rng(7).standard_normal((2, 16)).astype(np.float32)}
        bundle, index = service.infer_logged("demo/mlp", inputs)
        console.print(f"receipt appended to log {service.log.origin} at index {index} (on disk before the reply)")

        _step(console, 5, "checkpoint: the node signs its log's tree head; a witness checks and cosigns it")
        witness = Witness(root / "witness.sqlite", _witness_key(root), {service.log.origin: [service.node_key.public]})
        signed = service.log.sign_checkpoint()
        cosigned, refusals = service.log.collect_cosignatures(signed, [(witness.public, witness.add_checkpoint)])
        witness.close()
        print(cosigned.to_text(), end="")
        for who, why in refusals.items():
            console.print(f"[red]witness {who} refused: {why}[/]")
        bundle = service.attach_proof(bundle, index)  # type: ignore[arg-type]
        bundle_path = root / "demo.bundle.json"
        bundle.save(bundle_path)
        console.print(render.tensors_table("outputs", bundle.outputs))
        console.print(render.receipt_table(bundle))
        console.print(f"bundle: {bundle_path} ({bundle_path.stat().st_size:,} bytes)")

        _step(console, 6, "verify the bundle offline: signatures, log inclusion under a cosigned checkpoint, re-run")
        report = verify_bundle(
            Bundle.load(bundle_path),
            level="reexecuted",
            load_blob=service.hub.blobs.read_verified,
            engine=service.engine,
            trusted_publishers=[publisher.public.vkey],
            trusted_nodes=[service.node_key.public.vkey],
            trusted_witnesses=[witness.public.vkey],
        )
        console.print(render.report_table(report))
        render.print_verdict(console, report)

        _step(console, 7, "tamper with one output value and verify again")
        tamper_refused = show_tampering(console, bundle)

    console.print(Rule())
    return report.verified and tamper_refused


def _witness_key(root: Path) -> SigningKey:
    path = root / "witness.key"
    if path.exists():
        return SigningKey.load(path)
    key = SigningKey.generate("witness.veriml.local/demo")
    key.save(path)
    return key


def show_tampering(console: Console, bundle: Bundle, **verify_options: object) -> bool:
    """Change one output value by 0.001, verify again, and print what fails. True if the copy was refused."""
    from veriml.codec import tensor_to_json

    forged = bundle.outputs["y"].copy()
    forged[0, 0] += np.float32(0.001)
    tampered = Bundle.from_json({**bundle.to_json(), "outputs": {"y": tensor_to_json(forged)}})
    report = verify_bundle(tampered, level="signed", **verify_options)  # type: ignore[arg-type]
    for failure in report.failures():
        console.print(f"[red]{failure.name}[/]: {failure.detail}")
    render.print_verdict(console, report)
    return report.verdict == "failed"
