"""Fuzz every parser that takes bytes from the network or a file, and count what escapes as anything but
veriml's own typed errors (issue 10, part 4).

Each parser starts from valid documents made by the real code (a published model, an inference with its
bundle, receipt, log proof and checkpoint, an attestation, a ZK document) and is fed structured mutations of
them (a wrong type at a random JSON path, huge numbers, NaN/Infinity, deep nesting, surrogates, very long
strings, duplicate keys, dropped and extra keys), byte- and line-level mutations of their text (flipped
bytes, non-UTF-8, broken base64, dropped, repeated and swapped lines), and pure random bytes. An input is
handled when the parser accepts it or raises a `veriml.errors.VerimlError`; over HTTP, when the node answers
below 500 and every 4xx is an RFC 9457 problem (or OpenAI's error shape on the OpenAI routes). Anything else
is counted as unhandled and listed by (exception type, the deepest veriml frame it came through).

    python scripts/fuzz_parsers.py [--per-parser N] [--only NAME[,NAME]] [--seed S] [--jobs J] [--list]

Exits 1 if any input was unhandled. A plain seeded generator loop, not hypothesis: it runs the 100,000
inputs per parser the issue asks for in minutes rather than hours, and a (parser, seed, index) triple
replays one input exactly.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import copy
import functools
import json
import math
import os
import random
import reprlib
import struct
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parent.parent / "src"
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

import numpy as np  # noqa: E402

from veriml.errors import VerimlError  # noqa: E402

# ---------------------------------------------------------------------------------------------------------
# Hostile values and mutations
# ---------------------------------------------------------------------------------------------------------

_NASTY_TEXT = [
    "",
    " ",
    "\n",
    "\r\n",
    "\t",
    "\x00",
    "\x7f",
    "\ud800",
    "\udfff",
    "\ud83d",
    "\ufeff",
    "\uffff",
    "\u2014 ",
    "\u00a0",
    "\u2028",
    "+",
    "++",
    "@",
    "/",
    "..",
    "sha256:",
    "sha256:" + "0" * 64,
    "sha256:" + "G" * 64,
    "0",
    "-1",
    "01",
    "1e400",
    "NaN",
    "Infinity",
    "null",
    "true",
    "{}",
    "[]",
    "=",
    "==",
    "AAAA",
    "a/b",
    "a/b@0",
    "é",
    "😀",
    "\U0010ffff",
    "%00",
    "{{ 7*7 }}",
    "{% for x in range(10) %}x{% endfor %}",
    "\\",
    '"',
    "'",
]
_HUGE_INTS = [2**31, 2**32, 2**53, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 2**64 + 1, 10**30, -(2**63), -(2**64), 10**400]


def random_text(rng: random.Random, max_len: int = 40) -> str:
    pick = rng.random()
    if pick < 0.3:
        return rng.choice(_NASTY_TEXT)
    if pick < 0.5:
        return "".join(chr(rng.randrange(0x20, 0x7F)) for _ in range(rng.randrange(max_len)))
    if pick < 0.6:
        return rng.choice("ax\U0001f600\u2014+/\n") * rng.choice([100, 1000, 10_000, 100, 1000, 10_000, 1_000_000])
    chars = []
    for _ in range(rng.randrange(max_len)):
        r = rng.random()
        if r < 0.5:
            chars.append(chr(rng.randrange(0x20, 0x7F)))
        elif r < 0.7:
            chars.append(chr(rng.randrange(0, 0x20)))
        elif r < 0.8:
            chars.append(chr(rng.randrange(0xD800, 0xE000)))  # lone surrogates
        else:
            chars.append(chr(rng.randrange(0x80, 0x110000)))
    return "".join(chars)


@functools.cache  # shared, never changed: mutations copy only the containers on their path
def deep(depth: int, kind: str = "list") -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    return value


def random_value(rng: random.Random, depth: int = 0) -> Any:
    """A JSON-ish value of any type, biased to the edges: what a hostile sender puts at a path."""
    pick = rng.randrange(16)
    if pick == 0:
        return None
    if pick == 1:
        return rng.choice([True, False])
    if pick == 2:
        return rng.choice([0, 1, -1, 2, 7, 255, 256, 65535, 16])
    if pick == 3:
        return rng.choice(_HUGE_INTS) * rng.choice([1, -1])
    if pick == 4:
        return rng.choice([0.0, -0.0, 0.5, 1.5, -1e-300, 1e308, float("nan"), float("inf"), float("-inf"), 1e-7])
    if pick in (5, 6, 7):
        return random_text(rng)
    if pick == 8:
        return [] if depth > 2 else [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if pick == 9:
        return {} if depth > 2 else {random_text(rng, 8): random_value(rng, depth + 1) for _ in range(rng.randrange(4))}
    if pick == 10:
        return deep(rng.choice([50, 500, 1500, 5000, 50, 500, 1500, 50_000]), rng.choice(["list", "dict"]))
    if pick == 11:
        return [rng.choice([0, 1.5, "a", None])] * rng.choice([10, 1000] * 5 + [100_000])
    if pick == 12:
        return base64.b64encode(rng.randbytes(rng.choice([0, 1, 31, 32, 33, 63, 64, 65, 72, 4096]))).decode()
    if pick == 13:
        return rng.choice([[], {}, [[]], [{}], [1, [2]], [[1, 2], [3]], [[1], [2, 3]], {"": None}])
    if pick == 14:
        return rng.getrandbits(rng.choice([8, 32, 64, 70, 2000])) - rng.getrandbits(8)
    return rng.random() * 10 ** rng.randrange(-20, 40)


def _paths(value: Any, prefix: tuple = (), out: list | None = None, limit: int = 4000) -> list[tuple]:
    out = [] if out is None else out
    out.append(prefix)
    if len(out) >= limit or len(prefix) > 24:
        return out
    if isinstance(value, dict):
        for key, item in value.items():
            _paths(item, (*prefix, key), out, limit)
    elif isinstance(value, list) and len(value) <= 64:
        for index, item in enumerate(value):
            _paths(item, (*prefix, index), out, limit)
    return out


def _get(value: Any, path: tuple) -> Any:
    for part in path:
        value = value[part]
    return value


def _mutate_scalar(rng: random.Random, value: Any) -> Any:
    if isinstance(value, bool):
        return rng.choice([not value, int(value), str(value).lower(), None])
    if isinstance(value, int):
        ops: list[Callable[[int], Any]] = [
            lambda v: v + 1, lambda v: v - 1, lambda v: -v, lambda v: v * 2 ** rng.randrange(1, 80),
            lambda v: float(v), str, lambda v: v + 0.5, lambda v: rng.choice(_HUGE_INTS),
        ]  # fmt: skip
        try:
            return rng.choice(ops)(value)
        except OverflowError:
            return value
    if isinstance(value, float):
        return rng.choice([value * 2, -value, float("nan"), float("inf"), int(value) if math.isfinite(value) else 0])
    if isinstance(value, str):
        return mutate_text(rng, value, binary=False)
    return random_value(rng)


def _copy_path(doc: Any, path: tuple) -> Any:
    """`doc` with the containers along `path` copied (copy on write): the seeds and their untouched
    subtrees are shared, never changed, so a mutation costs its path, not the document."""
    root = copy.copy(doc)
    node = root
    for part in path:
        child = copy.copy(node[part])
        node[part] = child
        node = child
    return root


_PATHS: dict[int, tuple[Any, list[tuple]]] = {}


def _seed_paths(doc: Any, limit: int = 4000) -> list[tuple]:
    """The paths of a long-lived document, listed once (the entry keeps the document, so its id stays its own)."""
    entry = _PATHS.get(id(doc))
    if entry is None or entry[0] is not doc:
        entry = _PATHS[id(doc)] = (doc, _paths(doc, limit=limit))
    return entry[1]


def mutate_json(rng: random.Random, doc: Any, donors: list[Any], cache: bool = True) -> Any:
    """One to four structured mutations at random paths of `doc` (which is left as it is)."""
    for round_ in range(rng.choice([1, 1, 1, 2, 2, 3, 4])):
        paths = _seed_paths(doc) if round_ == 0 and cache else _paths(doc)
        path = rng.choice(paths)
        if not path:
            if rng.random() < 0.5:
                return random_value(rng)
            continue
        doc = _copy_path(doc, path[:-1])
        parent, key = _get(doc, path[:-1]), path[-1]
        op = rng.randrange(10)
        if op <= 2:
            parent[key] = random_value(rng)
        elif op == 3:
            parent[key] = _mutate_scalar(rng, parent[key])
        elif op == 4:
            del parent[key]
        elif op == 5 and isinstance(parent, dict):
            parent[random_text(rng, 12) if rng.random() < 0.5 else rng.choice(list(parent)) + "_"] = random_value(rng)
        elif op == 5:
            parent.insert(key, parent[key])  # a repeated element
        elif op == 6:  # a subtree from elsewhere (this or another valid document): right types, wrong place
            donor = rng.choice(donors or [doc])
            donor_paths = _seed_paths(donor, limit=400) if donors else _paths(donor, limit=400)
            parent[key] = _get(donor, rng.choice(donor_paths))
        elif op == 7:
            parent[key] = rng.choice([[parent[key]], {"value": parent[key]}, _safe_str(parent[key])])
        elif op == 8 and isinstance(parent[key], list | dict) and parent[key]:
            inner = parent[key] = copy.copy(parent[key])
            if isinstance(inner, list):
                inner.append(rng.choice(inner) if rng.random() < 0.5 else random_value(rng))
            else:
                inner.pop(rng.choice(list(inner)))
        else:
            parent[key] = _mutate_scalar(rng, parent[key])
    return doc


def _safe_str(value: Any) -> str:
    try:
        return str(value)[:1000]
    except (RecursionError, ValueError):
        return "?"


_ALPHABET = '\x00\n\r\t +/=-—@:.x0123456789abcdefABCDEF\ud800\u00e9\U0001f600\ufeff\\"{}[],'


def mutate_text(rng: random.Random, text: str, binary: bool = False) -> str:
    """Character- and line-level mutations of text (lines dropped, repeated, swapped; numbers made huge)."""
    for _ in range(rng.choice([1, 1, 2, 3])):
        op = rng.randrange(12)
        if op == 0 and text:
            i = rng.randrange(len(text))
            text = text[:i] + rng.choice(_ALPHABET) + text[i + 1 :]
        elif op == 1:
            i = rng.randrange(len(text) + 1)
            text = text[:i] + rng.choice(_ALPHABET) * rng.choice([1, 1, 2, 100]) + text[i:]
        elif op == 2 and text:
            i = rng.randrange(len(text))
            text = text[:i] + text[i + rng.randrange(1, 40) :]
        elif op == 3:
            text = text[: rng.randrange(len(text) + 1)]
        elif op in (4, 5, 6):
            lines = text.split("\n")
            i = rng.randrange(len(lines))
            choice = rng.randrange(6)
            if choice == 0:
                del lines[i]
            elif choice == 1:
                lines.insert(i, lines[i])
            elif choice == 2:
                j = rng.randrange(len(lines))
                lines[i], lines[j] = lines[j], lines[i]
            elif choice == 3:
                lines[i] = random_text(rng)
            elif choice == 4:
                lines.insert(i, "")
            else:
                lines[i] = lines[i] + rng.choice([" ", "\r", "=", "A", " x", "\t"])
            text = "\n".join(lines)
        elif op == 7:  # numbers: huge, negative, leading zero
            digits = [i for i, ch in enumerate(text) if ch.isdigit()]
            if digits:
                i = rng.choice(digits)
                text = (
                    text[:i]
                    + rng.choice(["9" * 30, "-1", "0", "00", "1" + "0" * 400, "99999999999999999999"])
                    + text[i:]
                )
        elif op == 8:
            text = text + rng.choice(["\n", "\n\n", "\n— x AAAA\n", text])
        elif op == 9:
            i = rng.randrange(len(text) + 1)
            text = text[:i] + random_text(rng) + text[i:]
        elif op == 10 and text:  # swap a character's case (hex and base64 care)
            i = rng.randrange(len(text))
            text = text[:i] + text[i].swapcase() + text[i + 1 :]
        else:
            text = text.replace("\n", rng.choice(["\r\n", "\n\n", " \n", "\n"]), 1)
    return text


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.choice([1, 1, 2, 4, 8])):
        op = rng.randrange(7)
        if op == 0 and buf:
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        elif op == 2:
            i = rng.randrange(len(buf) + 1)
            buf[i:i] = rng.choice(
                [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80", b"\x00", b"\xf4\x90\x80\x80", rng.randbytes(4)]
            )
        elif op == 3 and buf:
            del buf[rng.randrange(len(buf)) :]
        elif op == 4 and buf:
            i = rng.randrange(len(buf))
            del buf[i : i + rng.randrange(1, 16)]
        elif op == 5 and buf:
            i, j = sorted(rng.randrange(len(buf)) for _ in range(2))
            buf[i:i] = buf[i:j]
        else:
            buf += rng.randbytes(rng.randrange(1, 32))
    return bytes(buf)


def random_bytes(rng: random.Random) -> bytes:
    return rng.randbytes(rng.choice([0, 1, 2, 3, 8, 16, 64, 200, 1000, 5000]))


def json_bytes(rng: random.Random, value: Any) -> bytes:
    """Serialize with the quirks a hostile writer uses: NaN/Infinity, raw non-ASCII, a repeated key, deep nests."""
    try:
        text = json.dumps(value, allow_nan=True, ensure_ascii=rng.random() < 0.5)
    except (RecursionError, ValueError):
        text = "[" * 100_000 + "]" * 100_000
    pick = rng.random()
    if pick < 0.1 and text.startswith("{") and len(text) > 2:  # a key twice
        text = '{"format_version":1,' + text[1:] if rng.random() < 0.5 else text[:-1] + "," + text[1:]
    elif pick < 0.15:
        depth = rng.choice([100, 1000, 10_000, 200_000])
        i = text.find(":") + 1 if ":" in text else 0
        text = text[:i] + "[" * depth + "1" + "]" * depth + text[i + (1 if i else 0) :]
    elif pick < 0.2:
        text = text.replace("1", "1" + "0" * rng.choice([20, 400, 5000]), 1)
    elif pick < 0.25:
        text = text.replace("1", rng.choice(["1e400", "-1e400", "NaN", "Infinity", "1.0", "1E2", "-0"]), 1)
    try:
        return text.encode("utf-8", "surrogatepass")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


# ---------------------------------------------------------------------------------------------------------
# The world: valid documents made by the real code, and a real node
# ---------------------------------------------------------------------------------------------------------


@dataclass
class World:
    tmp: Path
    docs: dict[str, Any] = field(default_factory=dict)
    texts: dict[str, list[str]] = field(default_factory=dict)
    objects: dict[str, Any] = field(default_factory=dict)
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in reversed(self.closers):
            with contextlib.suppress(Exception):
                close()


def build_world(tmp: Path) -> World:
    from veriml import examples
    from veriml.codec import encode_tensor, tensors_to_json
    from veriml.hub import LlmSection, Manifest
    from veriml.identity import Signed, SigningKey
    from veriml.receipts import ReceiptLeaf, sign_attestation
    from veriml.service import Home, Service
    from veriml.tlog.checkpoint import Checkpoint, SignedCheckpoint, cosign
    from veriml.tlog.note import sign_note
    from veriml.tlog.tiles import TileRef
    from veriml.tlog.witness import add_checkpoint_body
    from veriml.zk.document import ARTIFACTS, ZkDocument

    world = World(tmp)
    model = examples.save(examples.mlp((4, 8, 3)), tmp / "mlp.onnx")
    home = Home(tmp / "home")
    publisher = SigningKey.generate("alice")
    publisher.save(home.publisher_key_path)
    service = Service(home)
    world.closers.append(service.close)
    manifest = service.publish(model, name="alice/mlp").manifest
    x = np.arange(8, dtype=np.float32).reshape(2, 4) / 7
    bundle = service.infer("alice/mlp", {"x": x}, prove=True)
    auditor = SigningKey.generate("auditor")
    receipt = bundle.receipt.body
    attestation = sign_attestation(
        auditor, receipt=bundle.receipt.id, subject=receipt.node, manifest=bundle.manifest.id,
        input_commitment=receipt.input_commitment, claimed_output=receipt.output_commitment,
        observed_output=receipt.output_commitment, verdict="agree", detail="", runtime_class="onnxruntime",
    )  # fmt: skip
    zk = Signed.sign(
        ZkDocument(
            manifest=manifest.id, artifacts=dict.fromkeys(ARTIFACTS, manifest.body.blob),
            srs_kind="development", logrows=15, input_visibility="public", output_visibility="public",
            shape_bindings={"N": 1}, prover="ezkl 23.0.5", publisher=publisher.public,
        ),
        publisher,
    )  # fmt: skip
    llm_manifest = Signed.sign(
        Manifest(
            name="alice/tiny-llm", version=1, blob=manifest.body.blob, size=10, format="gguf", opset=0,
            inputs=manifest.body.inputs, outputs=manifest.body.outputs, publisher=publisher.public,
            created=manifest.body.created, llm=LlmSection("llama", 2048, CHATML),
        ),
        publisher,
    )  # fmt: skip
    world.objects["llm_manifest"] = llm_manifest
    tensors = {
        "x": x,
        "ints": np.array([[1, -2], [3, 4]], dtype=np.int64),
        "flags": np.array([True, False]),
        "empty": np.zeros((0, 3), dtype=np.float16),
        "scalar": np.array(7, dtype=np.uint8),
    }
    world.docs["tensors"] = [tensors_to_json(tensors)]
    world.docs["bundle"] = [bundle.to_json()]
    world.docs["manifest"] = [manifest.to_json(), llm_manifest.to_json()]
    world.docs["receipt"] = [bundle.receipt.to_json()]
    world.docs["attestation"] = [attestation.to_json()]
    world.docs["zk_document"] = [zk.to_json()]
    world.objects["encoded_tensors"] = [encode_tensor(a) for a in tensors.values()]

    proof_text = bundle.log_proof
    assert proof_text is not None
    log_key = service.node_key
    witness = SigningKey.generate("witness-1")
    signed = SignedCheckpoint.parse(proof_text.partition("\n\n")[2])
    cosigned = signed.with_cosignatures([cosign(signed.checkpoint, witness, 1_700_000_000)])
    world.objects["checkpoint"] = signed.checkpoint
    world.objects["log_key"] = log_key.public
    world.objects["witness_key"] = witness
    big = Checkpoint("example.com/log", 123456789, bytes(range(32)), ("extension line",))
    world.texts["note"] = [cosigned.to_text(), sign_note("hello\nworld\n", publisher).to_text()]
    world.texts["checkpoint"] = [cosigned.to_text(), SignedCheckpoint(big, sign_note(big.text(), log_key)).to_text()]
    world.texts["cosignature"] = [cosign(signed.checkpoint, witness, 1_700_000_000).line()]
    world.texts["tlog_proof"] = [proof_text, proof_text.replace("index ", "extra AAEC\nindex ", 1)]
    world.texts["tile_path"] = [
        TileRef(level, index, width).path
        for level, index, width in [(0, 0, 256), (1, 1234067, 3), (None, 5, 256), (None, 0, 17), (63, 999, 255)]
    ]
    world.texts["key_file"] = [publisher.private_text() + "\n", witness.private_text()]
    world.objects["leaves"] = [ReceiptLeaf.of(bundle.receipt).to_bytes()]
    world.texts["verifier_key"] = [log_key.public.vkey, witness.cosigner_public.vkey, publisher.public.vkey]
    world.texts["model_ref"] = ["alice/mlp", "alice/mlp@1", str(manifest.id), "a.b_c-d/e@123456789"]
    world.texts["add_checkpoint"] = [add_checkpoint_body(0, [], signed).decode(), add_checkpoint_body(
        1, [bytes(range(32)), bytes(32)], signed).decode()]  # fmt: skip
    world.objects["service"] = service
    world.objects["bundle"] = bundle
    world.objects["leaf"] = ReceiptLeaf.of(bundle.receipt).to_bytes()
    return world


CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' "
    "+ '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def build_node(world: World) -> None:
    """A real node (its app, without background threads) holding the tiny model and witnessing the world's
    log. Fuzzed requests go straight into its ASGI app (`_asgi_post`); the seeds come from a TestClient call.
    It holds no language model (llama.cpp is optional): chat and completion requests are parsed and refused
    at the model, and the request-parsing steps past that are fuzzed directly (`openai-request`)."""
    from fastapi.testclient import TestClient

    from veriml.identity import SigningKey
    from veriml.node.app import create_app
    from veriml.node.config import NodeConfig
    from veriml.node.node import Node
    from veriml.service import Home

    home = Home(world.tmp / "node")
    SigningKey.generate("alice").save(home.publisher_key_path)
    node = Node(NodeConfig(home=home.root, peer_timeout=0.5, llm_max_tokens=8, llm_n_ctx=64))
    world.closers.append(node.stop)
    node.service.publish(world.tmp / "mlp.onnx", name="alice/mlp")
    node.witness.follow(world.objects["log_key"].name, world.objects["log_key"])
    app = create_app(node)
    client = TestClient(app, raise_server_exceptions=True)
    world.closers.append(client.close)
    loop = asyncio.new_event_loop()
    world.closers.append(loop.close)
    world.objects["node"] = node
    world.objects["client"] = client
    world.objects["asgi"] = (app, loop)
    answer = client.post("/v1/infer", json={"model": "alice/mlp", "inputs": {"x": [[0.5, 1, 2, 3]] * 2}})
    assert answer.status_code == 200, answer.text
    served = answer.json()["bundle"]
    world.docs["infer"] = [
        {"model": "alice/mlp", "inputs": {"x": [[0.5, 1, 2, 3], [4, 5, 6, 7]]}},
        {"model": "alice/mlp@1", "inputs": served["inputs"], "request_id": "abc-1", "privacy": "public"},
        {
            "model": str(served["receipt"]["body"]["manifest"]),
            "inputs": {"x": [[1, 2, 3, 4]]},
            "verify": "signed",
            "salt": "ab" * 32,
            "privacy": "private",
        },
    ]
    world.docs["attest"] = [{"receipt": served["receipt"], "salt": served["salt"], "inputs": served["inputs"],
                             "outputs": served["outputs"]}]  # fmt: skip
    chat = {"model": "alice/mlp", "messages": [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hi"}]}], "max_tokens": 4, "temperature": 0,
            "stop": ["\n"], "seed": 1, "stream": False}  # fmt: skip
    world.docs["chat"] = [chat, {**chat, "model": "alice/tiny-llm", "stream": True, "n": 1, "top_p": 0.5}]
    completion = {"model": "alice/mlp", "prompt": "Once", "max_tokens": 4, "temperature": 0.7, "top_k": 4}
    world.docs["completion"] = [completion, {**completion, "model": "alice/nope@2", "prompt": ["a"], "n_ctx": 32}]


def llm_available() -> bool:
    from veriml import examples

    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return examples.smollm2_path() is not None


def build_llm_node(world: World) -> None:
    """A second real node holding SmolLM2 (when llama.cpp and the GGUF are installed), with tiny generation
    limits, so that chat and completion requests run through tokenizing and generation too."""
    from veriml import examples
    from veriml.identity import SigningKey
    from veriml.node.app import create_app
    from veriml.node.config import NodeConfig
    from veriml.node.node import Node
    from veriml.service import Home

    home = Home(world.tmp / "llm-node")
    SigningKey.generate("alice").save(home.publisher_key_path)
    node = Node(NodeConfig(home=home.root, llm_max_tokens=2, llm_n_ctx=96, llm_n_batch=32))
    world.closers.append(node.stop)
    path = examples.smollm2_path()
    assert path is not None
    node.service.publish(path, name="alice/smol")
    loop = asyncio.new_event_loop()
    world.closers.append(loop.close)
    world.objects["llm_asgi"] = (create_app(node), loop)
    chat = {"model": "alice/smol", "messages": [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hi"}]}], "max_tokens": 2, "temperature": 0,
            "stop": ["\n"], "seed": 1, "stream": False}  # fmt: skip
    world.docs["llm_chat"] = [chat, {**chat, "stream": True, "top_p": 0.5, "top_k": 3, "temperature": 0.7}]
    completion = {"model": "alice/smol", "prompt": "Once", "max_tokens": 2, "temperature": 0.7, "top_k": 4}
    world.docs["llm_completion"] = [completion, {**completion, "prompt": ["a b"], "n_ctx": 32, "stream": True}]


# ---------------------------------------------------------------------------------------------------------
# Targets
# ---------------------------------------------------------------------------------------------------------


class Unhandled(Exception):
    """An HTTP answer that breaks the contract (5xx, or a 4xx without a problem body)."""


class Refused(VerimlError):
    """An HTTP answer that refuses the input the way the contract says: a 4xx with a problem body."""


@dataclass
class Target:
    name: str
    generate: Callable[[random.Random, World], Any]
    call: Callable[[Any, World], None]
    needs_node: bool = False
    needs_llm: bool = False  # run only where llama.cpp and SmolLM2 are installed


def _docs_gen(key: str, form: str) -> Callable[[random.Random, World], Any]:
    """Inputs from valid documents: objects (what a parsed JSON body hands a parser) or bytes (a file)."""

    def generate(rng: random.Random, world: World) -> Any:
        seeds = world.docs[key]
        donors = [doc for docs in world.docs.values() for doc in docs]
        pick = rng.random()
        if pick < 0.05:
            return random_bytes(rng) if form == "bytes" else random_value(rng)
        # A few valid documents, which must stay accepted; the rest mutated.
        value = rng.choice(seeds) if pick < 0.08 else mutate_json(rng, rng.choice(seeds), donors)
        if form == "obj":
            return value
        data = json_bytes(rng, value)
        return mutate_bytes(rng, data) if rng.random() < 0.3 else data

    return generate


def _text_gen(key: str, form: str = "str", non_str: bool = False) -> Callable[[random.Random, World], Any]:
    def generate(rng: random.Random, world: World) -> Any:
        pick = rng.random()
        if pick < 0.05:
            if form == "bytes":
                return random_bytes(rng)
            if non_str and rng.random() < 0.5:
                return random_value(rng)
            return random_text(rng, 200)
        seed = rng.choice(world.texts[key])
        text = seed if pick < 0.08 else mutate_text(rng, seed)
        if form == "bytes":
            data = text.encode("utf-8", "surrogatepass")
            return mutate_bytes(rng, data) if rng.random() < 0.3 else data
        return text

    return generate


def _tensor_bytes_gen(rng: random.Random, world: World) -> bytes:
    pick = rng.random()
    if pick < 0.1:
        return random_bytes(rng)
    if pick < 0.45:  # a header of any dtype code, rank and dims, then some data
        rank = rng.choice([0, 1, 2, 3, 4, 32, 33, 255])
        dims = [
            rng.choice([0, 1, 2, 3, 2**32, 2**62, 2**63, 2**64 - 1, rng.getrandbits(64)]) for _ in range(min(rank, 40))
        ]
        header = struct.pack("<BB", rng.choice([0, 1, 2, 7, 9, 10, 11, 13, 14, 16, 255]), rank)
        body = b"".join(struct.pack("<Q", d) for d in dims)
        return header + body + rng.randbytes(rng.choice([0, 1, 2, 4, 8, 16, 64]))
    return mutate_bytes(rng, rng.choice(world.objects["encoded_tensors"]))


def _problem_ok(response: Any, openai: bool) -> None:
    status = response.status_code
    if status >= 500:
        raise Unhandled(f"HTTP {status}: {response.text[:200]}")
    if status < 400:
        if b"internal error (" in response.content:  # a stream's error event after its 200 status line
            raise Unhandled(f"HTTP {status} stream ended in {response.text[-200:]}")
        return
    content_type = response.headers.get("content-type", "")
    # C2SP tlog-witness: a 409 answers with the size this witness last cosigned.
    if status == 409 and content_type.startswith("text/x.tlog.size") and response.text.rstrip("\n").isdigit():
        raise Refused(response.text)
    try:
        body = response.json()
    except ValueError as exc:
        raise Unhandled(f"HTTP {status} without a JSON body") from exc
    error = body.get("error") if isinstance(body, dict) else None
    if openai and isinstance(error, dict) and isinstance(error.get("message"), str) and "type" in error:
        raise Refused(error["message"])
    problem = content_type.startswith("application/problem+json") and isinstance(body, dict)
    if problem and all(k in body for k in ("type", "title", "status", "detail")) and body["status"] == status:
        raise Refused(body["detail"])
    raise Unhandled(f"HTTP {status} without an error body of the right shape")


@dataclass
class _Answer:
    status_code: int
    headers: dict[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


async def _asgi_post(app: Any, path: str, body: bytes, content_type: str | None) -> _Answer:
    """One POST straight into the ASGI app: what uvicorn would hand it, without sockets or a test client's
    thread hop. An exception the app does not handle propagates (Starlette re-raises after its 500)."""
    headers = [(b"host", b"127.0.0.1"), (b"content-length", str(len(body)).encode())]
    if content_type:
        headers.append((b"content-type", content_type.encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8700)}  # fmt: skip
    pending = [{"type": "http.request", "body": body, "more_body": False}]
    answer = _Answer(0, {}, b"")

    async def receive() -> dict[str, Any]:
        return pending.pop() if pending else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer.status_code = message["status"]
            answer.headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            answer.content += message.get("body", b"")

    await app(scope, receive, send)
    return answer


def _post(path: str, openai: bool = False, raw: bool = False, llm: bool = False) -> Callable[[Any, World], None]:
    def call(data: Any, world: World) -> None:
        app, loop = world.objects["llm_asgi" if llm else "asgi"]
        answer = loop.run_until_complete(_asgi_post(app, path, data, None if raw else "application/json"))
        _problem_ok(answer, openai)

    return call


def _call_tensor_json(obj: Any, world: World) -> None:
    from veriml.codec import tensor_from_json, tensors_from_json

    tensors_from_json(obj)
    if isinstance(obj, dict):
        for value in obj.values():
            tensor_from_json(value)


def _call_tensor_bytes(data: bytes, world: World) -> None:
    from veriml.codec import decode_tensor

    decode_tensor(data)


def _call_parse_json(data: bytes, world: World) -> None:
    from veriml.codec import expect_document, parse_json
    from veriml.receipts import bundle

    expect_document(parse_json(data, "fuzz"), bundle._FIELDS, "bundle", bundle.FORMAT_VERSION)


def _call_expect_document(obj: Any, world: World) -> None:
    from veriml.codec import expect_document
    from veriml.receipts import receipt

    body = obj.get("body") if isinstance(obj, dict) else obj
    expect_document(body, receipt._FIELDS, "receipt", receipt.FORMAT_VERSION)


def _call_bundle(data: bytes, world: World) -> None:
    from veriml.receipts import Bundle

    Bundle.from_bytes(data)


def _call_manifest(obj: Any, world: World) -> None:
    from veriml.hub import parse_signed_manifest

    parse_signed_manifest(obj)


def _call_receipt(obj: Any, world: World) -> None:
    from veriml.receipts import parse_signed_receipt

    parse_signed_receipt(obj)


def _call_attestation(obj: Any, world: World) -> None:
    from veriml.receipts import parse_signed_attestation

    parse_signed_attestation(obj)


def _call_zk(obj: Any, world: World) -> None:
    from veriml.zk import parse_signed_zk_document

    parse_signed_zk_document(obj)


def _call_note(data: bytes, world: World) -> None:
    from veriml.tlog.note import parse_note, verify_note

    note = parse_note(data)
    with contextlib.suppress(VerimlError):
        verify_note(note, [world.objects["log_key"]])


def _call_checkpoint(data: bytes, world: World) -> None:
    from veriml.tlog.checkpoint import SignedCheckpoint, TrustPolicy

    signed = SignedCheckpoint.parse(data)
    witness = world.objects["witness_key"].cosigner_public
    TrustPolicy(world.objects["log_key"], (witness,), 1).check(signed)


def _call_cosignature(data: bytes, world: World) -> None:
    """What a log does with a witness's add-checkpoint answer (Log.collect_cosignatures)."""
    from veriml.tlog.checkpoint import verify_cosignature
    from veriml.tlog.note import parse_note

    signed_text = world.texts["checkpoint"][0].split("\n\n")[0] + "\n\n" + "".join(
        line + "\n" for line in world.texts["checkpoint"][0].split("\n\n")[1].splitlines()[:1]
    )  # fmt: skip
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return  # the log refuses it as VerificationFailed before parsing
    witness = world.objects["witness_key"].cosigner_public
    lines = parse_note(signed_text + text, "witness response").signatures
    for line in lines:
        if line.matches(witness):
            verify_cosignature(world.objects["checkpoint"], line, witness)


def _call_tlog_proof(text: str, world: World) -> None:
    from veriml.tlog.checkpoint import TrustPolicy
    from veriml.tlog.proof_text import TlogProof

    proof = TlogProof.parse(text)
    proof.verify(world.objects["leaf"], TrustPolicy(world.objects["log_key"]))


def _call_tile_path(text: str, world: World) -> None:
    from veriml.tlog.tiles import parse_tile_path

    parse_tile_path(text)


def _call_verifier_key(text: Any, world: World) -> None:
    from veriml.identity import VerifyingKey

    VerifyingKey.parse(text)


def _call_key_file(data: bytes, world: World) -> None:
    from veriml.identity import SigningKey

    path = world.tmp / "fuzz.key"
    path.write_bytes(data)
    path.chmod(0o600)
    SigningKey.load(path)


def _leaf_gen(rng: random.Random, world: World) -> bytes:
    return random_bytes(rng) if rng.random() < 0.2 else mutate_bytes(rng, world.objects["leaves"][0])


def _call_leaf(data: bytes, world: World) -> None:
    from veriml.receipts import ReceiptLeaf

    ReceiptLeaf.from_bytes(data)


def _call_model_ref(text: str, world: World) -> None:
    from veriml.hub import ModelRef

    ModelRef.parse(text)


def _call_add_checkpoint_parse(data: bytes, world: World) -> None:
    from veriml.tlog.witness import parse_add_checkpoint

    parse_add_checkpoint(data)


def _inputs_gen(rng: random.Random, world: World) -> Any:
    pick = rng.random()
    if pick < 0.5:
        base = rng.choice(world.docs["infer"])["inputs"]
        return mutate_json(rng, base, world.docs["tensors"]) if rng.random() < 0.9 else base
    if pick < 0.8:
        return {"x": mutate_json(rng, [[0.5, 1, 2, 3]] * rng.choice([1, 2]), [], cache=False)}
    return {rng.choice(["x", "y"]): random_value(rng)}


def _call_inputs(raw: Any, world: World) -> None:
    from veriml.runtime.inputs import coerce_inputs, validate_inputs

    specs = world.objects["bundle"].manifest.body.inputs
    if not isinstance(raw, dict):
        raw = {"x": raw}
    validate_inputs(specs, coerce_inputs(specs, raw), 1 << 20, allow_nan=False)


def _call_openai_direct(obj: Any, world: World) -> None:
    """The request-parsing steps of /v1/chat/completions and /v1/completions, called directly: the request
    model (a ValidationError is FastAPI's 400), the sampling parameters, and the chat messages rendered with a
    language model's signed chat template."""
    from pydantic import ValidationError

    from veriml.node import openai_api

    node = world.objects["node"]
    manifest = world.objects["llm_manifest"]
    chat = isinstance(obj, dict) and "messages" in obj
    model = openai_api.ChatCompletionRequest if chat else openai_api.CompletionRequest
    try:
        request = model.model_validate(obj)
    except ValidationError:
        return
    asked = request.max_tokens
    if chat and request.max_completion_tokens is not None:
        asked = request.max_completion_tokens
    params = openai_api._params(node, request, manifest, asked)
    if chat:
        node.service.chat_prompt(manifest, request.messages)
    node.service.check_generation(manifest, params)
    openai_api._settle(node, params, 1 + params.seed % 70, asked)


def _openai_gen(rng: random.Random, world: World) -> Any:
    key = rng.choice(["chat", "completion"])
    seeds = [{**doc, "model": "alice/tiny-llm"} for doc in world.docs[key]]
    return mutate_json(rng, rng.choice(seeds), world.docs["chat"] + world.docs["completion"])


TARGETS: list[Target] = [
    Target("tensor-json", _docs_gen("tensors", "obj"), _call_tensor_json),
    Target("tensor-binary", _tensor_bytes_gen, _call_tensor_bytes),
    Target("canonical-parse-json", _docs_gen("bundle", "bytes"), _call_parse_json),
    Target("canonical-expect-document", _docs_gen("receipt", "obj"), _call_expect_document),
    Target("bundle", _docs_gen("bundle", "bytes"), _call_bundle),
    Target("manifest", _docs_gen("manifest", "obj"), _call_manifest),
    Target("receipt", _docs_gen("receipt", "obj"), _call_receipt),
    Target("attestation", _docs_gen("attestation", "obj"), _call_attestation),
    Target("zk-document", _docs_gen("zk_document", "obj"), _call_zk),
    Target("signed-note", _text_gen("note", "bytes"), _call_note),
    Target("checkpoint", _text_gen("checkpoint", "bytes"), _call_checkpoint),
    Target("cosignature", _text_gen("cosignature", "bytes"), _call_cosignature),
    Target("tlog-proof", _text_gen("tlog_proof", non_str=True), _call_tlog_proof),
    Target("add-checkpoint-body", _text_gen("add_checkpoint", "bytes"), _call_add_checkpoint_parse),
    Target("tile-path", _text_gen("tile_path"), _call_tile_path),
    Target("verifier-key", _text_gen("verifier_key", non_str=True), _call_verifier_key),
    Target("model-ref", _text_gen("model_ref"), _call_model_ref),
    Target("key-file", _text_gen("key_file", "bytes"), _call_key_file),
    Target("receipt-leaf", _leaf_gen, _call_leaf),
    Target("runtime-inputs", _inputs_gen, _call_inputs),
    Target("openai-request", _openai_gen, _call_openai_direct, needs_node=True),
    Target("http-infer", _docs_gen("infer", "bytes"), _post("/v1/infer"), needs_node=True),
    Target("http-chat-completions", _docs_gen("chat", "bytes"), _post("/v1/chat/completions", openai=True), True),
    Target("http-completions", _docs_gen("completion", "bytes"), _post("/v1/completions", openai=True), True),
    Target("http-attest", _docs_gen("attest", "bytes"), _post("/v1/attest"), needs_node=True),
    Target("http-add-checkpoint", _text_gen("add_checkpoint", "bytes"), _post("/add-checkpoint", raw=True), True),
    Target("http-chat-completions-llm", _docs_gen("llm_chat", "bytes"),
           _post("/v1/chat/completions", openai=True, llm=True), needs_llm=True),
    Target("http-completions-llm", _docs_gen("llm_completion", "bytes"),
           _post("/v1/completions", openai=True, llm=True), needs_llm=True),
]  # fmt: skip
BY_NAME = {target.name: target for target in TARGETS}


# ---------------------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------------------


def _location(exc: BaseException) -> str:
    """The deepest frame in veriml's sources the exception passed through (and the raising frame if elsewhere)."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/veriml/" in f.filename and "fuzz_parsers" not in f.filename]
    where = ""
    if ours:
        frame = ours[-1]
        where = f"{frame.filename.split('/src/')[-1]}:{frame.lineno} {frame.name}"
    if frames and (not ours or frames[-1] is not ours[-1]):
        last = frames[-1]
        where += f" <- {Path(last.filename).name}:{last.lineno} {last.name}"
    return where or "?"


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlist, _REPR.maxdict = 6, 160, 160, 8, 12


def _short(data: Any) -> str:
    return _REPR.repr(data)[:400]


@dataclass
class Result:
    name: str
    inputs: int = 0
    accepted: int = 0
    unhandled: int = 0
    seconds: float = 0.0
    slowest: float = 0.0
    slowest_example: str = ""
    failures: dict[str, dict[str, Any]] = field(default_factory=dict)  # "Type @ where" -> count, example


def run_target(name: str, count: int, seed: int, world: World) -> Result:
    target = BY_NAME[name]
    rng = random.Random(f"{seed}:{name}")
    result = Result(name)
    start = time.perf_counter()
    for index in range(count):
        data = target.generate(rng, world)  # a generator failure is the script's bug: let it stop the run
        began = time.perf_counter()
        try:
            target.call(data, world)
            result.accepted += 1
        except VerimlError:
            pass
        except Exception as exc:  # counting them is the point
            result.unhandled += 1
            key = f"{type(exc).__name__} @ {_location(exc)}"
            entry = result.failures.setdefault(key, {"count": 0, "index": index, "example": _short(data),
                                                     "message": str(exc)[:200]})  # fmt: skip
            entry["count"] += 1
        took = time.perf_counter() - began
        if took > result.slowest:
            result.slowest, result.slowest_example = took, f"input #{index}: {_short(data)}"
        result.inputs += 1
    result.seconds = time.perf_counter() - start
    return result


_WORLD: World | None = None
_ROOT: str | None = None  # one directory for every worker's world, removed when the run ends


def _worker_world(needs_node: bool, needs_llm: bool = False) -> World:
    global _WORLD
    if _WORLD is None:
        _WORLD = build_world(Path(tempfile.mkdtemp(prefix="veriml-fuzz-", dir=_ROOT)))
    if needs_node and "client" not in _WORLD.objects:
        build_node(_WORLD)
    if needs_llm and "llm_asgi" not in _WORLD.objects:
        build_llm_node(_WORLD)
    return _WORLD


def _run_in_worker(args: tuple[str, int, int]) -> Result:
    name, count, seed = args
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000))
    target = BY_NAME[name]
    return run_target(name, count, seed, _worker_world(target.needs_node, target.needs_llm))


def run(names: list[str], per_parser: int, seed: int, jobs: int, progress_to: Any = None) -> list[Result]:
    global _ROOT, _WORLD
    with tempfile.TemporaryDirectory(prefix="veriml-fuzz-run-") as root:
        _ROOT = root
        try:
            return _run(names, per_parser, seed, jobs, progress_to)
        finally:
            if _WORLD is not None:  # built in this process (one job): close it before its directory goes
                _WORLD.close()
                _WORLD = None
            _ROOT = None


def _run(names: list[str], per_parser: int, seed: int, jobs: int, progress_to: Any) -> list[Result]:
    # Split each parser's inputs into chunks so two processes share the slow HTTP targets too.
    chunk = max(1, min(per_parser, 10_000))
    tasks = []
    for name in names:
        for part, begin in enumerate(range(0, per_parser, chunk)):
            tasks.append((name, min(chunk, per_parser - begin), seed * 1000 + part))
    tasks.sort(key=lambda task: not BY_NAME[task[0]].needs_node)  # slow ones first
    parts = []

    def progress(part: Result) -> None:
        parts.append(part)
        if progress_to is not None:
            print(f"[{len(parts)}/{len(tasks)}] {part.name}: {part.inputs} inputs, {part.unhandled} unhandled, "
                  f"{part.seconds:.0f} s", file=progress_to, flush=True)  # fmt: skip

    if jobs <= 1:
        for task in tasks:
            progress(_run_in_worker(task))
    else:
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            for part in pool.imap_unordered(_run_in_worker, tasks, chunksize=1):
                progress(part)
    merged: dict[str, Result] = {name: Result(name) for name in names}
    for part in parts:
        total = merged[part.name]
        total.inputs += part.inputs
        total.accepted += part.accepted
        total.unhandled += part.unhandled
        total.seconds += part.seconds
        if part.slowest > total.slowest:
            total.slowest, total.slowest_example = part.slowest, part.slowest_example
        for key, entry in part.failures.items():
            if key in total.failures:
                total.failures[key]["count"] += entry["count"]
            else:
                total.failures[key] = dict(entry)
    return [merged[name] for name in names]


def report(results: list[Result], wall: float, out: Any = sys.stdout) -> None:
    width = max(len(r.name) for r in results)
    print(
        f"{'parser':<{width}}  {'inputs':>9}  {'accepted':>8}  {'unhandled':>9}  {'cpu s':>7}  {'slowest ms':>10}",
        file=out,
    )
    for r in results:
        print(f"{r.name:<{width}}  {r.inputs:>9,}  {r.accepted:>8,}  {r.unhandled:>9,}  {r.seconds:>7.1f}  "
              f"{r.slowest * 1000:>10.1f}", file=out)  # fmt: skip
    total = sum(r.inputs for r in results)
    bad = sum(r.unhandled for r in results)
    print(f"{'total':<{width}}  {total:>9,}  {'':>8}  {bad:>9,}   wall {wall:.0f} s", file=out)
    for r in sorted(results, key=lambda r: -r.slowest)[:5]:
        print(f"\nslowest [{r.name}] {r.slowest * 1000:.0f} ms: {r.slowest_example}", file=out)
    for r in results:
        for key, entry in sorted(r.failures.items(), key=lambda item: -item[1]["count"]):
            print(f"\n[{r.name}] {entry['count']} x {key}\n    {entry['message']}\n    input #{entry['index']}: "
                  f"{entry['example']}", file=out)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-parser", type=int, default=100_000)
    parser.add_argument("--only", default="", help="comma-separated parser names (see --list)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(BY_NAME))
        return 0
    names = [n for n in args.only.split(",") if n] or [
        target.name for target in TARGETS if not target.needs_llm or llm_available()
    ]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        parser.error(f"unknown parser {unknown[0]!r}; see --list")
    import logging

    logging.disable(logging.CRITICAL)  # the node logs every refused request; millions of lines help no one
    start = time.perf_counter()
    results = run(names, args.per_parser, args.seed, args.jobs, sys.stderr)
    wall = time.perf_counter() - start
    report(results, wall)
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in results], indent=1))
    return 1 if any(r.unhandled for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
