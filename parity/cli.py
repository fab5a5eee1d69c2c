"""``mbv2-parity``: list the registry, run the parity checks. Framework-free (workers do the frameworks)."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .paths import default_workdir
from .registry import RegistryError, UnknownModel, load_registry
from .spec import SpecError

console = Console(width=None if sys.stdout.isatty() else 200)
STYLE = {"pass": "green", "fail": "bold red", "skip": "yellow", "error": "bold magenta"}


def cmd_list(args) -> int:
    reg = load_registry()
    t = Table(title=f"{len(reg)} model cards ({reg.path})")
    for col in ("id", "upstream id", "preprocess", "published"):
        t.add_column(col)
    for c in reg.select(args.models):
        p = c.preprocess
        pre = f"{p.resize_mode}:{p.resize_size}->{p.crop_size} {p.interpolation}/{p.backend} {p.layout}"
        pub = ", ".join(f"{x.metric}={x.digits}{'' if x.unit in ('count',) else x.unit}[{x.source}]" for x in c.published)
        t.add_row(c.id, c.upstream_id, pre, pub)
    console.print(t)
    return 0


def cmd_check(args) -> int:
    from .runner import Harness, write_results  # noqa: deferred so `list` stays instant
    reg = load_registry()
    cards = reg.select(args.models)
    modes = tuple(args.weights)
    workdir = Path(args.workdir)
    t0 = time.perf_counter()
    with Harness(reg, workdir=workdir) as h:
        results = []
        for card in cards:
            console.print(f"[bold]{card.id}[/]")
            batch = h.checks_for(card, modes, tuple(args.opset))
            for r in batch:
                console.print(f"  {r.check:<14} {r.mode:<10} [{STYLE[r.status]}]{r.status}[/] {r.reason[:160]}")
            results += batch
        timings = h.timings
    wall = time.perf_counter() - t0
    table = Table(title=f"mbv2-parity check: {len(cards)} cards, {wall:.1f}s")
    for col in ("card", "check", "weights", "status", "max_abs (opt off/on)", "top-1 / top-5", "reason"):
        table.add_column(col, overflow="fold")
    for r in results:
        m_off, m_on = r.metrics.get("ort-opt-off", {}), r.metrics.get("ort-opt-on", {})
        mx = f"{m_off['max_abs']:.1e} / {m_on['max_abs']:.1e}" if m_off and m_on else ""
        tk = f"{m_off['top1_agree']:.2f} / {m_off['top5_agree']:.2f}" if m_off else ""
        table.add_row(r.card, r.check, r.mode, f"[{STYLE[r.status]}]{r.status}[/]", mx, tk,
                      "" if r.status == "pass" else r.reason[:200])
    console.print(table)
    out = write_results(results, args.json or workdir / "results.json", {"wall_seconds": wall, "timings": timings})
    counts = {s: sum(r.status == s for r in results) for s in STYLE}
    console.print(f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped, "
                  f"{counts['error']} errors; results: {out}")
    return 1 if counts["fail"] or counts["error"] else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="mbv2-parity", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("list", help="list the model cards of the registry")
    p.add_argument("models", nargs="*", help="ids, framework names or globs (default: all)")
    p.set_defaults(fn=cmd_list)
    p = sub.add_parser("check", help="run spec/meta/ONNX-parity checks and print a results table")
    p.add_argument("models", nargs="*", help="ids, framework names or globs (default: all)")
    p.add_argument("--weights", action="append", default=None,
                   help="seeded | pretrained | file:PATH (repeatable; default: seeded and pretrained)")
    p.add_argument("--opset", type=int, action="append", default=None, help="ONNX opset (repeatable; default 17)")
    p.add_argument("--workdir", default=str(default_workdir()), help="where ONNX files, logs and results go")
    p.add_argument("--json", help="results JSON path (default: WORKDIR/results.json)")
    p.set_defaults(fn=cmd_check)
    args = ap.parse_args(argv)
    if getattr(args, "weights", None) is None and args.cmd == "check":
        args.weights = ["seeded", "pretrained"]
    if getattr(args, "opset", None) is None and args.cmd == "check":
        args.opset = [17]
    try:
        return args.fn(args)
    except (UnknownModel, RegistryError, SpecError, ValueError) as e:
        print(f"mbv2-parity: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
