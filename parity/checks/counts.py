"""counts: every published FLOPs/params cell of the card reproduced with the counting convention the registry names
(``parity.counting``), on the counting graph (BatchNorm kept) and the framework's own parameter counts."""
from __future__ import annotations

import dataclasses
import time
from typing import Any

from .. import frameworks
from ..counting import flops as flops_mod
from ..harness import DEFAULT_OPSET, Harness, Skip
from ..registry import Card
from . import register
from .base import Check, CheckResult, Needs


def counts(h: Harness, card: Card, mode: str = "seeded") -> dict[str, Any]:
    """Every FLOPs convention (on the keep-BN counting graph) and every params convention (the framework's own counts
    + the graph-derived ones) for one card: {"flops": {...}, "params": {...}, "graph": {...}, "native_counters"}."""
    def make() -> dict[str, Any]:
        exp = h.export(card, mode, DEFAULT_OPSET, "keep-bn")
        t0 = time.perf_counter()
        graph = flops_mod.op_counts(exp.path)
        h.time(card, "count", time.perf_counter() - t0)
        built = h.build(card, mode)
        t0 = time.perf_counter()
        counters = h.client(card.framework).count_native(built.key)
        h.time(card, "count", time.perf_counter() - t0)
        return {"flops": flops_mod.convention_table(graph), "native_counters": counters,
                "params": {**{k: float(v) for k, v in built.params.items()}, **flops_mod.graph_params(graph)},
                "graph": graph}
    # the counts of a model are a record of the artifact cache: a warm run neither exports nor builds for them
    return h.stored("counts", card, {"weights": h.weights_key(card, mode), "opset": DEFAULT_OPSET}, {}, make,
                    stack=frameworks.get(card.framework).stack)


@register
class CountsCheck(Check):
    kind = "counts"
    needs = Needs(weights=True)
    standard = True

    def run(self, h: Harness, card: Card, mode: str = "seeded", **params: Any) -> CheckResult:
        if not any(p.metric in ("flops", "params") for p in card.published):
            raise Skip("no published FLOPs/params for this card")
        table = counts(h, card, mode)
        cells = [flops_mod.check_cell(p, table[p.metric]) for p in card.published if p.metric in ("flops", "params")]
        bad = [c for c in cells if c.status not in ("exact", "within-tolerance")]
        approx = [c for c in cells if c.status == "within-tolerance"]
        summary = "; ".join(f"{c.metric}[{c.source}] {c.published} {c.unit}: {c.status} ({c.detail}"
                            + (f", residual {100 * c.residual_rel:+.3f}%" if c.residual_rel is not None else "") + ")"
                            for c in (bad or approx))
        reason = summary if bad else (f"{len(cells)} cells, {len(cells) - len(approx)} exact"
                                      + (f"; {summary}" if approx else ""))
        return CheckResult(card.id, "counts", "fail" if bad else "pass", reason, mode,
                           {"cells": [dataclasses.asdict(c) for c in cells], "conventions": table})
