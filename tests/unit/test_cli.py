import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from veriml.cli.app import app
from veriml.identity import SigningKey
from veriml.receipts import Bundle
from veriml.service import Home

runner = CliRunner()


def veriml(home: Path, *args: str):
    return runner.invoke(app, ["--home", str(home), *args])


@pytest.fixture
def cli_home(tmp_path) -> Path:
    home = tmp_path / "home"
    assert veriml(home, "keygen", "--name", "alice").exit_code == 0
    return home


def one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    return lines[0]


def test_publish_infer_verify_round_trip(cli_home, mlp_path, tmp_path):
    published = veriml(cli_home, "publish", str(mlp_path), "--name", "alice/mlp", "--license", "MIT")
    assert published.exit_code == 0, published.output
    assert "published: alice/mlp@1" in published.stdout
    assert "already published" in veriml(cli_home, "publish", str(mlp_path), "--name", "alice/mlp").stdout

    listed = veriml(cli_home, "models", "list")
    assert "alice/mlp" in listed.stdout and "@1" in listed.stdout
    shown = veriml(cli_home, "models", "show", "alice/mlp@1", "--json")
    assert json.loads(shown.stdout)["body"]["license"] == "MIT"

    inputs = tmp_path / "in.json"
    inputs.write_text(json.dumps({"x": np.ones((1, 16)).tolist()}))
    out = tmp_path / "b.json"
    inferred = veriml(cli_home, "infer", "alice/mlp", "--input", str(inputs), "--out", str(out))
    assert inferred.exit_code == 0, inferred.output
    assert Bundle.load(out).outputs["y"].shape == (1, 8)

    unanchored = veriml(cli_home, "verify", str(out), "--reexec")
    assert unanchored.exit_code == 1, unanchored.output
    assert "NOT ANCHORED" in unanchored.stdout and "no trusted keys" in unanchored.stdout
    publisher = SigningKey.load(Home(cli_home).publisher_key_path).public.vkey
    verified = veriml(cli_home, "verify", str(out), "--reexec", "--publisher", publisher)
    assert verified.exit_code == 0, verified.output
    assert "VERIFIED" in verified.stdout and "1 trusted publisher key(s)" in verified.stdout
    report = json.loads(veriml(cli_home, "verify", str(out), "--json", "--publisher", publisher).stdout)
    assert report["verdict"] == "verified" and report["trust"]["publishers"] == 1


def test_npz_inputs(cli_home, mlp_path, tmp_path):
    veriml(cli_home, "publish", str(mlp_path), "--name", "alice/mlp")
    npz = tmp_path / "in.npz"
    np.savez(npz, x=np.zeros((3, 16), np.float32))
    result = veriml(cli_home, "infer", "alice/mlp", "-i", str(npz), "-o", str(tmp_path / "b.json"), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["y"]["shape"] == [3, 8]


def test_verify_failure_exits_1_with_the_failed_check(cli_home, mlp_path, tmp_path):
    veriml(cli_home, "publish", str(mlp_path), "--name", "alice/mlp")
    inputs = tmp_path / "in.json"
    inputs.write_text(json.dumps({"x": [[0.5] * 16]}))
    out = tmp_path / "b.json"
    veriml(cli_home, "infer", "alice/mlp", "-i", str(inputs), "-o", str(out))
    obj = json.loads(out.read_bytes())
    obj["outputs"]["y"]["data"] = "A" + obj["outputs"]["y"]["data"][1:]
    out.write_text(json.dumps(obj))
    result = veriml(cli_home, "verify", str(out))
    assert result.exit_code == 1
    assert "FAILED" in result.stdout and "outputs.digest" in result.stdout


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["publish", "{model_dir}/absent.onnx", "--name", "alice/x"], "absent.onnx: no such file", 2),
        (["publish", "{model_dir}/mlp.onnx", "--name", "bad name"], "model name 'bad name'", 2),
        (["models", "show", "alice/none"], "model alice/none: not published here", 2),
        (["infer", "alice/none", "--input", "{tmp}/in.json"], "not published here", 2),
        (["verify", "{tmp}/absent.json"], "absent.json: no such file", 2),
        (["verify", "{tmp}/in.json"], "bundle: expected exactly the fields", 2),
        (["publish", "{model_dir}/mlp.onnx", "--name", "alice/x", "--rtol", "0.1"], "--rtol needs --tolerance", 2),
    ],
)
def test_bad_input_gets_one_line_and_exit_2(cli_home, model_dir, tmp_path, args, message, code):
    (tmp_path / "in.json").write_text('{"x": [[1]]}')
    args = [a.format(model_dir=model_dir, tmp=tmp_path) for a in args]
    result = veriml(cli_home, *args)
    assert result.exit_code == code
    assert message in one_error_line(result)


def test_wrong_inputs_get_one_line(cli_home, mlp_path, tmp_path):
    veriml(cli_home, "publish", str(mlp_path), "--name", "alice/mlp")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"x": [[1.0] * 15]}))
    result = veriml(cli_home, "infer", "alice/mlp", "-i", str(bad))
    assert result.exit_code == 2
    assert r"input 'x': expected float32[N,16], got float32[1,15]" in one_error_line(result)
    txt = tmp_path / "in.txt"
    txt.write_text("1 2 3")
    assert "expected a .json or .npz file" in one_error_line(veriml(cli_home, "infer", "alice/mlp", "-i", str(txt)))


def test_publish_without_a_key_says_how_to_make_one(tmp_path, mlp_path):
    result = veriml(tmp_path / "empty", "publish", str(mlp_path), "--name", "alice/mlp")
    assert result.exit_code == 2
    assert "create one with `veriml keygen`" in one_error_line(result)


def test_loose_key_file_is_refused(cli_home, mlp_path):
    os.chmod(cli_home / "keys" / "publisher.key", 0o644)
    result = veriml(cli_home, "publish", str(mlp_path), "--name", "alice/mlp")
    assert result.exit_code == 2
    assert "lets others read it; expected 0600" in one_error_line(result)


def test_keygen_refuses_to_overwrite(cli_home):
    result = veriml(cli_home, "keygen")
    assert result.exit_code == 2 and "already exists" in one_error_line(result)


def test_every_command_has_help_with_an_example():
    commands = [["keygen"], ["publish"], ["models", "list"], ["models", "show"], ["infer"], ["verify"], ["demo"]]
    commands += [["log", c] for c in ("show", "checkpoint", "prove", "verify-consistency", "verify")]
    commands += [["node", "start"], ["devnet", "up"], ["devnet", "down"], ["devnet", "status"], ["pin"]]
    commands += [["zk", "setup"], ["zk", "prove"], ["zk", "evm-verifier"]]
    commands += [["chat"]]
    for command in commands:
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0
        assert "Example: veriml" in result.stdout, command


def test_console_script_runs_as_a_real_process(tmp_path, mlp_path):
    """The installed entry point, in its own process: one stderr line and exit 2, no traceback."""
    env = {**os.environ, "VERIML_HOME": str(tmp_path / "home")}
    script = Path(sys.executable).parent / "veriml"
    result = subprocess.run(
        [str(script), "publish", str(mlp_path), "--name", "alice/mlp"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: no publisher key at {tmp_path / 'home' / 'keys' / 'publisher.key'}: create one with `veriml keygen`"
    ]


def test_log_commands(cli_home, mlp_path, tmp_path):
    import sqlite3

    from veriml.tlog import TlogProof

    veriml(cli_home, "publish", str(mlp_path), "--name", "alice/mlp")
    inputs = tmp_path / "in.json"
    inputs.write_text(json.dumps({"x": [[0.25] * 16]}))
    for n in range(3):
        assert (
            veriml(cli_home, "infer", "alice/mlp", "-i", str(inputs), "-o", str(tmp_path / f"{n}.json")).exit_code == 0
        )
    shown = veriml(cli_home, "log", "show")
    assert "3 sequenced, 3 integrated" in shown.stdout and "veriml.local/node-" in shown.stdout
    checkpoint = veriml(cli_home, "log", "checkpoint").stdout
    assert checkpoint.splitlines()[1] == "3"
    proof = TlogProof.parse(veriml(cli_home, "log", "prove", "1").stdout)
    assert proof.index == 1 and proof.checkpoint.checkpoint.size == 3
    consistent = veriml(cli_home, "log", "verify-consistency", "1", "3")
    assert consistent.exit_code == 0 and "consistent: size 1" in consistent.stdout
    # Each infer's batch was signed as it was committed; `log checkpoint` published the latest one.
    assert "3 entries and 1 checkpoints are consistent" in veriml(cli_home, "log", "verify").stdout
    assert "no checkpoint covers it yet" in one_error_line(veriml(cli_home, "log", "prove", "7"))

    db = sqlite3.connect(cli_home / "log" / "log.sqlite")
    db.execute("UPDATE entries SET leaf = zeroblob(160) WHERE idx = 1")
    db.commit()
    db.close()
    tampered = veriml(cli_home, "log", "verify")
    assert tampered.exit_code == 1
    assert "entry 1 does not match its integrated hash" in one_error_line(tampered)


def test_log_commands_without_a_log(tmp_path):
    result = veriml(tmp_path / "empty", "log", "show")
    assert result.exit_code == 1 and "run `veriml infer` first" in one_error_line(result)


def test_infer_records_the_privacy_asked_and_keeps_no_private_data(cli_home, mlp_path, tmp_path):
    veriml(cli_home, "publish", str(mlp_path), "--name", "alice/mlp")
    inputs = tmp_path / "in.json"
    inputs.write_text(json.dumps({"x": np.full((1, 16), 0.25).tolist()}))
    out = tmp_path / "b.json"
    result = veriml(cli_home, "infer", "alice/mlp", "-i", str(inputs), "-o", str(out), "--privacy", "private")
    assert result.exit_code == 0, result.output
    bundle = Bundle.load(out)
    assert bundle.receipt.body.privacy == "private"
    stored = b"".join(path.read_bytes() for path in (cli_home / "log").iterdir())
    assert bundle.salt.hex().encode() not in stored  # the bundle is the only place that can open the commitments
    bad = veriml(cli_home, "infer", "alice/mlp", "-i", str(inputs), "--privacy", "secret")
    assert bad.exit_code == 2 and "privacy: expected one of private, auditable, public" in one_error_line(bad)
