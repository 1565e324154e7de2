"""The embedded chain (eth-tester on py-evm) with veriml's contracts deployed, for the contract tests."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from eth_account import Account

from veriml.chain import Chain, Contracts, deploy
from veriml.chain.connection import EMBEDDED_KEYS
from veriml.errors import NotFound
from veriml.identity import SigningKey
from veriml.tlog import Log, parse_tile_path, read_checkpoint, read_tile

MIN_STAKE = 10**17
EXIT_DELAY = 3600


@pytest.fixture()
def chain() -> Chain:
    return Chain.embedded()


@pytest.fixture()
def accounts():  # type: ignore[no-untyped-def]
    return [Account.from_key(key) for key in EMBEDDED_KEYS]


@pytest.fixture()
def contracts(chain, accounts) -> Contracts:  # type: ignore[no-untyped-def]
    deployment = deploy(chain, accounts[0], min_stake=MIN_STAKE, exit_delay=EXIT_DELAY, reporter_bps=5000)
    return Contracts(chain, deployment)


@pytest.fixture()
def log(tmp_path):  # type: ignore[no-untyped-def]
    with Log(tmp_path / "log.sqlite", SigningKey.generate("example.com/log")) as opened:
        yield opened


@pytest.fixture()
def served(log):  # type: ignore[no-untyped-def]
    """The log's tlog-tiles read side over HTTP on 127.0.0.1, from the same functions the node's routes call."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            try:
                path = self.path
                body = read_checkpoint(log) if path == "/checkpoint" else read_tile(log, parse_tile_path(path))
            except NotFound:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
