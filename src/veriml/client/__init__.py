"""The veriml SDK over HTTP: sync and async clients sharing one request/response layer."""

from veriml.client.chat import ChatResult
from veriml.client.client import AsyncClient, Client
from veriml.client.protocol import Disagreement

__all__ = ["AsyncClient", "ChatResult", "Client", "Disagreement"]
