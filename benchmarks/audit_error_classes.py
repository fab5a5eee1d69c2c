"""The top-1 cost of each deployment-config error class, measured with real weights on the shared images.

    python benchmarks/audit_error_classes.py [--images 500] [--workdir DIR]

Model: the keras MobileNetV2 1.0/224 card with the TFLite-derived canonical weights (the real ImageNet weights
available offline: ../shared/realdata/tflite, README "real weights"), in ONNX Runtime. Upstream spec: the card's
(keras: squash to 224, nearest, x/127.5 - 1, RGB, NHWC). Each error class is injected alone into that spec, as a
deployment config would carry it, and priced by ``parity.audit.cost.measure`` on the same labeled images: tensor
difference, top-1 agreement with the upstream pipeline, top-1 and its paired 95 % interval.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from parity.audit.cost import measure
from parity.audit.diff import differences
from parity.harness import Harness
from parity.paths import realdata_dir
from parity.preprocess.matrix import labeled_sample
from parity.registry import load_registry

CARD = "keras/mobilenet_v2.alpha_1.0_224"
PTQ = "tf2_mobilenet_v2_1.0_224_ptq.tflite"


def classes(up):  # type: ignore[no-untyped-def]
    """Error class -> the config's spec (one error injected into upstream)."""
    imagenet = {"scale": 1 / 255, "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
    return {
        "normalization of another family (ImageNet mean/std for a [-1, 1] model)": up.replace(**imagenet),
        "typo in one std (R: 127.5 -> 172.5, as 0-255)": up.replace(scale=1.0, mean=(127.5,) * 3,
                                                                    std=(172.5, 127.5, 127.5)),
        "0.39 % std error on R (OMZ's 58.624 for 58.395, same ratio)": up.replace(
            scale=1.0, mean=(127.5,) * 3, std=(127.5 * 58.624 / 58.395, 127.5, 127.5)),
        "means/stds rounded to fp16 (VastAI vdsp_params)": up.replace(scale=1.0, mean=(127.5,) * 3,
                                                                      std=(127.5,) * 3).fp16(),
        "channels swapped (BGR: reverse_input_channels wrong)": up.replace(channel_order="BGR"),
        "NV12 run-time input, BT.601 video range (hb_mapper input_type_rt nv12)": up.replace(input_color="nv12"),
        "NV12 run-time input, BT.601 full range ('regular')": up.replace(input_color="nv12", yuv_range="bt601_full"),
        "shorter side 256 + center crop 224 where upstream squashes": up.replace(resize_mode="shorter_side",
                                                                                 resize_size=256),
        "square resize 256x256 + crop 224 where upstream squashes to 224": up.replace(resize_mode="stretch",
                                                                                      resize_size=256),
        "letterbox (pad 114) where upstream squashes": up.replace(resize_mode="letterbox", pad_value=114.0),
        "bilinear (PIL, antialiased) where upstream uses nearest": up.replace(interpolation="bilinear",
                                                                              antialias=True),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--workdir", default="build/audit-bench")
    ap.add_argument("--only", default="", help="run the classes whose name contains this text")
    args = ap.parse_args()
    root = realdata_dir()
    if root is None:
        raise SystemExit("needs ../shared/realdata")
    import onnxruntime as ort
    reg = load_registry()
    card = reg.get(CARD)
    up = card.preprocess
    imgs, labels = labeled_sample(root, args.images)
    with Harness(reg, workdir=Path(args.workdir)) as h:
        sess = ort.InferenceSession(h.export(card, f"canonical:{root / 'tflite' / PTQ}").path,
                                    providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name

    def run_model(x):  # type: ignore[no-untyped-def]
        return sess.run(None, {name: x})[0]

    rows = []
    for label, cfg in classes(up).items():
        if args.only not in label:
            continue
        t0 = time.time()
        c = measure(imgs, up, cfg, run_model, labels)
        sev = ",".join(sorted({f.severity for f in differences(up, cfg)})) or "none"
        rows.append({"class": label, "severity": sev, **c.to_dict(), "seconds": round(time.time() - t0, 1)})
        print(f"| {label} | {sev} | {c.mean_abs:.4f} / {c.max_abs:.3f} | {c.psnr_db:.1f} | "
              f"{100 * (c.agreement or 0):.1f} % | {100 * (c.top1_config or 0):.1f} % | "
              f"{100 * (c.top1_change or 0):+.1f} [{100 * c.top1_change_ci[0]:+.1f}, {100 * c.top1_change_ci[1]:+.1f}] |"
              if c.top1_change_ci else label, flush=True)
    if rows:
        print(f"upstream top-1 on {len(imgs)} images: {100 * (rows[0]['top1_upstream'] or 0):.1f} %")
    Path(args.workdir, "audit_error_classes.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
