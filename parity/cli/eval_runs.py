"""`mbv2-parity eval merge SHARD...` and `mbv2-parity eval diff A B`: the full result of sharded evaluations, and the
per-image comparison of two runs. They read eval JSONs only (no worker, no dataset); the logic is in
``parity.evaluation.shards``."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.markup import escape

from .. import machine
from ..errors import EXIT_OK
from ..evaluation import shards
from ..evaluation.verdicts import check_against_published
from ..harness import write_json
from ..registry import load_registry
from .common import add_workdir, console, json_out, say, table
from .common import workdir as get_workdir

SUBCOMMANDS = ("merge", "diff")


def route(argv: list[str]) -> list[str]:
    """``eval merge ...`` / ``eval diff ...`` are parsed as the commands ``eval merge`` / ``eval diff`` (``eval``
    itself takes model names as positionals, so they cannot be argparse sub-subcommands)."""
    if len(argv) >= 2 and argv[0] == "eval" and argv[1] in SUBCOMMANDS:
        return [f"eval {argv[1]}", *argv[2:]]
    return argv


def add(sub: Any) -> None:
    p = sub.add_parser("eval merge", help="combine the shard files of `eval --shard K/N` into the full result")
    p.add_argument("shards", nargs="+", metavar="SHARD_FILE", help="the N files written by `eval --shard K/N --json`")
    add_workdir(p, "eval-merged.json")
    p.set_defaults(fn=run_merge)
    p = sub.add_parser("eval diff", help="per-image comparison of two eval JSONs of the same images")
    p.add_argument("a", metavar="A", help="eval JSON (of `eval --json` or `eval merge --json`)")
    p.add_argument("b", metavar="B", help="eval JSON of the same images")
    p.add_argument("--runtime", action="append", default=[],
                   help="the result to compare: once (that runtime on both sides) or twice (A's, then B's)")
    p.add_argument("--show", type=int, default=20, help="changed images listed (default 20; all are in --json)")
    p.add_argument("--synsets", help="synset list (wnid name per line) to print class names beside indices")
    add_workdir(p, "eval-diff.json")
    p.set_defaults(fn=run_diff)


class _Shown:
    """What ``eval.show`` reads of a dataset: its layout and size."""

    def __init__(self, layout: str, n: int) -> None:
        self.layout, self.n = layout, n

    def __len__(self) -> int:
        return self.n


def run_merge(args: argparse.Namespace) -> int:
    from .eval import conclude, float_results, judge, show
    out = json_out(args, get_workdir(args), "eval-merged.json")
    head, merged = shards.merge(args.shards)
    n_images = head["dataset"]["n"]
    full = n_images >= 50_000
    say(f"merged {len(head['merged_from'])} shards: {n_images} images ({head['dataset']['layout']}, fingerprint "
        f"{head['dataset']['fingerprint']})")
    registry = load_registry()
    by_card: dict[str, dict[str, Any]] = {}
    for r, res in merged:
        if res is not None:
            by_card.setdefault(r["card"], {})[r["backend"]] = (r, res)
        else:
            head["results"].append(r)
    rows: list[tuple[str, str, Any, list[Any]]] = []
    bad: list[str] = []
    weights = "seeded"
    for cid, per in by_card.items():
        card = registry.get(cid)     # an unknown card: UnknownModel, one line
        per_rt = {name: rr for name, (_, rr) in per.items()}
        weights = next(iter(per.values()))[0]["identity"]["weights"]
        problems = judge(card, per_rt, weights != "seeded", weights == "pretrained", full)
        bad += problems
        checks = [pc for r in float_results(per_rt) for pc in check_against_published(card, r, full=full)]
        for name, (r, rr) in per.items():
            rows.append((cid, name, rr, checks))
            head["results"].append({**rr.to_dict(), "published_checks": [vars(pc) for pc in checks],
                                    "problems": problems, "identity": r["identity"], "images": r["images"]})
    show(rows, _Shown(head["dataset"]["layout"] + f" (merged from {len(head['merged_from'])} shards)", n_images),
         weights)
    return conclude(head, rows, bad, out, "every card was skipped in every shard")


def _names(path: str | None) -> dict[int, str]:
    if not path:
        return {}
    p = Path(path)
    if not p.is_file():
        raise shards.ShardError(f"--synsets {p}: no such file")
    lines = [ln.split(None, 1) for ln in p.read_text(errors="replace").splitlines() if ln.strip()]
    return {i: (parts[1] if len(parts) > 1 else parts[0]).split(",")[0] for i, parts in enumerate(lines)}


def run_diff(args: argparse.Namespace) -> int:
    out = json_out(args, get_workdir(args), "eval-diff.json")
    if args.show < 0:
        raise shards.ShardError(f"--show {args.show}: must be 0 or more")
    names = _names(args.synsets)
    a, b = shards.load(args.a), shards.load(args.b)
    (fa, na), (fb, nb) = shards.coverage(a), shards.coverage(b)
    if fa != fb:
        raise shards.ShardError(f"{args.a} covers {na} images (fingerprint {fa}), {args.b} covers {nb} (fingerprint "
                                f"{fb}): not the same images",
                                hint="diff two runs of the same --data, --limit, --seed and --shard (or merged runs)")
    doc: dict[str, Any] = {"format": "mbv2-parity-eval-diff", "version": 1, "a": str(args.a), "b": str(args.b),
                           "images": na, "pairs": []}
    for ra, rb in shards.pairs(a, b, args.runtime):
        d = shards.diff(a, b, ra, rb)
        doc["pairs"].append(d)
        show_diff(d, args.show, names)
    # the runtimes whose results moved ("card [runtime]" keys): a changed machine is named when it explains them all
    moved = {str(d[side]).rsplit("[", 1)[-1].rstrip("]") for d in doc["pairs"]
             if d["top1_changed"] or d["logits_changed"] for side in ("a", "b")}
    why = machine.explains(moved, machine.of_eval(a), machine.of_eval(b))
    doc["machine"] = {"a": machine.of_eval(a), "b": machine.of_eval(b), "explains": why}
    if why:
        say(why)
    write_json(doc, out)
    say(f"diff: {out}")
    return EXIT_OK


def show_diff(d: dict[str, Any], limit: int, names: dict[int, str]) -> None:
    def cls(i: int) -> str:
        return f"{i} {names[i]}" if i in names else str(i)

    lo, hi = d["top1_change_ci"]
    say(f"A = {d['a']}, B = {d['b']}: {d['images']} images evaluated in both; top-1 {100 * d['top1_a']:.2f} -> "
        f"{100 * d['top1_b']:.2f} %: change {100 * d['top1_change']:+.2f} pts [95 % CI {100 * lo:+.2f}, "
        f"{100 * hi:+.2f}], McNemar p = {d['mcnemar_p']:.3g}; top-1 changed on {d['top1_changed']} images "
        f"({d['fixed']} fixed, {d['broken']} broken, {d['top1_changed'] - d['fixed'] - d['broken']} wrong in both); "
        f"top-5 {100 * d['top5_change']:+.2f} pts; logits differ on {d['logits_changed']} images")
    if not d["changed"] or not limit:
        return
    t = table(f"images whose top-1 changed (first {min(limit, len(d['changed']))} of {len(d['changed'])})",
              ["image", "label", "A top-1 (score)", "B top-1 (score)", "outcome"])
    for r in d["changed"][:limit]:
        t.add_row(escape(r["id"]), escape(cls(r["label"])), escape(f"{cls(r['a_top1'])} ({r['a_score']:.3g})"),
                  escape(f"{cls(r['b_top1'])} ({r['b_score']:.3g})"), r["outcome"])
    console.print(t)
