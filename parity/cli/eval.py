"""`mbv2-parity eval`: top-1/top-5 per card through each runtime on an ImageNet val set, checked against the
published table; fails on zero images, too many unreadable images, labels off by one, runtimes that disagree."""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from rich.markup import escape

from .. import runtimes, settings
from ..deploy.calibration import DEFAULT_IMAGES
from ..deploy.precisions import judged_precision
from ..errors import EXIT_FAILED, EXIT_NOTHING, EXIT_OK, UsageError
from ..evaluation import shards
from ..evaluation.dataset import DatasetError, open_dataset
from ..evaluation.evaluate import evaluate, runtime_names
from ..evaluation.verdicts import check_against_published, deployed_failures, native_onnx_failure, paired_difference
from ..harness import Harness, Skip, write_json
from ..registry import load_registry
from ..weights import modes as weight_modes
from .common import add_models, add_quant_options, add_workdir, console, json_out, preflight, quant_options, say, select, table
from .common import workdir as get_workdir
from .jobs import in_card_order, stack_groups


def add(sub: Any) -> None:
    p = sub.add_parser("eval", help="top-1/top-5 on an ImageNet val set per runtime vs the published table",
                       description="top-1/top-5 per card and runtime vs the published table, with per-image records "
                                   "in the JSON. `eval --shard K/N` evaluates one shard; `eval merge SHARD...` "
                                   "combines shards; `eval diff A B` compares two runs image by image.")
    add_models(p)
    p.add_argument("--data", help="val dir (val/ + val_label.txt, ImageFolder) or a 'path label' list file; "
                                  "default $MBV2_PARITY_IMAGENET")
    p.add_argument("--limit", type=int, default=None, help="stratified subset of N images (Wilson intervals)")
    p.add_argument("--seed", type=int, default=0, help="seed of the --limit subset (default 0: the same images "
                                                         "every run)")
    p.add_argument("--shard", metavar="K/N", default=None,
                   help="evaluate shard K of N only (stratified by class, independent of file order) and write its "
                        "per-image records; combine the N files with `eval merge`")
    p.add_argument("--label-base", type=int, choices=(0, 1), default=None,
                   help="how the label file counts classes (needed when it has no label 0 and no wnids in file names)")
    p.add_argument("--synsets", help="the standard synset list (wnid order) to check labels against file names")
    p.add_argument("--weights", default="pretrained", help="pretrained | seeded | file:PATH | canonical:PATH")
    p.add_argument("--runtime", action="append", default=None,
                   help="runtime(s) to evaluate (repeatable; default: native and ort-opt-on); `list --runtimes`")
    p.add_argument("--backend", action="append", default=None, choices=("native", "onnx"),
                   help="alias of --runtime of earlier releases (onnx = ort-opt-on)")
    p.add_argument("--precision", choices=("fp32", "fp16", "bf16", "int8"),
                   help="the precision of --runtime FAMILY (ort, openvino, tflite, paddle-inference); without it a "
                        "runtime runs its own default configuration and the table says what that turned out to be")
    add_quant_options(p)
    p.add_argument("--batch", type=int, default=8,
                   help="images per inference call (8: finest decode/inference interleaving; 138-141 img/s vs 124 at 32)")
    p.add_argument("--workers", type=int, default=2, help="decode/preprocess processes (per card being evaluated)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="worker stacks evaluated at once (default: the core count; 1: one card after the other, with "
                        "a progress bar); the output and the JSON are in card order either way")
    add_workdir(p, "eval.json; with --shard K/N: eval-shard-K-of-N.json")
    p.set_defaults(fn=run, prepare=prepare, step="eval", results_name=results_name)


def results_name(args: argparse.Namespace) -> str:
    """The default results file: ``eval.json``, or ``eval-shard-K-of-N.json`` for one shard, so the shards of a
    run in one work directory never replace each other."""
    try:
        k, n = shards.parse_shard(args.shard) if args.shard else (0, 0)
    except UsageError:      # refused by prepare, in one line
        return "eval.json"
    return f"eval-shard-{k}-of-{n}.json" if n else "eval.json"


def prepare(args: argparse.Namespace) -> None:
    if args.limit is not None and args.limit <= 0:
        raise UsageError(f"--limit {args.limit}: must be a positive number of images", hint="omit it to use every image")
    if args.batch <= 0 or args.workers <= 0:
        raise UsageError(f"--batch {args.batch} / --workers {args.workers}: both must be at least 1")
    if args.jobs < 1:
        raise UsageError(f"--jobs {args.jobs}: must be at least 1", hint="1 evaluates one card after the other")
    args.shard_kn = shards.parse_shard(args.shard) if args.shard else None
    args.runtimes = [runtimes.resolve(r, args.precision) for r in
                     runtime_names((args.runtime or []) + (args.backend or []))] or ["native", "ort-opt-on"]
    if args.precision and not args.runtime:
        raise UsageError("--precision goes with --runtime FAMILY (e.g. --runtime openvino --precision int8)")
    if "native" not in args.runtimes:
        args.runtimes.insert(0, "native")  # the float reference every deployed runtime is compared with
    args.runtime_options = quant_options(args, args.runtimes)
    for name in args.runtimes:
        runtimes.create(name, **args.runtime_options[name])  # unknown names refused here
    data = args.data or settings.imagenet()
    if not data:
        raise DatasetError("no dataset: pass --data DIR (or a list file) or set MBV2_PARITY_IMAGENET")
    args.dataset = open_dataset(data, synsets=args.synsets, label_base=args.label_base)
    args.full = args.dataset.subset(args.limit, args.seed) if args.limit else args.dataset
    args.sub = shards.shard(args.full, *args.shard_kn) if args.shard_kn else args.full
    if args.shard_kn and not len(args.sub):   # a planning mistake, known before any work
        (k, n), per_class = args.shard_kn, np.bincount(args.full.labels)
        raise UsageError(f"--shard {k}/{n}: shard {k} of {n} holds no images: the {len(args.full)} images "
                         f"({int((per_class > 0).sum())} classes) are split by class, a class of m images into m of "
                         f"the {n} shards", hint=f"take N at most {int(per_class.max())}, the image count of the "
                                                 "largest class: it then puts an image in every shard")
    calib_overlap_note(args)
    args.cards = select(args)
    weight_modes.validate(args.weights, args.cards)
    note = weight_modes.padding_note(args.weights)
    if note:
        say(note)
    preflight(args.cards)


def calib_overlap_note(args: argparse.Namespace) -> None:
    """int8 calibrated on the images it is evaluated on measures less loss than a deployment would see: said, with how
    many of the evaluated images each calibration set holds (the image files compared, resolved, not their folders)."""
    from ..deploy.calibration import choose
    evaluated = {Path(p).resolve() for p in args.sub.paths}
    sets: dict[tuple[Any, int], list[str]] = {}   # one calibration set may serve several runtimes
    for name in args.runtimes:
        if runtimes.precision_of(name) == "int8" and "calib_dir" in runtimes.quantizes(name):   # calibrates on ours
            opts = args.runtime_options.get(name, {})
            sets.setdefault((opts.get("calib_dir"), opts.get("calib_images") or DEFAULT_IMAGES), []).append(name)
    for (calib_dir, n), names in sets.items():
        images, _labels, source, _digest = choose(calib_dir, n)
        shared = sum(isinstance(p, (str, Path)) and Path(p).resolve() in evaluated for p in images)
        if shared:
            say(f"note: {', '.join(names)} calibrated on {shared} of the {len(evaluated)} evaluated images ({source}); "
                "pass --calib with other images for a held-out measurement")


def run(args: argparse.Namespace) -> int:
    wd = get_workdir(args)
    out = json_out(args, wd, results_name(args))
    ds, full, sub = args.dataset, args.full, args.sub
    if ds.label_evidence:
        say(f"labels: {ds.label_evidence}")
    if args.shard_kn:
        say(f"shard {args.shard}: {len(sub)} of {len(full)} images (stratified by class); the published numbers are "
            "judged by `eval merge`")
    rows: list[tuple[str, str, Any, list[Any]]] = []
    doc = shards.document(full, sub, args.shard_kn, args.run_id)
    bad: list[str] = []
    # several stacks at once: the progress bars (one live display at a time) give way to each card's lines
    bars = args.jobs == 1 or len(stack_groups(args.cards)) == 1

    def one(c: Any, note: Callable[[str], None]) -> tuple[list[Any], list[Any], list[str]]:
        mine: dict[str, list[Any]] = {"results": []}
        rows_c: list[Any] = []
        return rows_c, mine["results"], evaluate_card(h, args, c, sub, rows_c, mine, note, bars)

    def finish(_c: Any, res: tuple[list[Any], list[Any], list[str]]) -> None:
        rows.extend(res[0])
        doc["results"].extend(res[1])
        bad.extend(res[2])

    with Harness(load_registry(), workdir=wd) as h:
        in_card_order(args.cards, args.jobs, one, say, lambda _c: None, finish)
    show(rows, sub, args.weights)
    return conclude(doc, rows, bad, out, "every card was skipped (reasons above)")


def conclude(doc: dict[str, Any], rows: list[Any], bad: list[str], out: Any, nothing: str) -> int:
    """The end of `eval` and of `eval merge`: deployed table, status, JSON, failures, exit code."""
    doc["deployed"] = deployed(rows)
    evaluated = sum(r.n for _, _, r, _ in rows)
    doc["status"] = "fail" if bad else ("nothing" if not evaluated else "pass")
    write_json(doc, out)
    for why in bad:
        console.print(f"[bold red]FAIL[/] {escape(why)}")
    say(f"results: {out}")
    if bad:
        return EXIT_FAILED
    if not evaluated:
        print(f"mbv2-parity: nothing evaluated: {nothing}", file=sys.stderr)
        return EXIT_NOTHING
    return EXIT_OK


def evaluate_card(h: Harness, args: argparse.Namespace, c: Any, sub: Any, rows: list[Any], doc: dict[str, Any],
                  note: Callable[[str], None] = say, progress: bool = True) -> list[str]:
    """One card through every runtime: its rows, its results (identity and per-image records) in ``doc``, its notes
    to ``note``, and the reasons it fails (the published numbers are judged on whole evaluations only, not on a
    shard)."""
    try:
        res = evaluate(h, c, args.weights, sub, tuple(args.runtimes), args.batch, args.workers, progress=progress,
                       options=args.runtime_options)
        kind, digest = weights_digest(h, c, args.weights)
    except Skip as e:
        note(f"{c.id}: skipped: {e}")
        doc["results"].append({"card": c.id, "status": "skip", "reason": str(e)})
        return []
    full = len(sub) >= 50_000
    problems = judge(c, res, args.weights != "seeded", args.weights == "pretrained" and not args.shard_kn, full)
    r0 = next(iter(res.values()))
    if r0.cache_hit:
        note(f"{c.id}: decoded images read from the cache {r0.cache_dir} (keyed on path, size, mtime and "
            "ctime of every file)")
    checks = [pc for r in float_results(res) for pc in check_against_published(c, r, full=full)]
    for name, r in res.items():
        rows.append((c.id, name, r, checks))
        ident = shards.result_identity(c, kind, digest, r, args.runtime_options.get(name, {}))
        doc["results"].append({**r.to_dict(), "published_checks": [vars(pc) for pc in checks], "problems": problems,
                               "identity": ident, "images": shards.images_block(r, sub)})
    return problems


def weights_digest(h: Harness, card: Any, mode: str) -> tuple[str, str]:
    """(weights kind, sha256 of what the model was built from): the seed of seeded weights, the verified download,
    the given file, the real TFLite file."""
    from ..paths import realdata_dir
    from ..weights.download import sha256_file
    from ..weights.modes import REAL_TFLITE, parse_mode, seed_for
    kind, path = parse_mode(mode)
    if kind == "seeded":
        return kind, shards._h(f"seeded {seed_for(card)}")
    if kind == "pretrained":
        return kind, str(h.weights_request(card, mode)["sha256"])
    if kind == "real":
        root = realdata_dir()
        path = str(root.joinpath(*REAL_TFLITE)) if root is not None else ""
    return kind, sha256_file(Path(str(path)))


def judge(card: Any, res: dict[str, Any], real: bool, published: bool, full: bool) -> list[str]:
    problems = [f"{card.id} [{n}]: {why}" for n, r in res.items() for why in r.failures(real)]
    why = native_onnx_failure(res)
    if why:
        problems.append(f"{card.id}: {why}")
    problems += [f"{card.id}: {why}" for why in deployed_failures(res)]
    if published:   # the card's published numbers are float numbers: compared with the fp32 runtimes only
        for r in float_results(res):
            problems += published_problems(card, check_against_published(card, r, full=full))
    return problems


def published_problems(card: Any, checks: list[Any], note: Callable[[str], None] = say) -> list[str]:
    """The failing published cells, one record per metric judged against the known findings (``parity.findings``):
    a contradiction the project accepts (keras 1.0_224's two published accuracies) is said as expected, not a problem;
    it is red again when it changes (the cells agree, or the gap between the published numbers moves)."""
    from .. import findings
    known = findings.load(findings.default_path())
    out = []
    for metric in dict.fromkeys(pc.metric for pc in checks):
        mine = [pc for pc in checks if pc.metric == metric]
        bad = [f"{card.id} [{pc.source}]: {pc.metric} {100 * pc.measured:.2f} % vs published {100 * pc.published:.2f} % "
               f"({pc.rule})" for pc in mine if pc.status == "fail"]
        pubs = [100 * pc.published for pc in mine]
        rec = {"card": card.id, "check": f"published-{metric}", "mode": "pretrained", "status": "fail" if bad else "pass",
               "reason": "; ".join(bad) or f"{metric} within every published cell",
               "metrics": {"published_gap_pts": round(max(pubs) - min(pubs), 6), "measured_pts": 100 * mine[0].measured}}
        (j,) = findings.apply([rec], known)
        if j["status"] == findings.EXPECTED:
            note(f"expected: {j['reason']}")
        elif j["status"] != "pass":
            out.append(j["reason"] if "finding" in j["metrics"] else "; ".join(bad))
    return out


def float_results(res: dict[str, Any]) -> list[Any]:
    return [r for r in res.values() if judged_precision(r.runtime) == "fp32"]


def deployed(rows: list[tuple[str, str, Any, list[Any]]]) -> list[dict[str, Any]]:
    """Seed 002's table: per card and deployed runtime, top-1 float (native) vs deployed, the drop with its paired 95 %
    interval, and how often the two predict the same class."""
    out = []
    by_card: dict[str, dict[str, Any]] = {}
    for cid, name, r, _ in rows:
        by_card.setdefault(cid, {})[name] = r
    t = table("deployed vs float (same images): top-1 float, top-1 deployed, drop [95 % CI], agreement",
              ["card", "runtime", "ran", "top-1 float", "top-1 deployed", "drop (pts) [95 % CI]", "agreement"],
              list(by_card))
    for cid, res in by_card.items():
        ref = res.get("native")
        for name, r in res.items():
            if name == "native" or ref is None or not r.n:
                continue
            lab = np.asarray(r.labels)
            a, b = np.asarray(ref.predictions) == lab, np.asarray(r.predictions) == lab
            d, lo, hi = paired_difference(a, b)
            agree = float((np.asarray(ref.predictions) == np.asarray(r.predictions)).mean())
            row = {"card": cid, "runtime": name, "precision": r.runtime.get("precision"), "top1_float": ref.top1,
                   "top1_deployed": r.top1, "drop": d, "drop_ci": [lo, hi], "agreement": agree, "n": r.n}
            out.append(row)
            t.add_row(escape(cid), name, str(row["precision"]), f"{100 * ref.top1:.2f}", f"{100 * r.top1:.2f}",
                      f"{100 * d:+.2f} [{100 * lo:+.2f}, {100 * hi:+.2f}]", f"{100 * agree:.1f} %")
    if out:
        console.print(t)
        published_deployed([(d["runtime"], str(d["precision"])) for d in out])
    return out


def _family(name: str) -> set[str]:
    """The names a published row may give a runtime by: its own, its family's (``onnx`` for ONNX Runtime)."""
    from .. import runtimes
    entry = next((e for e in runtimes.entries() if e.name == name), None)
    family = getattr(entry.factory, "family", "") if entry else ""
    return {name, family} | ({"onnx", "ort"} if family == "onnxruntime" else set())


def concerning(rows: list[dict[str, Any]], evaluated: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """The published deployed rows about what was evaluated: the same runtime (or its family) at the precision it
    ran (``f32`` is ``fp32``)."""
    def norm(p: str) -> str:
        return "fp32" if p in ("f32", "fp32") else p
    want = [(_family(name), norm(prec)) for name, prec in evaluated]
    return [r for r in rows if any(r["runtime"].split()[0].strip("()") in names and norm(r["precision"]) == prec
                                   for names, prec in want)]


def published_deployed(evaluated: list[tuple[str, str]]) -> None:
    """The published numbers of deployed MobileNetV2s that concern the runtimes evaluated (their runtime at the
    precision that ran), for reference beside the measured table (other weights)."""
    from ..deploy.published import table_rows
    every = table_rows(load_registry())
    rows = concerning(every, evaluated)
    if not rows:
        say(f"published deployed numbers: none of the registry's {len(every)} concerns "
            + ", ".join(dict.fromkeys(f"{n} ({p})" for n, p in evaluated)))
        return
    t = table(f"published deployed numbers for what was evaluated ({len(rows)} of the registry's {len(every)}; their "
              "own weights and images; for reference, not a verdict)",
              ["model", "runtime", "precision", "metric", "published", "source"], [r["model"] for r in rows])
    for r in rows:
        t.add_row(escape(r["model"]), escape(r["runtime"]), r["precision"], r["metric"], r["digits"],
                  escape(f"{r['source']}: {r['citation']}"))
    console.print(t)


def show(rows: list[tuple[str, str, Any, list[Any]]], sub: Any, weights: str) -> None:
    t = table(f"evaluation: {sub.layout}, {len(sub)} images, weights {weights}",
              ["card", "runtime", "precision", "images", "top-1 [95 % CI]", "top-5 [95 % CI]", "skipped", "img/s",
               "cache", "vs published"], [cid for cid, *_ in rows], details=("vs published",),
              row_key=("card", "runtime"))
    for cid, name, r, checks in rows:
        pub = "; ".join(f"{pc.source} {100 * pc.published:.2f} {pc.status}" for pc in checks if pc.metric == "top1")
        t.add_row(escape(cid), name, str(r.runtime.get("precision", "")), str(r.n),
                  f"{100 * r.top1:.2f} [{100 * r.top1_ci[0]:.1f}, {100 * r.top1_ci[1]:.1f}]",
                  f"{100 * r.top5:.2f} [{100 * r.top5_ci[0]:.1f}, {100 * r.top5_ci[1]:.1f}]", str(r.skipped),
                  f"{r.images_per_s:.0f}", "hit" if r.cache_hit else "built",
                  escape(pub) if weights == "pretrained" else "(not the published weights)")
    console.print(t)
