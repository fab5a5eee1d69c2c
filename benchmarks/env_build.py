"""pip vs uv for the worker envs, side by side in one run (issue 26): each worker env built from scratch into a fresh
tox work directory, once by tox's virtualenv/pip runner and once by tox-uv's uv runner, the same pins (tox.ini), one
after the other, alternating which goes first per env. Prints each build's wall time and the ratio uv / pip.

    python benchmarks/env_build.py [w-deploy w-tf w-paddle w-torch] [--json PATH]

The package caches are whatever the machine has (pip's and uv's own): say so beside the numbers. Needs tox and
tox-uv on PATH (`pip install tox tox-uv`)."""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNNERS = {"pip": ["-x", "testenv.runner=virtualenv"], "uv": ["-x", "testenv.runner=uv-venv-runner"]}


def build(env: str, runner: str) -> float:
    work = Path(tempfile.mkdtemp(prefix=f"envbench-{runner}-"))
    try:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "tox", "-q", "-c", str(ROOT / "tox.ini"), "--workdir", str(work), "-e", env,
                        *RUNNERS[runner]], check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - t0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("envs", nargs="*", default=["w-deploy", "w-tf", "w-paddle", "w-torch"])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows = []
    for i, env in enumerate(args.envs):
        order = ("pip", "uv") if i % 2 == 0 else ("uv", "pip")
        t = {r: build(env, r) for r in order}
        rows.append({"env": env, "first": order[0], "pip_s": t["pip"], "uv_s": t["uv"], "ratio": t["uv"] / t["pip"]})
        print(f"{env}: pip {t['pip']:.1f} s, uv {t['uv']:.1f} s, uv/pip {t['uv'] / t['pip']:.2f} ({order[0]} first)",
              flush=True)
    pip_total, uv_total = sum(r["pip_s"] for r in rows), sum(r["uv_s"] for r in rows)
    print(f"all: pip {pip_total:.1f} s, uv {uv_total:.1f} s, uv/pip {uv_total / pip_total:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "pip_s": pip_total, "uv_s": uv_total}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
