"""Flows: each operation (publish, infer) orchestrated once over the concepts."""

from veriml.service.home import Home
from veriml.service.publish import sign_manifest
from veriml.service.service import Service

__all__ = ["Home", "Service", "sign_manifest"]
