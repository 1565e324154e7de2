"""Unbounded work through unknown names: each request naming a model no one holds (or a log origin no one
knows) used to make the node refresh its whole peer list, one /v1/info per peer, and ask every peer for the
name. Refreshes on a caller's behalf are now single-flight and at most one per peer_refresh_interval, only
peers that list a name are asked for it, and manifest ids that no peer holds are rate-limited and remembered."""

from __future__ import annotations

import secrets
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from veriml import devnet
from veriml.identity import SigningKey
from veriml.tlog import Log
from veriml.tlog.witness import add_checkpoint_body

COUNTING = Path(__file__).with_name("cost_counting_peer.py")
REQUESTS = 96


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    root = tmp_path_factory.mktemp("refreshnet")
    network = devnet.up(root, 2, checkpoint_interval=0.3, commands={0: [sys.executable, str(COUNTING)]},
                        audit_fraction=0.0)  # fmt: skip
    yield network
    devnet.down(root)


def hits(net) -> dict[str, int]:
    return httpx.get(f"{net.urls[0]}/test/hits").json()


def test_unknown_model_names_do_not_trigger_a_refresh_storm(net):
    time.sleep(1.0)  # past start-up discovery
    before = hits(net)
    start = time.monotonic()

    def unknown(n: int) -> httpx.Response:
        name = f"nobody/m{secrets.token_hex(6)}" if n % 3 else f"sha256:{secrets.token_hex(32)}"
        return http.post(f"{net.urls[1]}/v1/infer", json={"model": name, "inputs": {"x": [[0.0]]}})

    with httpx.Client(timeout=30) as http, ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(unknown, range(REQUESTS)))
    elapsed = time.monotonic() - start
    after = hits(net)
    info = after.get("/v1/info", 0) - before.get("/v1/info", 0)
    asked = {path: count - before.get(path, 0) for path, count in after.items() if path != "/v1/info"}
    statuses = {answer.status_code for answer in answers}
    assert statuses <= {404, 503}, statuses  # not found, or (manifest ids past the rate limit) retry later
    assert any(a.status_code == 503 and "rate-limited" in a.json()["detail"] for a in answers)
    # Background discovery (every 2 s) plus at most one on-demand refresh per second; 96 without the gate.
    assert info <= elapsed / 2 + elapsed / 1.0 + 3, (info, elapsed)
    # No peer lists these names, so none is asked for them; manifest ids are asked at most the burst plus the rate.
    assert asked.get("/v1/models/*/versions", 0) == 0
    manifests = sum(count for path, count in asked.items() if path.startswith("/v1/manifests/"))
    assert manifests <= 10 + 2 * elapsed + 1, (manifests, elapsed)


def test_unknown_log_origins_do_not_trigger_a_refresh_storm(net, tmp_path):
    # A validly signed checkpoint of a log no peer runs: the witness looks its origin up among its peers.
    with Log(tmp_path / "log", SigningKey.generate("nobody.example/log")) as log:
        body = add_checkpoint_body(0, [], log.sign_checkpoint())
    before = hits(net).get("/v1/info", 0)
    start = time.monotonic()
    with httpx.Client(timeout=30) as http, ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: http.post(f"{net.urls[1]}/add-checkpoint", content=body), range(50)))
    assert {answer.status_code for answer in answers} == {404}, answers[0].text
    elapsed = time.monotonic() - start
    info = hits(net).get("/v1/info", 0) - before
    assert info <= elapsed / 2 + elapsed / 1.0 + 3, (info, elapsed)
