"""The run report: ``report.json``, ``report.md``, ``report.html`` and ``junit-parity.xml`` from what the run's
steps wrote (``collect``), charts of measured data (``charts``), the renderings (``render``)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..registry import Registry
from . import compare
from .charts import charts
from .collect import collect
from .render import junit, markdown, render_html


def write(workdir: Path, reg: Registry, before: dict[str, Any] | None = None) -> dict[str, Path]:
    """``before``: an earlier run's results.json to compare with (``compare.changes``)."""
    workdir = Path(workdir)
    doc = collect(workdir, reg)
    doc["compare"] = compare.changes(before, doc["results"], doc.get("machine")) if before is not None else None
    out = {"json": workdir / "report.json", "md": workdir / "report.md", "html": workdir / "report.html",
           "junit": workdir / "junit-parity.xml"}
    out["json"].write_text(json.dumps(doc, indent=1, default=str))
    out["md"].write_text(markdown(doc))
    out["html"].write_text(render_html(doc, charts(doc)))
    junit(doc["results"], out["junit"])
    return out


__all__ = ["collect", "write"]
