"""`mbv2-parity preprocess`: the reference pipeline vs each framework's own on edge-case and real images, and the
preprocessing difference matrix priced in top-1 with the real TFLite-derived weights."""
from __future__ import annotations

import argparse
from typing import Any

from rich.markup import escape

from .. import checks
from ..errors import EXIT_FAILED, EXIT_OK, UsageError
from ..harness import Harness, write_json
from ..paths import realdata_dir
from ..preprocess.matrix import difference_matrix, labeled_sample
from ..probes import preprocessing_images
from ..registry import Registry, load_registry
from ..weights.transplant import in_layout, tflite_spec, to_canonical
from .common import add_models, add_workdir, console, preflight, say, select, status, table
from .common import workdir as get_workdir

PTQ = "tf2_mobilenet_v2_1.0_224_ptq.tflite"


def add(sub: Any) -> None:
    p = sub.add_parser("preprocess", help="reference vs native preprocessing per card (and the difference matrix "
                                          "with --matrix N)")
    add_models(p)
    p.add_argument("--real", type=int, default=24, help="real images added to the edge cases (default 24)")
    p.add_argument("--matrix", type=int, default=0, metavar="N",
                   help="also price the difference matrix on N labeled images with the real TFLite weights (default: "
                        "not run: it runs every spec through the model; the README's table used 100)")
    add_workdir(p)
    p.set_defaults(fn=run, prepare=prepare, step="preprocess")


def prepare(args: argparse.Namespace) -> None:
    if args.real < 0 or args.matrix < 0:
        raise UsageError("--real and --matrix take a number of images >= 0")
    args.cards = select(args)
    preflight(args.cards)


def run(args: argparse.Namespace) -> int:
    wd = get_workdir(args)
    reg = load_registry()
    images = preprocessing_images(wd / "edge-images", args.real)
    doc: dict[str, Any] = {"checks": [], "run": args.run_id}
    t = table(f"reference vs native preprocessing, {len(images)} images (edge cases + real)",
              ["card", "status", "max |diff| (input units)", "max / mean diff (0-255 levels)", "decoder / backend"],
              [c.id for c in args.cards])
    fails = 0
    with Harness(reg, workdir=wd) as h:
        for c in args.cards:
            r = checks.run("preprocess", h, c, images=images)
            doc["checks"].append(r.to_dict())
            m = r.metrics
            fails += r.status != "pass"
            t.add_row(escape(c.id), status(r.status), f"{m.get('max_abs', float('nan')):.1e}",
                      f"{m.get('max_pixel_levels', float('nan')):.2g} / {m.get('mean_pixel_levels', float('nan')):.2g}",
                      f"{c.preprocess.decoder} / {c.preprocess.backend}")
        console.print(t)
        root = realdata_dir()
        if args.matrix and root is not None:
            doc["matrix"] = matrix(h, reg, root, args.matrix, wd)
        elif args.matrix:
            say("note: --matrix needs the real data (MBV2_PARITY_REALDATA): the difference matrix was not run")
    write_json(doc, wd / "preprocess.json")
    return EXIT_FAILED if fails else EXIT_OK


def matrix(h: Harness, reg: Registry, root: Any, n: int, wd: Any) -> dict[str, Any]:
    cfg = reg.sections["preprocess_matrix"]
    imgs, labels = labeled_sample(root, n)
    canon = to_canonical(h, root / "tflite" / PTQ)
    model = reg.get(cfg["model"])
    specs = {name: reg.get(cid).preprocess for name, cid in cfg["specs"].items()}
    specs[cfg["tflite_spec_name"]] = tflite_spec(1 / 127.5, 127)

    def run_model(x: Any, layout: str) -> Any:
        nchw = x if layout == "NCHW" else x.transpose(0, 3, 1, 2)
        return h.native(model, f"canonical:{canon}", in_layout(nchw, model.preprocess.layout))

    m = difference_matrix(specs, imgs, run_model, labels, own=cfg["own"])
    console.print(f"preprocessing difference matrix: mean |pixel difference| (0-255) of the resized+cropped images, "
                  f"'≠norm' where the normalization differs; last column: the real TFLite MobileNetV2 (in "
                  f"{escape(model.id)}) fed each spec, top-1 on {len(imgs)} labeled ImageNet images")
    console.print(escape(m.markdown()))
    (wd / "preprocess.md").write_text(m.markdown() + "\n")
    return m.to_dict()
