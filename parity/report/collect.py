"""Gather what a run wrote (the steps recorded in ``run.json`` and their result files) into one report document."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from .. import findings, runlog
from ..registry import Card, Registry
from . import audit, deploy
from . import verify as verify_section
from .verdict import card_status, skip_groups

Doc = dict[str, Any]


def _load(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def step_outputs(workdir: Path, command: str, default: str, problems: list[str]) -> list[Doc]:
    """The result files of every ``command`` step of the run in ``run.json`` (wherever they were written), or
    ``WORKDIR/default`` when no run is recorded. A step whose output is missing or partial is a problem."""
    run = runlog.load(workdir)
    files = run.outputs(command) if run is not None else [workdir / default]
    docs = []
    for f in dict.fromkeys(files):
        doc = _load(f)
        if doc is None:
            if run is not None:
                problems.append(f"`{command}` wrote no results at {f}")
            continue
        if doc.get("partial"):
            problems.append(f"{f} holds partial results (the `{command}` step was interrupted)")
        docs.append(doc)
    return docs


def _results(docs: list[Doc]) -> list[Doc]:
    out: dict[tuple[Any, ...], Doc] = {}
    for doc in docs:
        for r in doc.get("results", []):
            out[(r.get("card"), r.get("check"), r.get("mode"), r.get("backend"))] = r
    return list(out.values())


def _row(card: Card, results: list[Doc], counts: list[Doc], evals: list[Doc]) -> Doc:
    mine = [r for r in results if r["card"] == card.id]
    onnx = next((r for r in mine if r["check"].startswith("onnx-opset") and r["mode"] == "seeded"), None)
    cnt = next((r for r in counts + mine if r["card"] == card.id and r["check"] == "counts"), None)
    cells = (cnt or {}).get("metrics", {}).get("cells", [])
    evs = [e for e in evals if e.get("card") == card.id and "top1" in e]
    ev = next((e for e in evs if e.get("backend") == "native"), evs[0] if evs else None)   # native: the float model
    pub = card.published_for("top1")
    first_rt = next((k for k, v in (onnx or {}).get("metrics", {}).items() if isinstance(v, dict) and "max_abs" in v), None)
    return {
        "card": card.id, "framework": card.framework, "status": card_status(mine + ([cnt] if cnt else [])),
        "checks": {r["check"] + ("" if r["mode"] in ("-", "seeded") else f"[{r['mode']}]"): r["status"] for r in mine},
        "onnx_max_abs": (onnx or {}).get("metrics", {}).get(first_rt or "", {}).get("max_abs"),
        "onnx_status": (onnx or {}).get("status"),
        "onnx_file": (onnx or {}).get("metrics", {}).get("onnx", {}),
        "counts": {"exact": sum(c["status"] == "exact" for c in cells),
                   "within_tolerance": sum(c["status"] == "within-tolerance" for c in cells),
                   "mismatch": sum(c["status"] not in ("exact", "within-tolerance") for c in cells), "cells": cells},
        "published_top1": pub[0].value / (100.0 if pub[0].unit == "%" else 1.0) if pub else None,
        "measured_top1": ev["top1"] if ev else None,
        "measured_top1_ci": ev.get("top1_ci") if ev else None,
        "measured_runtime": ev.get("backend") if ev else None,
        "measured_weights": ev.get("mode") if ev else None,
        "measured_n": ev.get("n") if ev else None,
        "evals": [{k: e.get(k) for k in ("backend", "mode", "dataset", "n", "skipped", "top1", "top1_ci", "top5", "top5_ci")}
                  | {"precision": (e.get("runtime") or {}).get("precision")} for e in evs],
        "spec": card.preprocess.to_dict(),
        "citations": {f"{p.metric}[{p.source}]": p.citation for p in card.published},
    }


def collect(workdir: Path, reg: Registry) -> Doc:
    problems: list[str] = []
    checked = step_outputs(workdir, "check", "results.json", problems)
    results = findings.apply(_results(checked), findings.load(findings.default_path()))   # re-judged: the file may
    # have changed since the check ran (an entry removed or tightened turns its results red here)
    counts = _results(step_outputs(workdir, "count", "counts.json", problems))
    evals = [e for e in _results(step_outputs(workdir, "eval", "eval.json", problems)) if "top1" in e]
    versions: dict[str, Any] = {}
    for d in checked:
        for where, vs in (d.get("versions") or {}).items():
            versions.setdefault(where, {}).update(vs)
    fw = {c.id: c.framework for c in reg}
    ran = {fw[r["card"]] for r in results if r["card"] in fw and r["status"] != "skip"}   # frameworks whose worker ran
    cache = cache_summary(checked)
    run = runlog.load(workdir)
    rows = [_row(card, results, counts, evals) for card in reg]
    statuses = [r["status"] for r in results]
    return {"generated": time.strftime("%Y-%m-%d %H:%M:%S"), "run": run.id if run else None,
            "steps": [{"command": s.command, "state": s.state, "started": s.started} for s in (run.steps if run else [])],
            "rows": rows, "summary": {s: statuses.count(s) for s in ("pass", "fail", "skip", "error", findings.EXPECTED)},
            "expected": [r for r in results if r["status"] == findings.EXPECTED],
            "machine": _machine(checked),
            "cards": {s: sum(r["status"] == s for r in rows) for s in ("pass", "fail", "skip", "not run")},
            "failures": [r for r in results if r["status"] in ("fail", "error")], "skips": skip_groups(results),
            "cross": _load(workdir / "cross.json"), "watch": _load(workdir / "watch.json"),
            "preprocess_matrix": (_load(workdir / "preprocess.json") or {}).get("matrix"), "results": results,
            "versions": versions, "versions_missing": sorted(ran - set(versions)), "cache": cache,
            "problems": problems + (run.problems() if run else []),
            "deploy": deploy.rows(results), "bench": _latest(step_outputs(workdir, "bench", "bench.json", problems)),
            "audit": audit.rows(step_outputs(workdir, "audit", "audit.json", problems)) + audit.not_audited(run),
            "verify": verify_section.rows(step_outputs(workdir, "verify", "verify.json", problems))}


def _machine(checked: list[Doc]) -> Doc | None:
    """The machine profile the run's (last) check recorded."""
    return next((d["machine"] for d in reversed(checked) if d.get("machine")), None)


def cache_summary(checked: list[Doc]) -> str:
    """One line on what the check steps took from the artifact cache across runs (``parity.cache``)."""
    kinds: dict[str, dict[str, int]] = {}
    saved, off = 0.0, False
    for d in checked:
        c = d.get("cache") or {}
        off = off or c.get("enabled") is False
        saved += float(c.get("saved_seconds", 0.0))
        for kind, row in (c.get("kinds") or {}).items():
            for outcome, n in row.items():
                kinds.setdefault(kind, {}).setdefault(outcome, 0)
                kinds[kind][outcome] += int(n)
    if not kinds:
        return "off (--no-cache)" if off else ""
    total = {o: sum(r.get(o, 0) for r in kinds.values()) for o in ("hit", "miss", "rebuilt")}
    per = ", ".join(f"{k} {r.get('hit', 0)}/{r.get('hit', 0) + r.get('miss', 0) + r.get('rebuilt', 0)}"
                    for k, r in sorted(kinds.items()))
    return (f"{total['hit']} artifacts reused, {total['miss']} made, {total['rebuilt']} damaged entries rebuilt "
            f"(reused/used per kind: {per}); the reused ones took {saved:.0f}s to make; every verdict was computed "
            "in this run")


def _latest(docs: list[Doc]) -> Doc | None:
    return docs[-1] if docs else None
