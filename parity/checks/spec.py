"""spec: the preprocessing spec the adapter derives from the framework's own API equals the registry's."""
from __future__ import annotations

from typing import Any

from ..harness import Harness
from ..registry import Card
from . import register
from .base import Check, CheckResult


@register
class SpecCheck(Check):
    kind = "spec"
    standard = True

    def run(self, h: Harness, card: Card, **params: Any) -> CheckResult:
        derived = h.derived_spec(card)
        diffs = card.preprocess.differences(derived)
        reason = ("registry vs framework: " + "; ".join(diffs)) if diffs else f"matches {derived.source}"
        return CheckResult(card.id, "spec", "fail" if diffs else "pass", reason, "-", {"derived": derived.to_dict()})
