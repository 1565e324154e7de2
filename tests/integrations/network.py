"""A devnet for the integration tests: three honest nodes with an ONNX model (alice/mlp on every node) and, when
the llm extra and SmolLM2 are at hand, a language model (smol/lm on every node), both published by alice."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from veriml import devnet, examples
from veriml.client import Client
from veriml.identity import SigningKey

MLP = "alice/mlp"
LLM = "smol/lm"


@dataclass(frozen=True)
class Network:
    net: devnet.Devnet
    alice: SigningKey
    mlp_path: Path
    llm: bool

    @property
    def urls(self) -> list[str]:
        return self.net.urls


def llm_available() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return examples.smollm2_path() is not None


@contextlib.contextmanager
def network(root: Path, nodes: int = 3, llm: bool = True) -> Iterator[Network]:
    net = devnet.up(root, nodes, checkpoint_interval=0.3, audit_fraction=0.0)
    try:
        alice = SigningKey.generate("alice")
        mlp_path = examples.save(examples.mlp(), root / "mlp.onnx")
        llm = llm and llm_available()
        with Client(net.urls, admin_token=net.admin_token) as client:
            client.publish(mlp_path, MLP, alice, node=net.urls[0], description="a small MLP")
            for url in net.urls[1:]:
                client.pin(MLP, url)
            if llm:
                model = examples.smollm2_path()
                assert model is not None
                client.publish(model, LLM, alice, node=net.urls[0])
                for url in net.urls[1:]:
                    client.pin(LLM, url)
        yield Network(net, alice, mlp_path, llm)
    finally:
        devnet.down(root)


_shared: dict[str, Network] = {}


def shared_network(tmp_path_factory, request) -> Network:  # type: ignore[no-untyped-def]
    """One network for the whole session, whichever session fixture (integrations, docs) asks first; stopped when
    that fixture is torn down, at the end of the session."""
    if "net" not in _shared:
        context = network(tmp_path_factory.mktemp("integrations"))
        _shared["net"] = context.__enter__()

        def stop() -> None:
            _shared.pop("net", None)
            context.__exit__(None, None, None)

        request.addfinalizer(stop)
    return _shared["net"]
