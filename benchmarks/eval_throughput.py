"""Evaluation throughput, measured side by side in one run on the same images.

    python benchmarks/eval_throughput.py [--images N]      (needs MBV2_PARITY_PYTHON_TORCH for the baseline)

1. t_dec: single-core time per image of decode + preprocess alone (the reference pipeline, timm's spec).
2. t_inf: single-core time per image of ONNX Runtime inference alone (MobileNetV2 1.0, intra_op_num_threads=1,
   batch 32).
3. bound = cores / (t_dec + t_inf): both stages share the same cores.
4. the suite's pipeline (``parity.evaluate``, ONNX backend, 2 decode processes, cold tensor cache) in img/s, as a
   fraction of the bound;
5. a second model sharing the spec (warm tensor cache): per-image cost vs t_inf;
6. a timm ``validate.py``-style baseline: torch DataLoader (2 workers, timm's eval transform) + the torch model,
   in the torch worker env, on the same files.
Images: the real ImageNet sample when ``../shared/realdata`` is present, else synthetic JPEGs.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from parity.evaluation.dataset import Dataset
from parity.evaluation.evaluate import evaluate
from parity.frameworks import STACKS
from parity.harness import Harness
from parity.paths import realdata_dir
from parity.preprocess import preprocess
from parity.registry import load_registry
from parity.workers.interpreters import resolve

BASELINE = r'''
import json, sys, time, torch, timm
from PIL import Image
from timm.data import create_transform, resolve_data_config
files = json.load(open(sys.argv[1]))
model = timm.create_model("mobilenetv2_100", pretrained=False).eval()
tf = create_transform(**resolve_data_config({}, model=model), is_training=False)
class DS(torch.utils.data.Dataset):
    def __len__(self): return len(files)
    def __getitem__(self, i):
        with open(files[i], "rb") as f:
            return tf(Image.open(f).convert("RGB")), 0
dl = torch.utils.data.DataLoader(DS(), batch_size=32, num_workers=2)
t0 = time.perf_counter(); n = 0
with torch.no_grad():
    for x, _ in dl:
        model(x); n += len(x)
print(json.dumps({"images_per_s": n / (time.perf_counter() - t0), "torch_threads": torch.get_num_threads()}))
'''


def images(n: int, tmp: Path) -> list[Path]:
    root = realdata_dir()
    if root is not None:
        files = sorted((root / "images" / "imagenet_sample_1000").glob("*.JPEG"))
        return files[:n]
    from PIL import Image

    from parity.probes import synthetic_image
    out = []
    for i in range(n):
        p = tmp / f"{i}.JPEG"
        Image.fromarray(synthetic_image(i, 375, 500)).save(p, quality=90)
        out.append(p)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=300)
    args = ap.parse_args()
    reg = load_registry()
    card = reg.get("timm/mobilenetv2_100.ra_in1k")
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp, Harness(reg, workdir=tmp) as h:
        tmp = Path(tmp)
        files = images(args.images, tmp)
        ds = Dataset(tmp, "bench", tuple(files), np.zeros(len(files), np.int64))
        # 1. t_dec
        t0 = time.perf_counter()
        xs = np.stack([preprocess(p, card.preprocess) for p in files])
        t_dec = (time.perf_counter() - t0) / len(files)
        # 2. t_inf (one core)
        exp = h.export(card)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(exp.path, so, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        sess.run(None, {name: xs[:32]})
        t0 = time.perf_counter()
        for i in range(0, len(xs), 32):
            sess.run(None, {name: xs[i:i + 32]})
        t_inf = (time.perf_counter() - t0) / len(xs)
        bound = cores / (t_dec + t_inf)
        # 4. the suite's pipeline, cold cache
        r = evaluate(h, card, "seeded", ds, backends=("ort-opt-on",), workers=cores, cache_root=tmp / "cache",
                     progress=False)
        pipe = r["ort-opt-on"].images_per_s
        # 5. a second model sharing the spec (e.g. another timm width with the same pretrained_cfg): the same card
        #    under another id, so nothing but the tensor cache is shared
        import dataclasses
        twin = dataclasses.replace(card, id=card.id + "+twin")
        r2 = evaluate(h, twin, "seeded", ds, backends=("ort-opt-on",), workers=cores, cache_root=tmp / "cache",
                      progress=False)
        warm_per_img = 1.0 / r2["ort-opt-on"].images_per_s
        # 6. baseline
        base = None
        py = resolve(STACKS["torch"]).python
        if py:
            lst = tmp / "files.json"
            lst.write_text(json.dumps([str(p) for p in files]))
            script = tmp / "baseline.py"
            script.write_text(BASELINE)
            out = subprocess.run([py, str(script), str(lst)], capture_output=True, text=True, timeout=900)
            if out.returncode == 0:
                base = json.loads(out.stdout.strip().splitlines()[-1])["images_per_s"]
            else:
                print("baseline failed:", out.stderr[-500:], file=sys.stderr)
    print(f"images: {len(files)} ({'real ImageNet sample' if realdata_dir() else 'synthetic'}), cores: {cores}")
    print(f"t_dec (decode+preprocess, 1 core): {1e3 * t_dec:.2f} ms/img")
    print(f"t_inf (ORT MobileNetV2 1.0, 1 thread): {1e3 * t_inf:.2f} ms/img")
    print(f"bound = {cores} / (t_dec + t_inf) = {bound:.0f} img/s")
    print(f"suite pipeline (cold cache, {cores} decode processes): {pipe:.0f} img/s = {100 * pipe / bound:.0f} % of bound")
    print(f"second model sharing the spec (warm cache): {1e3 * warm_per_img:.2f} ms/img "
          f"= {warm_per_img / t_inf:.2f} x t_inf")
    if base:
        print(f"timm validate.py-style baseline (DataLoader 2 workers + torch): {base:.0f} img/s; "
              f"suite / baseline = {pipe / base:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
