"""Gather what a run wrote (the steps recorded in ``run.json`` and their result files) into one report document."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from .. import runlog
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
    ev = next((e for e in evals if e.get("card") == card.id and "top1" in e), None)
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
        "spec": card.preprocess.to_dict(),
        "citations": {f"{p.metric}[{p.source}]": p.citation for p in card.published},
    }


def collect(workdir: Path, reg: Registry) -> Doc:
    problems: list[str] = []
    checked = step_outputs(workdir, "check", "results.json", problems)
    results = _results(checked)
    counts = _results(step_outputs(workdir, "count", "counts.json", problems))
    evals = [e for e in _results(step_outputs(workdir, "eval", "eval.json", problems)) if "top1" in e]
    versions: dict[str, Any] = {}
    for d in checked:
        versions.update(d.get("versions", {}))
    run = runlog.load(workdir)
    rows = [_row(card, results, counts, evals) for card in reg]
    statuses = [r["status"] for r in results]
    return {"generated": time.strftime("%Y-%m-%d %H:%M:%S"), "run": run.id if run else None,
            "steps": [{"command": s.command, "state": s.state, "started": s.started} for s in (run.steps if run else [])],
            "rows": rows, "summary": {s: statuses.count(s) for s in ("pass", "fail", "skip", "error")},
            "cards": {s: sum(r["status"] == s for r in rows) for s in ("pass", "fail", "skip", "not run")},
            "failures": [r for r in results if r["status"] in ("fail", "error")], "skips": skip_groups(results),
            "cross": _load(workdir / "cross.json"), "watch": _load(workdir / "watch.json"),
            "preprocess_matrix": (_load(workdir / "preprocess.json") or {}).get("matrix"), "results": results,
            "versions": versions, "problems": problems + (run.problems() if run else []),
            "deploy": deploy.rows(results), "bench": _latest(step_outputs(workdir, "bench", "bench.json", problems)),
            "audit": audit.rows(step_outputs(workdir, "audit", "audit.json", problems)),
            "verify": verify_section.rows(step_outputs(workdir, "verify", "verify.json", problems))}


def _latest(docs: list[Doc]) -> Doc | None:
    return docs[-1] if docs else None
