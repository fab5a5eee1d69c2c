"""Cold vs warm `mbv2-parity check` with the artifact cache (``parity.cache``), both in one invocation, on the same
cards with the flags of ``tox -e parity`` (both opsets, seeded/pretrained/real weights, ``--deploy all``): the cold
run starts from an empty cache, the warm one from what the cold one stored (each in a fresh work directory, a new
process: nothing else carried over); then ``mbv2-parity report`` on each run's results.

    python benchmarks/cache_warm_cold.py [--cache DIR] [--json OUT] [--flags "..."] [CARD...]
                                                        (default: one card per stack: torchvision, keras, ppcls)

Prints the wall time of each run, the ratio warm / cold, the time split per run (worker start, build, export,
deployment artifacts, calibration, inference, report, the cache's own reads), what the cache reused, and whether
every (card, check, weights) has the same verdict (status and reason) in both runs."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_jobs import CARDS, parity_flags

# the harness's timing names (results.json "timings", summed over cards) grouped as the issue asks
SPLIT = {
    "worker start": ("worker_start",),
    "build": ("build",),
    "export": ("export", "onnx_check"),
    "counts": ("count",),
    "inference": ("native_inference", "ort_session", "ort_inference", "deploy_inference"),
}


def run(cards: list[str], wd: Path, cache: Path, flags: list[str]) -> dict:
    env = {**os.environ, "MBV2_PARITY_ARTIFACTS": str(cache)}
    env.pop("MBV2_PARITY_NO_CACHE", None)
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "parity.cli", "check", *cards, *flags, "--workdir", str(wd)],
                       capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if p.returncode not in (0, 1):
        sys.exit(f"check exited {p.returncode}: {p.stderr.strip()[-800:]}")
    t1 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "parity.cli", "report", "--workdir", str(wd)], capture_output=True,
                       text=True, env=env)
    report = time.perf_counter() - t1
    doc = json.loads((wd / "results.json").read_text())
    timings: dict[str, float] = {}
    for row in doc["timings"].values():
        for k, v in row.items():
            timings[k] = timings.get(k, 0.0) + v
    split = {name: sum(timings.get(k, 0.0) for k in keys) for name, keys in SPLIT.items()}
    events = doc["cache"]["events"]
    made = {k: sum(e["seconds"] for e in events if e["outcome"] != "hit" and e["kind"] in k)
            for k in (("fp16", "int8", "hosted-tflite", "hosted-torchscript", "hosted-torch-quantized",
                       "hosted-paddle-inference"), ("calibration",))}
    split["deployment artifacts"] = made[("fp16", "int8", "hosted-tflite", "hosted-torchscript",
                                          "hosted-torch-quantized", "hosted-paddle-inference")]
    split["calibration"] = made[("calibration",)]
    split["cache reads"] = sum(e["seconds"] for e in events if e["outcome"] == "hit")
    split["report"] = report
    return {"wall": wall + report, "check_wall": wall, "report_exit": r.returncode, "split": split,
            "cache": {k: v for k, v in doc["cache"].items() if k != "events"},
            "verdicts": {f"{x['card']} | {x['check']} | {x['mode']}": [x["status"], x["reason"]]
                         for x in doc["results"]}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cards", nargs="*", default=CARDS)
    ap.add_argument("--cache", help="cache directory (default: a new temporary one; it must start empty)")
    ap.add_argument("--json", help="write the measurements here")
    ap.add_argument("--flags", help="check's flags instead of tox -e parity's (one string), e.g. \"--fresh --opset 17 "
                                    "--weights seeded --deploy all\"")
    a = ap.parse_args()
    flags = a.flags.split() if a.flags else parity_flags()
    with tempfile.TemporaryDirectory(prefix="cache-bench-") as tmp:
        cache = Path(a.cache) if a.cache else Path(tmp) / "cache"
        if cache.exists() and any(cache.iterdir()):
            sys.exit(f"--cache {cache}: not empty (the cold run must start from nothing)")
        cold = run(a.cards, Path(tmp) / "cold", cache, flags)
        warm = run(a.cards, Path(tmp) / "warm", cache, flags)
    same = cold["verdicts"] == warm["verdicts"]
    diff = [k for k in cold["verdicts"] if cold["verdicts"][k] != warm["verdicts"].get(k)]
    which = "" if a.flags else " (tox -e parity)"
    print(f"cards: {' '.join(a.cards)}\ncheck flags{which}: {' '.join(flags)}\ncores: {os.cpu_count()}, "
          f"load average at the end: {os.getloadavg()[0]:.1f}")
    print(f"{'':22} {'cold':>9} {'warm':>9}")
    for k in cold["split"]:
        print(f"{k:22} {cold['split'][k]:9.1f} {warm['split'][k]:9.1f}")
    print(f"{'wall (check + report)':22} {cold['wall']:9.1f} {warm['wall']:9.1f}   warm/cold = "
          f"{warm['wall'] / cold['wall']:.3f}")
    print(f"warm run's cache: {json.dumps(warm['cache'].get('kinds', {}))}")
    print(f"verdicts: {len(cold['verdicts'])} (card, check, weights); identical in both runs: {same}"
          + ("" if same else f"; differing: {diff[:5]}"))
    if a.json:
        Path(a.json).write_text(json.dumps({"cards": a.cards, "flags": flags, "cold": cold, "warm": warm,
                                            "ratio": warm["wall"] / cold["wall"], "same_verdicts": same}, indent=1))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
