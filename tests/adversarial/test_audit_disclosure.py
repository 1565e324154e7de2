"""Who reads a request's data (issue 11): an unauthenticated reader gets only the signed receipt and its proof; a
forged, unregistered, stale or replayed auditor request is refused; a registered auditor gets the data (each
disclosure recorded) and its audit catches a wrong output; a private request is never disclosed; an auditor is
rate-limited."""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.adversarial.audit_support import (
    attestations,
    infer,
    info,
    publish_mlp,
    refusals,
    wait_audited,
    wait_checkpoint,
)
from veriml import devnet
from veriml.codec import tensors_digest, tensors_from_json
from veriml.identity import SigningKey, VerifyingKey
from veriml.node.auditor_auth import BURST, RATE, sign_request
from veriml.receipts import ReceiptLeaf, commit, parse_signed_receipt
from veriml.service import Home
from veriml.tlog import TlogProof, TrustPolicy

BYZANTINE = Path(__file__).parents[1] / "integration" / "veriml_byzantine_node.py"
X = np.array([[0.25] * 16], dtype=np.float32)  # a low-entropy input: easy to guess


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    root = tmp_path_factory.mktemp("disclosure")
    network = devnet.up(root, 3, checkpoint_interval=0.3, audit_fraction=1.0,
                        commands={2: [sys.executable, str(BYZANTINE)]})  # fmt: skip
    try:
        publish_mlp(network, root)
        yield network
    finally:
        devnet.down(root)


def _key(network, n: int) -> SigningKey:  # type: ignore[no-untyped-def]
    return Home(Path(network.nodes[n].home)).node_key()


def _disclosures(network, n: int) -> list[dict]:  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {network.admin_token}"}
    return httpx.get(f"{network.urls[n]}/v1/disclosures", params={"limit": 1000}, headers=headers).json()["disclosures"]


def _count(network, n: int, index: int, auditor: SigningKey) -> int:  # type: ignore[no-untyped-def]
    return sum(d["log_index"] == index and d["auditor"] == auditor.public.vkey for d in _disclosures(network, n))


def _signed_get(network, by: SigningKey, n: int, path: str, **kwargs) -> httpx.Response:  # type: ignore[no-untyped-def]
    serving = VerifyingKey.parse(info(network.urls[n])["node"])
    headers = sign_request(by, "GET", path, serving, **kwargs)
    return httpx.get(network.urls[n] + path, headers=headers, timeout=10)


def _no_data(text: str, salt: str) -> None:
    assert salt not in text and '"inputs"' not in text and '"outputs"' not in text and '"salt"' not in text


def test_unauthenticated_reader_gets_no_inputs_or_outputs(net):
    index, salt = infer(net.urls[1], X)
    wait_checkpoint(net.urls[1], index + 1)
    entry = httpx.get(f"{net.urls[1]}/v1/log/entries/{index}")
    assert entry.status_code == 200 and entry.json()["data"] == "withheld"
    _no_data(entry.text, salt)
    # What is public still proves the receipt is in the log.
    receipt = parse_signed_receipt(entry.json()["receipt"])
    key = VerifyingKey.parse(info(net.urls[1])["node"])
    TlogProof.parse(entry.json()["proof"]).verify(ReceiptLeaf.of(receipt).to_bytes(), TrustPolicy(key))
    # A guess of the low-entropy input cannot be confirmed: nothing public carries its unsalted digest.
    guess = tensors_digest({"x": X}).value.hex()
    bundle = httpx.get(f"{net.urls[1]}/v1/log/entries/{index}/bundle")
    assert bundle.status_code == 403 and "only to its client" in bundle.json()["detail"]
    wait_audited(net.urls[:1], info(net.urls[1])["log_origin"], index + 1)
    public = [entry.text, bundle.text] + [
        httpx.get(net.urls[n] + path).text
        for n in range(3)
        for path in ("/v1/evidence?limit=1000", "/v1/attestations?limit=1000", "/v1/info", "/checkpoint")
    ]
    for text in public:
        _no_data(text, salt)
        assert guess not in text
    # The client that made the request proves it with its salt, and gets its bundle.
    own = httpx.get(f"{net.urls[1]}/v1/log/entries/{index}/bundle", headers={"X-Veriml-Salt": salt})
    assert own.status_code == 200 and own.json()["salt"] == salt
    # Request data never reaches the node's log lines.
    for node in net.nodes:
        assert salt not in Path(node.log).read_text()


def test_forged_or_unregistered_auditor_is_refused(net):
    index, salt = infer(net.urls[1], X)
    path = f"/v1/log/entries/{index}"
    registered, stranger = _key(net, 0), SigningKey.generate("mallory")
    wait_audited(net.urls[:1], info(net.urls[1])["log_origin"], index + 1)  # node 0's own audit is done
    before = _count(net, 1, index, registered)
    node1 = VerifyingKey.parse(info(net.urls[1])["node"])
    node2 = VerifyingKey.parse(info(net.urls[2])["node"])
    good = sign_request(registered, "GET", path, node1)
    attempts = {
        "bad signature": ({**good, "x-veriml-signature": sign_request(registered, "POST", path, node1)
                           ["x-veriml-signature"]}, "signature is not valid"),
        "unknown key": (sign_request(stranger, "GET", path, node1), "not a registered peer"),
        "stale timestamp": (sign_request(registered, "GET", path, node1, now=time.time() - 3600),
                            "from this node's clock"),
        "made for another node": (sign_request(registered, "GET", path, node2), "signature is not valid"),
        "malformed key": ({**good, "x-veriml-auditor": "node+00000000+AAAA"}, "malformed"),
    }  # fmt: skip
    for name, (headers, expected) in attempts.items():
        response = httpx.get(net.urls[1] + path, headers=headers)
        assert response.status_code == 403, name
        assert expected in response.json()["detail"], (name, response.json()["detail"])
        _no_data(response.text, salt)
        bundle = httpx.get(net.urls[1] + path + "/bundle", headers=headers)
        assert bundle.status_code == 403, name
    # The same signed request works once; played again it is refused.
    first = httpx.get(net.urls[1] + path, headers=good)
    assert first.status_code == 200 and first.json()["data"] == "disclosed", first.text
    replay = httpx.get(net.urls[1] + path, headers=good)
    assert replay.status_code == 403 and "replay" in replay.json()["detail"]
    _no_data(replay.text, salt)
    # Only the one accepted request was recorded as a disclosure; no refused one was.
    assert _count(net, 1, index, registered) == before + 1
    assert stranger.public.vkey not in {d["auditor"] for d in _disclosures(net, 1)}


def test_registered_auditor_gets_data_and_catches_a_wrong_output(net):
    index, salt = infer(net.urls[2], X)  # node 2 perturbs every output it computes
    wait_checkpoint(net.urls[2], index + 1)
    response = _signed_get(net, _key(net, 0), 2, f"/v1/log/entries/{index}")
    entry = response.json()
    assert response.status_code == 200 and entry["data"] == "disclosed" and entry["salt"] == salt
    receipt = parse_signed_receipt(entry["receipt"])
    outputs = tensors_from_json(entry["outputs"])
    # What was disclosed opens the receipt's commitments: it is the data the node signed for.
    assert commit(bytes.fromhex(salt), tensors_digest(tensors_from_json(entry["inputs"]))) == \
        receipt.body.input_commitment  # fmt: skip
    assert commit(bytes.fromhex(salt), tensors_digest(outputs)) == receipt.body.output_commitment
    # The auditors (fraction 1) re-executed it and keep the disagreement as evidence.
    origin, subject = info(net.urls[2])["log_origin"], info(net.urls[2])["node"]
    wait_audited(net.urls[:2], origin, index + 1)
    for url in net.urls[:2]:
        found = [a for a in attestations(url, subject) if a["log_index"] == index]
        assert [a["verdict"] for a in found] == ["disagree"]
        evidence = httpx.get(f"{url}/v1/evidence", params={"limit": 1000}).json()["evidence"]
        assert any(e["log_index"] == index and e["subject"] == subject for e in evidence)
    # Each disclosure was recorded: the two auditors and this one.
    to = {d["auditor"] for d in _disclosures(net, 2) if d["log_index"] == index}
    assert to == {_key(net, 0).public.vkey, _key(net, 1).public.vkey}


def test_private_request_is_never_disclosed(net):
    index, salt = infer(net.urls[1], X, privacy="private")
    wait_checkpoint(net.urls[1], index + 1)
    origin = info(net.urls[1])["log_origin"]
    wait_audited(net.urls[:1], origin, index + 1)
    for headers in ({}, {"X-Veriml-Salt": salt}):
        entry = httpx.get(f"{net.urls[1]}/v1/log/entries/{index}", headers=headers)
        assert entry.json()["data"] == "private"
        _no_data(entry.text, salt)
    audited = _signed_get(net, _key(net, 0), 1, f"/v1/log/entries/{index}")
    assert audited.status_code == 200 and audited.json()["data"] == "private"
    _no_data(audited.text, salt)
    bundle = httpx.get(f"{net.urls[1]}/v1/log/entries/{index}/bundle", headers={"X-Veriml-Salt": salt})
    assert bundle.status_code == 403 and "private request" in bundle.json()["detail"]
    assert index not in {d["log_index"] for d in _disclosures(net, 1)}
    # Not kept: the salt is nowhere in the node's files, and the auditor records it as private, not refused.
    for name in ("log.sqlite", "log.sqlite-wal"):
        file = Path(net.nodes[1].home, "log", name)
        assert not file.exists() or salt.encode() not in file.read_bytes()
    subject = info(net.urls[1])["node"]
    assert index not in {r["log_index"] for r in refusals(net.urls[0], subject)}
    assert index not in {a["log_index"] for a in attestations(net.urls[0], subject)}


def test_auditor_rate_limit(net):
    index, salt = infer(net.urls[0], X)
    auditor = _key(net, 1)
    node0 = VerifyingKey.parse(info(net.urls[0])["node"])
    path = f"/v1/log/entries/{index}"
    start, stop = time.monotonic(), threading.Event()

    def ask(http: httpx.Client) -> tuple[int, str]:
        if stop.is_set():
            return 0, ""
        response = http.get(path, headers=sign_request(auditor, "GET", path, node0))
        if response.status_code == 429:
            stop.set()
        return response.status_code, response.text

    # Several at once: faster than the sustained rate even on a busy machine.
    with httpx.Client(base_url=net.urls[0]) as http, ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: ask(http), range(10 * BURST)))
    elapsed = time.monotonic() - start
    served = sum(status == 200 for status, _ in answers)
    limited = [text for status, text in answers if status == 429]
    assert {status for status, _ in answers} <= {0, 200, 429}
    assert limited and all("disclosures per second" in text for text in limited)
    for text in limited:
        _no_data(text, salt)
    # Never more than the burst plus the sustained rate over the time taken.
    assert BURST / 2 <= served <= BURST + RATE * elapsed + 1
    # The limit is per auditor: another registered key is served meanwhile, and so is this one after a pause.
    assert _signed_get(net, _key(net, 2), 0, path).json()["data"] == "disclosed"
    time.sleep(0.5)
    assert _signed_get(net, auditor, 0, path).json()["data"] == "disclosed"


def test_several_entries_under_one_signature(net):
    """What an auditor asks a round's sample in: each entry answered as alone, its disclosure recorded; the
    signature covers the indices asked for, so it opens no other entry; each entry counts against the rate."""
    (a, salt_a), (b, salt_b) = infer(net.urls[1], X), infer(net.urls[1], X)
    private, salt_p = infer(net.urls[1], X, privacy="private")
    missing = 1 << 40
    wait_checkpoint(net.urls[1], private + 1)
    wait_audited(net.urls[:1], info(net.urls[1])["log_origin"], private + 1)  # node 0's own audit is done
    auditor = _key(net, 0)
    before = {i: _count(net, 1, i, auditor) for i in (a, b, private)}
    path = f"/v1/log/entries?indices={a},{private},{b},{missing}"
    answer = _signed_get(net, auditor, 1, path)
    assert answer.status_code == 200, answer.text
    entries = answer.json()["entries"]
    assert [e["index"] for e in entries] == [a, private, b, missing]
    assert [e.get("data") for e in entries[:3]] == ["disclosed", "private", "disclosed"]
    assert (entries[0]["salt"], entries[2]["salt"]) == (salt_a, salt_b)
    assert entries[3]["status"] == 404 and "receipt" not in entries[3]
    _no_data(str(entries[1]), salt_p)
    for entry in (entries[0], entries[2]):
        proof = TlogProof.parse(entry["proof"])
        assert proof.index == entry["index"]
        proof.verify(ReceiptLeaf.of(parse_signed_receipt(entry["receipt"])).to_bytes(),
                     TrustPolicy(VerifyingKey.parse(info(net.urls[1])["node"])))  # fmt: skip
    after = {i: _count(net, 1, i, auditor) for i in (a, b, private)}
    assert after == {a: before[a] + 1, b: before[b] + 1, private: before[private]}
    # Unsigned, the same request is refused: 64 entries and proofs a request are for rate-limited auditors only.
    anonymous = httpx.get(net.urls[1] + path)
    assert anonymous.status_code == 403 and "signed auditor request" in anonymous.json()["detail"]
    _no_data(anonymous.text, salt_a)
    # A signature is worth nothing for other indices, nor one made for a single entry for several.
    node1 = VerifyingKey.parse(info(net.urls[1])["node"])
    made_for_b = sign_request(auditor, "GET", f"/v1/log/entries?indices={b}", node1)
    for tampered, headers in ((f"/v1/log/entries?indices={a}", made_for_b),
                              (f"/v1/log/entries?indices={a},{b}", made_for_b),
                              (f"/v1/log/entries?indices={b}&indices={a}", made_for_b),
                              (f"/v1/log/entries?indices={a}", sign_request(auditor, "GET", f"/v1/log/entries/{a}",
                                                                            node1))):  # fmt: skip
        refused = httpx.get(net.urls[1] + tampered, headers=headers)
        assert refused.status_code == 403 and "signature is not valid" in refused.json()["detail"], refused.text
        _no_data(refused.text, salt_a)
    assert _count(net, 1, a, auditor) == after[a]
    # Malformed requests are problems, not tracebacks.
    for query in ("indices=", "indices=1,x", f"indices={a},{a}", "indices=" + ",".join(map(str, range(65)))):
        bad = _signed_get(net, auditor, 1, "/v1/log/entries?" + query)
        assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json", bad.text
    # Each entry asked for is one disclosure against the rate limit: batches of 64 reach it 64 times sooner.
    limited = 0
    for n in range(2 * BURST // 64 + 2):
        batch = ",".join(str(missing + 64 * n + k) for k in range(64))
        limited += _signed_get(net, _key(net, 2), 1, f"/v1/log/entries?indices={batch}").status_code == 429
    assert limited >= 1
