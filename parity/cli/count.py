"""`mbv2-parity count`: FLOPs under every counting convention (and the framework's own counters), params under
every convention, and each published cell with its convention, status and residual."""
from __future__ import annotations

import argparse
from typing import Any

from rich.markup import escape

from .. import checks
from ..checks.counts import counts
from ..counting import flops
from ..errors import EXIT_FAILED, EXIT_OK, UsageError
from ..harness import Harness, write_json
from ..registry import load_registry
from .common import add_models, add_workdir, console, json_out, preflight, select, status, table
from .common import workdir as get_workdir


def add(sub: Any) -> None:
    p = sub.add_parser("count", help="FLOPs/params under every named convention, and the published cells checked")
    add_models(p)
    p.add_argument("--convention", action="append", default=None,
                   help="FLOPs convention(s) to show (repeatable; default: all): " + ", ".join(flops.CONVENTIONS))
    add_workdir(p, "counts.json")
    p.set_defaults(fn=run, prepare=prepare, step="count")


def prepare(args: argparse.Namespace) -> None:
    unknown = [c for c in args.convention or [] if c not in flops.CONVENTIONS]
    if unknown:
        raise UsageError(f"unknown convention(s) {unknown}", hint=f"known: {', '.join(flops.CONVENTIONS)}")
    args.cards = select(args)
    preflight(args.cards)


def run(args: argparse.Namespace) -> int:
    wd = get_workdir(args)
    out = json_out(args, wd, "counts.json")
    names = args.convention or list(flops.CONVENTIONS)
    results, tables = [], {}
    with Harness(load_registry(), workdir=wd) as h:
        for card in args.cards:
            r = checks.run("counts", h, card, mode="seeded")
            results.append(r)
            if r.status != "error":
                tables[card.id] = r.metrics.get("conventions") or counts(h, card)
    t = table("FLOPs (M) by convention (counted on the exported ONNX graph with BatchNorm kept)",
              ["card", *names, "native counters (M)"], list(tables), details=("native counters (M)",))
    for cid, tb in tables.items():
        t.add_row(escape(cid), *("-" if tb["flops"].get(n) is None else f"{tb['flops'][n] / 1e6:.3f}" for n in names),
                  ", ".join(f"{k} {v / 1e6:.3f}" for k, v in tb.get("native_counters", {}).items()))
    console.print(t)
    for n in names:  # the rule behind each column (a header may fold in a narrow table; the names are here whole)
        console.print(f"  [bold]{escape(n)}[/]: {escape(flops.CONVENTIONS[n].doc)}")
    pnames = sorted({k for tb in tables.values() for k in tb["params"]})
    t = table("params by convention", ["card", *pnames], list(tables))
    for cid, tb in tables.items():
        t.add_row(escape(cid), *("-" if tb["params"].get(n) is None else f"{tb['params'][n]:,.0f}" for n in pnames))
    console.print(t)
    console.print("  params conventions: " + escape(", ".join(pnames)))
    t = table("published cells reproduced",
              ["card", "metric", "source", "published", "computed", "convention", "status", "residual"],
              [r.card for r in results])
    for r in results:
        for c in r.metrics.get("cells", []):
            st = {"exact": "green", "within-tolerance": "yellow"}.get(c["status"], "bold red")
            comp = "" if c["computed"] is None else f"{c['computed']:.4f} {c['unit']}"
            res = "" if c["residual_rel"] is None else f"{100 * c['residual_rel']:+.3f}%"
            t.add_row(escape(r.card), c["metric"], escape(c["source"]), f"{c['published']} {c['unit']}", comp,
                      c["convention"], f"[{st}]{c['status']}[/]", res)
    console.print(t)
    for r in results:
        if r.status in ("error", "skip", "fail"):
            console.print(f"{status(r.status)} {escape(r.card)}: {escape(r.reason)}")
    write_json({"results": [r.to_dict() for r in results], "run": args.run_id}, out)
    return EXIT_FAILED if any(r.status in ("fail", "error") for r in results) else EXIT_OK
