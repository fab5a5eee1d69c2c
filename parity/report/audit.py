"""The report's "audit" section: one row per `mbv2-parity audit` of the run (the deployment config, its format,
the card, the findings by severity, what the whole config costs on real images, the verdict), and the findings
that failed it. Measured data only: no audit step, no section."""
from __future__ import annotations

from html import escape as e
from typing import Any

from .. import runlog

Doc = dict[str, Any]


def rows(docs: list[Doc]) -> list[Doc]:
    out = []
    for d in docs:
        found = d.get("findings") or []
        whole = (d.get("costs") or {}).get("whole config") or {}
        out.append({"config": (d.get("config") or {}).get("source", ""), "format": d.get("format", ""),
                    "card": d.get("card", ""), "weights": d.get("weights", ""), "verdict": d.get("verdict", ""),
                    "errors": sum(f["severity"] == "error" for f in found),
                    "warnings": sum(f["severity"] == "warning" for f in found),
                    "unknown": len(d.get("unknown") or []), "n": whole.get("n"), "psnr_db": whole.get("psnr_db"),
                    "agreement": whole.get("agreement"), "top1_change": whole.get("top1_change"),
                    "failures": d.get("failures") or [], "costs": d.get("costs") or {}})
    return out


def not_audited(run: runlog.Run | None) -> list[Doc]:
    """A row for each audit step of the run that ended without writing its result (refused, crashed): the config
    it was asked about and why, so an earlier audit's file is never read as its verdict."""
    out = []
    for s in run.steps if run is not None else []:
        if s.command != "audit" or s.written() or s.exit_code == 0:
            continue
        state = "never finished" if s.exit_code is None else f"exit {s.exit_code}"
        why = s.summary.get("why")
        out.append({"config": s.summary.get("config", " ".join(s.argv[1:2])), "format": "", "card": "",
                    "weights": "", "verdict": f"not audited ({state})", "errors": 0, "warnings": 0, "unknown": 0,
                    "n": None, "psnr_db": None, "agreement": None, "top1_change": None,
                    "failures": [f"not audited: {why}" if why else f"not audited ({state})"]})
    return out


def _cost(r: Doc) -> str:
    if r["n"] is None:
        return "not measured"
    s = f"{r['n']} img, PSNR " + ("∞" if r["psnr_db"] is None else f"{r['psnr_db']:.1f} dB")
    if r["agreement"] is not None:
        s += f", top-1 agreement {100 * r['agreement']:.1f} %"
    if r["top1_change"] is not None:
        s += f", top-1 {100 * r['top1_change']:+.1f} pts"
    return s


def markdown(audits: list[Doc]) -> list[str]:
    if not audits:
        return []
    lines = ["", "## Audit (deployment configs)", "",
             "| config | format | card | weights | errors / warnings / not understood | whole config | verdict |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['config']} | {r['format']} | {r['card']} | {r['weights']} | {r['errors']} / {r['warnings']} / "
              f"{r['unknown']} | {_cost(r)} | {r['verdict']} |" for r in audits]
    lines += [f"* {r['config']}: {f}" for r in audits for f in r["failures"]]
    return lines


def html(audits: list[Doc]) -> str:
    if not audits:
        return ""
    head = ["config", "format", "card", "weights", "errors / warnings / not understood", "whole config", "verdict"]
    body = "".join(f"<tr class='{e(r['verdict'])}'><td>{e(r['config'])}</td><td>{e(r['format'])}</td><td>{e(r['card'])}"
                   f"</td><td>{e(r['weights'])}</td><td>{r['errors']} / {r['warnings']} / {r['unknown']}</td>"
                   f"<td>{e(_cost(r))}</td><td>{e(r['verdict'])}</td></tr>" for r in audits)
    fails = "".join(f"<li>{e(r['config'])}: {e(f)}</li>" for r in audits for f in r["failures"])
    return ("<h2 id='audit'>Audit (deployment configs)</h2><table id='audit'><tr>"
            + "".join(f"<th>{e(h)}</th>" for h in head) + f"</tr>{body}</table>" + (f"<ul>{fails}</ul>" if fails else ""))


def cost_chart(r: Doc, png: Any) -> str:
    """One audit: the top-1 change (config - upstream) of the whole config and of each finding alone, with the paired
    95 % interval; without labels, the share of images whose top-1 changes (1 - agreement) with its interval."""
    import matplotlib.pyplot as plt
    import numpy as np
    items = [(k, c) for k, c in r["costs"].items() if c.get("n")]
    labeled = all(c.get("top1_change") is not None for _, c in items)
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.4 * len(items)))
    y = np.arange(len(items))
    if labeled:
        vals = [100 * c["top1_change"] for _, c in items]
        cis = [c.get("top1_change_ci") or (c["top1_change"], c["top1_change"]) for _, c in items]
        what = "top-1 change, config - upstream (pts), paired 95 % interval"
    else:
        vals = [100 * (1 - (c.get("agreement") if c.get("agreement") is not None else 1.0)) for _, c in items]
        cis = [(1 - c["agreement_ci"][1], 1 - c["agreement_ci"][0]) if c.get("agreement_ci") else (0.0, 0.0)
               for _, c in items]
        what = "images whose top-1 changes (%), 95 % interval"
    ax.barh(y, vals, color=["#c44" if v < 0 or not labeled else "#3a7" for v in vals])
    for i, (lo, hi) in enumerate(cis):
        ax.plot([100 * lo, 100 * hi], [i, i], color="black", lw=1)
    ax.axvline(0, color="black", lw=0.6)
    ax.set_yticks(y, [k for k, _ in items], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(what, fontsize=8)
    n = max(c["n"] for _, c in items)
    ax.set_title(f"audit {r['config']} on {r['card']}: cost per finding, {n} images, weights {r['weights']}", fontsize=9)
    return str(png(fig))


def charts(audits: list[Doc], png: Any) -> dict[str, str]:
    return {f"audit cost per finding: {r['config']}": cost_chart(r, png) for r in audits
            if any(c.get("n") for c in r["costs"].values())}
