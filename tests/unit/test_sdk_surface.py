"""What a new SDK user meets first: `veriml.Home` takes a str, `veriml.Client` and `AsyncClient` are exported, and
the README's SDK snippet runs as written, twice in a row (the second run reuses the home's publisher key)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import veriml
from veriml.service import Home

README = Path(__file__).parents[2] / "README.md"
SRC = Path(__file__).parents[2] / "src"


def sdk_snippet() -> str:
    section = README.read_text().split("## Using the Python SDK", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_home_takes_a_str_or_a_path(tmp_path):
    assert Home(str(tmp_path)).root == tmp_path == Home(tmp_path).root
    assert veriml.Home(str(tmp_path)) == veriml.Home(tmp_path)
    with pytest.raises(TypeError, match="expected a path"):
        Home(42)  # type: ignore[arg-type]


def test_a_homes_publisher_key_is_made_once_and_reused(tmp_path):
    home = Home(str(tmp_path / "home"))
    first = home.publisher_key_or_new("alice")
    assert home.publisher_key_or_new("alice").public == first.public == home.publisher_key().public
    assert (home.publisher_key_path.stat().st_mode & 0o777) == 0o600


def test_the_package_exports_the_clients():
    from veriml import AsyncClient, Client
    from veriml.client import client

    assert veriml.Client is Client is client.Client and veriml.AsyncClient is AsyncClient is client.AsyncClient
    assert {"Client", "AsyncClient"} <= set(veriml.__all__)
    assert hasattr(AsyncClient, "chat")
    with pytest.raises(AttributeError):
        veriml.NoSuchThing  # noqa: B018


def test_readme_sdk_snippet_runs_twice(tmp_path):
    code = sdk_snippet()
    assert 'Home("my-veriml")' in code, "the snippet's home moved: update this test"
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    for run in (1, 2):
        done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=120)  # fmt: skip
        assert done.returncode == 0, f"run {run}: {done.stderr}"
        assert "Traceback" not in done.stderr
    assert len(veriml.Service(Home(tmp_path / "my-veriml")).hub.registry.versions("alice/mlp")) == 1
