"""Proving with veriml against raw EZKL calls, in one run, for the MLP 16-32-8 (and the CNN with --slow).

Each measured step runs in a fresh child process, which reports its wall time and peak memory (ru_maxrss):
  raw EZKL:  gen_settings + calibrate + compile + gen_srs + setup; gen_witness + prove + verify; verify
  veriml:    Service.zk_setup (artifacts stored as blobs, ZK document signed); Service.prove (proof checked);
             the offline verifier's zk.proof check
and plain onnxruntime inference, for the cost-of-proof ratio. Prints overheads, proof size and ratios.

Run: .venv/bin/python benchmarks/bench_zk.py [--slow]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

CHILD_PRELUDE = """
import json, os, resource, sys, time
from pathlib import Path
os.environ["EZKL_REPO_PATH"] = sys.argv[1] + "/ezkl"
root = sys.argv[1]
def report(seconds, **extra):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mib": peak, **extra}))
"""

PREPARE = """
import numpy as np
from veriml import examples
from veriml.identity import SigningKey
from veriml.service import Home, Service
model = {"mlp": examples.mlp(), "cnn": examples.cnn()}[sys.argv[2]]
path = examples.save(model, root + "/model.onnx")
shape = (1, 16) if sys.argv[2] == "mlp" else (1, 1, 28, 28)
x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
np.save(root + "/x.npy", x)
json.dump({"input_data": [x.reshape(-1).tolist()]}, open(root + "/input.json", "w"))
home = Home(Path(root) / "home")
SigningKey.generate("bench").save(home.publisher_key_path)
with Service(home) as service:
    service.publish(path, name="bench/model")
report(0)
"""

RAW_SETUP = """
import ezkl
start = time.perf_counter()
args = ezkl.PyRunArgs(); args.input_visibility = "public"; args.output_visibility = "public"
args.param_visibility = "fixed"; args.variables = [("N", 1)]
ezkl.gen_settings(root + "/model.onnx", root + "/settings.json", py_run_args=args)
ezkl.calibrate_settings(root + "/input.json", root + "/model.onnx", root + "/settings.json", "resources")
ezkl.compile_circuit(root + "/model.onnx", root + "/network.compiled", root + "/settings.json")
logrows = json.load(open(root + "/settings.json"))["run_args"]["logrows"]
ezkl.gen_srs(root + "/kzg.srs", logrows)
ezkl.setup(root + "/network.compiled", root + "/vk.key", root + "/pk.key", root + "/kzg.srs")
report(time.perf_counter() - start, logrows=logrows)
"""

RAW_PROVE = """
import ezkl
start = time.perf_counter()
ezkl.gen_witness(root + "/input.json", root + "/network.compiled", root + "/witness.json")
ezkl.prove(root + "/witness.json", root + "/network.compiled", root + "/pk.key", root + "/proof.json",
           root + "/kzg.srs")
# The prover checks its proof before serving it (the issue requires it of a node): so does the baseline.
assert ezkl.verify(root + "/proof.json", root + "/settings.json", root + "/vk.key", root + "/kzg.srs")
report(time.perf_counter() - start, proof_bytes=os.path.getsize(root + "/proof.json"))
"""

RAW_VERIFY = """
import ezkl
start = time.perf_counter()
assert ezkl.verify(root + "/proof.json", root + "/settings.json", root + "/vk.key", root + "/kzg.srs")
report(time.perf_counter() - start)
"""

VERIML_SETUP = """
from veriml.service import Home, Service
with Service(Home(Path(root) / "home")) as service:
    start = time.perf_counter()
    service.zk_setup("bench/model")
    report(time.perf_counter() - start)
"""

VERIML_PROVE = """
import numpy as np
from veriml.service import Home, Service
with Service(Home(Path(root) / "home")) as service:
    bundle = service.infer("bench/model", {"x": np.load(root + "/x.npy")}, circuit=True)
    start = time.perf_counter()
    proven = service.prove(bundle)
    seconds = time.perf_counter() - start
    proven.save(root + "/proven.json")
    report(seconds, proof_bytes=len(json.dumps(proven.zk_proof["proof"])))
"""

VERIML_VERIFY = """
from veriml.receipts import Bundle
from veriml.service import Home, Service
from veriml.verify import checks
with Service(Home(Path(root) / "home")) as service:
    bundle = Bundle.load(root + "/proven.json")
    start = time.perf_counter()
    result = checks.zk_proof(bundle, service.hub.blobs.read_verified, False)
    assert result.status == "pass", result.detail
    report(time.perf_counter() - start)
"""

ORT = """
import numpy as np, onnxruntime as ort
options = ort.SessionOptions(); options.intra_op_num_threads = 1
session = ort.InferenceSession(root + "/model.onnx", options, providers=["CPUExecutionProvider"])
x = np.load(root + "/x.npy")
for _ in range(100): session.run(None, {"x": x})
start = time.perf_counter()
for _ in range(2000): session.run(None, {"x": x})
report((time.perf_counter() - start) / 2000)
"""


def child(script: str, root: Path, model: str) -> dict:
    code = textwrap.dedent(CHILD_PRELUDE) + textwrap.dedent(script)
    out = subprocess.run([sys.executable, "-c", code, str(root), model], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark step failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench(model: str, repeats: int) -> None:
    with tempfile.TemporaryDirectory() as raw_dir, tempfile.TemporaryDirectory() as veriml_dir:
        raw_root, veriml_root = Path(raw_dir), Path(veriml_dir)
        child(PREPARE, raw_root, model)
        child(PREPARE, veriml_root, model)
        raw = {"setup": child(RAW_SETUP, raw_root, model)}
        ours = {"setup": child(VERIML_SETUP, veriml_root, model)}
        # Proving takes seconds and this machine is noisy: alternate raw and veriml runs, keep each median.
        runs: dict[str, list[dict]] = {"raw": [], "ours": []}
        for _ in range(repeats):
            runs["raw"].append(child(RAW_PROVE, raw_root, model))
            runs["ours"].append(child(VERIML_PROVE, veriml_root, model))
        raw["prove"] = sorted(runs["raw"], key=lambda r: r["seconds"])[repeats // 2]
        ours["prove"] = sorted(runs["ours"], key=lambda r: r["seconds"])[repeats // 2]
        raw["verify"] = child(RAW_VERIFY, raw_root, model)
        ours["verify"] = child(VERIML_VERIFY, veriml_root, model)
        ort_seconds = child(ORT, raw_root, model)["seconds"]
    print(f"\n## {model} (logrows {raw['setup']['logrows']}; prove: median of {repeats}, proof checked in both)\n")
    print("| step | raw EZKL s | veriml s | veriml overhead | raw peak MiB | veriml peak MiB |")
    print("|---|---|---|---|---|---|")
    for step in ("setup", "prove", "verify"):
        r, v = raw[step], ours[step]
        overhead = (v["seconds"] / r["seconds"] - 1) * 100
        cells = (
            f"{r['seconds']:.2f} | {v['seconds']:.2f} | {overhead:+.1f}% | {r['peak_mib']:.0f} | {v['peak_mib']:.0f}"
        )
        print(f"| {step} | {cells} |")
    ratio = ours["prove"]["seconds"] / ort_seconds
    print(f"\nproof: {raw['prove']['proof_bytes']:,} bytes (EZKL proof.json); plain onnxruntime inference "
          f"{ort_seconds * 1e6:.1f} µs; prove / inference = {ratio:,.0f}x")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slow", action="store_true", help="also the CNN (about 3 minutes and 6 GiB)")
    parser.add_argument("--repeats", type=int, default=3, help="proofs per side (median kept)")
    args = parser.parse_args()
    print("# veriml ZK benchmark (EZKL, development SRS generated locally, one thread of work per step)")
    bench("mlp", args.repeats)
    if args.slow:
        bench("cnn", 1)


if __name__ == "__main__":
    main()
