"""One devnet for every integration test (MCP, LangChain, the OpenGradient drop-in): they are all clients of it."""

from __future__ import annotations

import pytest

from tests.integrations.network import network


@pytest.fixture(scope="session")
def veriml_net(tmp_path_factory):
    with network(tmp_path_factory.mktemp("integrations")) as net:
        yield net


@pytest.fixture(scope="session")
def client_cache(tmp_path_factory):
    """The client's tokenizer cache, shared so the language model's vocabulary is fetched once."""
    return tmp_path_factory.mktemp("client-cache")
