"""Per-inference cost of veriml's signed path against bare onnxruntime, and the cost of checking a bundle.

For a small MLP (16-32-8) and a small CNN (1x28x28), both made here, measure in one run:
  - bare:   onnxruntime `session.run` on a session with the same pinned settings (1 thread, sequential)
  - veriml: `Service.infer` — resolve, validate inputs, run, digest inputs and outputs, sign the receipt
single-sample and batched (64), as interleaved rounds; report medians, the ratio and the overhead in µs.
  - veriml under concurrency: what a node's event loop does for 64 requests arriving in one turn (run, sign and
    submit each; commit the log once for all; then, as the batch comes back durable under its signed checkpoint,
    attach each inclusion proof), timed as a whole and divided by 64: the amortized cost per inference, of which
    the model's own run is subtracted.
Then the offline verifier on a bundle at level "signed" (no re-execution), from bytes and from a parsed bundle.

Run: .venv/bin/python benchmarks/bench_receipts.py [--rounds 15] [--calls 300]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort

from veriml import examples
from veriml.identity import SigningKey
from veriml.receipts import Bundle
from veriml.service import Home, Service
from veriml.verify import verify_bundle


def _batches(service: Service) -> int:
    """Group commits so far: each signs one checkpoint, counted by the log's writer."""
    return service.log.batches_committed


def per_call_us(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def interleaved(fns: dict[str, Callable[[], object]], rounds: int, calls: int) -> dict[str, float]:
    """Median per-call time of each function over rounds that alternate between them, so drift hits all alike."""
    for fn in fns.values():
        per_call_us(fn, max(calls // 5, 10))  # warm up caches and sessions
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            samples[name].append(per_call_us(fn, calls))
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--in-flight", type=int, default=64)
    args = parser.parse_args()

    print(f"# veriml receipts benchmark: {platform.machine()}, Python {platform.python_version()}, "
          f"onnxruntime {ort.__version__}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        home = Home(root / "home")
        SigningKey.generate("bench").save(home.publisher_key_path)
        service = Service(home)
        rng = np.random.default_rng(0)
        models = {
            "mlp 16-32-8": (examples.mlp((16, 32, 8)), (16,)),
            "cnn 1x28x28": (examples.cnn(), (1, 28, 28)),
        }
        print()
        print("| model | batch | bare onnxruntime µs/call | veriml infer µs/call | ratio | overhead µs/call "
              "| overhead µs/sample |")  # fmt: skip
        print("|---|---|---|---|---|---|---|")
        bundles = []
        for label, (model, sample_shape) in models.items():
            name = f"bench/{label.split()[0]}"
            path = examples.save(model, root / f"{label.split()[0]}.onnx")
            manifest = service.publish(path, name=name).manifest
            session, _ = service.engine.session(manifest.body.blob, lambda p=path: p.read_bytes())
            for batch in (1, 64):
                x = {"x": rng.standard_normal((batch, *sample_shape)).astype(np.float32)}
                times = interleaved(
                    {"bare": lambda s=session, x=x: s.run(None, x), "veriml": lambda x=x, n=name: service.infer(n, x)},
                    args.rounds,
                    args.calls,
                )
                overhead = times["veriml"] - times["bare"]
                print(
                    f"| {label} | {batch} | {times['bare']:.1f} | {times['veriml']:.1f} | "
                    f"{times['veriml'] / times['bare']:.2f}x | {overhead:.1f} | {overhead / batch:.1f} |"
                )
                bundles.append(service.infer(name, x))

        loop = asyncio.new_event_loop()
        print()
        print("| model | in flight | bare onnxruntime µs/call | veriml µs/inference, amortized | veriml work µs "
              "(excluding the model) | log batches | entries per batch |")  # fmt: skip
        print("|---|---|---|---|---|---|---|")
        for label, (_, sample_shape) in models.items():
            name = f"bench/{label.split()[0]}"
            manifest = service.resolve(name)
            session, _ = service.engine.session(manifest.body.blob, lambda n=name: b"")
            x = {"x": rng.standard_normal((1, *sample_shape)).astype(np.float32)}

            async def turn(n: int, m=manifest, x=x) -> None:  # type: ignore[no-untyped-def]
                # What the node's event loop does with n requests arriving in one turn: run and sign each, commit
                # the log once for all of them, and as the batch comes back durable, attach each proof.
                submitted = [service.infer_submit(m, x, log_on_loop=True) for _ in range(n)]
                service.log.commit_pending()
                for bundle, logged in submitted:
                    service.attach_proof(bundle, (await logged)[0])  # type: ignore[misc]

            def in_flight(n: int = args.in_flight, turn=turn) -> None:  # type: ignore[no-untyped-def]
                loop.run_until_complete(turn(n))

            before = service.log.sequenced_size, service.log.signed_checkpoint
            batches_before = _batches(service)
            times = interleaved({"bare": lambda s=session, x=x: s.run(None, x), "concurrent": in_flight},
                                args.rounds, max(args.calls // args.in_flight, 3))  # fmt: skip
            per_inference = times["concurrent"] / args.in_flight
            entries = service.log.sequenced_size - before[0]
            batches = _batches(service) - batches_before
            print(f"| {label} | {args.in_flight} | {times['bare']:.1f} | {per_inference:.1f} | "
                  f"{per_inference - times['bare']:.1f} | {batches} | {entries / max(batches, 1):.1f} |")  # fmt: skip

        print()
        print("| bundle | bytes | parse + verify (signed) µs | verify parsed bundle µs |")
        print("|---|---|---|---|")
        for bundle in bundles:
            data = bundle.to_bytes()
            assert verify_bundle(Bundle.from_bytes(data)).consistent
            times = interleaved(
                {
                    "full": lambda d=data: verify_bundle(Bundle.from_bytes(d)),
                    "parsed": lambda b=bundle: verify_bundle(b),
                },
                max(args.rounds // 3, 3),
                max(args.calls // 3, 20),
            )
            body = bundle.manifest.body
            shape = "x".join(map(str, bundle.inputs["x"].shape))
            print(f"| {body.name} x[{shape}] | {len(data):,} | {times['full']:.0f} | {times['parsed']:.0f} |")

        key = SigningKey.generate("bench")
        message = bundles[0].receipt.canonical
        sign_us = statistics.median(per_call_us(lambda: key.sign_raw(message), 2000) for _ in range(5))
        print()
        print(f"for scale: one Ed25519 signature over a receipt takes {sign_us:.1f} µs here (PyNaCl when installed)")
        service.close()


if __name__ == "__main__":
    main()
