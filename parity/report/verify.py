"""The report's "verify" section: one row per `mbv2-parity verify` of the run (the file, its format and the precision
it runs at, the card and weights it was identified as made from, the probe batch's measures, top-1 on data with its
interval, the named findings, the verdict). Measured data only: no verify step, no section."""
from __future__ import annotations

from html import escape as e
from pathlib import Path
from typing import Any

Doc = dict[str, Any]


def rows(docs: list[Doc]) -> list[Doc]:
    out = []
    for d in docs:
        ident = d.get("identification") or {}
        probe = d.get("probe") or {}
        data = d.get("data") or {}
        io = d.get("io") or {}
        out.append({"artifact": Path(str(d.get("artifact", ""))).name, "format": d.get("format", ""),
                    "precision": d.get("precision", ""), "classes": (io.get("output_shape") or [None])[-1],
                    "identified": ident.get("sentence", ""), "card": d.get("card", ""), "weights": d.get("weights"),
                    "probe_correlation": probe.get("correlation"),
                    "probe_top1_agree": (probe.get("metrics") or {}).get("top1_agree"),
                    "n": data.get("n"), "top1": data.get("top1"), "top1_ci": data.get("top1_ci"),
                    "drop": data.get("drop"), "drop_ci": data.get("drop_ci"),
                    "findings": [f"{f['name']}: {f['text']}" for f in d.get("findings") or []
                                 if f.get("severity") == "error"],
                    "verdict": d.get("verdict", ""), "failures": d.get("failures") or []})
    return out


def _probe(r: Doc) -> str:
    if r["probe_correlation"] is None:
        return "not compared (no float weights)"
    agree = r["probe_top1_agree"]
    return f"correlation {r['probe_correlation']:.4f}" + (f", top-1 agreement {agree:.2f}" if agree is not None else "")


def _data(r: Doc) -> str:
    if r["n"] is None:
        return "no --data"
    lo, hi = r["top1_ci"]
    s = f"{r['n']} img: top-1 {100 * r['top1']:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}]"
    if r["drop"] is not None:
        dlo, dhi = r["drop_ci"]
        s += f", drop {100 * r['drop']:.2f} pts [{100 * dlo:.2f}, {100 * dhi:.2f}]"
    return s


HEAD = ["file", "format / precision", "classes", "identified", "judged against", "probe batch", "data", "verdict"]


def _cells(r: Doc) -> list[str]:
    return [r["artifact"], f"{r['format']} / {r['precision']}", str(r["classes"]), r["identified"],
            f"{r['card']} ({r['weights'] or 'no float weights'})", _probe(r), _data(r), r["verdict"]]


def markdown(verifies: list[Doc]) -> list[str]:
    if not verifies:
        return []
    lines = ["", "## Verify (deployed files)", "", "| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in _cells(r)) + " |" for r in verifies]
    lines += [f"* {r['artifact']}: {f}" for r in verifies for f in r["failures"]]
    return lines


def html(verifies: list[Doc]) -> str:
    if not verifies:
        return ""
    body = "".join(f"<tr class='{e(r['verdict'])}'>" + "".join(f"<td>{e(c)}</td>" for c in _cells(r)) + "</tr>"
                   for r in verifies)
    fails = "".join(f"<li>{e(r['artifact'])}: {e(f)}</li>" for r in verifies for f in r["failures"])
    return ("<h2 id='verify'>Verify (deployed files)</h2><table id='verify'><tr>"
            + "".join(f"<th>{e(h)}</th>" for h in HEAD) + f"</tr>{body}</table>" + (f"<ul>{fails}</ul>" if fails else ""))
