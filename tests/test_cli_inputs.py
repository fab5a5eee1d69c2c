"""What a user sees for bad input: one line, what was wrong, a hint, the documented exit code, before any worker
starts; and output that prints text literally and stays readable at 120 columns."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from parity.paths import realdata_dir
from support import REGISTRY

TIMM = "timm/mobilenetv2_050.lamb_in1k"


def cli(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "parity.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **(env or {})}, timeout=600)


def one_line_error(p, code, *words):
    assert p.returncode == code, (p.returncode, p.stdout[-800:], p.stderr[-800:])
    err = p.stderr.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    for w in words:
        assert w in err, (w, err)


@pytest.fixture
def canon_symmetric(harness, tmp_path):
    built = harness.build(REGISTRY.get("torchvision/mobilenet_v2.IMAGENET1K_V1"), "seeded")
    out = tmp_path / "tv.safetensors"
    harness.client("torchvision").export_canonical(built.key, out)
    return out


CASES = {
    "weights file missing": (["check", TIMM, "--weights", "file:/nope.pth"], 2, ["no such file"]),
    "weights mode unknown": (["check", TIMM, "--weights", "sedded"], 2, ["unknown weights mode", "hint"]),
    "pdparams to a torch card": (["check", TIMM, "--weights", "file:{pdparams}"], 2, ["paddle-pickle", "ppcls"]),
    "garbage .pth": (["check", TIMM, "--weights", "file:{garbage}.pth"], 2, ["not a torch-pickle file", "hint"]),
    "garbage .pdparams": (["check", "ppcls/MobileNetV2.pretrained", "--weights", "file:{garbage}.pdparams"], 2,
                          ["not a paddle-pickle file", "hint"]),
    "garbage .weights.h5": (["check", "keras/mobilenet_v2.alpha_1.0_224", "--weights", "file:{garbage}.weights.h5"], 2,
                            ["not a keras-h5 file", "no HDF5 signature"]),
    "garbage weights, unknown suffix": (["check", TIMM, "--weights", "file:{garbage}.bin"], 2, ["not a torch-pickle"]),
    "opset too high for torch": (["check", TIMM, "--opset", "99"], 2, ["opset", "7-20"]),
    "opset too high for keras": (["check", "keras/mobilenet_v2.alpha_1.0_224", "--opset", "19"], 2, ["9-18"]),
    "workdir is a file": (["check", TIMM, "--workdir", "{file}"], 2, ["not a directory"]),
    "json is a directory": (["check", TIMM, "--json", "{dir}"], 2, ["is a directory"]),
    "transplant from unknown": (["transplant", "{pdparams}", "--to", "timm", "--from", "caffe"], 2, ["invalid choice"]),
    "transplant missing source": (["transplant", "/nope.tflite", "--to", "keras"], 2, ["not found"]),
    "unknown model": (["check", "timm/mobilenetv2_10"], 2, ["did you mean"]),
    "unknown convention": (["count", TIMM, "--convention", "flopz"], 2, ["unknown convention"]),
    "cross limit": (["cross", "{pdparams}", "--limit", "0"], 2, ["--limit 0"]),
    "eval no data": (["eval", TIMM, "--data", "/nope"], 2, ["dataset not found", "hint"]),
    "unknown runtime": (["eval", TIMM, "--data", "{dir}", "--runtime", "tensorrt"], 2, ["unknown runtime"]),
    "watch file-issues without repo": (["watch", TIMM, "--file-issues"], 2, ["OWNER/NAME"]),
    "bench runtime that does not fit": (["bench", TIMM, "--runtime", "tflite"], 2,
                                        ["--runtime tflite does not fit", "tflite runs keras models", "ort-fp16"]),
    "bench runtime that fits no card": (["bench", TIMM, "torchvision/mobilenet_v2.IMAGENET1K_V1", "--runtime",
                                         "torchscript", "--runtime", "paddle-inference"], 2,
                                        ["--runtime paddle-inference does not fit any of the 2 cards"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_before_any_worker(tmp_path, case):
    args, code, words = CASES[case]
    (tmp_path / "f").write_text("x")
    (tmp_path / "d").mkdir()
    (tmp_path / "w.pdparams").write_bytes(b"x")
    for suffix in (".pth", ".pdparams", ".weights.h5", ".bin"):    # random bytes (a torch.load: "Unsupported operand")
        (tmp_path / f"garbage{suffix}").write_bytes(np.random.default_rng(0).bytes(4096))
    args = [a.format(pdparams=tmp_path / "w.pdparams", file=tmp_path / "f", dir=tmp_path / "d",
                     garbage=tmp_path / "garbage") for a in args]
    if "--workdir" not in args:
        args += ["--workdir", str(tmp_path / "work")]
    p = cli(*args, env={"MBV2_PARITY_GITHUB_REPO": ""})
    one_line_error(p, code, *words)
    if "garbage" in case:   # bad input, not an adapter's error after a worker started (its class named twice)
        assert "AdapterError" not in p.stderr, p.stderr
    assert not list((tmp_path / "work").glob("workers/*/worker-*.log"))   # no worker was started


def test_missing_interpreter_is_named_once_with_its_tox_env(tmp_path):
    p = cli("check", TIMM, "ppcls/MobileNetV2.pretrained", "--workdir", str(tmp_path),
            env={"MBV2_PARITY_PYTHON_TORCH": str(tmp_path / "no-python")})
    one_line_error(p, 2, "MBV2_PARITY_PYTHON_TORCH", "no such interpreter", "tox -e w-torch")


def test_unset_interpreter_without_framework_is_refused_once(tmp_path):
    env = {"MBV2_PARITY_PYTHON_TF": sys.executable}   # the core env: no tensorflow
    p = cli("check", "keras/mobilenet_v2.alpha_1.0_224", "--workdir", str(tmp_path), env=env)
    one_line_error(p, 2, "cannot import tensorflow", "tox -e w-tf")


def test_doctor_lists_every_stack(tmp_path):
    p = cli("doctor", env={"MBV2_PARITY_PYTHON_PADDLE": str(tmp_path / "nope")})
    assert p.returncode == 1 and "w-torch" in p.stdout and "w-paddle" in p.stdout and "incomplete" in p.stdout
    for stack in ("torch", "tf", "paddle"):
        assert stack in p.stdout


def test_doctor_says_a_missing_interpreter_does_not_exist(tmp_path):
    """MBV2_PARITY_PYTHON_TF=/nonexistent: the tf row says the interpreter does not exist (once), not every package
    of the stack as missing."""
    p = cli("doctor", env={"MBV2_PARITY_PYTHON_TF": "/nonexistent", "COLUMNS": "400"})
    assert p.returncode == 1, p.stdout + p.stderr
    row = next(ln for ln in p.stdout.splitlines() if "w-tf" in ln)
    assert "no such interpreter: /nonexistent does not exist" in row and "tox -e w-tf" in row, row
    assert "tensorflow" not in row.split("no such interpreter")[1] and p.stdout.count("does not exist") == 1


def _padding_refused_or_resolved(harness, canon_symmetric, tmp_path):
    """keras cannot be built with the symmetric padding these weights were trained with: refused, one line; a card
    that can be built with it is built with it (not with its framework's default). With realdata: the SAME-padded real
    weights' canonical file, which timm resolves to SAME (else None)."""
    p = cli("check", "keras/mobilenet_v2.alpha_1.0_224", "--weights", f"canonical:{canon_symmetric}",
            "--workdir", str(tmp_path))
    one_line_error(p, 2, "'symmetric' padding", "builds same only")
    card = REGISTRY.get("timm/mobilenetv2_100.ra_in1k")
    assert harness.resolve(card, f"canonical:{canon_symmetric}").padding == "symmetric"
    real = realdata_dir()
    if real is None:
        return card, None
    from parity.weights.transplant import to_canonical
    same = to_canonical(harness, real / "tflite" / "tf2_mobilenet_v2_1.0_224_ptq.tflite")
    assert harness.resolve(card, f"canonical:{same}").padding == "same"
    return card, same


@pytest.mark.slow   # CI time (17 s): test_canonical_weights_padding_is_refused_or_said_before_any_work (the refusal,
# the resolved padding, the note), timm built with SAME canonical weights and checked through native and ONNX Runtime
# (test_evaluate.py::test_real_weights_on_real_images_every_framework_and_onnx_agree[60])
def test_canonical_weights_padding_is_used_or_refused(harness, canon_symmetric, tmp_path):
    card, same = _padding_refused_or_resolved(harness, canon_symmetric, tmp_path)
    if same is not None:   # the user is told
        p = cli("check", card.id, "--weights", f"canonical:{same}", "--workdir", str(tmp_path / "s"))
        assert p.returncode == 0 and "trained with 'same' padding; every card is built with it" in p.stdout, p.stderr


def test_canonical_weights_padding_is_refused_or_said_before_any_work(harness, canon_symmetric, tmp_path):
    """The slow test above without its full check: `check`'s prepare says the padding before it refuses --opset 99."""
    card, same = _padding_refused_or_resolved(harness, canon_symmetric, tmp_path)
    if same is not None:
        p = cli("check", card.id, "--weights", f"canonical:{same}", "--opset", "99", "--workdir", str(tmp_path / "s"))
        one_line_error(p, 2, "--opset 99", "7-20")
        assert "trained with 'same' padding; every card is built with it" in p.stdout, p.stdout
        assert not list((tmp_path / "s").glob("workers/*/worker-*.log"))   # no worker was started


def test_transplant_warns_when_the_stock_target_pads_differently(tmp_path):
    real = realdata_dir()
    if real is None:
        pytest.skip("../shared/realdata is absent")
    p = cli("transplant", str(real / "tflite" / "tf2_mobilenet_v2_1.0_224_ptq.tflite"), "--to", "torchvision",
            "--out", str(tmp_path / "x.pth"), "--workdir", str(tmp_path))
    assert p.returncode == 0 and "a stock torchvision model pads symmetric" in p.stdout, p.stdout + p.stderr


def test_text_is_printed_literally_and_markup_cannot_crash(tmp_path):
    p = cli("list", "keras/*")
    assert p.returncode == 0 and "[seed000]" in p.stdout and "[keras-docs]" in p.stdout
    weird = tmp_path / "a[/bold]b[red]"
    p = cli("check", TIMM, "--weights", "seeded", "--workdir", str(weird))
    assert p.returncode == 0, p.stdout[-1000:] + p.stderr[-1000:]
    assert "a[/bold]b[red]" in p.stdout.replace("\n", "")


def test_tables_stay_readable_at_120_columns(tmp_path):
    """Every id whole on one line (never truncated or folded), no line wider than 120."""
    p = cli("list", env={"COLUMNS": "120"})
    assert p.returncode == 0 and max(len(line) for line in p.stdout.splitlines()) <= 120
    for c in REGISTRY:
        assert c.id in p.stdout, c.id
    assert "…" not in p.stdout


def test_hints_are_printed_once(tmp_path):
    p = cli("eval", TIMM, "--data", str(tmp_path / "nope"))
    assert p.stderr.count("hint:") == 1


def test_report_strict_exit_codes_are_documented():
    from parity.errors import EXIT_CODES
    root = Path(__file__).resolve().parents[1]
    for doc in (root / "README.md", root / "docs" / "exit-codes.md"):      # the short README and the docs page
        table = doc.read_text().split("# Exit codes\n", 1)[1].split("\n## ", 1)[0]
        for code in EXIT_CODES:
            assert f"| {code} |" in table, (doc.name, code)


def test_results_are_json_with_the_run(tmp_path):
    """results.json holds the run, and the versions of every stack it used: read from the started worker on a cold
    run, and from the stack's installed distributions (marked so) on a warm run that started no worker."""
    env = {"MBV2_PARITY_ARTIFACTS": str(tmp_path / "cache")}
    for run, started in (("cold", True), ("warm", False)):
        p = cli("check", TIMM, "--weights", "seeded", "--workdir", str(tmp_path / run), "--fresh", env=env)
        assert p.returncode == 0, p.stderr[-800:]
        doc = json.loads((tmp_path / run / "results.json").read_text())
        timm = doc["versions"]["timm"]
        assert doc["run"] and doc["partial"] is False and timm["timm"] and timm["torch"], (run, doc["versions"])
        assert ("read" not in timm) is started, (run, timm)
        assert (tmp_path / run / "workers" / "timm").exists() is started, run


def test_a_bug_is_reported_as_a_bug_with_its_traceback_in_the_log(tmp_path):
    env = {"MBV2_PARITY_PLUGINS": "plugins_broken.crash_on_import",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    p = cli("check", TIMM, "--workdir", str(tmp_path), env=env)
    one_line_error(p, 4, "internal error (a bug", "RuntimeError: plug-in bug for the test", "mbv2-parity.log")
    log = (tmp_path / "mbv2-parity.log").read_text()
    assert "Traceback" in log and "plug-in bug for the test" in log


def test_a_check_with_a_bug_errors_and_never_passes(tmp_path):
    env = {"MBV2_PARITY_PLUGINS": "plugins_broken.crashing_check",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    p = cli("check", TIMM, "--weights", "seeded", "--workdir", str(tmp_path), env=env)
    assert p.returncode == 1, p.stdout[-1500:]
    r = next(r for r in json.loads((tmp_path / "results.json").read_text())["results"] if r["check"] == "demo-broken")
    assert r["status"] == "error" and "internal error (a bug) ZeroDivisionError" in r["reason"]
    assert "ZeroDivisionError" in (tmp_path / "mbv2-parity.log").read_text()
