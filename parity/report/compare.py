"""Two runs side by side: the verdicts that changed between an earlier ``results.json`` (another night, another
machine) and this run's, and whether a changed machine explains them (``parity.machine.explains``): a night whose
runner CPU changed must not read like upstream drift. Pure, framework-free."""
from __future__ import annotations

from typing import Any

from .. import machine

Doc = dict[str, Any]


def changes(before: Doc, after: list[Doc], after_machine: Doc | None) -> Doc:
    """``before``: an earlier results.json; ``after``: this run's results. The verdicts that differ (same card, check
    and weights in both), and the machine's sentence when it explains all of them."""
    old = {(r["card"], r["check"], r.get("mode", "")): r["status"] for r in before.get("results", [])}
    moved = [{"card": c, "check": k, "mode": m, "before": old[(c, k, m)], "after": r["status"]}
             for r in after for (c, k, m) in [(r["card"], r["check"], r.get("mode", ""))]
             if (c, k, m) in old and old[(c, k, m)] != r["status"]]
    why = machine.explains({m["check"] for m in moved}, before.get("machine"), after_machine) if moved else ""
    return {"changed": moved, "machine_differences": machine.differences(before.get("machine"), after_machine),
            "explained_by_machine": why}


def markdown(cmp: Doc | None) -> list[str]:
    if cmp is None:
        return []
    lines = ["", "## Against the earlier run", ""]
    lines += [f"* machine: {'; '.join(cmp['machine_differences']) or 'the same profile (or not recorded)'}"]
    if cmp["explained_by_machine"]:
        lines.append(f"* {cmp['explained_by_machine']}")
    lines += [f"* {m['card']} {m['check']} [{m['mode']}]: {m['before']} -> {m['after']}" for m in cmp["changed"]]
    if not cmp["changed"]:
        lines.append("* no verdict changed")
    return lines
