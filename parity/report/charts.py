"""Charts of measured data only (matplotlib, PNG, embedded in the HTML as data URIs), each saying what was measured
on how many images with which weights: the cross-framework top-1 agreement heatmap when a cross matrix was computed,
the measured top-1 of the evaluated cards (the published one beside it on the published weights only), the deployment
SQNR and top-1 agreement against their budgets, the audit's top-1 cost per finding, the bench latency ratios."""
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


def comparable(rows: list[dict[str, Any]]) -> list[int]:
    """The rows whose measured top-1 may stand beside the published one: measured on the published weights."""
    return [i for i, r in enumerate(rows) if r["measured_weights"] == "pretrained" and r["published_top1"] is not None]


def top1_chart(rows: list[dict[str, Any]]) -> str:
    """Measured top-1 per card with its Wilson interval; the published top-1 beside it only when the published weights
    were measured (``pretrained``): top-1 of other weights is not comparable with it. Full card ids, horizontal bars."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.45 * len(rows)))
    y = np.arange(len(rows))
    ax.barh(y + 0.2, [100 * r["measured_top1"] for r in rows], 0.4, label="measured top-1 (95 % Wilson interval)",
            color="#3a7")
    for i, r in enumerate(rows):
        if r["measured_top1_ci"]:
            lo, hi = r["measured_top1_ci"]
            ax.plot([100 * lo, 100 * hi], [i + 0.2, i + 0.2], color="black", lw=1)
    pub = [(i, rows[i]) for i in comparable(rows)]
    if pub:
        ax.barh([i - 0.2 for i, _ in pub], [100 * r["published_top1"] for _, r in pub], 0.4,
                label="published top-1 (same weights)", color="#57c")
    ax.set_yticks(y, [f"{r['card']}\n{r['measured_n']} img, {r['measured_runtime']}, weights "
                      f"{str(r['measured_weights'])[:40]}" for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("top-1 (%)")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("top-1 measured per card (published beside it only on the published weights)", fontsize=9)
    return _png(fig)


def charts(doc: dict[str, Any]) -> dict[str, str]:
    import matplotlib
    matplotlib.use("Agg")
    out = {}
    if doc.get("cross"):
        out["cross-framework top-1 agreement"] = cross_heatmap(doc["cross"])
    measured = [r for r in doc["rows"] if r["measured_top1"] is not None]
    if measured:
        out["top-1 measured (published beside it on the published weights only)"] = top1_chart(measured)
    from . import audit, deploy
    out.update(deploy.charts(doc.get("deploy") or [], doc.get("bench"), _png))
    out.update(audit.charts(doc.get("audit") or [], _png))
    return out
