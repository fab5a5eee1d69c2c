"""meta: the registry's URL and published numbers vs the metadata the framework ships with the weights.

The adapter's ``meta`` op maps its framework's own metadata onto registry terms: ``published`` ({metric: {field,
value}} as cited under registry source ``source``) and ``card_fields`` ({"section.field": value} of the card).
Only what the framework ships is compared.
"""
from __future__ import annotations

from typing import Any

from ..harness import Harness
from ..registry import Card
from . import register
from .base import Check, CheckResult


@register
class MetaCheck(Check):
    kind = "meta"
    standard = True

    def run(self, h: Harness, card: Card, **params: Any) -> CheckResult:
        got = h.framework_meta(card)
        if not (got.url or got.published or got.card_fields):   # nothing compared is never a pass
            return CheckResult(card.id, "meta", "skip", f"{card.framework} ships no metadata for these weights "
                               "(no URL, no published numbers): nothing to compare", "-", {"framework_meta": got.meta})
        diffs = []
        if got.url and got.url != card.weights.url:
            diffs.append(f"url {got.url} != registry {card.weights.url}")
        for metric, entry in got.published.items():
            pubs = card.published_for(metric, got.source)
            if pubs and float(pubs[0].digits) != float(entry["value"]):
                diffs.append(f"{entry['field']} {entry['value']} != registry {pubs[0].digits}")
        for dotted, value in got.card_fields.items():
            section, name = dotted.split(".", 1)
            mine = getattr(getattr(card, section), name)
            if mine not in (None, "") and mine != value:
                diffs.append(f"{name} {value} != registry {mine}")
        return CheckResult(card.id, "meta", "fail" if diffs else "pass",
                           "; ".join(diffs) or "registry matches framework metadata", "-", {"framework_meta": got.meta})
