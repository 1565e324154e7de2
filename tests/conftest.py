from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from veriml import examples
from veriml.identity import SigningKey
from veriml.service import Home, Service


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    examples.save(examples.mlp((16, 32, 8)), root / "mlp.onnx")
    examples.save(examples.mlp((16, 32, 8), seed=1), root / "mlp_v2.onnx")
    examples.save(examples.cnn(), root / "cnn.onnx")
    return root


@pytest.fixture
def mlp_path(model_dir: Path) -> Path:
    return model_dir / "mlp.onnx"


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "home")


@pytest.fixture
def publisher(home: Home) -> SigningKey:
    key = SigningKey.generate("alice")
    key.save(home.publisher_key_path)
    return key


@pytest.fixture
def service(home: Home, publisher: SigningKey) -> Iterator[Service]:
    with Service(home) as svc:
        yield svc


@pytest.fixture
def published(service: Service, mlp_path: Path):
    return service.publish(mlp_path, name="alice/mlp").manifest


@pytest.fixture
def x() -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(3).standard_normal((2, 16)).astype(np.float32)}


@pytest.fixture
def bundle(service: Service, published, x):
    return service.infer("alice/mlp", x, prove=True)
