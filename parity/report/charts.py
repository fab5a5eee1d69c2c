"""Charts of measured data only (matplotlib, PNG, embedded in the HTML as data URIs): the cross-framework top-1
agreement heatmap when a cross matrix was computed, and top-1 published vs measured for the cards that were
evaluated (a card without a measurement gets no bar)."""
from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def cross_heatmap(cross: dict[str, Any]) -> str:
    import matplotlib.pyplot as plt
    names = cross["names"]
    m = np.array(cross["top1_agree"])
    fig, ax = plt.subplots(figsize=(1 + 0.7 * len(names), 0.8 + 0.6 * len(names)))
    im = ax.imshow(m, vmin=min(0.5, float(m.min())), vmax=1.0, cmap="viridis")
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=6, color="white" if m[i, j] < 0.9 else "black")
    ax.set_title(f"cross-framework top-1 agreement ({cross.get('images', '?')} images, {Path(cross.get('source', '')).name})")
    fig.colorbar(im, ax=ax, fraction=0.04)
    return _png(fig)


def top1_chart(rows: list[dict[str, Any]]) -> str:
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(rows)), 3.5))
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [100 * r["published_top1"] for r in rows], 0.4, label="published top-1")
    ax.bar(x + 0.2, [100 * r["measured_top1"] for r in rows], 0.4, label="measured top-1")
    for i, r in enumerate(rows):
        if r["measured_top1_ci"]:
            lo, hi = r["measured_top1_ci"]
            ax.plot([i + 0.2, i + 0.2], [100 * lo, 100 * hi], color="black", lw=1)
    ax.set_xticks(x, [r["card"].split("/")[-1][:24] for r in rows], rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("top-1 (%)")
    ax.legend(fontsize=7)
    ax.set_title("top-1: published vs measured (Wilson 95 % interval), evaluated cards only")
    return _png(fig)


def charts(doc: dict[str, Any]) -> dict[str, str]:
    import matplotlib
    matplotlib.use("Agg")
    out = {}
    if doc.get("cross"):
        out["cross-framework top-1 agreement"] = cross_heatmap(doc["cross"])
    measured = [r for r in doc["rows"] if r["published_top1"] is not None and r["measured_top1"] is not None]
    if measured:
        out["top-1 published vs measured"] = top1_chart(measured)
    from . import deploy
    out.update(deploy.charts(doc.get("deploy") or [], doc.get("bench"), _png))
    return out
