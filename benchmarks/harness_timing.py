"""Per-model time split of the parity harness, measured in one run.

    python benchmarks/harness_timing.py [MODEL...]      (worker envs: MBV2_PARITY_PYTHON_TORCH/_TF/_PADDLE;
                                                        default: every registry card)

For each card: worker start (only the card that started its framework's worker pays it), build
(seeded weights incl. BN calibration), export (torch.onnx.export), onnx_check (checker + shape
inference), ORT session creation (opt off + on), native inference and ORT inference over the probe batch.
Prints the table, each stage's share of the total, the whole matrix's wall time, and the converters' own
sub-steps where the adapter reports them (paddle: jit.save vs paddle2onnx.export; keras: tracing vs tf2onnx).
"""
from __future__ import annotations

import sys
import tempfile
import time

from rich.console import Console
from rich.table import Table

from parity import checks
from parity.harness import Harness
from parity.registry import load_registry

STAGES = ("worker_start", "build", "export", "onnx_check", "ort_session", "native_inference", "ort_inference")


def main(argv: list[str]) -> int:
    reg = load_registry()
    cards = list(reg.select(argv)) if argv else list(reg)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, Harness(reg, workdir=tmp) as h:
        for card in cards:
            r = checks.run("onnx", h, card)
            if r.status != "pass":
                print(f"{card.id}: {r.status}: {r.reason}", file=sys.stderr)
        timings = dict(h.timings)
        steps = {c.id: h.export(c).extra["step_seconds"] for c in cards if "step_seconds" in h.export(c).extra}
    wall = time.perf_counter() - t0
    t = Table(title=f"harness time split (seconds), {len(cards)} cards, wall {wall:.1f}s")
    t.add_column("card")
    for s in (*STAGES, "total"):
        t.add_column(s, justify="right")
    sums = dict.fromkeys(STAGES, 0.0)
    for cid, tm in timings.items():
        row = [tm.get(s, 0.0) for s in STAGES]
        for s, v in zip(STAGES, row):
            sums[s] += v
        t.add_row(cid, *(f"{v:.2f}" for v in row), f"{sum(row):.2f}")
    total = sum(sums.values())
    t.add_row("share of total", *(f"{100 * sums[s] / total:.0f}%" for s in STAGES), "100%")
    Console(width=200).print(t)
    print(f"matrix wall time: {wall:.1f}s; accounted stages: {total:.1f}s ({100 * total / wall:.0f}% of wall)")
    if steps:
        st = Table(title="converter sub-steps (seconds)")
        names = sorted({k for v in steps.values() for k in v})
        st.add_column("card")
        for n in names:
            st.add_column(n, justify="right")
        for cid, v in steps.items():
            st.add_row(cid, *(f"{v[n]:.2f}" if n in v else "" for n in names))
        Console(width=200).print(st)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
