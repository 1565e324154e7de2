"""The hub: blob store and registry together, and the publishing rules that bind them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from veriml.codec import Digest
from veriml.errors import Conflict, InvalidInput, PermissionDenied
from veriml.hub.blobs import BlobStore, Progress
from veriml.hub.manifest import SignedManifest
from veriml.hub.onnx_model import check_onnx_bytes, value_sized_op
from veriml.hub.refs import ModelRef
from veriml.hub.registry import Registry
from veriml.identity import VerifyingKey


class NameOwned(PermissionDenied):
    """Another key owns this name (or, in open publishing, its owner part)."""

    kind = "name-owned"


class VersionConflict(Conflict):
    """The version is not the next one of its name, or does not name the latest as its parent."""

    kind = "version-conflict"


@dataclass(frozen=True, slots=True)
class Published:
    manifest: SignedManifest
    created: bool  # False when the same bytes were already published under this name


class Hub:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blobs = BlobStore(self.root / "blobs")
        self.registry = Registry(self.root / "registry.sqlite")
        # Blobs checked runnable (see check_model_blob) and blobs refused, with why: a refused blob is not
        # fetched again on every request that names it.
        self._checked: dict[Digest, str | None] = {}  # blob -> an operator whose work follows request values
        self._refused: dict[Digest, str] = {}

    def close(self) -> None:
        self.registry.close()

    def resolve(self, ref: ModelRef | str) -> SignedManifest:
        ref = ModelRef.parse(ref) if isinstance(ref, str) else ref
        if ref.manifest_id is not None:
            return self.registry.by_id(ref.manifest_id)
        assert ref.name is not None
        return self.registry.get(ref.name, ref.version)

    def publish(
        self,
        signed: SignedManifest,
        blob_source: BinaryIO | Path | None,
        progress: Progress | None = None,
        namespace: bool = False,
    ) -> Published:
        """Check and store a signed manifest and its blob; on any refusal nothing is stored.

        `blob_source` may be None when the blob is already in the store (the same bytes under another name).
        With `namespace` (open publishing) the owner part of the name is owned too: the first key to publish under
        `owner/` holds every name under it.
        """
        signed.verified()
        with self.registry.transaction():
            existing = self.admissible(signed, namespace)
            if existing is not None:
                return Published(existing, created=False)
            self._store_blob(signed, blob_source, progress)
            self.check_model_blob(signed)
            self.registry.insert(signed)
        return Published(signed, created=True)

    def admissible(self, signed: SignedManifest, namespace: bool = False) -> SignedManifest | None:
        """The publishing rules, read-only: raise NameOwned or VersionConflict, or return the stored manifest when
        these bytes already are a version of this name (publishing them again changes nothing), else None.
        `Hub.publish` applies them again inside its write transaction."""
        body = signed.body
        existing = self.registry.version_with_blob(body.name, body.blob)
        owner = self.registry.owner(body.name)
        if owner is None and namespace:
            owner = self.registry.namespace_owner(body.name.split("/", 1)[0])
        if owner is not None and owner != body.publisher.vkey:
            raise NameOwned(
                f"model {body.name}: owned by key {VerifyingKey.parse(owner).key_id}; "
                f"key {body.publisher.key_id} may not publish versions of it"
            )
        if existing is not None:
            return existing
        latest = self.registry.latest(body.name)
        expected_version = 1 if latest is None else latest.body.version + 1
        if body.version != expected_version:
            older = " (older than the latest stored: a replay or a fork)" if body.version < expected_version else ""
            raise VersionConflict(
                f"model {body.name}: version {body.version} is out of order; expected {expected_version}{older}"
            )
        if latest is not None and body.parent != latest.id:
            raise VersionConflict(
                f"model {body.name}@{body.version}: parent must be {latest.id} (version {latest.body.version})"
            )
        return None

    def refused(self, manifest: SignedManifest) -> None:
        """Raise InvalidInput at once if the manifest's blob was refused before (no fetch, no parse)."""
        why = self._refused.get(manifest.body.blob)
        if why is not None:
            raise InvalidInput(why)

    def check_model_blob(self, manifest: SignedManifest) -> None:
        """Refuse to keep or run an ONNX blob whose honest runs can differ (random operators): on publish, and
        when a node takes a model in from a peer. A refused blob is removed from the store and remembered."""
        body = manifest.body
        if body.format != "onnx" or body.blob in self._checked:
            return
        why = self._refused.get(body.blob)
        if why is None:
            try:
                model = check_onnx_bytes(self.blobs.read_verified(body.blob), f"model {body.ref}")
            except InvalidInput as exc:
                why = str(exc)
                if len(self._refused) >= 4096:
                    self._refused.pop(next(iter(self._refused)))
                self._refused[body.blob] = why
            else:
                self._checked[body.blob] = value_sized_op(model)
                return
        self.blobs.path(body.blob).unlink(missing_ok=True)
        raise InvalidInput(why)

    def value_sized(self, manifest: SignedManifest) -> str | None:
        """For an ONNX model checked here (`check_model_blob`): an operator whose work may follow a request's
        values rather than its shapes, or None. Any other model: its format."""
        if manifest.body.format != "onnx":
            return f"a {manifest.body.format} model"
        return self._checked.get(manifest.body.blob, "a model not checked here yet")

    def add_replica(self, chain: list[SignedManifest]) -> SignedManifest:
        """Take in versions 1..N of a name as another node holds them (signatures, owner and parent links all
        checked), without their blobs: those are fetched when a version is first run. Returns version N."""
        if not chain:
            raise InvalidInput("replica: no manifests")
        owner = chain[0].body.publisher
        previous = None
        for expected_version, signed in enumerate(chain, 1):
            signed.verified()
            body = signed.body
            if body.name != chain[0].body.name or body.version != expected_version:
                raise InvalidInput(f"replica: expected {chain[0].body.name}@{expected_version}, got {body.ref}")
            if body.publisher != owner:
                raise PermissionDenied(f"replica: {body.ref} is signed by {body.publisher.key_id}, not the owner")
            if body.parent != (None if previous is None else previous.id):
                raise Conflict(f"replica: {body.ref} does not name the previous version as its parent")
            previous = signed
        with self.registry.transaction():
            stored_owner = self.registry.owner(chain[0].body.name)
            if stored_owner is not None and stored_owner != owner.vkey:
                raise PermissionDenied(f"replica: {chain[0].body.name} is owned by another key here")
            have = {s.id for s in (self.registry.versions(chain[0].body.name) if stored_owner else [])}
            for signed in chain:
                if signed.id in have:
                    continue
                latest = self.registry.latest(signed.body.name)
                if (latest.body.version if latest else 0) + 1 != signed.body.version:
                    raise Conflict(f"replica: {signed.body.ref} conflicts with the versions stored here")
                self.registry.insert(signed)
        return chain[-1]

    def _store_blob(self, signed: SignedManifest, source: BinaryIO | Path | None, progress: Progress | None) -> None:
        body = signed.body
        if self.blobs.has(body.blob):
            if self.blobs.size(body.blob) != body.size:
                raise InvalidInput(f"manifest {body.ref}: size {body.size} does not match the blob's bytes")
            return
        if source is None:
            raise InvalidInput(f"blob {body.blob}: not in the store, and no bytes were given")
        if isinstance(source, Path):
            self.blobs.put_file(source, expected=body.blob, progress=progress)
        else:
            self.blobs.put(source, expected=body.blob, progress=progress)
        if self.blobs.size(body.blob) != body.size:
            self.blobs.path(body.blob).unlink()
            raise InvalidInput(f"manifest {body.ref}: size {body.size} does not match the blob's bytes")
