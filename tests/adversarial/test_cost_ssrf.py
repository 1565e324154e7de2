"""Server-side request forgery through the node registry: anyone with a stake can register any endpoint, and
every node used to fetch every registered endpoint. A node now fetches only http(s) endpoints whose addresses are
public, or in the networks its config allows (a devnet allows 127.0.0.1, and only it); redirects are not
followed. The attacker registers endpoints at another loopback address and at cloud metadata: nothing is fetched,
while the devnet's own nodes still find each other."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import httpx
import pytest

from veriml import devnet
from veriml.chain import Chain, Contracts, Deployment, load_account
from veriml.chain.connection import EMBEDDED_KEYS, new_account_file
from veriml.chain.devnet_chain import DEVNET_STAKE
from veriml.errors import PermissionDenied
from veriml.identity import SigningKey
from veriml.node.peers import EndpointPolicy, PeerClient


class Counting(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        Counting.hits.append(self.path)
        self.send_response(302)  # were it fetched, a redirect to metadata would not be followed either
        self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def internal_service():
    """A service on a private address (another loopback address) that an attacker wants the nodes to call."""
    server = ThreadingHTTPServer(("127.0.0.2", 0), Counting)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.2:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    root = tmp_path_factory.mktemp("ssrfnet")
    network = devnet.up(root, 2, checkpoint_interval=0.3, chain="embedded", audit_fraction=0.0)
    yield network
    devnet.down(root)


def test_registered_endpoint_pointing_at_a_private_address_is_not_fetched(net, internal_service, tmp_path):
    chain = Chain.connect(net.chain["rpc"])
    contracts = Contracts(chain, Deployment.load(Path(net.chain["deployment"])))
    faucet = load_account(EMBEDDED_KEYS[0])
    endpoints = [internal_service, "http://169.254.169.254/latest/meta-data",
                 f"http://user:secret@127.0.0.1:{internal_service.rsplit(':', 1)[1]}"]  # fmt: skip
    for n, endpoint in enumerate(endpoints):
        account = new_account_file(tmp_path / f"mallory{n}.key")
        chain.fund(faucet, account.address, DEVNET_STAKE + 10**17)
        contracts.register(account, SigningKey.generate(f"mallory{n}.example/log"), endpoint, DEVNET_STAKE)
    listed = {node.endpoint for node in contracts.nodes()}
    assert set(endpoints) <= listed
    # Several discovery rounds, and on-demand refreshes asked for by callers.
    with httpx.Client(timeout=10) as http:
        for _ in range(6):
            for url in net.urls:
                http.post(f"{url}/v1/infer", json={"model": "nobody/nothing", "inputs": {}})
            time.sleep(0.6)
        infos = [http.get(f"{url}/v1/info").json() for url in net.urls]
    assert Counting.hits == []  # nothing was fetched from the private address
    # The devnet's own nodes, at the one address its config allows, still find each other.
    assert infos[0]["peers"] == [net.urls[1]] and infos[1]["peers"] == [net.urls[0]]


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.1", "http://192.168.1.1:8700", "http://169.254.169.254", "http://100.64.0.1", "http://[fe80::1]",
     "http://[::ffff:127.0.0.1]", "http://0.0.0.0", "ftp://8.8.8.8", "http://u:p@8.8.8.8", "http:///nohost"],
)  # fmt: skip
def test_endpoint_policy_refuses_non_public_urls(url):
    with pytest.raises(PermissionDenied):
        EndpointPolicy().check_url(url)


def test_endpoint_policy_checks_the_address_it_connects_to():
    EndpointPolicy().check_url("https://8.8.8.8:443")
    EndpointPolicy(("127.0.0.1/32",)).check_url("http://127.0.0.1:1")
    client = PeerClient("http://localhost:9", timeout=2, policy=EndpointPolicy())  # a name: checked on connect
    with pytest.raises(PermissionDenied, match=r"(127\.0\.0\.1|::1) is not a public address"):
        client.info()
