"""`mbv2-parity transplant` (weights from one framework to another's native file) and `mbv2-parity cross` (the same
weights in every framework x padding, plus the TFLite interpreter)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
from rich.markup import escape

from .. import frameworks
from ..errors import EXIT_OK, UsageError
from ..harness import Harness, write_json
from ..preprocess import geometric, preprocess_batch
from ..probes import probe_images
from ..registry import load_registry
from ..weights.transplant import cross_matrix, tflite_spec, to_canonical, transplant
from ..workers.interpreters import preflight
from .common import add_workdir, console, json_out, say, table
from .common import workdir as get_workdir

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def add(sub: Any) -> None:
    p = sub.add_parser("transplant", help="move weights to another framework: SRC (TFLite, canonical .safetensors or "
                                          "a native weight file) -> the target's native weight file")
    p.add_argument("src", metavar="SRC", help="the weights to move: a .tflite, a canonical .safetensors or a native "
                                              "weight file (.pth/.h5/.pdparams; a .pth needs --from)")
    p.add_argument("--to", required=True, choices=frameworks.names(), metavar="FRAMEWORK",
                   help="the framework whose native weight file is written: " + ", ".join(frameworks.names()))
    p.add_argument("--out", help="output path (default: SRC's name with the framework suffix, in the current directory)")
    p.add_argument("--from", dest="source_framework", choices=frameworks.names(),
                   help="framework that wrote a native SRC (.pth needs it)")
    p.add_argument("--padding", choices=frameworks.PADDINGS,
                   help="build the target with this padding (default: the padding the weights were trained with)")
    add_workdir(p)
    p.set_defaults(fn=run_transplant, prepare=prepare_transplant)
    p = sub.add_parser("cross", help="the same weights in every framework x padding (+ TFLite interpreter)")
    p.add_argument("src", metavar="SRC", help="the weights every framework is built with (.tflite, canonical "
                                              ".safetensors or a native weight file)")
    p.add_argument("--images", help="a directory of images (default: the probe set)")
    p.add_argument("--limit", type=int, default=None, help="with --images: the first N images, sorted by name (default: all)")
    p.add_argument("--from", dest="source_framework", choices=frameworks.names(),
                   help="framework that wrote a native SRC (.pth needs it)")
    add_workdir(p, "cross.json")
    p.set_defaults(fn=run_cross, prepare=prepare_cross, step="cross")


def _source(path: str) -> Path:
    src = Path(path)
    if not src.is_file():
        raise UsageError(f"source weights not found: {src}")
    return src


def prepare_transplant(args: argparse.Namespace) -> None:
    _source(args.src)
    if args.padding and args.padding not in frameworks.get(args.to).paddings:
        raise UsageError(f"--padding {args.padding}: {args.to} builds {', '.join(frameworks.get(args.to).paddings)} only")
    if args.out and Path(args.out).is_dir():
        raise UsageError(f"--out {args.out}: is a directory", hint="give the weight file's path")
    preflight({f.stack for f in frameworks.FRAMEWORKS.values()
               if f.name in (args.to, args.source_framework) or Path(args.src).name.endswith(f.weight_suffixes)})


def run_transplant(args: argparse.Namespace) -> int:
    with Harness(load_registry(), workdir=get_workdir(args)) as h:
        res = transplant(h, args.src, args.to, args.out, args.padding, args.source_framework)
    say(f"wrote {res['path']} ({args.to}, built with {res['padding']} padding; the weights were trained with "
        f"{res['weights_padding']}); canonical: {res['canonical']}; BN running_var shifted by at most "
        f"{res['max_var_shift']:.2e} so a stock model (eps {res['bn_eps_written_for']}) computes the same")
    if res["padding"] != res["weights_padding"]:
        console.print(f"[yellow]warning:[/] {args.to} is built with {res['padding']} padding but these weights were "
                      "trained with " + escape(res["weights_padding"]) + ": expect different top-1 on real images "
                      "(see `mbv2-parity cross`)")
    if res["padding"] != res["stock_padding"]:
        console.print(f"[yellow]warning:[/] a stock {args.to} model pads {res['stock_padding']}; this file needs "
                      f"{res['padding']} padding: loaded into the stock model it computes a different function "
                      "(build the model with that padding)")
    return EXIT_OK


def prepare_cross(args: argparse.Namespace) -> None:
    _source(args.src)
    if args.limit is not None and args.limit <= 0:
        raise UsageError(f"--limit {args.limit}: must be a positive number of images")
    if args.images:
        d = Path(args.images)
        if not d.is_dir():
            raise UsageError(f"--images {d}: not a directory")
        args.files = sorted(p for p in d.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[: args.limit]
        if not args.files:
            raise UsageError(f"--images {d}: no images ({', '.join(IMAGE_SUFFIXES)})")
    preflight({f.stack for f in frameworks.FRAMEWORKS.values()})


def run_cross(args: argparse.Namespace) -> int:
    wd = get_workdir(args)
    out = json_out(args, wd, "cross.json")
    src = Path(args.src)
    images: list[Any] = list(getattr(args, "files", None) or [im for _, im in probe_images()])
    scale, zp = 1 / 127.5, 127
    if src.suffix == ".tflite":
        from ..weights.tflite_import import read
        _, info = read(src)
        scale, zp = info.input_scale, info.input_zero_point
    spec = tflite_spec(scale, zp)
    with Harness(load_registry(), workdir=wd) as h:
        cp = to_canonical(h, src, args.source_framework)
        u8 = np.stack([geometric(im, spec) for im in images]) if src.suffix == ".tflite" else None
        m = cross_matrix(h, cp, preprocess_batch(images, spec), tflite=(str(src), u8) if u8 is not None else None)
    t = table(f"cross-framework matrix: {src.name}, {len(images)} images; max |logit diff| / top-1 agreement "
              "(vs the interpreter: max |probability diff|)", ["", *m.names])
    for i, a in enumerate(m.names):
        t.add_row(escape(a), *(f"{m.max_abs[i, j]:.1e} / {m.top1_agree[i, j]:.3f}" if i != j else "-"
                               for j in range(len(m.names))))
    console.print(t)
    write_json({"source": str(src), "images": len(images), "run": args.run_id, **m.to_dict()}, out)
    return EXIT_OK
