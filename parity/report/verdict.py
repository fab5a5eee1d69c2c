"""The report's judging: the verdict of `report --strict` on a run (green only with evidence), a card's status, skips
grouped by reason. Pure, framework-free (mutation-tested)."""
from __future__ import annotations

from typing import Any

from ..errors import EXIT_FAILED, EXIT_NOTHING, EXIT_OK
from ..runlog import Run


def verdict(doc: dict[str, Any], run: Run | None) -> tuple[int, str]:
    """(exit code, one-line reason): nothing to report without a `check` in this run; not green when a step did not
    finish or exited non-zero, results are missing or partial, or a check or published cell failed; nothing checked
    when every check was skipped."""
    if run is None or not run.outputs("check"):
        return EXIT_NOTHING, "nothing to report: no `check` recorded in this run"
    problems = list(doc.get("problems", []))
    bad = doc["summary"]["fail"] + doc["summary"]["error"] + sum(r["counts"]["mismatch"] for r in doc["rows"])
    if bad:
        problems.append(f"{bad} failing checks/cells")
    if problems:
        return EXIT_FAILED, "the run is not green: " + "; ".join(problems)
    expected = doc["summary"].get("expected", 0)
    if not doc["summary"]["pass"] and not expected:
        return EXIT_NOTHING, "nothing to report: the run's checks were all skipped"
    return EXIT_OK, f"{doc['summary']['pass']} checks passed" + (
        f", {expected} known findings as expected" if expected else "")


def card_status(mine: list[dict[str, Any]]) -> str:
    """pass | fail | skip (every check skipped) | not run (no check of this card in the run); a known finding reproduced
    (``expected``) counts as checked, not failed."""
    if not mine:
        return "not run"
    if any(r["status"] in ("fail", "error") for r in mine):
        return "fail"
    return "pass" if any(r["status"] in ("pass", "expected") for r in mine) else "skip"


def skip_groups(results: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Skipped checks grouped by reason (the card-specific URL left out, so one reason lists all its cards)."""
    groups: dict[str, list[str]] = {}
    for r in results:
        if r["status"] == "skip":
            reason = r["reason"].split(" (url:")[0]
            groups.setdefault(reason, []).append(f"{r['card']} {r['check']} [{r['mode']}]")
    return groups
