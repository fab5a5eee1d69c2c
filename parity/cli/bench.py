"""`mbv2-parity bench`: latency per card x runtime x precision, the shape of seed 003's SD855/V100 tables on this
machine -- batch-1 latency at 1 and 2 threads and batch-8 throughput -- median and spread over repeats, each relative
to ONNX Runtime fp32 (graph optimizations on) of the same card measured in the same run. Numbers, never a verdict."""
from __future__ import annotations

import argparse
import statistics
from typing import Any

import numpy as np
from rich.markup import escape

from .. import runtimes
from ..errors import EXIT_OK, NothingChecked, UsageError
from ..harness import Harness, Skip, write_json
from ..registry import load_registry
from ..weights import modes as weight_modes
from .common import add_models, add_workdir, console, json_out, preflight, say, select, table
from .common import workdir as get_workdir

BASELINE = "ort-opt-on"
SETTINGS = (("batch 1, 1 thread", 1, 1), ("batch 1, 2 threads", 1, 2), ("batch 8, 2 threads", 8, 2))


def add(sub: Any) -> None:
    p = sub.add_parser("bench", help="latency/throughput per card x runtime x precision, relative to ORT fp32")
    add_models(p)
    p.add_argument("--runtime", action="append", default=None, help="runtime (family or name; repeatable; default: "
                                                                    "every deploy runtime that applies)")
    p.add_argument("--precision", choices=("fp32", "fp16", "bf16", "int8"),
                   help="the precision of --runtime FAMILY (ort, openvino, tflite, paddle-inference)")
    p.add_argument("--repeats", type=int, default=20, help="timed calls per setting after one warm-up (20)")
    p.add_argument("--calib-images", type=int, default=200, help="calibration images of int8 artifacts (200)")
    p.add_argument("--weights", default="seeded", help="weights mode (timings do not depend on the values)")
    add_workdir(p, "bench.json")
    p.set_defaults(fn=run, prepare=prepare, step="bench")


def prepare(args: argparse.Namespace) -> None:
    if args.repeats < 3:
        raise UsageError(f"--repeats {args.repeats}: at least 3 (a median and a spread)")
    if args.calib_images <= 0:
        raise UsageError(f"--calib-images {args.calib_images}: at least 1")
    if args.precision and not args.runtime:
        raise UsageError("--precision goes with --runtime FAMILY (e.g. --runtime openvino --precision int8)")
    args.cards = select(args)
    names = [runtimes.resolve(r, args.precision) for r in (args.runtime or [])] or runtimes.names("deploy")
    args.runtimes = [BASELINE] + [n for n in names if n != BASELINE]
    for n in args.runtimes:
        if "threads" not in runtimes.accepts(n):
            raise UsageError(f"--runtime {n}: its thread count cannot be set, so its latency is not comparable",
                             hint=f"one of {', '.join(x for x in runtimes.names() if 'threads' in runtimes.accepts(x))}")
    weight_modes.validate(args.weights, args.cards)
    _check_fit(args)
    preflight(args.cards)


def _check_fit(args: argparse.Namespace) -> None:
    """A runtime asked by --runtime that fits none of the cards is refused before any work, with why and the
    runtimes that do fit; one that fits some of them runs on those (the others are named, `run` says so)."""
    for name in args.runtimes:
        if name == BASELINE or not args.runtime:
            continue
        why = {c.id: runtimes.fits(name, c, args.weights) for c in args.cards}
        if all(why.values()):
            c = args.cards[0]
            ok = [n for n in runtimes.names("deploy") if "threads" in runtimes.accepts(n)
                  and not runtimes.fits(n, c, args.weights)]
            what = f"{c.id}: {why[c.id]}" if len(args.cards) == 1 else \
                f"any of the {len(args.cards)} cards ({c.id}: {why[c.id]})"
            raise UsageError(f"--runtime {name} does not fit {what}",
                             hint=f"runtimes that fit {c.id} with --weights {args.weights}: {', '.join(ok) or 'none'}")


def measure(h: Harness, card: Any, mode: str, name: str, opts: dict[str, Any], repeats: int) -> dict[str, Any]:
    x = h.probe_tensor(card.preprocess)[0]
    row: dict[str, Any] = {}
    for label, batch, threads in SETTINGS:
        xb = np.ascontiguousarray(np.resize(x, (batch, *x.shape[1:])), np.float32)
        with runtimes.create(name, threads=threads, **opts) as rt:
            rt.load(runtimes.Target(h, card, mode))
            t = rt.bench(xb, repeats)
            row["precision"] = rt.info().precision
        med = statistics.median(t)
        row[label] = {"median_ms": 1e3 * med, "min_ms": 1e3 * min(t), "max_ms": 1e3 * max(t), "img_per_s": batch / med}
    return row


def run(args: argparse.Namespace) -> int:
    wd = get_workdir(args)
    out = json_out(args, wd, "bench.json")
    doc: dict[str, Any] = {"run": args.run_id, "repeats": args.repeats, "settings": [s[0] for s in SETTINGS],
                           "results": []}
    with Harness(load_registry(), workdir=wd) as h:
        for card in args.cards:
            base = None
            for name in args.runtimes:
                unfit = runtimes.fits(name, card, args.weights)
                if unfit:
                    say(f"{card.id} {name}: not run: {unfit}")
                    continue
                opts = {"calib_images": args.calib_images} if "calib_images" in runtimes.quantizes(name) else {}
                try:
                    row = measure(h, card, args.weights, name, opts, args.repeats)
                except Skip as e:
                    say(f"{card.id} {name}: skipped: {e}")
                    continue
                base = row if name == BASELINE else base
                for label, *_ in SETTINGS:
                    row[label]["vs_ort_fp32"] = (row[label]["median_ms"] / base[label]["median_ms"]) if base else None
                doc["results"].append({"card": card.id, "runtime": name, **row})
    show(doc)
    write_json(doc, out)
    say(f"results: {out}")
    asked = [n for n in args.runtimes if n != BASELINE] if args.runtime else args.runtimes
    ran = {r["runtime"] for r in doc["results"]}
    if not ran & set(asked):
        raise NothingChecked(f"nothing asked was benchmarked: {', '.join(asked)} ran on no card (reasons above)",
                             hint="`mbv2-parity list --runtimes` shows what each runtime runs")
    return EXIT_OK


def show(doc: dict[str, Any]) -> None:
    t = table(f"latency (ms, median [min-max] of {doc['repeats']}) and ratio to ORT fp32 of the same card",
              ["card", "runtime", "ran", *doc["settings"]], [r["card"] for r in doc["results"]])
    for r in doc["results"]:
        cells = []
        for label in doc["settings"]:
            s = r[label]
            ratio = "" if s["vs_ort_fp32"] is None else f" = {s['vs_ort_fp32']:.2f}x"
            cells.append(f"{s['median_ms']:.1f} [{s['min_ms']:.1f}-{s['max_ms']:.1f}]{ratio}")
        t.add_row(escape(r["card"]), r["runtime"], str(r["precision"]), *cells)
    console.print(t)
