"""A report worth opening, on a synthetic run (no worker needed): only the cards that ran get a row, the drill-down
shows each card's evaluation, the top-1 chart puts the published top-1 beside a measurement on the published weights
only, the versions name the frameworks whose versions were not recorded, and the charts of measured data (deployment
against its budget, audit cost per finding, latency) are drawn. In Chromium: no console error, screenshots at a narrow
and a wide width."""
import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from parity import report
from support import REGISTRY

TV, TIMM = "torchvision/mobilenet_v2.IMAGENET1K_V1", "timm/mobilenetv2_100.ra_in1k"


def _metrics(rt, **kw):
    return {rt: {"max_abs": 1e-5, "cosine_min": 0.99999, "top1_agree": 1.0, "top5_agree": 1.0, "n": 14, **kw}}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("views")
    res = []
    for card in (TV, TIMM):
        res += [{"card": card, "check": "spec", "status": "pass", "reason": "", "mode": "-", "metrics": {}},
                {"card": card, "check": "onnx-opset17", "status": "pass", "reason": "", "mode": "seeded",
                 "metrics": _metrics("ort-opt-on")},
                {"card": card, "check": "deploy-ort-fp16", "status": "pass", "reason": "", "mode": "real",
                 "metrics": {**_metrics("ort-fp16", sqnr_db=31.2, top1_agree=0.93), "judged_as": "fp16",
                             "runtime": {"precision": "fp16"}}},
                {"card": card, "check": "deploy-ort-int8", "status": "fail", "reason": "SQNR 3.1 dB < 6.0 dB",
                 "mode": "real", "metrics": {**_metrics("ort-int8", sqnr_db=3.1, top1_agree=0.42), "judged_as": "int8",
                                             "runtime": {"precision": "int8"}}}]
    # the second check of the run merged the first one's results but recorded its own stack only (timm's is lost)
    (d / "results.json").write_text(json.dumps({"results": res, "versions": {"core": {"numpy": "2"},
                                                                              "torchvision": {"torch": "2"}}}))
    ev = {"backend": "native", "dataset": "imagenet-sample", "skipped": 0, "top5": 0.9, "top5_ci": [0.8, 0.95],
          "runtime": {"precision": "fp32"}}
    (d / "eval.json").write_text(json.dumps({"results": [
        {**ev, "card": TV, "mode": "file:/data/other-weights.pth", "n": 40, "top1": 0.625, "top1_ci": [0.47, 0.76]},
        {**ev, "card": TIMM, "mode": "pretrained", "n": 1000, "top1": 0.722, "top1_ci": [0.69, 0.75]}]}))
    cost = {"n": 50, "mean_abs": 0.1, "max_abs": 0.5, "psnr_db": 20.0, "agreement": 0.8, "agreement_ci": [0.67, 0.89],
            "top1_change": -0.04, "top1_change_ci": [-0.1, 0.02]}
    (d / "audit.json").write_text(json.dumps({"config": {"source": "deploy.yaml"}, "format": "vastai", "card": TV,
                                              "weights": "real", "verdict": "fail", "findings": [{"severity": "error"}],
                                              "costs": {"whole config": cost, "mean": {**cost, "top1_change": -0.02}},
                                              "failures": ["mean differs"]}))
    (d / "bench.json").write_text(json.dumps({"repeats": 20, "settings": ["batch 1"], "results": [
        {"card": TV, "runtime": "ort-fp16", "precision": "fp16", "batch 1": {"median_ms": 4.2, "vs_ort_fp32": 1.3}}]}))
    return d, report.write(d, REGISTRY)


def test_only_the_cards_that_ran_get_a_row(run):
    _d, out = run
    html = out["html"].read_text()
    models = html.split('<table id="models">', 1)[1].split("</table>", 1)[0]
    assert models.count("<tr") == 1 + 2
    assert f"{len(REGISTRY) - 2} cards not run in this run" in html
    md = out["md"].read_text()
    assert f"{len(REGISTRY) - 2} cards not run in this run" in md and md.count("| not run |") == 0


def test_the_drill_down_shows_each_cards_evaluation_with_what_it_measured(run):
    _d, out = run
    html = out["html"].read_text()
    tv = html.split(f"<details id='card-{TV}'>", 1)[1].split("</details>", 1)[0]
    assert "file:/data/other-weights.pth" in tv and "<td>40</td>" in tv and "62.50 [47.00, 76.00]" in tv
    assert "40 img, native, weights file:/data/other-weights.pth" in html   # the cards table says it too


def test_published_top1_is_charted_beside_a_measurement_of_the_published_weights_only(run):
    _d, out = run
    doc = json.loads(out["json"].read_text())
    from parity.report.charts import comparable
    measured = [r for r in doc["rows"] if r["measured_top1"] is not None]
    assert [measured[i]["card"] for i in comparable(measured)] == [TIMM]


def test_versions_name_the_frameworks_that_ran_without_recorded_versions(run):
    _d, out = run
    html = out["html"].read_text()
    versions = html.split("<h2 id='versions'>", 1)[1]
    assert "timm" in versions and "not recorded" in versions and "torch 2" in versions


def test_charts_of_measured_data_say_what_they_measured(run):
    _d, out = run
    html = out["html"].read_text()
    for caption in ("deployment: SQNR and top-1 agreement against the budget", "audit cost per finding: deploy.yaml",
                    "latency relative to ORT fp32", "top-1 measured (published beside it on the published weights only)"):
        assert f"<figcaption>{caption}</figcaption>" in html, caption
    assert html.count("data:image/png;base64,") == 4


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(*args, timeout=120):
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--enable-logging=stderr",
            "--v=0"]
    return subprocess.run([*base, *args], capture_output=True, text=True, timeout=timeout)


def console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if re.search(r"CONSOLE|Uncaught|Failed to load", line)]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_the_report_has_no_console_error_and_renders_narrow_and_wide(run, tmp_path):
    _d, out = run
    p = chromium("--dump-dom", out["html"].as_uri())
    assert p.returncode == 0 and "<table id=\"models\">" in p.stdout and console_errors(p.stderr) == [], p.stderr[-2000:]
    bad = tmp_path / "bad.html"   # the check sees an error the page would log
    bad.write_text(out["html"].read_text().replace("</body>", "<script>console.error('boom')</script></body>"))
    assert console_errors(chromium("--dump-dom", bad.as_uri()).stderr)
    from PIL import Image
    for width in (390, 1400):
        shot = tmp_path / f"report-{width}.png"
        p = chromium(f"--window-size={width},1600", f"--screenshot={shot}", out["html"].as_uri())
        assert p.returncode == 0 and shot.is_file() and console_errors(p.stderr) == [], p.stderr[-800:]
        px = np.asarray(Image.open(shot).convert("L"), np.float32)
        assert px.shape[1] == width and px.std() > 10      # a rendered page, not a blank one
        right = px[:, int(0.6 * width):]
        assert (right < 200).mean() > 0.005, width         # content reaches the right side: the layout uses the width
