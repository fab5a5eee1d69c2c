"""The report document rendered as markdown, as one self-contained HTML page (failures first, skips grouped by
reason, the model table, charts of measured data, a drill-down per card, versions) and as JUnit XML."""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from . import audit, compare, deploy
from . import verify as verify_section

Doc = dict[str, Any]
e = html.escape


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.2f}"


def ran(doc: Doc) -> list[Doc]:
    """The rows of the cards this run checked, counted or evaluated (the others are one line, not a row each)."""
    return [r for r in doc["rows"] if r["status"] != "not run" or r["evals"]]


def not_run(doc: Doc) -> list[str]:
    return [r["card"] for r in doc["rows"] if r["status"] == "not run" and not r["evals"]]


def _eval_cell(r: Doc) -> str:
    """The measured top-1 with what it was measured on (the published top-1 is comparable on the published
    weights only)."""
    if r["measured_top1"] is None:
        return ""
    return f"{_pct(r['measured_top1'])} ({r['measured_n']} img, {r['measured_runtime']}, weights {r['measured_weights']})"


def markdown(doc: Doc) -> str:
    s, c = doc["summary"], doc["cards"]
    lines = [f"# mbv2-parity run report ({doc['generated']}, run {doc['run']})", "",
             f"checks: {s['pass']} passed, {s['fail']} failed, {s['skip']} skipped, {s['error']} errors, "
             f"{s.get('expected', 0)} known findings as expected; cards: "
             f"{c['pass']} pass, {c['fail']} fail, {c['skip']} only skipped, {c['not run']} not run", ""]
    lines += [f"* run problem: {p}" for p in doc["problems"]]
    if doc.get("cache"):
        lines += [f"* artifact cache: {doc['cache']}"]
    if doc["failures"]:
        lines += ["", "## Failures", ""] + [f"* **{r['card']}** {r['check']} [{r['mode']}] {r['status']}: {r['reason']}"
                                            for r in doc["failures"]]
    if doc.get("expected"):
        lines += ["", "## Known findings, as expected", ""] + [
            f"* **{r['card']}** {r['check']} [{r['mode']}]: {r['reason']}" for r in doc["expected"]]
    lines += ["", "## Machine", "", f"* {machine_line(doc.get('machine'))}"]
    lines += compare.markdown(doc.get("compare"))
    lines += ["", "## Cards", "",
              "| card | status | ONNX parity (seeded, max abs) | FLOPs/params cells (exact / tol / mismatch) | top-1 published "
              "| top-1 measured | checks |", "|---|---|---|---|---|---|---|"]
    for r in ran(doc):
        mx = "" if r["onnx_max_abs"] is None else f"{r['onnx_status']} {r['onnx_max_abs']:.1e}"
        k = r["counts"]
        bad = [n for n, v in r["checks"].items() if v in ("fail", "error")]
        lines.append(f"| {r['card']} | {r['status']} | {mx} | {k['exact']} / {k['within_tolerance']} / {k['mismatch']} | "
                     f"{_pct(r['published_top1'])} | {_eval_cell(r)} | {len(r['checks'])} checks"
                     + (f", failing: {', '.join(bad)}" if bad else "") + " |")
    if not_run(doc):
        lines += ["", f"{len(not_run(doc))} cards not run in this run: {', '.join(not_run(doc))}"]
    if doc["skips"]:
        lines += ["", "## Skipped, by reason", ""] + [f"* {why} ({len(items)}): {', '.join(items)}"
                                                     for why, items in doc["skips"].items()]
    if doc.get("cross"):
        cr = doc["cross"]
        lines += ["", f"## Cross-framework matrix ({cr.get('images')} images, {Path(cr.get('source', '')).name})", "",
                  "| | " + " | ".join(cr["names"]) + " |", "|---|" + "---|" * len(cr["names"])]
        for i, a in enumerate(cr["names"]):
            lines.append(f"| {a} | " + " | ".join("-" if i == j else f"{cr['max_abs'][i][j]:.1e} / {cr['top1_agree'][i][j]:.3f}"
                                                  for j in range(len(cr["names"]))) + " |")
    lines += deploy.markdown(doc.get("deploy") or [], doc.get("bench"))
    lines += audit.markdown(doc.get("audit") or [])
    lines += verify_section.markdown(doc.get("verify") or [])
    if doc.get("watch"):
        lines += ["", "## Upstream watch", ""] + [f"* {r['card']}: {r['status']}" for r in doc["watch"]["results"]]
    return "\n".join(lines) + "\n"


CSS = """body{font-family:sans-serif;margin:2em;max-width:1400px} table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;vertical-align:top} th{background:#f4f4f4}
tr.fail td{background:#fdd} tr.pass td{background:#efe} tr.skip td{background:#ffd} tr.notrun td{background:#eee;color:#777}
.fail{color:#a00;font-weight:bold} .error{color:#909;font-weight:bold} .skip{color:#a60} .pass{color:#070}
.reason{font-family:monospace;white-space:pre-wrap;font-size:12px} figure{display:inline-block;margin:1em 0;vertical-align:top}
details{margin:.3em 0;border:1px solid #ddd;padding:.3em} summary{cursor:pointer;font-weight:bold}
table{display:block;max-width:100%;overflow-x:auto} img{max-width:100%;height:auto} figure{max-width:100%}
figcaption{font-size:12px;max-width:60em} @media (max-width:700px){body{margin:.5em}}"""


def _table(head: list[str], rows: list[list[str]], ident: str = "", cls: list[str] | None = None) -> str:
    out = [f"<table{f' id={chr(34)}{ident}{chr(34)}' if ident else ''}><thead><tr>"
           + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for i, r in enumerate(rows):
        klass = f" class='{cls[i]}'" if cls else ""
        out.append(f"<tr{klass}>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>")
    return "".join(out) + "</tbody></table>"


def _failures(doc: Doc) -> str:
    if not doc["failures"] and not doc["problems"]:
        return "<h2 id='failures'>Failures</h2><p class='pass'>none</p>"
    items = "".join(f"<li><b>{e(r['card'])}</b> {e(r['check'])} [{e(r['mode'])}] <span class='{r['status']}'>"
                    f"{r['status']}</span><div class='reason'>{e(r['reason'])}</div></li>" for r in doc["failures"])
    probs = "".join(f"<li class='fail'>run: {e(p)}</li>" for p in doc["problems"])
    return f"<h2 id='failures'>Failures</h2><ul>{probs}{items}</ul>"


def _skips(doc: Doc) -> str:
    if not doc["skips"]:
        return ""
    body = "".join(f"<details><summary>{e(why)} ({len(items)})</summary><ul>"
                   + "".join(f"<li>{e(i)}</li>" for i in items) + "</ul></details>" for why, items in doc["skips"].items())
    return f"<h2 id='skips'>Skipped, by reason</h2>{body}"


def _models(doc: Doc) -> str:
    rows, cls = [], []
    for r in ran(doc):
        k = r["counts"]
        mx = "" if r["onnx_max_abs"] is None else f"{r['onnx_max_abs']:.1e}"
        rows.append([f"<a href='#card-{e(r['card'])}'>{e(r['card'])}</a>", f"<span class='{r['status']}'>{r['status']}</span>",
                     e(str(r["onnx_status"] or "")), mx, str(k["exact"]), str(k["within_tolerance"]), str(k["mismatch"]),
                     _pct(r["published_top1"]), e(_eval_cell(r)), str(len(r["checks"]))])
        cls.append(r["status"].replace(" ", ""))
    out = _table(["card", "status", "ONNX parity", "max abs", "FLOPs/params exact", "within tol.", "mismatch",
                  "top-1 published", "top-1 measured", "checks"], rows, "models", cls)
    idle = not_run(doc)
    if idle:
        out += (f"<details id='notrun'><summary>{len(idle)} cards not run in this run</summary><p>"
                + ", ".join(f"<code>{e(c)}</code>" for c in idle) + "</p></details>")
    return out


def _metric_text(m: dict[str, Any]) -> str:
    keep = {k: v for k, v in m.items() if isinstance(v, (int, float, str)) and k not in ("worst_image",)}
    rts = {k: v for k, v in m.items() if isinstance(v, dict) and "max_abs" in v}
    parts = [f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in keep.items()]
    parts += [f"{k}: max_abs={v['max_abs']:.2e} cos={v.get('cosine_min', float('nan')):.7f} top1={v.get('top1_agree')}"
              for k, v in rts.items()]
    return e("; ".join(parts))


def _card(doc: Doc, row: Doc) -> str:
    mine = [r for r in doc["results"] if r["card"] == row["card"]]
    checks = _table(["check", "weights", "status", "metrics", "reason"],
                    [[e(r["check"]), e(r["mode"]), f"<span class='{r['status']}'>{r['status']}</span>",
                      _metric_text(r.get("metrics", {})), f"<div class='reason'>{e(r['reason'])}</div>"] for r in mine]) \
        if mine else "<p>no check of this card ran in this run</p>"
    def ok(status: str) -> str:
        return "pass" if status in ("exact", "within-tolerance") else "fail"

    cells = _table(["metric", "source", "published", "computed", "convention", "status", "residual", "citation"],
                   [[e(c["metric"]), e(c["source"]), e(f"{c['published']} {c['unit']}"),
                     "" if c["computed"] is None else f"{c['computed']:.4f}", e(c["convention"]),
                     f"<span class='{ok(c['status'])}'>{e(c['status'])}</span>",
                     "" if c["residual_rel"] is None else f"{100 * c['residual_rel']:+.3f}%",
                     e(row["citations"].get(f"{c['metric']}[{c['source']}]", ""))] for c in row["counts"]["cells"]]) \
        if row["counts"]["cells"] else "<p>no FLOPs/params cell counted in this run</p>"
    evals = _table(["runtime", "precision", "weights", "images", "top-1 [95 % CI]", "top-5 [95 % CI]", "dataset"],
                   [[e(str(v["backend"])), e(str(v["precision"] or "")), e(str(v["mode"])), str(v["n"]),
                     f"{_pct(v['top1'])} [{_pct((v['top1_ci'] or [None])[0])}, {_pct((v['top1_ci'] or [None, None])[1])}]",
                     f"{_pct(v['top5'])} [{_pct((v['top5_ci'] or [None])[0])}, {_pct((v['top5_ci'] or [None, None])[1])}]",
                     e(str(v["dataset"] or ""))] for v in row["evals"]]) \
        if row["evals"] else "<p>not evaluated in this run</p>"
    onnx = row["onnx_file"]
    files = (f"<p>ONNX file: <code>{e(str(onnx.get('path', '')))}</code> (sha256 {e(str(onnx.get('sha256', ''))[:16])}..., "
             f"{onnx.get('bytes', '')} bytes, {e(str(onnx.get('exporter', '')))}, opset {onnx.get('opset', '')}); preprocessing "
             f"sidecar: <code>{e(str(onnx.get('spec_json', '')))}</code></p>") if onnx else ""
    spec = f"<pre>{e(json.dumps(row['spec'], indent=1))}</pre>"
    return (f"<details id='card-{e(row['card'])}'><summary><span class='{row['status']}'>{row['status']}</span> "
            f"{e(row['card'])}</summary><h4>checks</h4>{checks}<h4>evaluation (top-1/top-5 on labeled images)</h4>{evals}"
            f"<h4>published cells</h4>{cells}{files}"
            f"<h4>preprocessing spec</h4>{spec}</details>")


def machine_line(m: Doc | None) -> str:
    """The machine profile the check recorded: the CPU read and each runtime's capability read-back."""
    if not m:
        return "no machine profile recorded (a check of an older version)"
    from ..machine import describe
    rts = "; ".join(f"{fam}: " + ", ".join(f"{k} {v}" for k, v in sorted(caps.items()))
                    for fam, caps in sorted(m.get("runtimes", {}).items()))
    return describe(m.get("cpu", {})) + (f"; runtimes reported {rts}" if rts else "")


def _expected(doc: Doc) -> str:
    rows = doc.get("expected") or []
    if not rows:
        return ""
    body = [[e(r["card"]), e(r["check"]), e(r["mode"]), e(r["metrics"]["finding"]["id"]), e(r["reason"])] for r in rows]
    return ("<h2 id='expected'>Known findings, as expected</h2><p>examined and accepted (fixtures/known_findings.toml); "
            "red when one disappears, moves or fails differently</p>"
            + _table(["card", "check", "weights", "finding", "reason"], body, "expected"))


def _versions(doc: Doc) -> str:
    missing = doc.get("versions_missing") or []
    if not doc["versions"] and not missing:
        return "<h2 id='versions'>Versions</h2><p>no check step recorded versions</p>"
    rows = [[e(where), e(", ".join(f"{k} {v}" for k, v in sorted(vs.items())))] for where, vs in doc["versions"].items()]
    rows += [[e(fw), "<span class='skip'>not recorded: its checks ran in an earlier check of this run whose versions "
              "the results file no longer holds</span>"] for fw in missing]
    return "<h2 id='versions'>Versions</h2>" + _table(["where", "packages"], rows, "versions")


def _deploy(doc: Doc) -> str:
    rows = doc.get("deploy") or []
    if not rows:
        return ""
    body = [[e(d["card"]), e(d["runtime"]), e(d["mode"]), e(str(d["ran"] or "")), e(str(d["judged_as"] or "")),
             "" if d["sqnr_db"] is None else f"{d['sqnr_db']:.1f}",
             "" if d["cosine_min"] is None else f"{d['cosine_min']:.4f}",
             "" if d["top1_agree"] is None else f"{d['top1_agree']:.2f}", e(d["status"])] for d in rows]
    return "<h2 id='deployment'>Deployment</h2>" + _table(
        ["card", "runtime", "weights", "ran", "judged as", "SQNR dB", "cosine min", "top-1 agree", "status"], body,
        "deploy", [d["status"] for d in rows])


def render_html(doc: Doc, imgs: dict[str, str]) -> str:
    s, c = doc["summary"], doc["cards"]
    figs = "".join(f"<figure><img alt='{e(k)}' src='{v}'><figcaption>{e(k)}</figcaption></figure>" for k, v in imgs.items())
    head = "<meta name='viewport' content='width=device-width, initial-scale=1'>"
    steps = ", ".join(f"{e(st['command'])} ({e(st['state'])})" for st in doc["steps"]) or "none recorded"
    cards = "".join(_card(doc, r) for r in ran(doc))
    return (f"<!doctype html><html><head><meta charset='utf-8'>{head}<title>mbv2-parity report</title><style>{CSS}</style></head>"
            f"<body><h1>mbv2-parity run report</h1><p id='summary'>{e(doc['generated'])}, run {e(str(doc['run']))}: "
            f"{s['pass']} passed, {s['fail']} failed, {s['skip']} skipped, {s['error']} errors, "
            f"{s.get('expected', 0)} known findings as expected; cards: {c['pass']} pass, "
            f"{c['fail']} fail, {c['skip']} only skipped, {c['not run']} not run. Steps: {steps}</p>"
            + (f"<p id='cache'>Artifact cache: {e(doc['cache'])}</p>" if doc.get("cache") else "")
            + f"{_failures(doc)}{_expected(doc)}<h2 id='machine'>Machine</h2><p>{e(machine_line(doc.get('machine')))}</p>"
            + "".join(f"<p class='compare'>{e(ln[2:])}</p>" for ln in compare.markdown(doc.get("compare"))[3:])
            + f"<h2>Cards</h2>{_models(doc)}{_skips(doc)}{_deploy(doc)}{audit.html(doc.get('audit') or [])}"
            + f"{verify_section.html(doc.get('verify') or [])}"
            + (f"<h2>Charts (measured data only)</h2>{figs}" if figs else "")
            + f"<h2 id='drilldown'>Per card</h2>{cards}{_versions(doc)}</body></html>\n")


def junit(results: list[Doc], path: Path) -> Path:
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
        elif r["status"] == "expected":     # a known finding reproduced: a pass of the suite, its reason kept
            ET.SubElement(tc, "system-out").text = r["reason"][:2000]
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
    return path
