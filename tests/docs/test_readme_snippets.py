"""The README's and the integration docs' Python examples, run as written, so that they never drift from the code.

Every ```python block of each document runs, in order, in one namespace per document (like a notebook), in a
working directory holding what the docs say the reader has: a devnet at ./devnet (the integration tests' network,
as `veriml devnet up --nodes 3 --dir ./devnet` would leave it), `mlp.onnx`, `models/` (what `make install`
fetches) and `veriml` on PATH. A block whose first line is
`# not runnable: <why>` is skipped (another system's example, say), and so is none else."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import sys
from pathlib import Path

import pytest

from tests.integrations.network import shared_network
from veriml import examples

ROOT = Path(__file__).parents[2]
DOCUMENTS = ("README.md", "docs/integrations.md", "docs/migrating-from-opengradient.md")
NOT_RUNNABLE = "# not runnable"
FENCE = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
# Blocks that fail on this branch for a reason fixed elsewhere, keyed by document and a line the block contains.
# The lead removes an entry when the fix is merged (strict: an entry that passes fails the test, as a reminder).
KNOWN_FAILING = {("README.md", 'veriml.Service(veriml.Home("/tmp/my-veriml"))'): "fixed on branch publish"}


def blocks() -> list[tuple[str, int, str]]:
    found = []
    for document in DOCUMENTS:
        text = (ROOT / document).read_text()
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append((document, line, match.group(1)))
    return found


BLOCKS = blocks()


def params() -> list[object]:
    cases = []
    for document, line, code in BLOCKS:
        reasons = [why for (where, needle), why in KNOWN_FAILING.items() if where == document and needle in code]
        marks = [pytest.mark.xfail(reason=reason, strict=True) for reason in reasons]
        cases.append(pytest.param(document, line, code, marks=marks, id=f"{document}:{line}"))
    return cases


def test_every_document_has_runnable_examples():
    for document in DOCUMENTS:
        runnable = [code for where, _, code in BLOCKS if where == document and not code.startswith(NOT_RUNNABLE)]
        assert runnable, f"{document}: no runnable ```python block"


@pytest.fixture(scope="session")
def veriml_net(tmp_path_factory, request):
    return shared_network(tmp_path_factory, request)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, veriml_net):
    if not veriml_net.llm:
        pytest.skip("the docs' examples chat with SmolLM2: the llm extra and the GGUF are needed")
    work = tmp_path_factory.mktemp("docs")
    examples.save(examples.mlp(), work / "mlp.onnx")
    (work / "models").mkdir()
    model = examples.smollm2_path()
    assert model is not None
    (work / "models" / model.name).symlink_to(model)
    # The devnet the docs start with `veriml devnet up --nodes 3 --dir ./devnet` (the integration tests' one, with
    # alice/mlp and smol/lm on it, published with the key the docs keep in alice.key).
    (work / "devnet").symlink_to(veriml_net.net.root)
    veriml_net.alice.save(work / "alice.key")
    # `veriml` on PATH, running these sources (as an installed veriml would).
    bin_dir = work / "bin"
    bin_dir.mkdir()
    script = bin_dir / "veriml"
    pythonpath = os.environ.get("PYTHONPATH", "")
    script.write_text(f"#!/bin/sh\nPYTHONPATH={shlex.quote(pythonpath)} exec {shlex.quote(sys.executable)} "
                      f"-c 'from veriml.cli import main; main()' \"$@\"\n")  # fmt: skip
    script.chmod(0o755)
    return work


@pytest.fixture(scope="module")
def namespaces():
    return {}


@pytest.mark.parametrize(("document", "line", "code"), params())
def test_example_runs(document, line, code, workdir, namespaces, monkeypatch):
    if code.startswith(NOT_RUNNABLE):
        pytest.skip(code.splitlines()[0].lstrip("# "))
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("PATH", f"{workdir / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("HOME", str(workdir))  # the client's tokenizer cache and any default home stay in here
    namespace = namespaces.setdefault(document, {"__name__": f"docs:{document}"})
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(code, f"{document}:{line}", "exec"), namespace)
