import os
import time
from pathlib import Path

import onnx
import pytest

from veriml import examples
from veriml.errors import Conflict, InvalidInput, NotFound, PermissionDenied, VerificationFailed
from veriml.hub import ComparisonPolicy, ModelRef
from veriml.hub.registry import LATEST_RECHECK_SECONDS
from veriml.identity import SigningKey
from veriml.service import sign_manifest


def store_state(service) -> tuple:
    """Everything a failed publish must leave as it was: registry rows and the files in the blob store."""
    registry = service.hub.registry
    rows = registry._db.execute("SELECT name, version, manifest_id FROM versions ORDER BY 1, 2").fetchall()
    owners = registry._db.execute("SELECT * FROM models ORDER BY 1").fetchall()
    files = sorted(str(p.relative_to(service.hub.blobs.root)) for p in service.hub.blobs.root.rglob("*") if p.is_file())
    return rows, owners, files


def test_publish_reads_signature_and_signs_manifest(service, mlp_path, publisher):
    published = service.publish(mlp_path, name="alice/mlp", license="MIT")
    body = published.manifest.body
    assert published.created
    assert (body.name, body.version, body.parent, body.format, body.opset) == ("alice/mlp", 1, None, "onnx", 17)
    assert [s.to_json() for s in body.inputs] == [{"name": "x", "dtype": "float32", "shape": ["N", 16]}]
    assert [s.to_json() for s in body.outputs] == [{"name": "y", "dtype": "float32", "shape": ["N", 8]}]
    assert body.policy == ComparisonPolicy("exact")
    assert body.publisher == publisher.public
    assert body.size == mlp_path.stat().st_size
    published.manifest.check_signature()
    assert service.hub.blobs.path(body.blob).read_bytes() == mlp_path.read_bytes()


def test_versions_chain_and_refs_resolve(service, model_dir):
    v1 = service.publish(model_dir / "mlp.onnx", name="alice/mlp").manifest
    v2 = service.publish(model_dir / "mlp_v2.onnx", name="alice/mlp").manifest
    assert (v2.body.version, v2.body.parent) == (2, v1.id)
    assert service.resolve("alice/mlp") == v2
    assert service.resolve("alice/mlp@1") == v1
    assert service.resolve(str(v1.id)) == v1
    with pytest.raises(NotFound, match=r"alice/mlp@3: no such version \(latest is @2\)"):
        service.resolve("alice/mlp@3")
    with pytest.raises(NotFound, match="bob/none: not published here"):
        service.resolve("bob/none")
    with pytest.raises(InvalidInput, match="model reference"):
        ModelRef.parse("not a ref")


def test_same_bytes_again_are_idempotent(service, mlp_path):
    first = service.publish(mlp_path, name="alice/mlp")
    again = service.publish(mlp_path, name="alice/mlp")
    assert not again.created and again.manifest == first.manifest
    # Even a freshly signed manifest for the same bytes maps onto the stored version.
    resigned = sign_manifest(
        mlp_path, name="alice/mlp", version=2, parent=first.manifest.id, publisher=service.home.publisher_key()
    )
    assert service.hub.publish(resigned, mlp_path).manifest == first.manifest


def test_only_the_first_publisher_may_publish_later_versions(service, model_dir):
    service.publish(model_dir / "mlp.onnx", name="alice/mlp")
    before = store_state(service)
    mallory = SigningKey.generate("mallory")
    with pytest.raises(PermissionDenied, match=r"alice/mlp: owned by key alice\+[0-9a-f]{8}; key mallory\+"):
        service.publish(model_dir / "mlp_v2.onnx", name="alice/mlp", publisher=mallory)
    assert store_state(service) == before


def test_wrong_version_number_or_parent_is_a_conflict(service, model_dir, publisher):
    v1 = service.publish(model_dir / "mlp.onnx", name="alice/mlp").manifest
    before = store_state(service)
    skipped = sign_manifest(model_dir / "mlp_v2.onnx", name="alice/mlp", version=3, parent=v1.id, publisher=publisher)
    with pytest.raises(Conflict, match="version 3 is out of order; expected 2"):
        service.hub.publish(skipped, model_dir / "mlp_v2.onnx")
    wrong_parent = sign_manifest(
        model_dir / "mlp_v2.onnx", name="alice/mlp", version=2, parent=v1.body.blob, publisher=publisher
    )
    with pytest.raises(Conflict, match="parent must be"):
        service.hub.publish(wrong_parent, model_dir / "mlp_v2.onnx")
    assert store_state(service) == before


def test_not_onnx_and_checker_failures(service, tmp_path, mlp_path):
    service.publish(mlp_path, name="alice/mlp")
    before = store_state(service)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00not a model at all" * 10)
    with pytest.raises(InvalidInput, match="not an ONNX model"):
        service.publish(garbage, name="alice/garbage")
    broken = examples.mlp()
    broken.graph.node[0].input[1] = "missing_weight"  # a node reading a value nothing defines
    bad = tmp_path / "broken.onnx"
    onnx.save(broken, str(bad))
    with pytest.raises(InvalidInput, match="fails the ONNX checker"):
        service.publish(bad, name="alice/broken")
    with pytest.raises(InvalidInput, match="no such file"):
        service.publish(tmp_path / "absent.onnx", name="alice/absent")
    with pytest.raises(InvalidInput, match="model name"):
        service.publish(mlp_path, name="no-owner")
    assert store_state(service) == before


def test_blob_with_wrong_bytes_is_refused(service, model_dir, publisher):
    signed = sign_manifest(model_dir / "mlp.onnx", name="alice/mlp", version=1, parent=None, publisher=publisher)
    before = store_state(service)
    with pytest.raises(VerificationFailed, match="but the bytes hash to"):
        service.hub.publish(signed, model_dir / "mlp_v2.onnx")
    assert store_state(service) == before


def test_tampered_manifest_signature_is_refused(service, mlp_path, publisher):
    from veriml.hub import parse_signed_manifest

    signed = sign_manifest(mlp_path, name="alice/mlp", version=1, parent=None, publisher=publisher)
    forged = signed.to_json()
    forged["body"]["license"] = "proprietary"
    with pytest.raises(VerificationFailed, match="signature is not valid"):
        service.hub.publish(parse_signed_manifest(forged), mlp_path)


def test_truncated_blob_on_disk_is_detected_not_run(service, published, x):
    path = service.hub.blobs.path(published.body.blob)
    os.truncate(path, path.stat().st_size // 2)
    with pytest.raises(VerificationFailed, match="stored bytes are damaged"):
        service.infer("alice/mlp", x)
    with pytest.raises(VerificationFailed, match="damaged"):
        service.hub.blobs.check(published.body.blob)


def test_blob_store_leaves_no_partial_file_when_a_stream_fails(tmp_path):
    from veriml.hub import BlobStore

    store = BlobStore(tmp_path / "blobs")

    def failing_stream():
        yield b"a" * 1000
        raise OSError("connection dropped")

    with pytest.raises(OSError, match="connection dropped"):
        store.put(failing_stream())
    assert [p for p in Path(tmp_path / "blobs").rglob("*") if p.is_file()] == []
    digest = store.put(iter([b"hello ", b"world"]))
    assert store.read_verified(digest) == b"hello world"


def test_registry_survives_reopen(home, publisher, mlp_path):
    from veriml.service import Service

    with Service(home) as first:
        manifest = first.publish(mlp_path, name="alice/mlp").manifest
    with Service(home) as second:
        assert second.resolve("alice/mlp") == manifest


def test_latest_sees_publishes_from_another_connection(home, publisher, model_dir):
    from veriml.service import Service

    with Service(home) as node, Service(home) as cli:
        node.publish(model_dir / "mlp.onnx", name="alice/mlp")
        assert node.resolve("alice/mlp").body.version == 1
        cli.publish(model_dir / "mlp_v2.onnx", name="alice/mlp")
        time.sleep(LATEST_RECHECK_SECONDS)
        assert node.resolve("alice/mlp").body.version == 2
