"""`mbv2-parity report`: report.json/.md/.html (+ JUnit XML) of the run recorded in WORKDIR; with --strict, exit
non-zero unless a check ran in this run, every step finished with exit 0 and nothing failed."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .. import report, runlog
from ..errors import EXIT_OK
from ..registry import load_registry
from ..report.verdict import verdict as judge
from .common import add_workdir, say
from .common import workdir as get_workdir


def add(sub: Any) -> None:
    p = sub.add_parser("report", help="report.json/.md/.html (+ JUnit XML) from the run's results in WORKDIR")
    p.add_argument("--cross", help="also compute the cross-framework matrix of these weights (skipped if absent)")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 unless a check ran in this run, every step finished with exit 0, nothing failed")
    p.add_argument("--compare", metavar="RESULTS_JSON",
                   help="an earlier run's results.json (another night or machine): list the verdicts that changed and "
                        "name a changed machine profile when it explains them")
    add_workdir(p)
    p.set_defaults(fn=run, prepare=prepare)


def prepare(args: argparse.Namespace) -> None:
    from ..errors import UsageError
    if args.compare:
        p = Path(args.compare)
        try:
            doc = json.loads(p.read_text())
        except (OSError, ValueError) as e:
            raise UsageError(f"--compare {p}: cannot read it as JSON ({type(e).__name__})",
                             hint="pass an earlier run's results.json (e.g. WORKDIR/results.prev.json)") from e
        if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
            raise UsageError(f"--compare {p}: not a results.json of `check` (no results list)",
                             hint="pass an earlier run's results.json")
        args.compare_doc = doc


def run(args: argparse.Namespace) -> int:
    from . import dispatch, namespace_for
    wd = get_workdir(args)
    if args.cross:
        src = Path(args.cross)
        if src.is_file():
            dispatch(namespace_for(["cross", str(src), "--workdir", str(wd), "--json", str(wd / "cross.json")]),
                     ["cross", str(src)])
        else:
            say(f"no cross matrix: {src} not found")
    out = report.write(wd, load_registry(), getattr(args, "compare_doc", None))
    for k, p in out.items():
        say(f"{k}: {p}")
    return verdict(wd, out) if args.strict else EXIT_OK


def verdict(wd: Path, out: dict[str, Path]) -> int:
    code, why = judge(json.loads(out["json"].read_text()), runlog.load(wd))
    if code != EXIT_OK:
        print(f"mbv2-parity: {why} (see {out['md']})", file=sys.stderr)
    else:
        say(f"strict: green: {why}")
    return code
