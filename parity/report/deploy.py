"""The report's deployment section: one row per deploy check (runtime, what it ran, what it was judged as, SQNR,
cosine, top-1 agreement, verdict), the layer blame of failing int8 artifacts as a chart, and the `bench` latency
ratios (to ORT fp32 of the same card, same run) as a chart. Measured data only: no deploy check, no section."""
from __future__ import annotations

from typing import Any

import numpy as np

Doc = dict[str, Any]


def rows(results: list[Doc]) -> list[Doc]:
    out = []
    for r in results:
        if not r["check"].startswith("deploy-"):
            continue
        runtime = r["check"][len("deploy-"):]
        m = r.get("metrics") or {}
        j = m.get(runtime) or {}
        out.append({"card": r["card"], "runtime": runtime, "mode": r["mode"], "status": r["status"],
                    "ran": (m.get("runtime") or {}).get("precision"), "judged_as": m.get("judged_as"),
                    "sqnr_db": j.get("sqnr_db"), "cosine_min": j.get("cosine_min"), "top1_agree": j.get("top1_agree"),
                    "max_abs": j.get("max_abs"), "n": j.get("n"), "blame": m.get("blame"), "reason": r["reason"]})
    return out


def _num(x: Any, fmt: str) -> str:
    return "" if x is None else format(x, fmt)


def markdown(deploy: list[Doc], bench: Doc | None) -> list[str]:
    lines: list[str] = []
    if deploy:
        lines += ["", "## Deployment", "", "| card | runtime | weights | ran | judged as | SQNR dB | cosine min | top-1 agree "
                  "| status |", "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {d['card']} | {d['runtime']} | {d['mode']} | {d['ran'] or ''} | {d['judged_as'] or ''} | "
                  f"{_num(d['sqnr_db'], '.1f')} | {_num(d['cosine_min'], '.4f')} | {_num(d['top1_agree'], '.2f')} | "
                  f"{d['status']} |" for d in deploy]
    if bench and bench.get("results"):
        settings = bench["settings"]
        lines += ["", f"## Latency (`bench`, median of {bench['repeats']}; ratio to ORT fp32 of the same card)", "",
                  "| card | runtime | ran | " + " | ".join(settings) + " |", "|---|---|---|" + "---|" * len(settings)]
        for r in bench["results"]:
            cells = [f"{r[s]['median_ms']:.1f} ms" + ("" if r[s].get("vs_ort_fp32") is None
                                                       else f" ({r[s]['vs_ort_fp32']:.2f}x)") for s in settings]
            lines.append(f"| {r['card']} | {r['runtime']} | {r['precision']} | " + " | ".join(cells) + " |")
    return lines


def blame_chart(d: Doc, png: Any, n: int = 12) -> str:
    import matplotlib.pyplot as plt
    acts = d["blame"]["activations"][:n]
    wts = d["blame"]["weights"][:n]
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.3 * max(len(acts), len(wts)) + 1.2))
    for ax, items, what in ((axes[0], acts, "activations"), (axes[1], wts, "weights")):
        ax.barh(np.arange(len(items)), [v for _, v in items], color="#c44")
        ax.set_yticks(np.arange(len(items)), [k[-48:] for k, _ in items], fontsize=6)
        ax.invert_yaxis()
        ax.set_xlabel("SQNR float vs quantized (dB)")
        ax.set_title(f"{what}: the {len(items)} worst", fontsize=8)
    fig.suptitle(f"layer blame: {d['card']} {d['runtime']} ({d['mode']})", fontsize=9)
    return str(png(fig))


def bench_chart(bench: Doc, png: Any) -> str:
    import matplotlib.pyplot as plt
    res = bench["results"]
    settings = bench["settings"]
    fig, ax = plt.subplots(figsize=(9, 1.4 + 0.3 * len(res) * len(settings)))
    y = np.arange(len(res))
    h = 0.8 / len(settings)
    for i, s in enumerate(settings):
        ax.barh(y + i * h, [r[s].get("vs_ort_fp32") or 0 for r in res], h, label=s)
    ax.axvline(1.0, color="black", lw=0.8)
    ax.set_yticks(y + 0.4 - h / 2, [f"{r['card']} {r['runtime']} ({r['precision']})" for r in res], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("latency / ORT fp32 of the same card, same run (lower is faster)", fontsize=8)
    ax.legend(fontsize=7)
    weights = f"weights {bench['weights']}" if bench.get("weights") else "timings do not depend on the weight values"
    ax.set_title(f"latency relative to ORT fp32, median of {bench.get('repeats', '?')} calls ({weights})", fontsize=9)
    return str(png(fig))


def budget(judged: str | None, mode: str) -> tuple[float | None, float | None]:
    """(SQNR dB, top-1 agreement) the deploy check held this row to (None: not judged on it)."""
    from ..deploy.precisions import BUDGETS, SEEDED_BUDGETS, SEEDED_NOT_JUDGED
    if judged is None or (mode == "seeded" and judged in SEEDED_NOT_JUDGED):
        return None, None
    b = (SEEDED_BUDGETS.get(judged) if mode == "seeded" else None) or BUDGETS.get(judged)
    return (b.min_sqnr_db, b.min_top1) if b else (None, None)


def budget_chart(rows: list[Doc], png: Any) -> str:
    """Per card x runtime x weights: SQNR and top-1 agreement against native fp32, each with its budget (a tick)."""
    import matplotlib.pyplot as plt
    n = max(r.get("n") or 0 for r in rows)
    fig, axes = plt.subplots(1, 2, figsize=(11, 1.2 + 0.32 * len(rows)), sharey=True)
    y = np.arange(len(rows))
    for ax, key, which, unit in ((axes[0], "sqnr_db", 0, "SQNR vs native fp32 (dB)"),
                                 (axes[1], "top1_agree", 1, "top-1 agreement with native fp32")):
        vals = [r[key] if r[key] is not None else 0.0 for r in rows]
        colors = ["#c44" if r["status"] == "fail" else "#3a7" for r in rows]
        ax.barh(y, vals, color=colors)
        for i, r in enumerate(rows):
            b = budget(r["judged_as"], r["mode"])[which]
            if b is not None:
                ax.plot([b, b], [i - 0.45, i + 0.45], color="black", lw=2)
        ax.set_xlabel(unit + "; black tick: budget", fontsize=8)
    axes[0].set_yticks(y, [f"{r['card']} {r['runtime']} ({r['ran'] or '?'}, {r['mode']})" for r in rows], fontsize=7)
    axes[0].invert_yaxis()
    fig.suptitle(f"deployment vs native fp32 on {n} probe images per check (red: failed its budget)", fontsize=9)
    return str(png(fig))


def charts(deploy: list[Doc], bench: Doc | None, png: Any) -> dict[str, str]:
    out = {}
    judged = [d for d in deploy if d["sqnr_db"] is not None or d["top1_agree"] is not None]
    if judged:
        out["deployment: SQNR and top-1 agreement against the budget"] = budget_chart(judged, png)
    for d in deploy:
        if d["blame"] and d["blame"].get("activations"):
            out[f"layer blame {d['card']} {d['runtime']}"] = blame_chart(d, png)
    if bench and bench.get("results"):
        out["latency relative to ORT fp32"] = bench_chart(bench, png)
    return out
