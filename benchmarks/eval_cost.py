"""What the full-validation matrix costs: img/s of `eval` per runtime x precision on the shared real images, the
overhead of a shard job (workers, build, export) and of `eval merge`, and the projected wall time of the full matrix
(cards x runtimes x 50,000 images) at N shards.

    python benchmarks/eval_cost.py [--images 200] [--calib-images 100] [--shards 1 8 32]

Each runtime is measured alone on the same images with a cold decode cache (decode + preprocess + inference: what a
shard job does) and again with the cache warm (inference + cache reads only). Real weights (the TFLite file of
../shared/realdata) in the torchvision architecture (TF padding) and, for the TFLite runtimes, keras."""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from parity import runtimes
from parity.evaluation import shards
from parity.evaluation.dataset import open_dataset
from parity.evaluation.evaluate import evaluate
from parity.harness import Harness, Skip
from parity.paths import realdata_dir
from parity.registry import load_registry

PLAN = [("torchvision/mobilenet_v2.IMAGENET1K_V1", r) for r in
        ("native", "ort-opt-on", "ort-fp16", "ort-int8", "openvino-f32", "openvino-int8", "torchscript")] + \
       [("keras/mobilenet_v2.alpha_1.0_224", r) for r in ("native", "tflite", "tflite-int8")]
FULL = 50_000


def measure(h: Harness, card, rt: str, ds, cache: Path, calib: int) -> dict:
    runtimes.names()     # loads the built-in runtimes
    takes = "calib_images" in runtimes.quantizes(rt)
    opts, _ = runtimes.quant_options([rt], {"calib_images": calib if takes else None})
    out = {}
    for label in ("cold", "warm"):
        if label == "cold":
            shutil.rmtree(cache, ignore_errors=True)
        t0 = time.perf_counter()
        r = evaluate(h, card, "real", ds, (rt,), progress=False, cache_root=cache, options=opts)[rt]
        out[label] = r.n / (time.perf_counter() - t0)     # includes loading the runtime (its share shrinks at 50k)
        out[f"{label}_loop"] = r.images_per_s             # the evaluation loop only
        out["precision"] = r.runtime.get("precision")
        out["top1"] = r.top1
    return out


def merge_cost(tmp: Path, n_shards: int, n_images: int = FULL) -> float:
    """Seconds of `eval merge` of n_shards synthetic shard files holding n_images records (two runtimes)."""
    ids = [f"val/ILSVRC2012_val_{i:08d}.JPEG" for i in range(n_images)]
    labels = [i % 1000 for i in range(n_images)]
    fp = shards.fingerprint(ids, labels)
    paths = []
    for k in range(1, n_shards + 1):
        mine = [j for j in range(n_images) if j % n_shards == k - 1]
        sid, slab = [ids[j] for j in mine], [labels[j] for j in mine]
        images = {"id": sid, "label": slab, "top5": [[y, 1, 2, 3, 4] for y in slab],
                  "score": [[9.5, 3.25, 2.5, 1.75, 1.0]] * len(sid), "logits_sha256": ["0123456789abcdef"] * len(sid),
                  "skipped_id": [], "skipped_label": []}
        res = [{"card": "timm/mobilenetv2_100.ra_in1k", "backend": b, "mode": "seeded", "dataset": "x", "n": len(sid),
                "skipped": 0, "seconds": 1.0, "images_per_s": 1.0, "cache_hit": False, "runtime": {},
                "identity": {"card": "timm/mobilenetv2_100.ra_in1k", "runtime": b, "weights": "seeded"},
                "images": images} for b in ("native", "ort-opt-on")]
        doc = {"format": shards.FORMAT, "version": shards.VERSION, "suite": "x", "run": "x",
               "dataset": {"path": "/x", "layout": "x", "n": n_images, "fingerprint": fp},
               "shard": {"k": k, "n": n_shards, "images": len(sid), "fingerprint": shards.fingerprint(sid, slab)},
               "results": res}
        p = tmp / f"s{k}.json"
        p.write_text(json.dumps(doc))
        paths.append(str(p))
    t0 = time.perf_counter()
    shards.merge(paths)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--calib-images", type=int, default=100)
    ap.add_argument("--shards", type=int, nargs="*", default=[1, 8, 32])
    a = ap.parse_args()
    real = realdata_dir()
    if real is None:
        raise SystemExit("needs ../shared/realdata")
    ds = open_dataset(real / "images" / "imagenet_sample_1000" / "labels.txt").subset(a.images)
    reg = load_registry()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, Harness(reg, workdir=Path(tmp) / "w") as h:
        for cid, rt in PLAN:
            try:
                m = measure(h, reg.get(cid), rt, ds, Path(tmp) / "cache", a.calib_images)
            except Skip as e:
                m = {"skipped": str(e)}
            rows.append({"card": cid, "runtime": rt, **m})
            print(json.dumps(rows[-1]), flush=True)
        merge_s = {n: merge_cost(Path(tmp), n) for n in (8, 32)}
    print(json.dumps({"images": a.images, "merge_seconds_50k_2_runtimes": merge_s}))


if __name__ == "__main__":
    main()
