"""The short run of scripts/fuzz_parsers.py: every parser that takes bytes from the network or a file gets a few
hundred hostile inputs, and none may escape as anything but veriml's typed errors (over HTTP: a 4xx problem,
never a 5xx). The full run (100,000 inputs per parser) is `python scripts/fuzz_parsers.py`."""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "fuzz_parsers.py"
EXAMPLES = 300
EXAMPLES_LLM = 15  # requests that reach generation cost ~0.1 s each; the full run does 10,000


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_parsers", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_parsers"] = module
    spec.loader.exec_module(module)
    return module


fuzz = _load()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    world = fuzz.build_world(tmp_path_factory.mktemp("fuzz"))
    fuzz.build_node(world)
    yield world
    world.close()


@pytest.fixture(autouse=True)
def quiet() -> Iterator[None]:
    logging.disable(logging.CRITICAL)  # the node logs each refused request
    # A node process keeps Python's default recursion limit (veriml.chain restores it after importing web3); this
    # test process may have imported py-evm or py_ecc through other tests, which raise it past what the C stack
    # holds, and the in-process node's JSON bodies would then crash the process rather than be refused.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    yield
    sys.setrecursionlimit(limit)
    logging.disable(logging.NOTSET)


@pytest.mark.parametrize("name", list(fuzz.BY_NAME))
def test_hostile_inputs_raise_only_typed_errors(name: str, world: object) -> None:
    if fuzz.BY_NAME[name].needs_llm:
        if not fuzz.llm_available():
            pytest.skip("llama.cpp or SmolLM2 is not installed")
        if "llm_asgi" not in world.objects:
            fuzz.build_llm_node(world)
    examples = EXAMPLES_LLM if fuzz.BY_NAME[name].needs_llm else EXAMPLES
    result = fuzz.run_target(name, examples, seed=20261126, world=world)
    assert result.inputs == examples
    assert result.unhandled == 0, "\n".join(
        f"{entry['count']} x {key}: {entry['message']} (input #{entry['index']}: {entry['example']})"
        for key, entry in result.failures.items()
    )


def test_valid_documents_are_accepted(world: object) -> None:
    """The mutations start from documents the parsers accept: a fuzz run that refuses everything proves nothing."""
    for name in ("bundle", "manifest", "receipt", "attestation", "zk-document", "signed-note", "tlog-proof"):
        result = fuzz.run_target(name, EXAMPLES, seed=7, world=world)
        assert result.accepted > 0, name
