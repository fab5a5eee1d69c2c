"""`mbv2-parity verify ARTIFACT [--card ID] [--config CONFIG] [--data DIR|LIST] [--weights MODE] [--json PATH]`: the
file a user ships, read by its own runtime in a worker (format, I/O, precision), identified (which card and weights
it was made from, with the evidence), and judged against the card's native fp32 model with the same weights (the
deploy check's measures by the precision it runs at; with ``--data`` top-1/top-5 and the paired drop). A truncated,
unknown or foreign file is refused in one line (exit 2) before any worker starts."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import EXIT_FAILED, EXIT_NOTHING, EXIT_OK, UsageError
from ..harness import Harness, write_json
from ..registry import load_registry
from ..weights import modes as weight_modes
from .common import add_workdir, json_out, say
from .common import workdir as get_workdir


def add(sub: Any) -> None:
    p = sub.add_parser("verify", help="verify a deployed file: format, I/O, which card it was made from, verdict")
    p.add_argument("artifact", help="the file you ship: .onnx, .tflite, .pt/.ptl, .xml (+ .bin), .pdmodel/.json "
                                    "(+ .pdiparams), .keras/.h5, a SavedModel directory, .pte, ncnn .param (+ .bin), "
                                    ".mnn")
    p.add_argument("--card", default=None, help="the card it claims to be made from (checked); default: identified")
    p.add_argument("--config", default=None, help="the deployment config that feeds it (an `audit` format)")
    p.add_argument("--data", default=None, help="labeled images (as `eval --data`): top-1/top-5 with intervals")
    p.add_argument("--limit", type=int, default=None, help="a stratified subset of N images of --data")
    p.add_argument("--weights", default=None, help="the weights the reference is built with (default: identified): "
                                                   "seeded | real | pretrained | canonical:PATH | file:PATH")
    add_workdir(p, "verify.json")
    p.set_defaults(fn=run, prepare=prepare, step="verify")


def prepare(args: argparse.Namespace) -> None:
    from ..verify.artifact import open_artifact
    args.art = open_artifact(Path(args.artifact))
    reg = load_registry()
    args.card_obj = reg.get(args.card) if args.card else None
    if args.config is not None and not Path(args.config).is_file():
        raise UsageError(f"--config {args.config}: no such file", hint="the deployment config that feeds the artifact")
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit {args.limit}: must be a positive number of images")
    if args.weights is not None:
        weight_modes.validate(args.weights, [args.card_obj] if args.card_obj else [])
    args.ds = None
    if args.data:
        from ..evaluation.dataset import open_dataset
        ds = open_dataset(Path(args.data))
        args.ds = ds.subset(args.limit) if args.limit else ds


def run(args: argparse.Namespace) -> int:
    from ..deploy.published import cells_for_file, deployed_cells
    from ..verify.identify import NOT_AS_METADATA, identify
    from ..verify.verdict import HYPOTHESES, Verdict, choose_spec, data_verdict, probe_verdict
    wd = get_workdir(args)
    out = json_out(args, wd, "verify.json")
    reg = load_registry()
    art = args.art
    v = Verdict()
    with Harness(reg, workdir=wd) as h:
        art.load(h)
        for line in art.describe():
            say(line)
        ident = identify(h, reg, art, args.card_obj)
        best = ident.best
        say(f"identification: {ident.sentence()}")
        for m in sorted(ident.matches, key=lambda m: -m.correlation)[:3]:
            say(f"  {m.line()}")
        card = args.card_obj or (reg.get(best.card) if best else None)
        if card is None:
            raise UsageError(f"{art.path.name}: no card to judge it against", hint="name one with --card")
        mode = args.weights
        if mode is None and best is not None and ident.identical:
            mode = best.weights.split(" ")[0] if best.weights.startswith("real") else best.weights
            if args.card_obj is not None and best.card != args.card_obj.id:
                claimed = [m for m in ident.matches if m.card == args.card_obj.id]
                v.add("other-weights", "error", f"made from {best.card}'s weights, not {args.card_obj.id}'s "
                      f"(correlation {best.correlation:.4f} vs "
                      f"{max((m.correlation for m in claimed), default=float('nan')):.4f})")
                mode = None
        elif args.card_obj is not None and mode is None:
            v.notes.append(f"the claim {args.card_obj.id} is not confirmed: {ident.sentence()}")
        spec = choose_spec(art, card, Path(args.config) if args.config else None, v)
        say(f"preprocessing from {v.preprocessing_from}")
        if best is not None and ident.identical and best.evidence.endswith(NOT_AS_METADATA) and args.config is None:
            # at the file's own precision: whatever the deployed precision's verdict, the metadata misleads a deployment
            v.add("metadata-disagrees", "error", HYPOTHESES["metadata-disagrees"].format(src=v.preprocessing_from)
                  + f" (identification: {best.line()})")
        if mode is not None:
            probe_verdict(h, art, card, mode, spec, v)
        else:
            v.notes.append("the float weights it was made from are not available here: no paired comparison")
        cells, matched_by = cells_for_file(deployed_cells(reg), art.path.stem, art.sha256)
        if args.ds is not None:
            data_verdict(h, art, card, mode, spec, args.ds, v)
    v.notes += art.notes
    _show(v, cells, matched_by)
    doc = {"artifact": str(art.path), "sha256": art.sha256, "format": art.fmt.name, "io": art.io,
           "precision": art.precision, "detail": art.detail, "runtime": art.version, "structure": art.structure,
           "metadata": art.file.get("metadata"), "identification": ident.to_dict(), "card": card.id, "weights": mode,
           "published": [vars(c) for c in cells], "published_matched_by": matched_by, **v.to_dict()}
    if not v.failures and not v.data and not ident.identical and not v.probe.get("judged"):
        # not identified as any card's weights and no labeled data: nothing was compared (no claim), or the claimed
        # weights' comparison was not judged (int8 / bf16 on seeded weights): not a pass
        doc["verdict"] = "nothing judged"
        write_json(doc, out)
        why = f"the probe comparison with the claimed weights is not judged ({v.probe['why']})" if v.probe else \
            "give --card ID --weights MODE (the weights it was made from)"
        say(f"verify: nothing judged ({out}): {ident.sentence()}, and without --data there is nothing to measure; "
            f"give --data DIR (top-1 on labeled images); {why}")
        return EXIT_NOTHING
    write_json(doc, out)
    say(f"verify: {'FAIL' if v.failures else 'pass'} ({out})")
    return EXIT_FAILED if v.failures else EXIT_OK


def _show(v: Any, cells: list[Any], matched_by: str) -> None:
    p = v.probe
    if p:
        m = p["metrics"]
        say(f"probe batch ({p['n']} images, {p['weights']} weights, judged at {p['precision']}"
            f"{'' if p['judged'] else ', not judged'}): cosine {m.get('cosine_min', float('nan')):.4f}, "
            + (f"SQNR {m['sqnr_db']:.1f} dB, " if "sqnr_db" in m else f"max |diff| {m.get('max_abs', float('nan')):.3g}, ")
            + f"top-1 agreement {m.get('top1_agree', float('nan')):.2f}, correlation {p['correlation']:.4f}")
    d = v.data
    if d:
        lo1, hi1 = d["top1_ci"]
        lo5, hi5 = d["top5_ci"]
        say(f"on {d['n']} images of {d['source']}: top-1 {100 * d['top1']:.1f} % [{100 * lo1:.1f}, {100 * hi1:.1f}], "
            f"top-5 {100 * d['top5']:.1f} % [{100 * lo5:.1f}, {100 * hi5:.1f}] (Wilson 95 %)")
        if "drop" in d:
            lo, hi = d["drop_ci"]
            say(f"  native fp32 top-1 {100 * d['native_top1']:.1f} %: drop {100 * d['drop']:.2f} pts "
                f"[{100 * lo:.2f}, {100 * hi:.2f}] (paired 95 %), agreement {100 * d['agreement']:.1f} %")
        for c in cells:
            say(f"  published: {c.metric} {c.digits} ({c.model}; {c.source}: {c.citation}; matched by {matched_by}); "
                "a subset of images is not the full validation set")
    for f in v.findings:
        say(f"finding [{f.severity}] {f.name}: {f.text}")
    for n in v.notes:
        say(f"note: {n}")
    for f in v.failures:
        say(f"FAIL {f}")
