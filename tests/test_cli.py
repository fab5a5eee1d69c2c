import json
import subprocess
import sys


def run(*args):
    return subprocess.run([sys.executable, "-m", "parity.cli", *args], capture_output=True, text=True)


def test_list_shows_every_card():
    p = run("list")
    assert p.returncode == 0
    for cid in ("IMAGENET1K_V1", "IMAGENET1K_V2", "mobilenetv2_120d.ra_in1k"):
        assert cid in p.stdout


def test_unknown_model_is_one_line_with_close_matches():
    p = run("check", "timm/mobilenetv2_10")
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and "did you mean" in p.stderr and "Traceback" not in p.stderr


def test_check_writes_json_and_exit_code(tmp_path):
    out = tmp_path / "r.json"
    p = run("check", "timm/mobilenetv2_050.lamb_in1k", "--workdir", str(tmp_path), "--json", str(out))
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    doc = json.loads(out.read_text())
    statuses = {(r["check"], r["mode"]): r["status"] for r in doc["results"]}
    assert statuses[("onnx-opset17", "seeded")] == "pass"
    assert statuses[("onnx-opset17", "pretrained")] == "skip"
    assert "passed" in p.stdout


def test_count_prints_every_convention_and_checks_cells(tmp_path):
    p = run("count", "ppcls/MobileNetV2_x0_25.pretrained", "--workdir", str(tmp_path))
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    for name in ("macs", "thop", "paddle.flops", "mmengine", "ptflops", "fluid.model_stat", "with_bn_stats"):
        assert name in p.stdout
    assert "34.179" in p.stdout and "exact" in p.stdout
    doc = json.loads((tmp_path / "counts.json").read_text())
    assert doc["results"][0]["check"] == "counts" and doc["results"][0]["status"] == "pass"


def test_count_unknown_convention_is_one_line():
    p = run("count", "ppcls/MobileNetV2.pretrained", "--convention", "flopz")
    assert p.returncode == 2 and "unknown convention" in p.stderr and "Traceback" not in p.stderr
