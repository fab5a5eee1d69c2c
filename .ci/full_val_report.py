"""The report job of the full-validation workflow: every planned card has a merged evaluation of the whole validation
set, and every published top-1/top-5 cell of it passes (|measured - published| <= 0.3 pts, `eval`'s full-val rule).
Writes a Markdown table (to $GITHUB_STEP_SUMMARY when set) and exits 1 on a missing card, a partial evaluation, no
published cell to check, or a failing cell.

usage: python .ci/full_val_report.py MERGED_DIR CARDS_JSON [MIN_IMAGES]"""
import json
import os
import sys
from pathlib import Path


def main(merged_dir: str, cards_json: str, min_images: int = 50_000) -> int:
    docs = [json.loads(p.read_text()) for p in sorted(Path(merged_dir).rglob("*.json"))]
    results = {(r["card"], r.get("backend")): r for d in docs for r in d.get("results", [])}
    lines = ["| card | runtime | images | top-1 | top-5 | published cells | verdict |", "|---|---|---|---|---|---|---|"]
    bad = []
    for entry in json.loads(cards_json):
        card = entry["card"]
        mine = [r for (c, _), r in results.items() if c == card]
        if not mine:
            bad.append(f"{card}: no merged evaluation")
            lines.append(f"| {card} | - | - | - | - | - | missing |")
            continue
        for r in mine:
            if r.get("status") == "skip":
                bad.append(f"{card}: skipped ({r.get('reason')})")
                lines.append(f"| {card} | - | - | - | - | - | skipped: {r.get('reason')} |")
                continue
            checks = r.get("published_checks", [])
            failed = [c for c in checks if c["status"] != "pass"]
            why = ("partial" if r["n"] + r["skipped"] < min_images else "no published cell" if not checks
                   else "fail" if failed else "pass")
            if why != "pass":
                bad.append(f"{card} [{r['backend']}]: {why}")
            cells = "; ".join(f"{c['source']} {c['metric']} {100 * c['published']:.2f} {c['status']}" for c in checks)
            lines.append(f"| {card} | {r['backend']} | {r['n']} | {100 * r['top1']:.2f} | {100 * r['top5']:.2f} | "
                         f"{cells or '-'} | {why} |")
    text = "\n".join(["## Full ImageNet validation", "", *lines, "", *(f"* FAIL {b}" for b in bad)]) + "\n"
    print(text)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a") as f:
            f.write(text)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], *(int(a) for a in sys.argv[3:4])))
