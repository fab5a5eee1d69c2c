"""Comparators: how two sets of logits are judged (Polygraphy's split: runners produce, comparators judge).

Every tolerance is a named constant with the reason for its value. Every parity comparison also
checks that the reference logits are non-trivial: parity between two near-zero outputs proves nothing.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    name: str
    max_abs: float        # max |a - b| over all logits
    max_rel: float        # max |a - b| / max |a|
    min_cosine: float     # worst per-sample cosine similarity
    min_top1: float       # fraction of probes with the same top-1
    min_top5: float       # fraction of probes with the same top-5 set
    why: str


# Native fp32 vs ONNX Runtime fp32 on the same input tensor. Measured clean errors on the seeded cards
# (logit std >= 2, |logits| up to ~50): max_abs <= 1.7e-3 (timm mobilenetv2_120d), max_rel <= 3.6e-5
# (kernel summation order and, with ORT graph optimizations on, Conv+BN folding). The bounds leave ~3x
# headroom, while the smallest injected fault (one stem output channel scaled by 1.01) moves logits by
# >= 0.35 (max_rel >= 6.8e-3, 68x the bound).
ONNX_FP32 = Tolerance("onnx-fp32", max_abs=5e-3, max_rel=1e-4, min_cosine=0.999999, min_top1=1.0, min_top5=1.0,
                      why="same fp32 graph, different kernels: only summation-order rounding is allowed")

# Non-triviality (parity on ~1e-9 logits proves nothing): every probe's logits must spread (max - min) by at
# least MIN_LOGIT_SPREAD units, its top-5 must be five distinct values (no ties), and the batch must not map
# every probe to the same class. Spread, not std: a trained MobileNetV2's logits have std ~0.75-1.3 over 1000
# classes but spread ~15-25 (measured on the real TFLite weights); softmax outputs spread < 1 and default-init
# logits ~1e-9, so both fail. Seeded weights (std 4) spread ~25.
MIN_LOGIT_SPREAD = 4.0
METRICS = ("max_abs", "max_rel", "cosine_min", "top1_agree", "top5_agree")
MIN_TOP5_GAP = 1e-6


@dataclass
class Comparison:
    label: str
    tolerance: str
    metrics: dict[str, float]
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        m = self.metrics
        head = (f"{self.label}: max_abs={m['max_abs']:.2e} max_rel={m['max_rel']:.2e} "
                f"cos_min={m['cosine_min']:.7f} top1={m['top1_agree']:.3f} top5={m['top5_agree']:.3f}")
        return head if self.passed else head + " FAILED: " + "; ".join(self.failures)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"passed": self.passed}


def topk(logits: np.ndarray, k: int = 5) -> np.ndarray:
    return np.argsort(-logits, axis=-1, kind="stable")[..., :k]


def nontrivial_failures(logits: np.ndarray) -> list[str]:
    """Reasons why these logits are too degenerate for a parity check to mean anything ([] if fine)."""
    out = []
    if logits.ndim != 2 or logits.shape[1] < 5:
        return [f"logits must be (batch, classes>=5), got {logits.shape}"]
    if not np.all(np.isfinite(logits)):
        return ["logits contain NaN/inf"]
    spread = logits.max(axis=1) - logits.min(axis=1)
    if spread.min() < MIN_LOGIT_SPREAD:
        out.append(f"logit spread {spread.min():.3g} < {MIN_LOGIT_SPREAD} on probe {int(spread.argmin())} "
                   "(degenerate weights, or probabilities instead of logits?)")
    gap_needed = MIN_TOP5_GAP
    srt = -np.sort(-logits, axis=1)[:, :5]
    gaps = -np.diff(srt, axis=1)
    if gaps.min() <= gap_needed:
        out.append(f"top-5 not distinct: smallest gap {gaps.min():.2e} <= {gap_needed:.1e} on probe "
                   f"{int(gaps.min(axis=1).argmin())}")
    if len(logits) >= 3 and len(set(topk(logits, 1)[:, 0].tolist())) == 1:
        out.append("every probe has the same top-1 class (input-independent output)")
    return out


def compare_logits(ref: np.ndarray, test: np.ndarray, tol: Tolerance, label: str = "") -> Comparison:
    ref = np.asarray(ref, np.float64)
    test = np.asarray(test, np.float64)
    if ref.shape != test.shape:
        return Comparison(label, tol.name, dict.fromkeys(METRICS, float("nan")), [f"shape {test.shape} != reference {ref.shape}"])
    if not np.all(np.isfinite(test)):
        bad = int(test.size - np.count_nonzero(np.isfinite(test)))
        return Comparison(label, tol.name, dict.fromkeys(METRICS, float("nan")),
                          [f"{bad} non-finite values (NaN/inf) in the compared logits"])
    diff = np.abs(ref - test)
    max_abs = float(diff.max())
    max_rel = max_abs / max(float(np.abs(ref).max()), 1e-30)
    num = (ref * test).sum(1)
    den = np.linalg.norm(ref, axis=1) * np.linalg.norm(test, axis=1)
    cos = num / np.maximum(den, 1e-30)
    top1 = float((topk(ref, 1) == topk(test, 1)).mean())
    t5r, t5t = topk(ref, 5), topk(test, 5)
    top5 = float(np.mean([set(a) == set(b) for a, b in zip(t5r.tolist(), t5t.tolist())]))
    metrics = {"max_abs": max_abs, "max_rel": max_rel, "cosine_min": float(cos.min()), "top1_agree": top1,
               "top5_agree": top5, "ref_logit_std_min": float(ref.std(1).min()),
               "ref_logit_spread_min": float((ref.max(1) - ref.min(1)).min()), "n": len(ref)}
    failures = [f"reference logits trivial: {r}" for r in nontrivial_failures(ref)]
    if max_abs > tol.max_abs:
        failures.append(f"max_abs {max_abs:.3e} > {tol.max_abs:.1e}")
    if max_rel > tol.max_rel:
        failures.append(f"max_rel {max_rel:.3e} > {tol.max_rel:.1e}")
    if cos.min() < tol.min_cosine:
        failures.append(f"cosine {cos.min():.7f} < {tol.min_cosine}")
    if top1 < tol.min_top1:
        failures.append(f"top-1 agreement {top1:.3f} < {tol.min_top1}")
    if top5 < tol.min_top5:
        failures.append(f"top-5 set agreement {top5:.3f} < {tol.min_top5}")
    return Comparison(label, tol.name, metrics, failures)
