"""The verdict on an artifact: which preprocessing it is fed (``--config``, else its own metadata, else the card's spec;
disagreements are findings), the deploy check's measures against the card's native fp32 model with the same weights
on the probe batch (judged by the precision the artifact runs at, ``parity.deploy.precisions``), named findings for the
classic faults (class offset, BGR fed RGB, normalization baked in and applied again, a wrong input zero point, another
card's weights), and with ``--data`` top-1/top-5 with intervals. Framework-free."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..audit.diff import differences
from ..deploy.precisions import EVAL_MAX_DROP_PTS, SEEDED_NOT_JUDGED, judge
from ..evaluation.verdicts import NATIVE_ONNX_MAX_DIFF_PTS, paired_difference, wilson
from ..preprocess import geometric, normalize_batch, preprocess_batch
from ..probes import probe_images
from ..registry import Card
from ..spec import PreprocessSpec
from .identify import comparable, correlation
from .metadata import metadata_spec, raw_pixels

if TYPE_CHECKING:
    from ..harness import Harness
    from .artifact import Artifact

Array = npt.NDArray[Any]


@dataclass
class Finding:
    name: str          # class-offset | channel-order | normalization-twice | input-zero-point | other-weights | ...
    severity: str      # error | warning | info
    text: str


@dataclass
class Verdict:
    preprocessing_from: str = ""
    spec: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    probe: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, name: str, severity: str, text: str) -> None:
        self.findings.append(Finding(name, severity, text))
        if severity == "error":
            self.failures.append(f"{name}: {text}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["verdict"] = "fail" if self.failures else "pass"
        return d


# ------------------------------------------------------------------------------------------------ preprocessing
def _baked_vs_card(art: Artifact, up: PreprocessSpec) -> list[str]:
    """Where an IR's baked mean_values / scale_values (pixel units) are not the card's normalization in pixel units
    (mean / scale, std / scale), one line each."""
    meta = art.file.get("metadata") or {}
    out = []
    for key, got, want in (("mean_values", meta.get("mean"), [m / up.scale for m in up.mean]),
                           ("scale_values", meta.get("scale"), [d / up.scale for d in up.std])):
        have = got or ([0.0] * 3 if key == "mean_values" else [1.0] * 3)
        if len(have) != 3 or not np.allclose(have, want, rtol=2e-3, atol=0.05):
            out.append(f"{key} {[round(v, 3) for v in have]} (the card's in pixels: {[round(v, 3) for v in want]})")
    return out


def choose_spec(art: Artifact, card: Card, config: Path | None, v: Verdict) -> PreprocessSpec:
    up = card.preprocess
    meta, meta_src = metadata_spec(art, up)
    if config is not None:
        from ..audit import importers
        _, decl, _ = importers.read(config)
        spec, v.preprocessing_from = decl.spec(up), f"--config {config.name} ({decl.format})"
        for f in differences(up, spec):
            v.add(f"config-{f.field}", f.severity, f"the config: {f.field} {f.upstream} -> {f.config}: {f.why}")
    elif meta is not None:
        spec, v.preprocessing_from = meta, f"the artifact's metadata ({meta_src})"
    else:
        spec, v.preprocessing_from = up, f"the card's spec ({card.id})"
    if meta is not None and config is not None:
        for f in differences(meta.replace(layout=spec.layout, dtype=spec.dtype), spec):
            if f.severity != "info":
                v.add(f"metadata-vs-config-{f.field}", "warning",
                      f"the artifact's metadata ({meta_src}) says {f.upstream}, the config {f.config}")
    elif meta is not None and art.fmt.name == "openvino":
        for line in _baked_vs_card(art, up):
            v.add("metadata-normalization", "warning", f"the IR's rt_info bakes {line}")
    elif meta is not None:
        for f in differences(up, meta):
            if f.severity != "info":
                v.add(f"metadata-{f.field}", "warning",
                      f"the artifact's metadata ({meta_src}) says {f.config}, the card's spec {f.upstream}: {f.why}")
    q = art.quantized_input
    if q is not None:
        # raw pixels p fed as the integers: the model sees (p - zp) * s; the spec wants (p * scale - mean) / std
        s, zp = q
        want_a = [spec.scale / d for d in spec.std]
        want_b = [-m / d for m, d in zip(spec.mean, spec.std, strict=True)]
        a, b = s, -zp * s
        worst = max(abs(a * p + b - (wa * p + wb)) for wa, wb in zip(want_a, want_b, strict=True) for p in (0, 255))
        span = max(abs(wa * 255) for wa in want_a)
        line = (f"{art.io.get('input_dtype')} input, scale {s:.6g}, zero point {zp}: pixels 0..255 map to "
                f"[{b:.3f}, {a * 255 + b:.3f}]; the spec maps them to [{want_b[0]:.3f}, {want_a[0] * 255 + want_b[0]:.3f}]")
        if worst > 0.02 * span:
            v.add("input-zero-point" if abs(a - want_a[0]) < 0.02 * abs(want_a[0]) else "input-quantization",
                  "error", line + " (a wrong zero point)" if abs(a - want_a[0]) < 0.02 * abs(want_a[0]) else line)
        else:
            v.notes.append(line + f" (within {worst / span * 100:.1f} % of the range: raw pixels can be fed)")
    v.spec = spec.to_dict()
    return spec


# ------------------------------------------------------------------------------------------------ probe batch
HYPOTHESES = {"channel-order": "the artifact expects {other} (a {other} artifact fed {ours}): fed {other} it matches",
              "metadata-disagrees": "its metadata says normalization is baked in ({src}), so it was fed raw 0-255 "
                                    "pixels, but the model does not apply it: fed the card's normalized input it "
                                    "matches (the metadata disagrees with what the file does)",
              "normalization-twice": "normalization is baked into the artifact and applied again by the "
                                     "preprocessing: fed raw 0-255 pixels it matches",
              "class-offset": "class offset: its output {k} is class {j} of the reference ({why})"}


def _measure(art: Artifact, test_raw: Array, ref: Array, precision: str, seeded: bool, shift: int = 0) -> dict[str, Any]:
    test, ref = _aligned(art, test_raw, ref, shift)
    t, r = comparable(art, test, ref)
    if precision in SEEDED_NOT_JUDGED and seeded:
        c = judge(r, t, "fp32", "verify")
        return {"metrics": c.metrics, "failures": [], "judged": False, "correlation": correlation(t, r),
                "why": f"{precision} on seeded weights is not judged: {SEEDED_NOT_JUDGED[precision]}"}
    prec = "int8" if art.probabilities and precision == "fp32" and art.io.get("output_dtype") == "uint8" else precision
    c = judge(r, t, prec, "verify", logits=ref if art.probabilities else None, seeded=seeded)
    return {"metrics": c.metrics, "failures": list(c.failures), "judged": True, "budget": c.tolerance,
            "correlation": correlation(t, r)}


def _aligned(art: Artifact, raw: Array, ref: Array, shift: int) -> tuple[Array, Array]:
    """The artifact's scores and the reference's over the classes both have, with the artifact's class index read
    moved by ``shift`` (+1: its output k is class k-1, e.g. a background slot at 0 it does not declare). Shift 0 is
    the declared reading (a 1001-class output drops its background at 0). A class a shifted reading loses is left
    out of both, so a file that is exact but for the offset compares exactly."""
    if shift == 0:
        return art.scores(raw), ref
    o = (1 if raw.shape[1] == 1001 else 0) + shift      # class j is the artifact's output j + o
    lo, hi = max(0, -o), min(ref.shape[1], raw.shape[1] - o)
    return raw[:, lo + o:hi + o], ref[:, lo:hi]


def probe_verdict(h: Harness, art: Artifact, card: Card, mode: str, spec: PreprocessSpec, v: Verdict) -> None:
    images = [im for _, im in probe_images()]
    up = card.preprocess
    ref = np.asarray(h.native(card, mode, preprocess_batch(images, up)), np.float64)
    feed = spec.replace(layout=art.layout, dtype="float32")
    u8 = np.stack([geometric(im, feed) for im in images])
    raw = art.run(h, normalize_batch(u8, feed))
    seeded = mode == "seeded"
    main = _measure(art, raw, ref, art.precision, seeded)
    v.probe = {"weights": mode, "precision": art.precision, "n": len(images), **main}
    if not main["failures"]:
        return
    alts: dict[str, dict[str, Any]] = {}
    other = "BGR" if feed.channel_order == "RGB" else "RGB"
    # the same per-colour normalization, channels swapped: mean/std are written in the model's channel order
    swapped = feed.replace(channel_order=other, mean=tuple(feed.mean[::-1]), std=tuple(feed.std[::-1]))
    alts["channel-order"] = _measure(art, art.run(h, normalize_batch(u8, swapped)), ref, art.precision, seeded)
    rawpix = raw_pixels(feed)
    if feed != rawpix:
        alts["normalization-twice"] = _measure(art, art.run(h, normalize_batch(u8, rawpix)), ref, art.precision,
                                               seeded)
    elif raw_pixels(up) != up:   # fed raw pixels as its metadata says normalization is baked in: is it?
        as_card = up.replace(layout=art.layout, dtype="float32")
        alts["metadata-disagrees"] = _measure(art, art.run(h, normalize_batch(u8, as_card)), ref, art.precision, seeded)
    for shift in (1, -1):
        alts[f"class-offset{shift:+d}"] = _measure(art, raw, ref, art.precision, seeded, shift)
    v.probe["alternatives"] = {k: {"correlation": a["correlation"], "failures": a["failures"]} for k, a in alts.items()}
    fixed = [k for k, a in alts.items() if not a["failures"] and a["correlation"] > main["correlation"]]
    for k in fixed:
        if k == "channel-order":
            v.add(k, "error", HYPOTHESES[k].format(other=other, ours=feed.channel_order))
        elif k.startswith("class-offset"):
            shift = int(k[-2:])
            why = ("index 0 is not a background class" if raw.shape[1] == 1001 else
                   "the background index was dropped from the wrong end") if shift == 1 else "a class is missing"
            v.add("class-offset", "error", HYPOTHESES["class-offset"].format(k="k", j=f"k{-shift:+d}", why=why))
        elif k == "metadata-disagrees":
            if k not in [f.name for f in v.findings]:     # identification may have named it already
                v.add(k, "error", HYPOTHESES[k].format(src=v.preprocessing_from))
        else:
            v.add(k, "error", HYPOTHESES[k])
    if not fixed:
        v.failures.append(f"against {card.id} ({mode} weights) on the probe batch: {'; '.join(main['failures'])}")


# ------------------------------------------------------------------------------------------------ labeled data
def data_verdict(h: Harness, art: Artifact, card: Card, mode: str | None, spec: PreprocessSpec, ds: Any,
                 v: Verdict, batch: int = 50) -> None:
    """Top-1/top-5 of the artifact on the dataset (Wilson intervals) and, where the float weights are there
    (``mode``), the paired drop against the native fp32 model with its 95 % interval and agreement."""
    feed = spec.replace(layout=art.layout, dtype="float32")
    preds, nat = [], []
    for i in range(0, len(ds), batch):
        paths = list(ds.paths[i:i + batch])
        u8 = np.stack([geometric(p, feed) for p in paths])
        preds.append(np.argsort(-art.scores(art.run(h, normalize_batch(u8, feed))), 1)[:, :5])
        if mode is not None:
            ref = h.native(card, mode, preprocess_batch(paths, card.preprocess))
            nat.append(np.argsort(-np.asarray(ref), 1)[:, :5])
    y = np.asarray(ds.labels)
    p5 = np.concatenate(preds)
    n = len(y)
    top1, top5 = p5[:, 0] == y, (p5 == y[:, None]).any(1)
    d: dict[str, Any] = {"n": n, "top1": float(top1.mean()), "top1_ci": wilson(int(top1.sum()), n),
                         "top5": float(top5.mean()), "top5_ci": wilson(int(top5.sum()), n), "source": str(ds.root)}
    if mode is not None:
        n5 = np.concatenate(nat)
        ntop1 = n5[:, 0] == y
        drop, lo, hi = paired_difference(ntop1, top1)
        budget = NATIVE_ONNX_MAX_DIFF_PTS if art.precision == "fp32" else EVAL_MAX_DROP_PTS.get(art.precision, 2.0)
        d.update(native_top1=float(ntop1.mean()), native_top5=float((n5 == y[:, None]).any(1).mean()),
                 drop=drop, drop_ci=(lo, hi), agreement=float((n5[:, 0] == p5[:, 0]).mean()), budget_pts=budget,
                 weights=mode)
        if 100 * lo > budget:
            v.failures.append(f"top-1 drops {100 * drop:.2f} pts [{100 * lo:.2f}, {100 * hi:.2f}] against the native "
                              f"fp32 model on {n} images: above the {art.precision} budget of {budget} pts")
    v.data = d
