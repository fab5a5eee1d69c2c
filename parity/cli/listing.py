"""`mbv2-parity list`: the registry's cards (or the runtimes, checks and faults the suite knows)."""
from __future__ import annotations

import argparse
from typing import Any

from rich.markup import escape

from .. import checks, faults, runtimes
from ..errors import EXIT_OK
from ..registry import load_registry
from .common import add_models, console, select, table


def add(sub: Any) -> None:
    p = sub.add_parser("list", help="list the model cards of the registry (or --runtimes, --checks, --faults)")
    add_models(p)
    p.add_argument("--runtimes", action="store_true", help="the runtimes (plug-ins included)")
    p.add_argument("--checks", action="store_true", help="the check kinds (plug-ins included)")
    p.add_argument("--faults", action="store_true", help="the injectable faults")
    p.set_defaults(fn=run)


def run(args: argparse.Namespace) -> int:
    if args.runtimes:
        t = table("runtimes", ["name", "family", "tags", "what"])
        for e in runtimes.entries():
            t.add_row(e.name, escape(getattr(e.factory, "family", "")), ", ".join(e.tags), escape(e.doc))
        console.print(t)
        return EXIT_OK
    if args.checks:
        t = table("checks", ["kind", "in `check`", "needs weights", "runtimes", "images", "what"])
        for k in checks.kinds():
            ck = checks.get(k)
            doc = (type(ck).__doc__ or getattr(__import__(type(ck).__module__, fromlist=["x"]), "__doc__", "") or "")
            t.add_row(k, "yes" if ck.standard else "", "yes" if ck.needs.weights else "", ", ".join(ck.needs.runtimes),
                      "yes" if ck.needs.images else "", escape(doc.strip().splitlines()[0] if doc.strip() else ""))
        console.print(t)
        return EXIT_OK
    if args.faults:
        t = table("faults (card.variant(faults=[...]), `name` or `name:ARG`)", ["name", "stage", "what"])
        for f in faults.FAULTS.values():
            t.add_row(f.name + (":ARG" if f.takes_arg else ""), f.stage, escape(f.doc))
        console.print(t)
        return EXIT_OK
    reg = load_registry()
    cards = select(args, reg)
    t = table(f"{len(cards)} of {len(reg)} model cards ({reg.path})", ["id", "upstream id", "preprocess", "published"],
              [c.id for c in cards])
    for c in cards:
        p = c.preprocess
        pre = f"{p.resize_mode}:{p.resize_size}->{p.crop_size} {p.interpolation}/{p.backend} {p.layout}"
        pub = ", ".join(f"{x.metric}={x.digits}{'' if x.unit == 'count' else x.unit}[{x.source}]" for x in c.published)
        t.add_row(escape(c.id), escape(c.upstream_id), escape(pre), escape(pub))
    console.print(t)
    return EXIT_OK
