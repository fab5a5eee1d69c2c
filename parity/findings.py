"""Known findings: results the project has examined and accepts, so that a run is red only for news.

``fixtures/known_findings.toml`` records each finding: which results it covers (card, check and weights-mode
patterns), the status expected and a phrase of the reason that says how it fails, the measured numbers with a
tolerance, why it is accepted, and where it is documented and measured. A result that matches an entry and
reproduces it (same status, the phrase, every number within its tolerance) gets the status ``expected``: shown and
counted as such, not a failure. It goes red (``fail``) when the finding changes: the check now passes (the finding
disappeared), it fails differently (another status or reason), or a number moved outside its tolerance. An entry
without measured numbers, reason or source is refused when the file loads. Pure, framework-free (mutation-tested).
"""
from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .registry import RegistryError

EXPECTED = "expected"
STATUSES = ("fail", "error", "skip")
REQUIRED = ("id", "cards", "checks", "modes", "status", "fails_with", "measured", "reason", "documented", "source")


@dataclass(frozen=True)
class Measured:
    path: str          # a dotted path in the result's metrics; "{runtime}" is the check's runtime (deploy-X -> X)
    value: float
    tol: float

    def get(self, metrics: dict[str, Any], runtime: str) -> float | None:
        cur: Any = metrics
        for part in self.path.replace("{runtime}", runtime).split("."):
            if not isinstance(cur, dict) or part not in cur:
                return None
            cur = cur[part]
        return float(cur) if isinstance(cur, (int, float)) and not isinstance(cur, bool) else None


@dataclass(frozen=True)
class Finding:
    id: str
    cards: tuple[str, ...]
    checks: tuple[str, ...]
    modes: tuple[str, ...]
    status: str
    fails_with: str
    measured: tuple[Measured, ...]
    reason: str
    documented: str
    source: str

    def covers(self, card: str, check: str, mode: str) -> bool:
        return (any(fnmatch.fnmatchcase(card, p) for p in self.cards)
                and any(fnmatch.fnmatchcase(check, p) for p in self.checks)
                and any(fnmatch.fnmatchcase(mode, p) for p in self.modes))

    def judge(self, r: dict[str, Any]) -> tuple[str, str]:
        """(status, reason) of a covered result: ``expected`` when it reproduces this finding, else ``fail`` naming
        what changed."""
        status, reason = str(r["status"]), str(r.get("reason", ""))
        head = f"known finding {self.id}"
        if status == "pass":
            return "fail", (f"{head} no longer reproduces: the check passes now ({reason}); if upstream fixed it, "
                            f"remove the entry from fixtures/known_findings.toml")
        if status != self.status or self.fails_with not in reason:
            return "fail", (f"{head} fails differently: expected {self.status} with {self.fails_with!r}, got "
                            f"{status}: {reason}")
        runtime = str(r.get("check", "")).removeprefix("deploy-")
        moved = []
        for m in self.measured:
            got = m.get(r.get("metrics") or {}, runtime)
            if got is None:
                moved.append(f"{m.path} not measured")
            elif not abs(got - m.value) <= m.tol:
                moved.append(f"{m.path} {got:.4g} outside {m.value:g} ± {m.tol:g}")
        if moved:
            return "fail", f"{head} moved: {'; '.join(moved)} ({reason})"
        return EXPECTED, f"{head} (as recorded, {self.documented}): {reason}"


def _finding(i: int, d: dict[str, Any], where: str) -> Finding:
    label = f"{where}: [[finding]] #{i + 1} ({d.get('id', 'no id')})"
    missing = [k for k in REQUIRED if d.get(k) in (None, "", [], {})]
    if missing:
        raise RegistryError(f"{label}: missing {', '.join(missing)}",
                            hint="a known finding records which checks, the status, how it fails, the measured "
                                 "numbers with a tolerance, why it is accepted, where it is documented and its source")
    unknown = sorted(set(d) - set(REQUIRED))
    if unknown:
        raise RegistryError(f"{label}: unknown field {', '.join(unknown)}", hint=f"fields: {', '.join(REQUIRED)}")
    if d["status"] not in STATUSES:
        raise RegistryError(f"{label}: status {d['status']!r}", hint=f"one of {', '.join(STATUSES)}")
    measured = []
    for path, v in d["measured"].items():
        if not (isinstance(v, dict) and set(v) == {"value", "tol"}
                and all(isinstance(v[k], (int, float)) and not isinstance(v[k], bool) for k in v) and v["tol"] >= 0):
            raise RegistryError(f"{label}: measured {path!r} = {v!r}",
                                hint="each measured number is { value = X, tol = T } with T >= 0")
        measured.append(Measured(path, float(v["value"]), float(v["tol"])))

    def strings(k: str) -> tuple[str, ...]:
        v = d[k]
        if not (isinstance(v, list) and v and all(isinstance(s, str) and s for s in v)):
            raise RegistryError(f"{label}: {k} must be a list of patterns, got {v!r}")
        return tuple(v)
    return Finding(str(d["id"]), strings("cards"), strings("checks"), strings("modes"), str(d["status"]),
                   str(d["fails_with"]), tuple(measured), str(d["reason"]), str(d["documented"]), str(d["source"]))


def load(path: Path) -> list[Finding]:
    """The findings file; refused (``RegistryError``) when an entry lacks numbers, reason or source, or two share an id."""
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise RegistryError(f"{path}: cannot read the known findings: {e}") from e
    out = [_finding(i, d, path.name) for i, d in enumerate(doc.get("finding", []))]
    ids = [f.id for f in out]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise RegistryError(f"{path.name}: finding id {', '.join(dup)} used twice")
    return out


def apply(results: list[dict[str, Any]], findings: list[Finding]) -> list[dict[str, Any]]:
    """The results with each covered one judged against its finding (``status`` ``expected`` or ``fail``; the finding's
    id and the result's own status and reason kept in ``metrics.finding``); a skipped result stays skipped (the finding
    was not exercised); the rest unchanged. Idempotent: a result judged before is judged again from its own outcome."""
    out = []
    for r in results:
        metrics = dict(r.get("metrics") or {})
        own = metrics.pop("finding", None)
        if isinstance(own, dict):             # judged before (a merged run, a report): start from its own outcome
            r = {**r, "status": own["status"], "reason": own["reason"], "metrics": metrics}
        f = next((f for f in findings if f.covers(str(r["card"]), str(r["check"]), str(r.get("mode", "")))), None)
        if f is None or r["status"] == "skip":
            out.append(r)
            continue
        status, reason = f.judge(r)
        out.append({**r, "status": status, "reason": reason,
                    "metrics": {**metrics, "finding": {"id": f.id, "status": r["status"], "reason": r.get("reason", "")}}})
    return out


def default_path() -> Path:
    from .paths import FIXTURES
    from .settings import findings_file
    return findings_file() or FIXTURES / "known_findings.toml"
