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
    commands = [["keygen"], ["publish"], ["models", "list"], ["models", "search"], ["models", "show"], ["infer"]]
    commands += [["verify"], ["demo"], []]
    commands += [["chain", c] for c in ("deploy", "register", "register-model", "anchor", "status", "evidence")]
    commands += [["chain", c] for c in ("shadow-evidence", "report-stale", "deploy-verifier", "fund")]
    commands += [["chain", "key", "new"]]
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


def test_version():
    from veriml import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"veriml {__version__}"


def test_log_show_prints_the_verifier_key_that_checks_its_checkpoint(cli_home, mlp_path, tmp_path):
    from veriml.identity import VerifyingKey
    from veriml.tlog.note import parse_note, verify_note

    veriml(cli_home, "publish", str(mlp_path), "--name", "alice/mlp")
    inputs = tmp_path / "in.json"
    inputs.write_text(json.dumps({"x": [[0.5] * 16]}))
    assert veriml(cli_home, "infer", "alice/mlp", "-i", str(inputs), "-o", str(tmp_path / "b.json")).exit_code == 0
    shown = veriml(cli_home, "log", "show").stdout
    vkey = next(line.split(": ", 1)[1] for line in shown.splitlines() if line.startswith("verifier key: "))
    checkpoint = shown.split("latest checkpoint:\n", 1)[1]
    key = VerifyingKey.parse(vkey)
    assert verify_note(parse_note(checkpoint), [key]) == [key]  # that key, and no other, checks it
    assert key.public == SigningKey.load(Home(cli_home).node_key_path).public.public


def symbolic_mlp(path: Path) -> Path:
    """The example MLP with its batch dimension named `batch`: `[batch,16]` looks like rich markup."""
    from veriml import examples

    model = examples.mlp()
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    return examples.save(model, path)


def test_models_show_keeps_symbolic_shapes_and_tables_fit_80_columns(cli_home, tmp_path, monkeypatch):
    from veriml.cli import app as app_module

    monkeypatch.setattr(app_module.console, "width", 80)
    model = symbolic_mlp(tmp_path / "batch.onnx")
    published = veriml(cli_home, "publish", str(model), "--name", "alice/a-rather-long-model-name-for-tables")
    assert published.exit_code == 0, published.output
    shown = veriml(cli_home, "models", "show", "alice/a-rather-long-model-name-for-tables")
    assert "x: float32[batch,16]" in shown.stdout and "y: float32[batch,8]" in shown.stdout
    manifest = json.loads(veriml(cli_home, "models", "show", "alice/a-rather-long-model-name-for-tables",
                                 "--json").stdout)  # fmt: skip
    listed = veriml(cli_home, "models", "list")
    for output in (published.stdout, shown.stdout, listed.stdout):
        assert max(len(line) for line in output.splitlines()) <= 80, output
    # Digests are shortened on one line, never wrapped or cut mid-digest; --json has them whole.
    blob = manifest["body"]["blob"]
    assert f"{blob[:23]}…" in shown.stdout and blob not in shown.stdout and f"{blob[:15]}…" in listed.stdout
    assert "alice/a-rather-long" in listed.stdout  # a long name folds onto the next line rather than widen the table
    searched = json.loads(veriml(cli_home, "models", "search", "LONG-MODEL", "--json").stdout)
    assert [entry["blob"] for entry in searched] == [blob]
    assert "no models matching 'nothing'" in veriml(cli_home, "models", "search", "nothing").stdout


def test_zk_setup_on_a_gguf_model_is_one_line(cli_home, tmp_path):
    from tests.unit.test_llm_pure import write_gguf

    gguf = write_gguf(tmp_path / "tiny.gguf")
    assert veriml(cli_home, "publish", str(gguf), "--name", "alice/tiny-lm").exit_code == 0
    result = veriml(cli_home, "zk", "setup", "alice/tiny-lm")
    assert result.exit_code == 2
    assert "alice/tiny-lm@1 is a gguf model; zero-knowledge proofs cover ONNX models only" in one_error_line(result)


def test_zk_preflight_refuses_files_that_are_not_onnx(tmp_path):
    from tests.unit.test_llm_pure import write_gguf
    from veriml.errors import InvalidInput
    from veriml.zk.preflight import check_operators

    with pytest.raises(InvalidInput, match="GGUF language model"):
        check_operators(write_gguf(tmp_path / "tiny.gguf"))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\xff" * 64)
    with pytest.raises(InvalidInput, match="not an ONNX model"):
        check_operators(garbage)


def test_ezkl_cache_is_kept_under_the_home(cli_home, tmp_path, monkeypatch):
    from veriml.zk.ezkl_pipeline import default_repo_path

    monkeypatch.setenv("EZKL_REPO_PATH", "placeholder")
    monkeypatch.delenv("EZKL_REPO_PATH")
    result = veriml(cli_home, "zk", "setup", "alice/none")
    assert result.exit_code == 2 and "not published here" in one_error_line(result)
    assert os.environ["EZKL_REPO_PATH"] == str(cli_home / "ezkl")
    monkeypatch.setenv("VERIML_HOME", str(tmp_path / "elsewhere"))
    assert default_repo_path() == tmp_path / "elsewhere" / "ezkl"


@pytest.mark.slow
def test_zk_setup_writes_the_ezkl_cache_under_the_home_only(tmp_path):
    """The real setup, in its own process with HOME elsewhere: EZKL's cache lands under VERIML_HOME (~40 s)."""
    from veriml import examples

    home, user = tmp_path / "home", tmp_path / "user"
    user.mkdir()
    model = examples.save(examples.mlp((4, 4, 2)), tmp_path / "tiny.onnx")
    env = {k: v for k, v in os.environ.items() if k != "EZKL_REPO_PATH"} | {"HOME": str(user), "VERIML_HOME": str(home)}
    script = Path(sys.executable).parent / "veriml"
    for args in (["keygen", "--name", "alice"], ["publish", str(model), "--name", "alice/tiny"],
                 ["zk", "setup", "alice/tiny"]):  # fmt: skip
        done = subprocess.run([str(script), *args], env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
    assert (home / "ezkl" / "cache").is_dir()
    assert not (user / ".veriml").exists() and not (user / ".ezkl").exists()


def test_ctrl_c_during_start_up_exits_quietly_with_130(tmp_path):
    """SIGINT while the command is still loading its modules (here: exactly when `veriml.cli.app` starts to
    import, as a user's Ctrl-C would land): no traceback, exit status 130."""
    src = Path(__file__).parents[2] / "src"
    child = (
        "import os, signal, sys\n"
        "class CtrlC:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'veriml.cli.app':\n"
        "            os.kill(os.getpid(), signal.SIGINT)\n"
        "sys.meta_path.insert(0, CtrlC())\n"
        "sys.argv = ['veriml', '--help']\n"
        "from veriml.cli import main\n"
        "main()\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, "-c", child], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 130, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr
    assert "Usage" not in done.stdout  # it stopped before running the command
