"""`mbv2-parity check` sequential (--jobs 1) vs concurrent (--jobs N), in one run, on the same cards, each in a
fresh work directory (no ONNX file or model reused between the two); the results must be the same.

    python benchmarks/check_jobs.py [--jobs N] [--parity] [CARD...]   (default: one card per stack: torchvision, keras,
                                                                       ppcls)

``--parity`` checks with the flags of ``tox -e parity`` (read from tox.ini: both opsets, seeded/pretrained/real
weights, every deployment runtime that fits), the environment's cost; without it, check's defaults.

Prints each wall time, the ratio concurrent / sequential, the CPU seconds each run used (check and its worker
processes) and so how many cores were busy on average, and whether every (card, check, weights) has the same status
and the same max |diff| per runtime in both runs."""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CARDS = ["torchvision/mobilenet_v2.IMAGENET1K_V1", "keras/mobilenet_v2.alpha_1.0_224", "ppcls/MobileNetV2.pretrained"]


def parity_flags() -> list[str]:
    """The `check` flags of tox.ini's parity environment (its single source)."""
    tox = Path(__file__).resolve().parents[1] / "tox.ini"
    line = next(ln for ln in tox.read_text().splitlines() if "mbv2-parity check" in ln)
    return line.split("mbv2-parity check", 1)[1].replace("{posargs}", "").split()


def run(cards: list[str], jobs: int, wd: Path, flags: list[str] | None = None) -> tuple[
        float, float, dict[tuple[str, str, str], tuple[str, dict[str, float]]], list[str]]:
    t0, c0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run([sys.executable, "-m", "parity.cli", "check", *cards, *(flags or ["--fresh"]), "--jobs",
                        str(jobs), "--workdir", str(wd)], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)   # check and its workers (reaped children): CPU seconds used
    cpu = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
    if p.returncode not in (0, 1):
        sys.exit(f"check --jobs {jobs} exited {p.returncode}: {p.stderr[-400:]}")
    doc = json.loads((wd / "results.json").read_text())
    out = {(r["card"], r["check"], r["mode"]): (r["status"], {k: v["max_abs"] for k, v in r["metrics"].items()
                                                              if isinstance(v, dict) and "max_abs" in v})
           for r in doc["results"]}
    order = [ln.strip() for ln in p.stdout.splitlines() if ln.strip() in cards]
    return wall, cpu, out, order


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cards", nargs="*", default=CARDS)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--concurrent-first", action="store_true", help="run --jobs N before --jobs 1 (order bias)")
    ap.add_argument("--parity", action="store_true", help="check with tox -e parity's flags (tox.ini)")
    a = ap.parse_args()
    flags = parity_flags() if a.parity else None
    with tempfile.TemporaryDirectory() as tmp:
        if a.concurrent_first:
            con, cpu_c, rc, order_c = run(a.cards, a.jobs, Path(tmp) / "con", flags)
        seq, cpu_s, rs, order_s = run(a.cards, 1, Path(tmp) / "seq", flags)
        if not a.concurrent_first:
            con, cpu_c, rc, order_c = run(a.cards, a.jobs, Path(tmp) / "con", flags)
    same = rs.keys() == rc.keys() and all(rs[k][0] == rc[k][0] and rs[k][1] == rc[k][1] for k in rs)
    print(json.dumps({"load_average": os.getloadavg(), "flags": flags or ["--fresh"],
                      "cards": a.cards, "cores": os.cpu_count(), "jobs": a.jobs, "sequential_s": round(seq, 1),
                      "concurrent_s": round(con, 1), "ratio": round(con / seq, 3), "checks": len(rs),
                      # CPU seconds of check and its workers: wall >= cpu / cores bounds what concurrency can gain
                      "cpu_s": {"sequential": round(cpu_s, 1), "concurrent": round(cpu_c, 1)},
                      "cores_busy": {"sequential": round(cpu_s / seq, 2), "concurrent": round(cpu_c / con, 2)},
                      "same_results": same, "same_order": order_s == order_c == a.cards}, indent=1))


if __name__ == "__main__":
    main()
