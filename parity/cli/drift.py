"""`mbv2-parity golden update` (record fingerprints) and `mbv2-parity watch` (upstream drift, filed as issues)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rich.markup import escape

from .. import settings
from ..drift import golden
from ..drift.github import GitHub, GitHubError, file_diffs, title_for
from ..drift.watch import diff_markdown, report_markdown, watch_card
from ..errors import EXIT_DIFFS, EXIT_FAILED, EXIT_OK, UsageError
from ..harness import Harness, write_json
from ..registry import load_registry
from .common import add_models, add_workdir, console, preflight, say, select
from .common import workdir as get_workdir


def add(sub: Any) -> None:
    p = sub.add_parser("golden", help="golden fingerprints: `golden update [MODEL...] [--write]`")
    p.add_argument("action", choices=("update",), help="update: recompute the fingerprints of the cards")
    add_models(p)
    p.add_argument("--write", action="store_true", help="write the new fingerprints (default: show the diff only)")
    p.add_argument("--golden-dir", help="default fixtures/golden")
    add_workdir(p)
    p.set_defaults(fn=run_golden, prepare=prepare_golden)
    p = sub.add_parser("watch", help="check upstream for changed weights/preprocessing/converter/published numbers")
    add_models(p)
    p.add_argument("--file-issues", action="store_true", help="open/comment GitHub issues (default: dry run)")
    p.add_argument("--repo", help="OWNER/NAME (default $MBV2_PARITY_GITHUB_REPO)")
    p.add_argument("--download", action="store_true", help="download and hash even when validators are unchanged")
    p.add_argument("--golden-dir", help="default fixtures/golden")
    add_workdir(p)
    p.set_defaults(fn=run_watch, prepare=prepare_watch)


def _golden_dir(args: argparse.Namespace) -> Path | None:
    if not args.golden_dir:
        return None
    d = Path(args.golden_dir)
    if not d.is_dir():
        raise UsageError(f"--golden-dir {d}: not a directory")
    return d


def prepare_golden(args: argparse.Namespace) -> None:
    args.root = _golden_dir(args)
    args.cards = select(args)
    preflight(args.cards)


def run_golden(args: argparse.Namespace) -> int:
    changed = 0
    with Harness(load_registry(), workdir=get_workdir(args)) as h:
        for c in args.cards:
            new = golden.compute(h, c)
            old = golden.load(c.id, args.root)
            if old:  # keep what only a networked watch can know (upstream sha256, validators)
                for k, v in (old.get("weights") or {}).items():
                    if new["weights"].get(k) is None and v is not None:
                        new["weights"][k] = v
            d = golden.diff(old, new)
            changed += bool(d)
            console.print(f"[bold]{escape(c.id)}[/]: " + ("unchanged" if not d else escape("\n  " + "\n  ".join(d))))
            if d and args.write:
                say(f"  wrote {golden.save(new, args.root)}")
    if changed and not args.write:
        say(f"{changed} card(s) differ; re-run with --write to record them")
    return EXIT_OK


def prepare_watch(args: argparse.Namespace) -> None:
    args.root = _golden_dir(args)
    args.repo = args.repo or settings.github_repo()
    if args.file_issues and "/" not in (args.repo or ""):
        raise UsageError(f"--file-issues needs a repository OWNER/NAME (got {args.repo!r})",
                         hint="pass --repo or set MBV2_PARITY_GITHUB_REPO")
    args.cards = select(args)
    preflight(args.cards)


def run_watch(args: argparse.Namespace) -> int:
    wd = get_workdir(args)
    results = []
    with Harness(load_registry(), workdir=wd) as h:
        for c in args.cards:
            r = watch_card(h, c, golden.load(c.id, args.root), wd / "watch-cache", args.download)
            results.append(r)
            say(f"{c.id}: {r.status}" + "".join(f"\n  {d.kind}: {d.summary}" for d in r.diffs))
    diffs = [d for r in results for d in r.diffs]
    doc: dict[str, Any] = {"results": [{"card": r.card, "status": r.status, "notes": r.notes,
                                        "diffs": [d.to_dict() for d in r.diffs]} for r in results]}
    filing_error, filed = "", []
    try:
        filed = file_diffs(diffs, GitHub(args.repo) if args.file_issues else None)
    except GitHubError as e:
        filing_error = str(e)
    doc["filing"] = {"mode": "file" if args.file_issues else "dry-run", "error": filing_error,
                     "issues": [vars(f) for f in filed]}
    write_json(doc, wd / "watch.json")
    (wd / "watch.md").write_text(report_markdown(results))
    for f in filed:
        say(f"issue: {f.action} {f.card} {f.fingerprint}" + (f" #{f.issue}" if f.issue else "")
            + (f" ({f.detail})" if f.detail else ""))
    if not args.file_issues:
        for d in diffs:
            say(f"[dry-run] would file: {title_for(d)}\n{diff_markdown(d)}")
    if filing_error or any(f.action == "error" for f in filed):
        print(f"mbv2-parity: error: filing issues failed: "
              f"{filing_error or [f.detail for f in filed if f.action == 'error']} (the watch results are in "
              f"{wd / 'watch.json'})", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_DIFFS if diffs else EXIT_OK
