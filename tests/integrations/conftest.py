"""One devnet for every integration test (MCP, LangChain, the OpenGradient drop-in): they are all clients of it."""

from __future__ import annotations

import pytest

from tests.integrations.network import shared_network


@pytest.fixture(scope="session")
def veriml_net(tmp_path_factory, request):
    return shared_network(tmp_path_factory, request)


@pytest.fixture(scope="session")
def client_cache(tmp_path_factory):
    """The client's tokenizer cache, shared so the language model's vocabulary is fetched once."""
    return tmp_path_factory.mktemp("client-cache")
