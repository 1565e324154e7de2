"""A dishonest publisher's own tools for the open-publishing attack tests: each talks to a real node over HTTP
and does one dishonest thing (another key's version of an owned name, bytes other than those signed, an older or
forked version, a model with random operators). Test-only; the product has no switch for any of it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import httpx

from veriml.codec.clock import utc_timestamp
from veriml.hub import Manifest, SignedManifest
from veriml.identity import Signed, SigningKey
from veriml.service.publish import sign_manifest


def sign_as(model: Path, name: str, version: int, parent, key: SigningKey) -> SignedManifest:
    """A well-formed manifest for `name@version` signed by `key`, whoever owns the name."""
    return sign_manifest(model, name=name, version=version, parent=parent, publisher=key)


def resign(signed: SignedManifest, key: SigningKey, **changes) -> SignedManifest:
    """The same manifest with fields changed, signed again by `key`."""
    body: Manifest = replace(signed.body, created=utc_timestamp(), publisher=key.public, **changes)
    return Signed.sign(body, key)


def post_manifest(node: str, signed: SignedManifest) -> httpx.Response:
    return httpx.post(f"{node}/v1/publish", json=signed.to_json(), timeout=30)


def upload(node: str, signed: SignedManifest, data: bytes) -> httpx.Response:
    """Send `data` as the bytes of a judged manifest: whatever they are."""
    return httpx.put(f"{node}/v1/publish/{signed.id}/blob", content=data, timeout=30)
