"""`mbv2-parity audit CONFIG`: does a deployment config feed the model what upstream fed it, and what does each
difference cost? Field-by-field findings against the card's spec, the tensor difference and top-1 of the card's
model (ONNX Runtime) on real images for the whole config and for each difference alone, the calibration vs
run-time comparison, and ``--fix`` (the corrected config in the same format, audited again)."""
from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from rich.markup import escape

from ..audit import importers
from ..audit.cost import Cost, measure
from ..audit.diff import Finding, calibration_vs_runtime, differences
from ..errors import EXIT_FAILED, EXIT_OK, UsageError
from ..harness import Harness, write_json
from ..paths import realdata_dir
from ..preprocess.matrix import labeled_sample
from ..registry import Card, load_registry
from ..spec import PreprocessSpec
from ..weights import modes as weight_modes
from .common import add_workdir, console, json_out, say, table
from .common import workdir as get_workdir

# the spec fields behind each finding: a difference is priced alone by changing only these
# (mean/std are per model channel: flipping channel_order alone is the pure swap of the pixels' order)
FIELDS = {"normalization": ("scale", "mean", "std"), "channel_order": ("channel_order",),
          "resize_mode": ("resize_mode", "resize_size"), "input_color": ("input_color", "yuv_range"),
          "antialias": ("antialias",), "backend": ("backend", "antialias")}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def add(sub: Any) -> None:
    p = sub.add_parser("audit", help="audit a deployment config's preprocessing against a card's upstream spec")
    p.add_argument("config", help="the deployment config (format detected; see --format)")
    p.add_argument("--card", required=True, help="the registry card whose upstream spec the config should follow")
    p.add_argument("--format", default=None, help="force the config's format: " + ", ".join(importers.names()))
    p.add_argument("--runtime", default=None, help="the run-time config when CONFIG declares the calibration "
                                                    "(e.g. VastAI vdsp_params json beside the vamc build yaml)")
    p.add_argument("--weights", default="none", help="none (tensor difference only) | seeded | pretrained | "
                                                     "canonical:PATH (a .tflite works) | file:PATH")
    p.add_argument("--data", default=None, help="images: a labeled set (as `eval --data`) or a folder of images; "
                                                "default: the shared ImageNet sample when present")
    p.add_argument("--limit", type=int, default=100, help="images to measure on (default 100)")
    p.add_argument("--fix", default=None, metavar="OUT", help="write CONFIG corrected to the upstream spec, same "
                                                              "format, to a new file OUT, and audit it again")
    p.add_argument("--force", action="store_true", help="let --fix OUT replace an existing file (never CONFIG or "
                                                        "the --runtime file)")
    p.add_argument("--int8", type=int, default=0, metavar="N",
                   help="when calibration and run time differ: quantize the card (ONNX Runtime static int8) on N "
                        "calibration images preprocessed as declared and as at run time, and price the difference")
    p.add_argument("--max-top1-change", type=float, default=1.0, metavar="PTS",
                   help="fail when the config changes the model's top-1 on more than PTS %% of the images, or "
                        "lowers labeled top-1 by more than PTS points (default 1.0)")
    add_workdir(p, "audit.json")
    p.set_defaults(fn=run, prepare=prepare, step="audit")


def prepare(args: argparse.Namespace) -> None:
    for name in ("config", "runtime"):
        v = getattr(args, name)
        if v is not None and not Path(v).is_file():
            raise UsageError(f"{'CONFIG' if name == 'config' else '--runtime'} {v}: no such file",
                             hint="give the path of the deployment config")
    if args.limit < 1 or args.int8 < 0:
        raise UsageError("--limit takes a number of images >= 1, --int8 a number of calibration images >= 0")
    if not (math.isfinite(args.max_top1_change) and 0 <= args.max_top1_change <= 100):
        raise UsageError(f"--max-top1-change {args.max_top1_change:g}: a share of images / top-1 points from 0 to 100",
                         hint="omit it for 1.0; 0 fails on any change")
    if args.int8 and args.weights == "none":
        raise UsageError("--int8 needs a model", hint="give --weights (seeded, pretrained, canonical:PATH)")
    args.card_obj = load_registry().get(args.card)
    if args.weights != "none":
        weight_modes.validate(args.weights, [args.card_obj])
    if args.fix:
        _check_fix_out(args)
    elif args.force:
        raise UsageError("--force goes with --fix OUT (it lets OUT replace an existing file)")


def _check_fix_out(args: argparse.Namespace) -> None:
    """--fix OUT refused before any work: the audit's own input (CONFIG, --runtime), a directory, an existing file
    without --force (the corrected config is written whole: comments are not kept), a place that cannot be written."""
    out = Path(args.fix)
    inputs = {"CONFIG": Path(args.config), "the --runtime file": Path(args.runtime) if args.runtime else None}
    for what, path in inputs.items():
        if path is not None and path.exists() and out.exists() and (out.resolve() == path.resolve()
                                                                   or os.path.samefile(out, path)):
            raise UsageError(f"--fix {out} must not overwrite {what}: it is what the audit reads",
                             hint="write the corrected config to a new file and compare the two")
    if out.is_dir():
        raise UsageError(f"--fix {out}: is a directory", hint="give the path of the file to write, e.g. fixed.yml")
    if out.exists() and not args.force:
        raise UsageError(f"--fix {out}: exists; the corrected config is written whole (comments not kept)",
                         hint="give a new path, or add --force to replace it")
    parent = out.parent
    if not parent.is_dir():
        raise UsageError(f"--fix {out}: its directory {parent} does not exist")
    if not os.access(parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise UsageError(f"--fix {out}: not writable", hint="write it where you can")


def findings_of(args: argparse.Namespace, up: PreprocessSpec) \
        -> tuple[dict[str, Any], PreprocessSpec, PreprocessSpec | None, list[Finding]]:
    imp, decl, _ = importers.read(Path(args.config), args.format)
    doc: dict[str, Any] = {"config": decl.to_dict(), "format": imp.name}
    calib: PreprocessSpec | None
    if args.runtime:
        _, rdecl, _ = importers.read(Path(args.runtime))
        doc["runtime"] = rdecl.to_dict()
        cfg = rdecl.spec(up)
        calib = decl.calibration_spec(up) or decl.spec(up)
    else:
        cfg = decl.spec(up)
        calib = decl.calibration_spec(up)
    found = differences(up, cfg)
    if calib is not None:
        if calib != cfg:
            found += differences(up, calib, "calibration")
        found += calibration_vs_runtime(calib, cfg)
    doc["spec"] = cfg.to_dict()
    return doc, cfg, calib, found


def run(args: argparse.Namespace) -> int:
    wd = get_workdir(args)
    out = json_out(args, wd, "audit.json")
    card: Card = args.card_obj
    up = card.preprocess
    doc, cfg, calib, found = findings_of(args, up)
    unknown = doc["config"]["unknown"] + doc.get("runtime", {}).get("unknown", [])
    notes = doc["config"]["notes"] + doc.get("runtime", {}).get("notes", [])
    images, labels, where = _images(args)
    costs: dict[str, Cost] = {}
    reg = load_registry()
    with Harness(reg, workdir=wd) as h:
        model = _runner(h, card, args.weights)
        if images:
            costs["whole config"] = measure(images, up, cfg, model, labels)
            for f in found:
                if f.scope == "run time" and f.severity != "info" and f.field not in costs:
                    costs[f.field] = measure(images, up, _alone(up, cfg, f.field), model, labels)
        if args.int8 and images and calib is not None and calib != cfg:
            doc["int8"] = int8_cost(h, card, args.weights, calib, cfg, images, labels, args.int8)
            say(f"int8, calibrated as declared vs on the run-time pipeline: {doc['int8']['line']}")
    failures = _failures(found, costs.get("whole config"), args.max_top1_change)
    _show(args, card, found, costs, unknown, notes, where, failures)
    doc.update(card=card.id, weights=args.weights, images=where, findings=[f.to_dict() for f in found],
               costs={k: c.to_dict() for k, c in costs.items()}, unknown=unknown, notes=notes, failures=failures,
               threshold_pts=args.max_top1_change)
    if args.fix:
        doc["fix"] = _fix(args, up)
        failures += [] if doc["fix"]["clean"] else ["the fixed config still differs (a bug in the importer's fix)"]
    doc["verdict"] = "fail" if failures else "pass"
    write_json(doc, out)
    say(f"audit: {'FAIL' if failures else 'pass'} ({out})")
    return EXIT_FAILED if failures else EXIT_OK


def int8_cost(h: Harness, card: Card, weights: str, calib: PreprocessSpec, cfg: PreprocessSpec, images: list[Path],
              labels: list[int] | None, n_calib: int) -> dict[str, Any]:
    """The int8 model (ORT static QDQ, ``parity/deploy``) calibrated on the config's calibration pipeline vs on its
    run-time pipeline, both run on the run-time tensors: what calibrating on other pixels costs."""
    from .. import runtimes
    from ..evaluation.verdicts import paired_difference, wilson
    from ..preprocess import preprocess_batch
    up = card.preprocess
    x = preprocess_batch(images, cfg.replace(layout=up.layout, dtype=up.dtype))
    preds = {}
    for name, spec in (("declared", calib), ("run time", cfg)):
        rt = runtimes.create("ort-int8", calib_images=n_calib, calib_spec=spec.replace(layout=up.layout,
                                                                                      dtype=up.dtype))
        try:
            rt.load(runtimes.Target(h, card, weights))
            preds[name] = np.concatenate([rt.infer(x[i:i + 25]).argmax(1) for i in range(0, len(x), 25)])
        finally:
            rt.close()
    a, b = preds["declared"], preds["run time"]
    agree = int((a == b).sum())
    out: dict[str, Any] = {"calib_images": n_calib, "n": len(a), "agreement": agree / len(a),
                           "agreement_ci": wilson(agree, len(a))}
    line = f"top-1 agreement {100 * agree / len(a):.1f} % on {len(a)} images ({n_calib} calibration images)"
    if labels is not None:
        y = np.asarray(labels)
        d, lo, hi = paired_difference(a == y, b == y)
        out.update(top1_declared=float((a == y).mean()), top1_runtime=float((b == y).mean()), change=d,
                   change_ci=(lo, hi))
        line += (f"; top-1 {100 * out['top1_runtime']:.1f} % -> {100 * out['top1_declared']:.1f} % "
                 f"({100 * d:+.1f} pts [{100 * lo:+.1f}, {100 * hi:+.1f}])")
    out["line"] = line
    return out


def _alone(up: PreprocessSpec, cfg: PreprocessSpec, field: str) -> PreprocessSpec:
    names = FIELDS.get(field, (field,))
    alone = up.replace(**{n: getattr(cfg, n) for n in names})
    if alone.backend == "pil" and alone.interpolation != "nearest" and not alone.antialias:
        alone = alone.replace(antialias=True)   # e.g. bilinear alone over PIL nearest: PIL antialiases all but nearest
    return alone


def _failures(found: list[Finding], whole: Cost | None, pts: float) -> list[str]:
    out = [f"{f.scope}: {f.field} {f.upstream} -> {f.config}: {f.why}" for f in found if f.severity == "error"]
    if whole is not None and whole.agreement is not None and 100 * (1 - whole.agreement) > pts:
        out.append(f"the config changes the model's top-1 on {100 * (1 - whole.agreement):.1f} % of the images "
                   f"(threshold --max-top1-change {pts:g})")
    if whole is not None and whole.top1_change is not None and -100 * whole.top1_change > pts:
        out.append(f"the config lowers top-1 by {-100 * whole.top1_change:.1f} pts (threshold {pts:g})")
    return out


def _images(args: argparse.Namespace) -> tuple[list[Path], list[int] | None, str]:
    if args.data:
        root = Path(args.data)
        if root.is_dir() and not any(root.glob("*/")) and any(p.suffix.lower() in IMAGE_SUFFIXES
                                                               for p in root.iterdir()):
            paths = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:args.limit]
            return paths, None, f"{len(paths)} unlabeled images of {root}"
        from ..evaluation.dataset import open_dataset
        ds = open_dataset(root).subset(args.limit)
        return list(ds.paths), [int(v) for v in ds.labels], f"{len(ds)} labeled images of {root}"
    real = realdata_dir()
    if real is None:
        return [], None, "no images (no --data, no shared real data): findings only"
    paths, labels = labeled_sample(real, args.limit)
    return paths, labels, f"{len(paths)} labeled images of the shared ImageNet sample"


def _runner(h: Harness, card: Card, weights: str) -> Any:
    if weights == "none":
        return None
    import onnxruntime as ort
    exp = h.export(card, weights)
    sess = ort.InferenceSession(exp.path, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name

    def run_model(x: np.ndarray) -> np.ndarray:
        out: np.ndarray = sess.run(None, {name: np.ascontiguousarray(x, np.float32)})[0]
        return out
    return run_model


def _fix(args: argparse.Namespace, up: PreprocessSpec) -> dict[str, Any]:
    path = Path(args.config)
    imp, _, text = importers.read(path, args.format)
    fixed = importers.named(path, lambda: imp.fix(path, text, up))
    out = Path(args.fix)
    try:
        out.write_bytes(fixed) if isinstance(fixed, bytes) else out.write_text(fixed)
    except OSError as e:
        raise UsageError(f"--fix {out}: cannot write ({e.strerror})") from None
    # a text format is read as if in CONFIG's place (the files beside it still apply); a binary one from OUT
    decl = imp.load(out, "") if isinstance(fixed, bytes) else imp.load(path, fixed)
    found = [f for f in differences(up, decl.spec(up)) if f.severity != "info"
             and not set(FIELDS.get(f.field, (f.field,))) <= set(decl.companion)]
    limits = [f for f in found if f.field in imp.limits]
    left = [f for f in found if f.field not in imp.limits]
    for f in limits:
        say(f"fixed config: {f.field} still differs, the format's limit: {f.why}")
    calib = decl.calibration_spec(up)
    if calib is not None:
        left += [f for f in calibration_vs_runtime(calib, decl.spec(up)) if f.severity != "info"]
    say(f"fixed config written to {out}: {'no difference left' if not left else f'{len(left)} differences left'}")
    return {"path": str(out), "clean": not left, "left": [f.to_dict() for f in left],
            "format_limits": [f.to_dict() for f in limits]}


def _show(args: argparse.Namespace, card: Card, found: list[Finding], costs: dict[str, Cost], unknown: list[str],
          notes: list[str], where: str, failures: list[str]) -> None:
    t = table(f"audit of {args.config} against {card.id}", ["scope", "field", "upstream", "config", "severity",
                                                           "why", "cost alone"])
    for f in found:
        c = costs.get(f.field) if f.scope == "run time" else None
        t.add_row(f.scope, f.field, escape(f.upstream), escape(f.config), f.severity, escape(f.why),
                  escape(c.line()) if c else "")
    if not found:
        t.add_row("", "(none)", "", "", "", "the config declares what upstream does", "")
    console.print(t)
    for n in notes:
        console.print(f"  assumption: {escape(n)}")
    for u in unknown:
        console.print(f"  [yellow]not understood[/yellow]: {escape(u)}")
    whole = costs.get("whole config")
    console.print(f"whole config on {escape(where)}: " + (escape(whole.line()) if whole else "not measured"))
    for line in failures:
        console.print(f"  [red]FAIL[/red] {escape(line)}")
