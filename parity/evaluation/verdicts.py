"""The judging of an evaluation, apart from running it (as ``parity.compare`` is apart from the runtimes):
counting, intervals, when a result cannot stand (nothing evaluated, unreadable images, labels off by one), runtimes
that disagree, and the rule against the published table. Pure functions, framework-free; the mutation-testing env
(``tox -e mutation``) mutates this module."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..registry import Card

Z95 = 1.959963984540054
FULL_VAL = 50_000
FULL_TOLERANCE_PTS = 0.3   # full val vs published: published numbers come from other decoders/libraries/versions
NATIVE_ONNX_MAX_DIFF_PTS = 0.1   # same weights, same tensors: only fp32 ties may flip
# ILSVRC2012 val decodes completely with PIL and OpenCV (0 of 50,000 unreadable); more than 1 % unreadable images
# means a broken copy or wrong paths, and the top-1 of the rest would be a different population's.
MAX_SKIPPED_SHARE = 0.01
# Off-by-one labels (1-based file, TF's 1001-class mapping): with real weights, top-1 against the labels shifted by
# one is far above top-1 against the labels as given. Judged on >= LABEL_SHIFT_MIN_IMAGES images with real weights.
LABEL_SHIFT_MIN_IMAGES = 20
LABEL_SHIFT_MIN_TOP1 = 0.2
LABEL_SHIFT_RATIO = 3.0


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, centre - half), min(1.0, centre + half))


def count_correct(logits: np.ndarray, labels: np.ndarray) -> tuple[int, int, np.ndarray]:
    """(top-1 hits, top-5 hits, top-1 predictions) of a batch of logits against 0-based labels."""
    top5 = np.argsort(-logits, axis=1, kind="stable")[:, :5]
    return int((top5[:, 0] == labels).sum()), int((top5 == labels[:, None]).any(1).sum()), top5[:, 0]


def label_shift(predictions: np.ndarray, labels: np.ndarray) -> dict[int, float]:
    """Top-1 of the predictions against the labels shifted by -1, 0 and +1 (evidence of an off-by-one mapping)."""
    return {d: float((predictions == labels + d).mean()) if len(labels) else 0.0 for d in (-1, 0, 1)}


def label_shift_failure(predictions: np.ndarray, labels: np.ndarray) -> str:
    """A reason when the labels look shifted by one (real weights only), else ""."""
    if len(labels) < LABEL_SHIFT_MIN_IMAGES:
        return ""
    acc = label_shift(predictions, labels)
    for d in (-1, 1):
        if acc[d] >= LABEL_SHIFT_MIN_TOP1 and acc[d] >= LABEL_SHIFT_RATIO * max(acc[0], 1e-9):
            return (f"labels look off by {-d:+d}: top-1 is {100 * acc[0]:.1f} % against the labels as given but "
                    f"{100 * acc[d]:.1f} % against labels {d:+d} (a 1-based file or a 1001-class mapping?)")
    return ""


@dataclass
class EvalResult:
    card: str
    backend: str
    mode: str
    dataset: str
    n: int
    skipped: int
    top1: float
    top5: float
    top1_ci: tuple[float, float]
    top5_ci: tuple[float, float]
    seconds: float
    images_per_s: float
    cache_hit: bool
    skipped_files: list[str] = field(default_factory=list)
    predictions: list[int] = field(default_factory=list, repr=False)
    labels: list[int] = field(default_factory=list, repr=False)
    cache_dir: str = ""
    runtime: dict[str, Any] = field(default_factory=dict)     # what the runtime reports it ran (RuntimeInfo)
    # per evaluated image, in the order of ``predictions`` (``parity.evaluation.shards`` writes them):
    ids: list[str] = field(default_factory=list, repr=False)            # path relative to the dataset root
    top5_classes: list[list[int]] = field(default_factory=list, repr=False)     # class indices, best first
    scores: list[list[float]] = field(default_factory=list, repr=False)  # the runtime's outputs at those indices
    digests: list[str] = field(default_factory=list, repr=False)        # sha256 (16 hex) of the float32 logits row

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for per_image in ("predictions", "labels", "ids", "top5_classes", "scores", "digests"):
            d.pop(per_image)
        return d

    def failures(self, real_weights: bool) -> list[str]:
        """Why this result cannot stand as a measurement ([] when it can): nothing evaluated, too many images
        skipped, or (real weights) labels that look off by one."""
        total = self.n + self.skipped
        if self.n == 0:
            return [f"0 of {total} images evaluated" + (f" (first unreadable: {self.skipped_files[0]})"
                                                        if self.skipped_files else "")]
        out = []
        if total and self.skipped / total > MAX_SKIPPED_SHARE:
            out.append(f"{self.skipped} of {total} images unreadable ({100 * self.skipped / total:.1f} % > "
                       f"{100 * MAX_SKIPPED_SHARE:.0f} %; first: {self.skipped_files[0]})")
        if real_weights:
            why = label_shift_failure(np.asarray(self.predictions), np.asarray(self.labels))
            if why:
                out.append(why)
        return out


def native_onnx_failure(results: dict[str, EvalResult]) -> str:
    """Same weights and tensors through the native framework and an fp32 runtime: top-1 may differ only by fp32 ties
    (``NATIVE_ONNX_MAX_DIFF_PTS``). Lower-precision runtimes are judged by the deployment check, not here."""
    if "native" not in results:
        return ""
    from ..deploy.precisions import judged_precision
    for name, r in results.items():
        if name == "native" or judged_precision(r.runtime) != "fp32":
            continue
        diff = round(abs(results["native"].top1 - r.top1) * 100, 9)   # no float noise at the bound
        if diff > NATIVE_ONNX_MAX_DIFF_PTS:
            return (f"native vs {name} top-1 differ by {diff:.2f} pts > {NATIVE_ONNX_MAX_DIFF_PTS} (same weights, "
                    "same tensors)")
    return ""


def deployed_failures(results: dict[str, EvalResult]) -> list[str]:
    """Each lower-precision runtime against native fp32 on the same images: a failure when the paired 95 % interval
    of the top-1 drop lies entirely above the precision's budget (``EVAL_MAX_DROP_PTS``)."""
    from ..deploy.precisions import EVAL_MAX_DROP_PTS, judged_precision
    ref = results.get("native")
    out: list[str] = []
    if ref is None or not ref.n:
        return out
    for name, r in results.items():
        precision = judged_precision(r.runtime)
        if name == "native" or precision == "fp32" or not r.n:
            continue
        lab = np.asarray(r.labels)
        d, lo, hi = paired_difference(np.asarray(ref.predictions) == lab, np.asarray(r.predictions) == lab)
        budget = EVAL_MAX_DROP_PTS[precision]
        if 100 * lo > budget:
            out.append(f"{name} ({precision}) loses {100 * d:.2f} pts of top-1 [95 % CI {100 * lo:.2f}, {100 * hi:.2f}] "
                       f"against native fp32 on the same images: more than the {precision} budget of {budget} pts"
                       + (f" (suspect: {r.runtime['detail']['suspect']})"
                          if r.runtime.get("detail", {}).get("suspect") else ""))
    return out


@dataclass
class PublishedCheck:
    metric: str
    source: str
    published: float       # fraction
    measured: float
    interval: tuple[float, float]
    status: str            # pass | fail
    rule: str


def check_against_published(card: Card, res: EvalResult, full: bool | None = None) -> list[PublishedCheck]:
    """Full val: |measured - published| <= FULL_TOLERANCE_PTS. Subset: published inside the Wilson 95 % interval."""
    full = res.n >= FULL_VAL if full is None else full
    out = []
    for metric, measured, ci in (("top1", res.top1, res.top1_ci), ("top5", res.top5, res.top5_ci)):
        # an error rate (seed 004: "Top-1 error 28.12") is published accuracy 100 - error
        cells = [(p, p.value / 100.0 if p.unit == "%" else p.value) for p in card.published_for(metric)]
        cells += [(p, 1.0 - p.value / 100.0) for p in card.published_for(f"{metric}_err")]
        for p, pub in cells:
            if full:
                ok = round(abs(measured - pub) * 100, 9) <= FULL_TOLERANCE_PTS   # no float noise at the bound
                rule = f"|measured - published| <= {FULL_TOLERANCE_PTS} pts (full val)"
            else:
                ok = ci[0] <= pub <= ci[1]
                rule = f"published inside the Wilson 95 % interval of {res.n} images"
            out.append(PublishedCheck(metric, p.source, pub, measured, ci, "pass" if ok else "fail", rule))
    return out


def paired_difference(a_correct: list[bool] | np.ndarray, b_correct: list[bool] | np.ndarray,
                      z: float = Z95) -> tuple[float, float, float]:
    """The difference of two top-1 accuracies measured on the same images (a - b) with its 95 % interval:
    Newcombe's method 10 (1998) for paired proportions -- Wilson intervals of each, combined with the correlation
    of the pairs. Returns (difference, low, high)."""
    a = np.asarray(a_correct, bool)
    b = np.asarray(b_correct, bool)
    n = len(a)
    if n == 0 or len(b) != n:
        raise ValueError(f"paired difference needs two equal, non-empty samples ({len(a)} vs {len(b)})")
    both, only_a = int((a & b).sum()), int((a & ~b).sum())
    only_b, neither = int((~a & b).sum()), int((~a & ~b).sum())
    p1, p2 = (both + only_a) / n, (both + only_b) / n
    l1, u1 = wilson(both + only_a, n, z)
    l2, u2 = wilson(both + only_b, n, z)
    den = math.sqrt((both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither))
    phi = (both * neither - only_a * only_b) / den if den else 0.0
    delta = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    eps = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    d = p1 - p2
    return d, max(-1.0, d - delta), min(1.0, d + eps)


def mcnemar(a_correct: list[bool] | np.ndarray, b_correct: list[bool] | np.ndarray) -> float:
    """Two-sided exact McNemar p-value: are the images that only one run gets right split evenly?"""
    a = np.asarray(a_correct, bool)
    b = np.asarray(b_correct, bool)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return float(min(1.0, 2 * tail))
