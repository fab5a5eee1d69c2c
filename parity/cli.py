"""``mbv2-parity``: list the registry, run the parity checks, count FLOPs/params. Framework-free (workers do the
frameworks)."""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .paths import default_workdir
from .registry import RegistryError, UnknownModel, load_registry
from .spec import SpecError
from .workers import WorkerError

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


def _merge_previous(out: Path, run_id: str, results: list) -> list:
    """A second `check` in the same run merges with the first one's results (newer results replace older ones of the
    same card, check and weights); results of another run are moved aside to ``<name>.prev.json``, never silently
    overwritten."""
    import json
    from .runner import CheckResult
    if not out.is_file():
        return results
    try:
        old = json.loads(out.read_text())
    except ValueError:
        old = {}
    if old.get("run") != run_id:
        prev = out.with_suffix(".prev.json")
        out.replace(prev)
        console.print(f"[yellow]note:[/] {escape(str(out))} held results of another run: moved to {escape(str(prev))}")
        return results
    mine = {(r.card, r.check, r.mode) for r in results}
    kept = [CheckResult(**{k: v for k, v in d.items() if k in CheckResult.__dataclass_fields__})
            for d in old.get("results", []) if (d["card"], d["check"], d["mode"]) not in mine]
    if kept:
        console.print(f"note: merged with {len(kept)} earlier results of this run in {escape(str(out))} "
                      "(`check --fresh` starts a new run)")
    return kept + results


def cmd_check(args) -> int:
    from .errors import EXIT_FAILED, EXIT_NOTHING, EXIT_OK
    from .runner import Harness, write_results  # noqa: deferred so `list` stays instant
    reg = load_registry()
    cards = reg.select(args.models)
    modes = tuple(args.weights)
    workdir = Path(args.workdir)
    out = Path(args.json or workdir / "results.json")
    t0 = time.perf_counter()
    results: list = []
    partial = True
    try:
        with Harness(reg, workdir=workdir) as h:
            for card in cards:
                console.print(f"[bold]{escape(card.id)}[/]")
                batch = h.checks_for(card, modes, tuple(args.opset))
                for r in batch:
                    console.print(f"  {r.check:<14} {escape(r.mode):<10} [{STYLE[r.status]}]{r.status}[/] "
                                  f"{escape(r.reason[:160])}")
                results += batch
            timings = h.timings
        partial = False
    finally:  # Ctrl-C or a crash of the parent: what was checked is written, marked partial
        wall = time.perf_counter() - t0
        merged = _merge_previous(out, args.run_id, results)
        write_results(merged, out, {"wall_seconds": wall, "run": args.run_id, "partial": partial,
                                    "timings": {} if partial else timings})
    table = Table(title=f"mbv2-parity check: {len(cards)} cards, {wall:.1f}s")
    for col in ("card", "check", "weights", "status", "max_abs (opt off/on)", "top-1 / top-5", "reason"):
        table.add_column(col, overflow="fold")
    for r in results:
        m_off, m_on = r.metrics.get("ort-opt-off", {}), r.metrics.get("ort-opt-on", {})
        mx = f"{m_off['max_abs']:.1e} / {m_on['max_abs']:.1e}" if m_off and m_on else ""
        tk = f"{m_off['top1_agree']:.2f} / {m_off['top5_agree']:.2f}" if m_off else ""
        table.add_row(escape(r.card), r.check, escape(r.mode), f"[{STYLE[r.status]}]{r.status}[/]", mx, tk,
                      "" if r.status == "pass" else escape(r.reason[:200]))
    console.print(table)
    counts = {s: sum(r.status == s for r in results) for s in STYLE}
    console.print(f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped, "
                  f"{counts['error']} errors; results: {escape(str(out))}")
    if counts["fail"] or counts["error"]:
        return EXIT_FAILED
    if not counts["pass"]:
        print("mbv2-parity: nothing checked: every check was skipped (see the reasons above)", file=sys.stderr)
        return EXIT_NOTHING
    return EXIT_OK


def cmd_count(args) -> int:
    """Every FLOPs and params convention per model, then each published cell with its convention."""
    from . import flops
    from .runner import Harness, write_results
    reg = load_registry()
    cards = reg.select(args.models)
    fl_names = args.convention or list(flops.CONVENTIONS)
    unknown = [c for c in fl_names if c not in flops.CONVENTIONS]
    if unknown:
        raise ValueError(f"unknown convention(s) {unknown}; known: {list(flops.CONVENTIONS)}")
    workdir = Path(args.workdir)
    results, tables = [], {}
    with Harness(reg, workdir=workdir) as h:
        for card in cards:
            r = h.check_counts(card)
            results.append(r)
            tables[card.id] = r.metrics.get("conventions") or h.counts(card)
    t = Table(title="FLOPs (M) by convention (counted on the exported ONNX graph with BatchNorm kept)")
    t.add_column("card")
    for n in fl_names:
        t.add_column(n, justify="right")
    t.add_column("native counters (M)")
    for cid, tb in tables.items():
        t.add_row(cid, *("-" if tb["flops"].get(n) is None else f"{tb['flops'][n] / 1e6:.3f}" for n in fl_names),
                  ", ".join(f"{k} {v / 1e6:.3f}" for k, v in tb.get("native_counters", {}).items()))
    console.print(t)
    pnames = sorted({k for tb in tables.values() for k in tb["params"]})
    t = Table(title="params by convention")
    t.add_column("card")
    for n in pnames:
        t.add_column(n, justify="right")
    for cid, tb in tables.items():
        t.add_row(cid, *("-" if tb["params"].get(n) is None else f"{tb['params'][n]:,.0f}" for n in pnames))
    console.print(t)
    t = Table(title="published cells reproduced")
    for col in ("card", "metric", "source", "published", "computed", "convention", "status", "residual"):
        t.add_column(col)
    for r in results:
        for c in r.metrics.get("cells", []):
            st = {"exact": "green", "within-tolerance": "yellow"}.get(c["status"], "bold red")
            comp = "" if c["computed"] is None else f"{c['computed']:.4f} {c['unit']}"
            res = "" if c["residual_rel"] is None else f"{100 * c['residual_rel']:+.3f}%"
            t.add_row(r.card, c["metric"], c["source"], f"{c['published']} {c['unit']}", comp, c["convention"],
                      f"[{st}]{c['status']}[/]", res)
        if r.status in ("error", "skip"):
            t.add_row(r.card, "", "", "", "", "", f"[{STYLE[r.status]}]{r.status}[/]", r.reason[:80])
    console.print(t)
    write_results(results, args.json or workdir / "counts.json")
    return 1 if any(r.status in ("fail", "error") for r in results) else 0


def cmd_transplant(args) -> int:
    from .runner import Harness
    from .transplant import transplant
    reg = load_registry()
    with Harness(reg, workdir=Path(args.workdir)) as h:
        res = transplant(h, args.src, args.to, args.out, args.padding, args.source_framework)
    console.print(f"wrote {res['path']} ({args.to}, built with {res['padding']} padding; the weights were trained with "
                  f"{res['weights_padding']}); canonical: {res['canonical']}; BN running_var shifted by at most "
                  f"{res['max_var_shift']:.2e} so a stock model (eps {res['bn_eps_written_for']}) computes the same")
    if res["padding"] != res["weights_padding"]:
        console.print(f"[yellow]warning:[/] {args.to} pads differently from how these weights were trained: "
                      "expect different top-1 on real images (see `mbv2-parity cross`)")
    return 0


def cmd_cross(args) -> int:
    """The cross-framework matrix of one weight source on real (or probe) images."""
    import json

    import numpy as np

    from .preprocess import geometric, preprocess_batch
    from .probes import probe_images
    from .runner import Harness
    from .transplant import to_canonical, tflite_spec
    reg = load_registry()
    src = Path(args.src)
    if args.images:
        files = sorted(p for p in Path(args.images).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp"))
        if not files:
            raise ValueError(f"no images under {args.images}")
        images = files[: args.limit] if args.limit else files
    else:
        images = [im for _, im in probe_images()]
    scale, zp = (1 / 127.5, 127)
    if src.suffix == ".tflite":
        from .tflite_import import read
        _, info = read(src)
        scale, zp = info.input_scale, info.input_zero_point
    spec = tflite_spec(scale, zp)
    x = preprocess_batch(images, spec)
    with Harness(reg, workdir=Path(args.workdir)) as h:
        from .transplant import cross_matrix
        cp = to_canonical(h, src, args.source_framework)
        u8 = np.stack([geometric(im, spec) for im in images]) if src.suffix == ".tflite" else None
        m = cross_matrix(h, cp, x, tflite=(str(src), u8) if u8 is not None else None)
    t = Table(title=f"cross-framework matrix: {src.name}, {len(images)} images; max |logit diff| / top-1 agreement "
                    "(vs the interpreter: max |probability diff|)")
    t.add_column("")
    for n in m.names:
        t.add_column(n, justify="right")
    for i, a in enumerate(m.names):
        t.add_row(a, *(f"{m.max_abs[i, j]:.1e} / {m.top1_agree[i, j]:.3f}" if i != j else "-" for j in range(len(m.names))))
    console.print(t)
    if args.json:
        Path(args.json).write_text(json.dumps({"source": str(src), "images": len(images), **m.to_dict()}, indent=1))
    return 0


def cmd_preprocess(args) -> int:
    """Reference vs native preprocessing per card, and the preprocessing difference matrix."""
    import json

    import numpy as np

    from .paths import realdata_dir
    from .preprocess_matrix import difference_matrix, labeled_sample
    from .probes import preprocessing_images
    from .runner import Harness
    reg = load_registry()
    cards = reg.select(args.models)
    workdir = Path(args.workdir)
    images = preprocessing_images(workdir / "edge-images", args.real)
    doc: dict = {"checks": []}
    t = Table(title=f"reference vs native preprocessing, {len(images)} images (edge cases + real)")
    for col in ("card", "status", "max |diff| (input units)", "max / mean diff (0-255 levels)", "decoder / backend"):
        t.add_column(col)
    with Harness(reg, workdir=workdir) as h:
        fails = 0
        for c in cards:
            r = h.check_preprocess(c, images)
            doc["checks"].append(r.to_dict())
            m = r.metrics
            fails += r.status != "pass"
            t.add_row(c.id, f"[{STYLE[r.status]}]{r.status}[/]", f"{m.get('max_abs', float('nan')):.1e}",
                      f"{m.get('max_pixel_levels', float('nan')):.2g} / {m.get('mean_pixel_levels', float('nan')):.2g}",
                      f"{c.preprocess.decoder} / {c.preprocess.backend}")
        console.print(t)
        root = realdata_dir()
        if args.matrix and root is not None:
            from . import transplant as T
            imgs, labels = labeled_sample(root, args.matrix)
            ptq = root / "tflite" / "tf2_mobilenet_v2_1.0_224_ptq.tflite"
            canon = T.to_canonical(h, ptq)
            keras_card = reg.get("keras/mobilenet_v2.alpha_1.0_224")

            def run_model(x, layout):
                x = x if layout == "NHWC" else np.ascontiguousarray(x.transpose(0, 2, 3, 1))
                return h.native_array(keras_card, f"canonical:{canon}", x, "mx")

            specs = {c.id.split("/")[0] + ("" if c.framework != "torchvision" else "-" + c.tag[-2:]): c.preprocess
                     for c in (reg.get(i) for i in ("torchvision/mobilenet_v2.IMAGENET1K_V1",
                                                   "torchvision/mobilenet_v2.IMAGENET1K_V2", "timm/mobilenetv2_100.ra_in1k",
                                                   "mmcls/mobilenet-v2_8xb32_in1k.20200708-3b2dc3af",
                                                   "ppcls/MobileNetV2.pretrained", "keras/mobilenet_v2.alpha_1.0_224"))}
            specs["tflite-coral"] = T.tflite_spec(1 / 127.5, 127).replace(layout="NHWC")
            m = difference_matrix(specs, imgs, run_model, labels, own="keras")
            console.print(f"preprocessing difference matrix: mean |pixel difference| (0-255) of the resized+cropped "
                          f"images, '≠norm' where the normalization differs; last column: the real TFLite MobileNetV2 "
                          f"(in keras) fed each spec, top-1 on {len(imgs)} labeled ImageNet images")
            console.print(m.markdown())
            doc["matrix"] = m.to_dict()
            (workdir / "preprocess.md").write_text(m.markdown() + "\n")
    (workdir / "preprocess.json").write_text(json.dumps(doc, indent=1, default=str))
    return 1 if fails else 0


def cmd_eval(args) -> int:
    """Top-1/top-5 per card through the native model and ONNX Runtime, checked against the published table."""
    import json
    import os

    from .dataset import DatasetError, open_dataset
    from .errors import EXIT_FAILED, EXIT_NOTHING, EXIT_OK, UsageError
    from .evaluate import check_against_published, evaluate, native_onnx_failure
    from .runner import Harness
    if args.limit is not None and args.limit <= 0:
        raise UsageError(f"--limit {args.limit}: must be a positive number of images", hint="omit it to use every image")
    if args.batch <= 0 or args.workers <= 0:
        raise UsageError(f"--batch {args.batch} / --workers {args.workers}: both must be at least 1")
    data = args.data or os.environ.get("MBV2_PARITY_IMAGENET")
    if not data:
        raise DatasetError("no dataset: pass --data DIR (or a list file) or set MBV2_PARITY_IMAGENET")
    ds = open_dataset(data, synsets=args.synsets, label_base=args.label_base)
    sub = ds.subset(args.limit, args.seed) if args.limit else ds
    if ds.label_evidence:
        console.print(f"labels: {ds.label_evidence}")
    reg = load_registry()
    cards = reg.select(args.models)
    workdir = Path(args.workdir)
    real = args.weights != "seeded"
    rows, doc, bad = [], {"dataset": {"path": str(data), "layout": sub.layout, "n": len(sub)}, "results": []}, []
    with Harness(reg, workdir=workdir) as h:
        from .runner import Skip
        for c in cards:
            try:
                res = evaluate(h, c, args.weights, sub, tuple(args.backend), args.batch, args.workers)
            except Skip as e:
                console.print(f"[yellow]{c.id}: skipped[/]: {escape(str(e))}")
                doc["results"].append({"card": c.id, "status": "skip", "reason": str(e)})
                continue
            checks = [pc for r in res.values() for pc in check_against_published(c, r, full=len(sub) >= 50_000)]
            problems = [f"{c.id} [{b}]: {why}" for b, r in res.items() for why in r.failures(real)]
            why = native_onnx_failure(res)
            if why:
                problems.append(f"{c.id}: {why}")
            if args.weights == "pretrained":
                problems += [f"{c.id} [{pc.source}]: {pc.metric} {100 * pc.measured:.2f} % vs published "
                             f"{100 * pc.published:.2f} % ({pc.rule})" for pc in checks if pc.status == "fail"]
            bad += problems
            r0 = next(iter(res.values()))
            if r0.cache_hit:
                console.print(f"{c.id}: decoded images read from the cache {r0.cache_dir} (keyed on path, size, "
                              "mtime and ctime of every file)")
            diff = (abs(res["native"].top1 - res["onnx"].top1) * 100) if {"native", "onnx"} <= set(res) else None
            for b, r in res.items():
                rows.append((c.id, b, r, checks))
                doc["results"].append({**r.to_dict(), "published_checks": [vars(pc) for pc in checks],
                                       "native_onnx_top1_diff_pts": diff, "problems": problems})
    t = Table(title=f"evaluation: {escape(sub.layout)}, {len(sub)} images, weights {escape(args.weights)}")
    for col in ("card", "backend", "evaluated", "top-1 [95 % CI]", "top-5 [95 % CI]", "skipped", "img/s", "cache",
                "vs published"):
        t.add_column(col, overflow="fold")
    for cid, b, r, checks in rows:
        pub = "; ".join(f"{pc.source} {100 * pc.published:.2f} {pc.status}" for pc in checks if pc.metric == "top1")
        t.add_row(cid, b, str(r.n), f"{100 * r.top1:.2f} [{100 * r.top1_ci[0]:.1f}, {100 * r.top1_ci[1]:.1f}]",
                  f"{100 * r.top5:.2f} [{100 * r.top5_ci[0]:.1f}, {100 * r.top5_ci[1]:.1f}]", str(r.skipped),
                  f"{r.images_per_s:.0f}", "hit" if r.cache_hit else "built",
                  escape(pub) if args.weights == "pretrained" else "(not the published weights)")
    console.print(t)
    out = Path(args.json or workdir / "eval.json")
    evaluated = sum(r.n for _, _, r, _ in rows)
    doc["status"] = "fail" if bad else ("nothing" if not evaluated else "pass")
    out.write_text(json.dumps(doc, indent=1, default=str))
    for why in bad:
        console.print(f"[bold red]FAIL[/] {escape(why)}")
    console.print(f"results: {escape(str(out))}")
    if bad:
        return EXIT_FAILED
    if not evaluated:
        print("mbv2-parity: nothing evaluated: every card was skipped (see the reasons above)", file=sys.stderr)
        return EXIT_NOTHING
    return EXIT_OK


def cmd_golden(args) -> int:
    from . import golden
    from .runner import Harness
    reg = load_registry()
    root = Path(args.golden_dir) if args.golden_dir else None
    changed = 0
    with Harness(reg, workdir=Path(args.workdir)) as h:
        for c in reg.select(args.models):
            new = golden.compute(h, c)
            old = golden.load(c.id, root)
            if old:  # keep what only a networked watch can know (upstream sha256, validators)
                for k, v in (old.get("weights") or {}).items():
                    if new["weights"].get(k) is None and v is not None:
                        new["weights"][k] = v
            d = golden.diff(old, new)
            changed += bool(d)
            console.print(f"[bold]{c.id}[/]: " + ("unchanged" if not d else "\n  " + "\n  ".join(d)))
            if d and args.write:
                console.print(f"  wrote {golden.save(new, root)}")
    if changed and not args.write:
        console.print(f"{changed} card(s) differ; re-run with --write to record them")
    return 0


def cmd_watch(args) -> int:
    import json

    from . import golden
    from .github import GitHub, GitHubError, file_diffs
    from .runner import Harness
    from .watch import report_markdown, watch_card
    reg = load_registry()
    root = Path(args.golden_dir) if args.golden_dir else None
    workdir = Path(args.workdir)
    results = []
    with Harness(reg, workdir=workdir) as h:
        for c in reg.select(args.models):
            r = watch_card(h, c, golden.load(c.id, root), workdir / "watch-cache", args.download)
            results.append(r)
            console.print(f"{c.id}: {r.status}" + "".join(f"\n  {d.kind}: {d.summary}" for d in r.diffs))
    diffs = [d for r in results for d in r.diffs]
    doc = {"results": [{"card": r.card, "status": r.status, "notes": r.notes, "diffs": [d.to_dict() for d in r.diffs]}
                       for r in results]}
    md = report_markdown(results)
    filing_error = ""
    filed = []
    try:
        gh = GitHub(args.repo or os.environ.get("MBV2_PARITY_GITHUB_REPO", "")) if args.file_issues else None
        filed = file_diffs(diffs, gh)
    except GitHubError as e:
        filing_error = str(e)
    doc["filing"] = {"mode": "file" if args.file_issues else "dry-run", "error": filing_error,
                     "issues": [vars(f) for f in filed]}
    (workdir / "watch.json").write_text(json.dumps(doc, indent=1, default=str))
    (workdir / "watch.md").write_text(md)
    for f in filed:
        console.print(f"issue: {f.action} {f.card} {f.fingerprint}" + (f" #{f.issue}" if f.issue else "")
                      + (f" ({f.detail})" if f.detail else ""))
    if not args.file_issues:
        for d in diffs:
            from .github import title_for
            from .watch import diff_markdown
            console.print(f"[dry-run] would file: {title_for(d)}\n{diff_markdown(d)}", markup=False)
    if filing_error or any(f.action == "error" for f in filed):
        print(f"mbv2-parity: error: filing issues failed: {filing_error or [f.detail for f in filed if f.action == 'error']}"
              f" (the watch results are in {workdir / 'watch.json'})", file=sys.stderr)
        return 1
    return 10 if diffs else 0


def cmd_report(args) -> int:
    from . import report, runlog
    from .errors import EXIT_FAILED, EXIT_NOTHING, EXIT_OK
    reg = load_registry()
    workdir = Path(args.workdir)
    if args.cross:
        src = Path(args.cross)
        if src.is_file():
            ns = argparse.Namespace(cmd="cross", fn=cmd_cross, src=str(src), images=None, limit=0,
                                    source_framework=None, workdir=str(workdir), json=str(workdir / "cross.json"))
            _dispatch(ns, ["cross", str(src)])
        else:
            console.print(f"[yellow]no cross matrix[/]: {escape(str(src))} not found")
    out = report.write(workdir, reg)
    for k, p in out.items():
        console.print(f"{k}: {escape(str(p))}")
    if not args.strict:
        return EXIT_OK
    import json
    doc = json.loads(out["json"].read_text())
    run = runlog.load(workdir)
    if run is None or not run.outputs("check"):
        print(f"mbv2-parity: nothing to report: no `check` recorded in {workdir / runlog.MANIFEST} "
              "(run `mbv2-parity check --workdir ...` first)", file=sys.stderr)
        return EXIT_NOTHING
    problems = run.problems() + doc.get("problems", [])
    bad = doc["summary"]["fail"] + doc["summary"]["error"] + sum(r["counts"]["mismatch"] for r in doc["rows"])
    if bad:
        problems.append(f"{bad} failing checks/cells")
    if problems:
        print("mbv2-parity: the run is not green: " + "; ".join(problems) + f" (see {out['md']})", file=sys.stderr)
        return EXIT_FAILED
    if not doc["summary"]["pass"]:
        print("mbv2-parity: nothing to report: the run's checks were all skipped", file=sys.stderr)
        return EXIT_NOTHING
    return EXIT_OK


def _common(p, golden: bool = False) -> None:
    """Options several subcommands share."""
    if golden:
        p.add_argument("--golden-dir", help="default fixtures/golden")
    p.add_argument("--workdir", default=str(default_workdir()), help="where ONNX files, logs and results go")


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
    p.add_argument("--fresh", action="store_true",
                   help="start a new run in WORKDIR (default: join the current run, merging results)")
    p.set_defaults(fn=cmd_check)
    p = sub.add_parser("count", help="FLOPs/params under every named convention, and the published cells checked")
    p.add_argument("models", nargs="*", help="ids, framework names or globs (default: all)")
    p.add_argument("--convention", action="append", default=None,
                   help="FLOPs convention(s) to show (repeatable; default: all): " + "macs, 2xmacs, thop, paddle.flops, "
                        "mmengine, ptflops, fluid.model_stat")
    p.add_argument("--workdir", default=str(default_workdir()), help="where ONNX files, logs and results go")
    p.add_argument("--json", help="results JSON path (default: WORKDIR/counts.json)")
    p.set_defaults(fn=cmd_count)
    p = sub.add_parser("preprocess", help="reference vs native preprocessing per card + the difference matrix")
    p.add_argument("models", nargs="*", help="ids, framework names or globs (default: all)")
    p.add_argument("--real", type=int, default=24, help="real images added to the edge cases (default 24)")
    p.add_argument("--matrix", type=int, default=100, help="labeled images for the difference matrix (0: skip)")
    _common(p)
    p.set_defaults(fn=cmd_preprocess)
    p = sub.add_parser("eval", help="top-1/top-5 on an ImageNet val set (native and ONNX) vs the published table")
    p.add_argument("models", nargs="*", help="ids, framework names or globs (default: all)")
    p.add_argument("--data", help="val dir (val/ + val_label.txt, ImageFolder) or a 'path label' list file; "
                                  "default $MBV2_PARITY_IMAGENET")
    p.add_argument("--limit", type=int, default=None, help="stratified subset of N images (Wilson intervals)")
    p.add_argument("--label-base", type=int, choices=(0, 1), default=None,
                   help="how the label file counts classes (needed when it has no label 0 and no wnids in file names)")
    p.add_argument("--synsets", help="the standard synset list (wnid order) to check labels against file names")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", default="pretrained", help="pretrained | seeded | file:PATH | canonical:PATH")
    p.add_argument("--backend", action="append", default=None, choices=("native", "onnx"))
    p.add_argument("--batch", type=int, default=8, help="images per inference call (8: finest decode/inference interleaving; measured 138-141 img/s vs 124 at 32)")
    p.add_argument("--workers", type=int, default=2, help="decode/preprocess processes")
    _common(p)
    p.add_argument("--json")
    p.set_defaults(fn=cmd_eval)
    p = sub.add_parser("golden", help="golden fingerprints: `golden update [MODEL...] [--write]`")
    p.add_argument("action", choices=("update",))
    p.add_argument("models", nargs="*")
    p.add_argument("--write", action="store_true", help="write the new fingerprints (default: show the diff only)")
    _common(p, golden=True)
    p.set_defaults(fn=cmd_golden)
    p = sub.add_parser("watch", help="check upstream for changed weights/preprocessing/converter/published numbers")
    p.add_argument("models", nargs="*")
    p.add_argument("--file-issues", action="store_true", help="open/comment GitHub issues (default: dry run)")
    p.add_argument("--repo", help="OWNER/NAME (default $MBV2_PARITY_GITHUB_REPO)")
    p.add_argument("--download", action="store_true", help="download and hash even when validators are unchanged")
    _common(p, golden=True)
    p.set_defaults(fn=cmd_watch)
    p = sub.add_parser("report", help="report.json/.md/.html (+ JUnit XML) from the run's results in WORKDIR")
    p.add_argument("--cross", help="also compute the cross-framework matrix of these weights (skipped if absent)")
    p.add_argument("--strict", action="store_true", help="exit 1 if the run has failing/erroring checks or cells")
    _common(p)
    p.set_defaults(fn=cmd_report)
    p = sub.add_parser("transplant", help="move weights to another framework: SRC (TFLite, canonical .safetensors or "
                                          "a native weight file) -> the target's native weight file")
    p.add_argument("src")
    p.add_argument("--to", required=True, choices=("torchvision", "timm", "mmcls", "ppcls", "keras"))
    p.add_argument("--out", help="output path (default: next to the current directory, framework suffix)")
    p.add_argument("--from", dest="source_framework", help="framework that wrote a native SRC (.pth needs it)")
    p.add_argument("--padding", choices=("symmetric", "same"),
                   help="build the target with this padding (default: the padding the weights were trained with)")
    _common(p)
    p.set_defaults(fn=cmd_transplant)
    p = sub.add_parser("cross", help="the same weights in every framework x padding (+ TFLite interpreter)")
    p.add_argument("src")
    p.add_argument("--images", help="a directory of images (default: the probe set)")
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--from", dest="source_framework")
    _common(p)
    p.add_argument("--json")
    p.set_defaults(fn=cmd_cross)
    args = ap.parse_args(argv)
    if getattr(args, "weights", None) is None and args.cmd == "check":
        args.weights = ["seeded", "pretrained"]
    if getattr(args, "opset", None) is None and args.cmd == "check":
        args.opset = [17]
    if args.cmd == "eval" and not args.backend:
        args.backend = ["native", "onnx"]
    return _dispatch(args, list(argv if argv is not None else sys.argv[1:]))


# commands that are steps of a run (recorded in WORKDIR/run.json, see parity/runlog.py) and the file each writes
STEP_OUTPUTS = {"check": "results.json", "count": "counts.json", "eval": "eval.json", "cross": "cross.json",
                "preprocess": "preprocess.json"}


def _dispatch(args, argv: list[str]) -> int:
    from . import runlog
    from .errors import EXIT_INTERRUPTED, ParityError
    step = None
    if args.cmd in STEP_OUTPUTS:
        workdir = Path(args.workdir)
        out = Path(getattr(args, "json", None) or workdir / STEP_OUTPUTS[args.cmd])
        run, step = runlog.start(workdir, args.cmd, argv, [out], fresh=getattr(args, "fresh", False))
        args.run_id = run.id
    rc = 4
    try:
        rc = args.fn(args)
        return rc
    except ParityError as e:
        print(f"mbv2-parity: error: {e.one_line()}", file=sys.stderr)
        rc = e.exit_code
        return rc
    except KeyboardInterrupt:
        print("mbv2-parity: interrupted (partial results written and marked partial)", file=sys.stderr)
        rc = EXIT_INTERRUPTED
        return rc
    except (UnknownModel, RegistryError, SpecError, ValueError, WorkerError, OSError) as e:
        hint = getattr(e, "hint", "")
        print(f"mbv2-parity: error: {e}" + (f" (hint: {hint})" if hint else ""), file=sys.stderr)
        rc = 2
        return rc
    finally:
        if step is not None:
            runlog.finish(Path(args.workdir), step, rc)


if __name__ == "__main__":
    sys.exit(main())
