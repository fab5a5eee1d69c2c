"""The run report: ``report.json``, ``report.md``, ``report.html`` (+ ``junit.xml``) from a run's JSON files.

Reads what the run's commands wrote into the work directory (``results.json`` from ``check``, ``counts.json``,
``cross.json``, ``eval.json``, ``preprocess.json``, ``watch.json``) and renders: the model table (ONNX parity
metrics, FLOPs/params vs the published table, top-1 vs the published table when measured), the cross-framework
matrix as a heatmap and top-1 vs published as a chart (matplotlib PNGs embedded in the HTML as data URIs).
"""
from __future__ import annotations

import base64
import html
import io
import json
import time
from pathlib import Path
from xml.etree import ElementTree as ET

from .registry import Registry


def _load(workdir: Path, name: str):
    p = workdir / name
    return json.loads(p.read_text()) if p.is_file() else None


def _step_outputs(workdir: Path, command: str, default: str, key: str, problems: list[str]) -> list[dict]:
    """The results of every ``command`` step of the run recorded in ``run.json`` (wherever they were written), or
    ``WORKDIR/default`` when no run is recorded. A step whose output is missing or partial is a problem."""
    from . import runlog
    run = runlog.load(workdir)
    files = run.outputs(command) if run is not None else [workdir / default]
    out: dict[tuple, dict] = {}
    for f in dict.fromkeys(files):
        if not f.is_file():
            if run is not None:
                problems.append(f"`{command}` wrote no results at {f}")
            continue
        doc = json.loads(f.read_text())
        if doc.get("partial"):
            problems.append(f"{f} holds partial results (the `{command}` step was interrupted)")
        for r in doc.get(key, []):
            out[(r.get("card"), r.get("check"), r.get("mode"), r.get("backend"))] = r
    return list(out.values())


def collect(workdir: Path, reg: Registry) -> dict:
    problems: list[str] = []
    results = _step_outputs(workdir, "check", "results.json", "results", problems)
    counts = _step_outputs(workdir, "count", "counts.json", "results", problems)
    evals = [e for e in _step_outputs(workdir, "eval", "eval.json", "results", problems) if "top1" in e]
    rows = []
    for card in reg:
        mine = [r for r in results if r["card"] == card.id]
        onnx = next((r for r in mine if r["check"].startswith("onnx-opset") and r["mode"] == "seeded"), None)
        cnt = next((r for r in counts + mine if r["card"] == card.id and r["check"] == "counts"), None)
        cells = (cnt or {}).get("metrics", {}).get("cells", [])
        ev = next((e for e in evals if e.get("card") == card.id and e.get("backend") == "onnx"), None)
        pub = card.published_for("top1")
        rows.append({
            "card": card.id, "framework": card.framework,
            "checks": {r["check"] + ("" if r["mode"] in ("-", "seeded") else f"[{r['mode']}]"): r["status"] for r in mine},
            "onnx_max_abs": (onnx or {}).get("metrics", {}).get("ort-opt-off", {}).get("max_abs"),
            "onnx_status": (onnx or {}).get("status"),
            "counts": {"exact": sum(c["status"] == "exact" for c in cells),
                       "within_tolerance": sum(c["status"] == "within-tolerance" for c in cells),
                       "mismatch": sum(c["status"] not in ("exact", "within-tolerance") for c in cells),
                       "cells": cells},
            "published_top1": pub[0].value / (100.0 if pub[0].unit == "%" else 1.0) if pub else None,
            "measured_top1": ev["top1"] if ev else None,
            "measured_top1_ci": ev.get("top1_ci") if ev else None,
        })
    statuses = [r["status"] for r in results]
    return {"generated": time.strftime("%Y-%m-%d %H:%M:%S"), "rows": rows,
            "summary": {s: statuses.count(s) for s in ("pass", "fail", "skip", "error")},
            "cross": _load(workdir, "cross.json"), "watch": _load(workdir, "watch.json"),
            "preprocess_matrix": (_load(workdir, "preprocess.json") or {}).get("matrix"), "results": results,
            "problems": problems}


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def charts(doc: dict) -> dict[str, str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    out = {}
    cross = doc.get("cross")
    if cross:
        names = cross["names"]
        m = np.array(cross["top1_agree"])
        fig, ax = plt.subplots(figsize=(1 + 0.7 * len(names), 0.8 + 0.6 * len(names)))
        im = ax.imshow(m, vmin=min(0.5, float(m.min())), vmax=1.0, cmap="viridis")
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        for i in range(len(names)):
            for j in range(len(names)):
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if m[i, j] < 0.9 else "black")
        ax.set_title(f"cross-framework top-1 agreement ({cross.get('images', '?')} images, {Path(cross.get('source', '')).name})")
        fig.colorbar(im, ax=ax, fraction=0.04)
        out["cross"] = _png(fig)
    rows = [r for r in doc["rows"] if r["published_top1"] is not None]
    if rows:
        fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(rows)), 3.5))
        x = np.arange(len(rows))
        ax.bar(x - 0.2, [100 * r["published_top1"] for r in rows], 0.4, label="published top-1")
        meas = [100 * r["measured_top1"] if r["measured_top1"] is not None else 0 for r in rows]
        ax.bar(x + 0.2, meas, 0.4, label="measured top-1 (0 = not measured in this run)")
        for i, r in enumerate(rows):
            if r["measured_top1_ci"]:
                lo, hi = r["measured_top1_ci"]
                ax.plot([i + 0.2, i + 0.2], [100 * lo, 100 * hi], color="black", lw=1)
        ax.set_xticks(x, [r["card"].split("/")[1][:22] for r in rows], rotation=60, ha="right", fontsize=7)
        ax.set_ylim(40, 85)
        ax.set_ylabel("top-1 (%)")
        ax.legend(fontsize=7)
        ax.set_title("top-1: published vs measured (Wilson 95 % interval)")
        out["top1"] = _png(fig)
    return out


def markdown(doc: dict) -> str:
    s = doc["summary"]
    lines = [f"# mbv2-parity run report ({doc['generated']})", "",
             f"{s['pass']} passed, {s['fail']} failed, {s['skip']} skipped, {s['error']} errors", "",
             "| card | ONNX parity (seeded, max abs) | FLOPs/params cells (exact / tol / mismatch) | top-1 published | top-1 measured | checks |",
             "|---|---|---|---|---|---|"]
    for r in doc["rows"]:
        mx = "" if r["onnx_max_abs"] is None else f"{r['onnx_status']} {r['onnx_max_abs']:.1e}"
        c = r["counts"]
        pub = "" if r["published_top1"] is None else f"{100 * r['published_top1']:.2f}"
        meas = "" if r["measured_top1"] is None else f"{100 * r['measured_top1']:.2f}"
        bad = [k for k, v in r["checks"].items() if v in ("fail", "error")]
        lines.append(f"| {r['card']} | {mx} | {c['exact']} / {c['within_tolerance']} / {c['mismatch']} | {pub} | {meas} | "
                     f"{len(r['checks'])} checks" + (f", failing: {', '.join(bad)}" if bad else "") + " |")
    if doc.get("cross"):
        cr = doc["cross"]
        lines += ["", f"## Cross-framework matrix ({cr.get('images')} images, {Path(cr.get('source', '')).name})", "",
                  "| | " + " | ".join(cr["names"]) + " |", "|---|" + "---|" * len(cr["names"])]
        for i, a in enumerate(cr["names"]):
            lines.append(f"| {a} | " + " | ".join("-" if i == j else f"{cr['max_abs'][i][j]:.1e} / {cr['top1_agree'][i][j]:.3f}"
                                                  for j in range(len(cr["names"]))) + " |")
    if doc.get("watch"):
        lines += ["", "## Upstream watch", ""] + [f"* {r['card']}: {r['status']}" for r in doc["watch"]["results"]]
    return "\n".join(lines) + "\n"


def render_html(doc: dict, imgs: dict[str, str]) -> str:
    e = html.escape
    s = doc["summary"]
    rows = []
    for r in doc["rows"]:
        c = r["counts"]
        mx = "" if r["onnx_max_abs"] is None else f"{r['onnx_max_abs']:.1e}"
        cls = "fail" if any(v in ("fail", "error") for v in r["checks"].values()) else "pass"
        pub = "" if r["published_top1"] is None else f"{100 * r['published_top1']:.2f}"
        meas = "" if r["measured_top1"] is None else f"{100 * r['measured_top1']:.2f}"
        rows.append(f"<tr class='{cls}'><td>{e(r['card'])}</td><td>{e(str(r['onnx_status'] or ''))}</td><td>{mx}</td>"
                    f"<td>{c['exact']}</td><td>{c['within_tolerance']}</td><td>{c['mismatch']}</td>"
                    f"<td>{pub}</td><td>{meas}</td><td>{len(r['checks'])}</td></tr>")
    figs = "".join(f"<figure><img alt='{k}' src='{v}'><figcaption>{e(k)}</figcaption></figure>" for k, v in imgs.items())
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>mbv2-parity report</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px}}
tr.fail td{{background:#fdd}} figure{{display:inline-block;margin:1em}}</style></head><body>
<h1>mbv2-parity run report</h1><p id="summary">{doc['generated']}: {s['pass']} passed, {s['fail']} failed, {s['skip']} skipped, {s['error']} errors</p>
<table id="models"><thead><tr><th>card</th><th>ONNX parity</th><th>max abs</th><th>FLOPs/params exact</th><th>within tol.</th><th>mismatch</th>
<th>top-1 published</th><th>top-1 measured</th><th>checks</th></tr></thead><tbody>
{''.join(rows)}
</tbody></table>
{figs}
</body></html>
"""


def junit(results: list[dict], path: Path) -> Path:
    suite = ET.Element("testsuite", name="mbv2-parity", tests=str(len(results)),
                       failures=str(sum(r["status"] == "fail" for r in results)),
                       errors=str(sum(r["status"] == "error" for r in results)),
                       skipped=str(sum(r["status"] == "skip" for r in results)))
    for r in results:
        tc = ET.SubElement(suite, "testcase", classname=r["card"], name=f"{r['check']}[{r['mode']}]",
                           time=f"{r.get('timings', {}).get('total', 0):.3f}")
        if r["status"] in ("fail", "error"):
            ET.SubElement(tc, "failure" if r["status"] == "fail" else "error", message=r["reason"][:500])
        elif r["status"] == "skip":
            ET.SubElement(tc, "skipped", message=r["reason"][:500])
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
    return path


def write(workdir: Path, reg: Registry) -> dict[str, Path]:
    workdir = Path(workdir)
    doc = collect(workdir, reg)
    imgs = charts(doc)
    out = {"json": workdir / "report.json", "md": workdir / "report.md", "html": workdir / "report.html",
           "junit": workdir / "junit-parity.xml"}
    out["json"].write_text(json.dumps({k: v for k, v in doc.items()}, indent=1, default=str))
    out["md"].write_text(markdown(doc))
    out["html"].write_text(render_html(doc, imgs))
    junit(doc["results"], out["junit"])
    return out
