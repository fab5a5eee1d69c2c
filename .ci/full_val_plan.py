"""The matrix of the full-validation workflow (.github/workflows/full-val.yml): one entry per card (its id, an
artifact-safe slug and the worker env of its stack: eval runs native and ONNX Runtime, no deploy toolchain) and the
shard numbers 1..N. Reads the registry and the framework table only (no dependency beyond the standard library).

usage: PYTHONPATH=. python .ci/full_val_plan.py PATTERNS SHARDS  -> prints `cards=JSON`, `shards=JSON`, `n=N` lines
PATTERNS: comma-separated card ids, framework names or globs ("all" or empty: every card)."""
import fnmatch
import json
import re
import sys
import tomllib
from pathlib import Path

from parity.frameworks import FRAMEWORKS, STACKS

ROOT = Path(__file__).resolve().parent.parent
ACCURACY = ("top1", "top5", "top1_err", "top5_err")


def cards(patterns: str) -> list[dict[str, str]]:
    reg = tomllib.loads((ROOT / "fixtures" / "registry.toml").read_text())["cards"]
    pats = [p.strip() for p in patterns.split(",") if p.strip() and p.strip() != "all"]
    picked = [c for c in reg if not pats or any(p == c["framework"] or fnmatch.fnmatch(c["id"], p) for p in pats)]
    if not pats:  # "all": the cards a full validation can judge (a published top-1/top-5); the others are named
        judged = [c for c in picked if any(p["metric"] in ACCURACY for p in c.get("published", []))]
        for c in picked:
            if c not in judged:
                print(f"full_val_plan: {c['id']} left out: no published accuracy to check "
                      f"({c.get('unpublished') or 'no top-1/top-5 cell'})", file=sys.stderr)
        picked = judged
    if not picked:
        sys.exit(f"full_val_plan: {patterns!r} matches no card")
    out = []
    for c in picked:
        stack = FRAMEWORKS[c["framework"]].stack
        out.append({"card": c["id"], "slug": re.sub(r"[^A-Za-z0-9_.-]", "_", c["id"]),
                    "stacks": STACKS[stack].tox_env})
    return out


if __name__ == "__main__":
    n = int(sys.argv[2])
    if not 1 <= n <= 64:
        sys.exit(f"full_val_plan: {n} shards: 1..64 (a matrix holds at most 256 jobs)")
    selected = cards(sys.argv[1])
    if len(selected) * n > 256:
        sys.exit(f"full_val_plan: {len(selected)} cards x {n} shards = {len(selected) * n} jobs > 256 (GitHub's limit)")
    print(f"cards={json.dumps(selected)}")
    print(f"shards={json.dumps(list(range(1, n + 1)))}")
    print(f"n={n}")
