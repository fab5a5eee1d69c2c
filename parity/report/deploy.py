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
                    "max_abs": j.get("max_abs"), "blame": m.get("blame"), "reason": r["reason"]})
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
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(res)), 3.5))
    x = np.arange(len(res))
    w = 0.8 / len(settings)
    for i, s in enumerate(settings):
        ax.bar(x + i * w, [r[s].get("vs_ort_fp32") or 0 for r in res], w, label=s)
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_xticks(x + 0.4 - w / 2, [f"{r['card'].split('/')[-1][:18]} {r['runtime']}" for r in res], rotation=60,
                  ha="right", fontsize=7)
    ax.set_ylabel("latency / ORT fp32 (same run)")
    ax.legend(fontsize=7)
    ax.set_title("latency relative to ORT fp32 (lower is faster)")
    return str(png(fig))


def charts(deploy: list[Doc], bench: Doc | None, png: Any) -> dict[str, str]:
    out = {}
    for d in deploy:
        if d["blame"] and d["blame"].get("activations"):
            out[f"layer blame {d['card']} {d['runtime']}"] = blame_chart(d, png)
    if bench and bench.get("results"):
        out["latency relative to ORT fp32"] = bench_chart(bench, png)
    return out
