"""nontrivial: the model's logits on the probe batch are realistic (parity on ~1e-9 logits proves nothing)."""
from __future__ import annotations

from typing import Any

from ..compare import nontrivial_failures
from ..harness import Harness
from ..registry import Card
from . import register
from .base import Check, CheckResult, Needs


@register
class NontrivialCheck(Check):
    kind = "nontrivial"
    needs = Needs(weights=True, runtimes=("native",))

    def run(self, h: Harness, card: Card, mode: str = "seeded", **params: Any) -> CheckResult:
        _, x_path = h.probe_tensor(card.preprocess)
        y = h.native(card, mode, x_path)
        fails = nontrivial_failures(y)
        m = {"logit_std_min": float(y.std(1).min()), "logit_spread_min": float((y.max(1) - y.min(1)).min()),
             "distinct_top1": len(set(y.argmax(1).tolist()))}
        return CheckResult(card.id, "nontrivial", "fail" if fails else "pass", "; ".join(fails) or
                           f"logit spread >= {m['logit_spread_min']:.1f} (std >= {m['logit_std_min']:.2f}), "
                           f"{m['distinct_top1']} distinct top-1", mode, m)
