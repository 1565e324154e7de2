"""The explorer in a real headless Chromium against a devnet: every page renders from what the public API serves,
hostile manifest text is shown as text and never runs, private data never shows, and the in-browser verifier agrees
with `veriml verify` check for check on valid and tampered bundles."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np

from tests.adversarial.weak_key_forger import forge as forge_with_weak_key
from tests.browser.world import HOSTILE
from veriml.codec import canonical_json
from veriml.identity import Signed, SigningKey
from veriml.receipts import Bundle
from veriml.verify import verify_bundle

REPO = Path(__file__).parents[2]
VERIFIER = REPO / "src" / "veriml" / "explorer" / "verifier.html"
RUN = (
    "async ([text, options]) => { try { return await window.veriml.verify(text, options); }"
    " catch (e) { return {error: e.message}; } }"
)


def visit(page, url: str) -> str:
    response = page.goto(url)
    assert response is not None and response.status == 200, url
    assert page.errors == [], page.errors
    return page.inner_text("main")


def test_every_page_renders_from_the_public_api(world, page):
    url = world.url
    info = world.infos[0]
    text = visit(page, url + "/")
    assert info["node_id"] in text and "reachable" in text and "Latest checkpoint" in text
    assert "verified" in text  # the witnesses' cosignatures on the latest checkpoint, checked against peer keys
    text = visit(page, url + "/models")
    assert "alice/mlp" in text and "mallory/xss" in text and "Apache-2.0" in text
    assert "mallory" not in visit(page, url + "/models?q=alice")
    text = visit(page, url + "/models/alice/mlp")
    assert "v1" in text and url in text
    text = visit(page, url + "/models/alice/mlp/v/1")
    assert world.publisher.public.vkey in text and "valid: signed by publisher" in text
    assert "veriml infer alice/mlp@1" in text and "client.infer(" in text
    text = visit(page, url + "/log")
    assert "Transparency log" in text and "alice/mlp@1" in text and "covered" in text
    index = world.bundle_index
    text = visit(page, f"{url}/results/{index}")
    assert str(world.bundle.receipt.id) in text and "alice/mlp@1" in text
    assert "verified against the node's signed checkpoint" in text and "public" in text
    assert world.bundle.receipt.body.runtime.runtime_class in text
    text = visit(page, f"{url}/log/inclusion?index=1&size=4")
    assert "audit path" in text
    text = visit(page, f"{url}/log/consistency?old=2&new=5")
    assert "root at size 2" in text
    text = visit(page, url + "/evidence")
    assert "Disagreements (0)" not in text and world.infos[2]["node_id"].split("+")[0] in text
    # A page for what does not exist says so, as a page.
    assert page.goto(f"{url}/results/999999").status == 404
    assert page.goto(f"{url}/log?page=99999").status == 404
    # No page but the verifier carries a script, and every one forbids scripts by policy.
    response = httpx.get(url + "/models/alice/mlp/v/1")
    assert "<script" not in response.text.replace("&lt;script", "")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert "script-src" not in response.headers["content-security-policy"]


def test_a_manifest_description_holding_html_is_shown_as_text(world, page):
    for path in ("/models", "/models/mallory/xss/v/1"):
        visit(page, world.url + path)
        assert page.evaluate("window.__pwned") is None
        assert page.locator("main script, main img, main b, main i").count() == 0
    assert page.inner_text("#description") == HOSTILE  # visible, character for character
    assert page.is_visible("#description")


def test_an_auditable_requests_data_never_shows(world, page):
    text = visit(page, f"{world.url}/results/{world.private_index}")
    html = page.content()
    assert "withheld" in text
    secret = world.private_bundle
    data = base64.b64encode(secret.inputs["x"].tobytes()).decode()
    output = base64.b64encode(next(iter(secret.outputs.values())).tobytes()).decode()
    for value in (secret.salt.hex(), data, output):
        assert value not in html


def _report(page, bundle_text: str, options: dict) -> dict:
    return page.evaluate(RUN, [bundle_text, options])


def _python(bundle_text: str, options: dict) -> dict:
    try:
        bundle = Bundle.from_bytes(bundle_text.encode())
        report = verify_bundle(
            bundle,
            level=options.get("level", "logged"),
            trusted_publishers=options.get("publishers", []),
            trusted_nodes=options.get("nodes", []),
            trusted_witnesses=options.get("witnesses", []),
            witness_quorum=options.get("quorum"),
            agreeing_nodes=options.get("agreeingNodes", 1),
        )
    except Exception as exc:  # InvalidInput: what the CLI prints as one line and exits 2 for
        return {"error": str(exc)}
    return report.to_json()


def _statuses(report: dict) -> list[tuple[str, str, bool]]:
    return [(c["name"], c["status"], c["required"]) for c in report["checks"]]


def _flip_b64(text: str, at: int) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[at] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def _edit(bundle: Bundle, change) -> str:  # type: ignore[no-untyped-def]
    obj = json.loads(bundle.to_bytes())
    change(obj)
    return canonical_json(obj).decode()


def _note_line(proof: str, starts: str, at: int) -> str:
    lines = proof.split("\n")
    for number, line in enumerate(lines):
        if line.startswith("\u2014 ") and line.split(" ")[1] == starts:
            dash, name, encoded = line.split(" ")
            lines[number] = f"{dash} {name} {_flip_b64(encoded, at)}"
            return "\n".join(lines)
    raise AssertionError(f"no signature by {starts}")


def _tampered(world) -> list[tuple[str, str, set[str]]]:  # type: ignore[no-untyped-def]
    """(what was changed, the bundle text, the checks that must fail)."""
    bundle = world.bundle
    origin = bundle.receipt.body.node.name
    proof = bundle.log_proof
    assert proof is not None
    witness_names = [line.split(" ")[1] for line in proof.split("\n") if line.startswith("\u2014 ")]
    witness = next(name for name in witness_names if name != origin)

    def set_path(*keys, value):  # type: ignore[no-untyped-def]
        def change(obj):  # type: ignore[no-untyped-def]
            for key in keys[:-1]:
                obj = obj[key]
            obj[keys[-1]] = value(obj[keys[-1]]) if callable(value) else value

        return change

    other = "sha256:" + "ab" * 32
    proof_lines = proof.split("\n")
    hash_line = next(n for n, line in enumerate(proof_lines) if n > 1 and line and not line.startswith("index"))
    bad_path = proof_lines.copy()
    bad_path[hash_line] = _flip_b64(bad_path[hash_line], 0)
    root_line = proof.index("\n\n") + 2
    checkpoint_lines = proof[root_line:].split("\n")
    checkpoint_lines[2] = _flip_b64(checkpoint_lines[2], 5)
    bad_root = proof[:root_line] + "\n".join(checkpoint_lines)
    out_name = next(iter(bundle.outputs))
    in_name = next(iter(bundle.inputs))
    flip = _flip_b64
    index = _index(proof)
    cases = [
        ("receipt signature", set_path("receipt", "signature", value=lambda s: flip(s, 10)), {"receipt.signature"}),
        ("manifest signature", set_path("manifest", "signature", value=lambda s: flip(s, 3)), {"manifest.signature"}),
        ("manifest id in the receipt", set_path("receipt", "body", "manifest", value=other),
         {"receipt.signature", "receipt.binding", "log.inclusion"}),
        ("manifest description", set_path("manifest", "body", "description", value="another model"),
         {"manifest.signature", "receipt.binding"}),
        ("output tensor", set_path("outputs", out_name, "data", value=lambda s: _flip_b64(s, 0)), {"outputs.digest"}),
        ("input tensor", set_path("inputs", in_name, "data", value=lambda s: _flip_b64(s, 4)), {"inputs.digest"}),
        ("salt", set_path("salt", value=lambda s: ("0" if s[0] != "0" else "1") + s[1:]),
         {"inputs.digest", "outputs.digest"}),
        ("inclusion path", set_path("log_proof", value="\n".join(bad_path)), {"log.inclusion"}),
        ("checkpoint root", set_path("log_proof", value=bad_root), {"log.inclusion"}),
        ("checkpoint signature", set_path("log_proof", value=_note_line(proof, origin, 20)), {"log.inclusion"}),
        ("witness cosignature", set_path("log_proof", value=_note_line(proof, witness, 30)), {"log.inclusion"}),
        ("log index", set_path("log_proof", value=proof.replace(f"index {index}\n", f"index {index + 1}\n")),
         {"log.inclusion"}),
    ]  # fmt: skip
    return [(what, _edit(bundle, change), failing) for what, change, failing in cases]


def _index(proof: str) -> int:
    return int(re.search(r"^index (\d+)$", proof, re.M).group(1))  # type: ignore[union-attr]


def _trust(world) -> dict:  # type: ignore[no-untyped-def]
    return {"publishers": [world.publisher.public.vkey], "nodes": [world.infos[0]["node"]],
            "witnesses": world.witnesses, "quorum": 2}  # fmt: skip


def test_the_verifier_accepts_a_valid_bundle_on_the_page(world, page):
    visit(page, world.url + "/verify")
    page.fill("#bundle", world.bundle.to_bytes().decode())
    page.fill("#publishers", world.publisher.public.vkey)
    page.fill("#nodes", world.infos[0]["node"])
    page.fill("#witnesses", "\n".join(world.witnesses))
    page.fill("#quorum", "2")
    page.click("#run")
    page.wait_for_selector("#verdict[data-verdict]")
    assert page.get_attribute("#verdict", "data-verdict") == "verified"
    assert page.inner_text("#verdict") == "VERIFIED"
    rows = page.locator("#checks tr")
    shown = [(row.get_attribute("data-check"), row.get_attribute("data-status")) for row in rows.all()]
    python = _python(world.bundle.to_bytes().decode(), _trust(world))
    assert python["verdict"] == "verified"
    assert shown == [(c["name"], c["status"]) for c in python["checks"]]
    assert page.errors == []


def test_the_verifier_and_the_cli_agree_on_valid_and_tampered_bundles(world, page, tmp_path):
    visit(page, world.url + "/verify")
    trust = _trust(world)
    valid = world.bundle.to_bytes().decode()
    for options in ({}, {"level": "signed"}, trust, {**trust, "level": "reexecuted"}):
        browser, python = _report(page, valid, options), _python(valid, options)
        assert _statuses(browser) == _statuses(python), options
        if options.get("level") == "reexecuted":  # documented difference: no model runs in a browser
            assert (browser["verdict"], python["verdict"]) == ("incomplete", "incomplete")
            assert browser["checks"][10]["detail"].startswith("re-execution does not run in a browser")
        else:
            assert browser["verdict"] == python["verdict"] and browser["trust"] == python["trust"]
    for what, text, failing in _tampered(world):
        browser, python = _report(page, text, trust), _python(text, trust)
        assert "error" not in browser and "error" not in python, (what, browser, python)
        assert _statuses(browser) == _statuses(python), what
        assert (browser["verdict"], python["verdict"]) == ("failed", "failed"), what
        assert {c["name"] for c in browser["checks"] if c["status"] == "fail"} == failing, what
    # Another publisher's key: the bundle is sound but not anchored in the keys the user trusts.
    other = {**trust, "publishers": [world.infos[1]["node"]]}
    browser, python = _report(page, valid, other), _python(valid, other)
    assert _statuses(browser) == _statuses(python) and browser["verdict"] == python["verdict"] == "failed"
    # A bundle that cannot be read is refused by both, not judged.
    obj = json.loads(valid)
    huge = json.loads(valid)
    huge["receipt"]["body"]["runtime"].update({f"k{n}": n for n in range(70)})  # over the fingerprint's bounds
    second = json.loads(valid)
    second["manifest"]["body"]["version"] = 2  # a version 2 must name its parent
    # In the name of a node whose key is the neutral point, under which signatures anyone can forge verify.
    chosen = {name: np.full(tensor["shape"], 42.0, np.float32) for name, tensor in obj["outputs"].items()}
    weak = forge_with_weak_key(obj, chosen)
    for broken in (
        valid.replace('"format_version":2', '"format_version":2,"format_version":2', 1),
        canonical_json({**obj, "extra": 1}).decode(),
        canonical_json({**obj, "salt": "AB" * 32}).decode(),
        canonical_json(huge).decode(),
        canonical_json(second).decode(),
    ):
        assert "error" in _report(page, broken, {}) and "error" in _python(broken, {})
    weak_text = canonical_json(weak).decode()
    for options in ({"level": "signed"}, {"level": "signed", "nodes": [weak["receipt"]["body"]["node"]]}):
        for report in (_report(page, weak_text, options), _python(weak_text, options)):
            assert "not a valid Ed25519 public key" in report["error"], report
    # The CLI itself, once (verify_bundle above is what it calls): the same checks, and exit 0 only when verified.
    path = tmp_path / "bundle.json"
    keys = ["--publisher", trust["publishers"][0], "--node", trust["nodes"][0], "--quorum", "2"]
    keys += [arg for w in trust["witnesses"] for arg in ("--witness", w)]
    path.write_text(valid)
    command = [sys.executable, "-c", "from veriml.cli import main; main()", "verify", str(path), "--json", *keys]
    environment = {**os.environ, "VERIML_HOME": str(tmp_path / "home")}  # no blobs at hand: as in the browser
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=environment)
    cli = json.loads(done.stdout)
    assert _statuses(cli) == _statuses(_report(page, valid, trust))
    assert (cli["verdict"], done.returncode) == ("verified", 0)


def test_the_verifier_agrees_on_quorum_attestations(world, page):
    visit(page, world.url + "/verify")
    options = {"agreeingNodes": 2, "nodes": [world.infos[0]["node"], world.infos[1]["node"]]}
    valid = world.quorum.to_bytes().decode()
    browser, python = _report(page, valid, options), _python(valid, options)
    assert _statuses(browser) == _statuses(python) and browser["verdict"] == python["verdict"]
    assert browser["checks"][11]["status"] == "pass"

    def lie(obj):  # type: ignore[no-untyped-def]
        tensor = next(iter(obj["attestations"][0]["outputs"].values()))
        tensor["data"] = _flip_b64(tensor["data"], 0)

    text = _edit(world.quorum, lie)
    browser, python = _report(page, text, options), _python(text, options)
    assert _statuses(browser) == _statuses(python) and browser["checks"][11]["status"] == "fail"
    three = {**options, "agreeingNodes": 3}
    assert _statuses(_report(page, valid, three)) == _statuses(_python(valid, three))


def test_hostile_text_inside_a_bundle_is_shown_as_text_by_the_verifier(world, page):
    """A publisher key named with HTML (a valid C2SP key name) signs a manifest: every detail naming it is text."""
    evil = SigningKey.generate("<img/src=x/onerror=window.__pwned=3>")
    manifest = Signed.sign(replace(world.bundle.manifest.body, publisher=evil.public), evil)
    bundle = replace(world.bundle, manifest=manifest)
    visit(page, world.url + "/verify")
    page.fill("#bundle", bundle.to_bytes().decode())
    page.click("#run")
    page.wait_for_selector("#verdict[data-verdict]")
    assert page.get_attribute("#verdict", "data-verdict") == "failed"  # receipt.binding: another manifest
    assert "signed by publisher <img/src=x/onerror=window.__pwned=3>+" in page.inner_text("#checks")
    assert page.locator("#checks img").count() == 0 and page.evaluate("window.__pwned") is None
    assert page.errors == []


def test_the_verifier_works_saved_and_opened_offline(world, page, tmp_path):
    saved = tmp_path / "verifier.html"
    saved.write_bytes(httpx.get(world.url + "/verify").content)
    assert saved.read_bytes() == VERIFIER.read_bytes()
    page.goto(saved.as_uri())
    bundle_file = tmp_path / "result.bundle.json"
    world.bundle.save(bundle_file)
    page.set_input_files("#file", str(bundle_file))  # choosing a file verifies it at once
    page.wait_for_selector("#verdict[data-verdict]")
    assert page.get_attribute("#verdict", "data-verdict") == "unanchored"  # no trusted keys: the CLI's word too
    timing = page.evaluate(
        "async (t) => { const r = []; for (let k = 0; k < 20; k++) { const s = performance.now();"
        " await window.veriml.verify(t, {}); r.push(performance.now() - s); } r.sort((a, b) => a - b); return r[10]; }",
        world.bundle.to_bytes().decode(),
    )
    assert timing < 50, f"a small bundle took {timing:.1f} ms to verify in the browser"
    assert page.errors == []


def test_the_published_verifier_hash_is_the_files():
    doc = (REPO / "docs" / "explorer.md").read_text()
    published = re.search(r"sha256 `([0-9a-f]{64})`", doc)
    assert published is not None, "docs/explorer.md must publish the verifier's sha256"
    assert published.group(1) == hashlib.sha256(VERIFIER.read_bytes()).hexdigest()
