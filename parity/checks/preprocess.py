"""preprocess: the reference pipeline driven by the card's spec (or another spec) vs the framework's own pipeline
on the same image files: max difference in input units and in 0-255 pixel levels; with a weights mode, the model's
top-1 agreement on the two tensors."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ..harness import Harness
from ..preprocess import preprocess_batch
from ..registry import Card
from ..spec import PreprocessSpec
from . import register
from .base import Check, CheckResult, Needs

# reference vs native preprocessing, in model-input units: both sides use the same decoder and resize library,
# so only float reordering remains (x / 255 vs x * (1/255), (x - m) / s vs x * a + b). One 0-255 level of one
# pixel is >= 7.8e-3 in every framework's input units (keras: 1/127.5 = 7.8e-3; ImageNet mean/std specs:
# 1/(0.229*255) = 1.7e-2 and up), so 1e-4 cannot hide a one-level difference anywhere.
PREPROCESS_MAX_ABS = 1e-4


@register
class PreprocessCheck(Check):
    kind = "preprocess"
    needs = Needs(images=True)

    def name(self, name: str = "preprocess", **params: Any) -> str:
        return name

    def guarded(self, h: Harness, card: Card, **params: Any) -> CheckResult:
        from .base import guard
        return guard(card, self.name(**params), params.get("mode") or "-", lambda: self.run(h, card, **params))

    def run(self, h: Harness, card: Card, images: list[Any] | None = None, spec: PreprocessSpec | None = None,
            mode: str | None = None, name: str = "preprocess", **params: Any) -> CheckResult:
        images = list(images or [])
        s = spec or card.preprocess
        t0 = time.perf_counter()
        ref = preprocess_batch(images, s)
        h.time(card, "reference_preprocess", time.perf_counter() - t0)
        nat = h.native_tensor(card, images)
        if ref.shape != nat.shape:
            return CheckResult(card.id, name, "fail", f"shape: reference {ref.shape} vs native {nat.shape} "
                               f"(layout {s.layout}?)", mode or "-", {})
        d = np.abs(ref.astype(np.float64) - nat)
        per_img = d.reshape(len(d), -1).max(1)
        pix_unit = np.array(s.std) / s.scale                 # input unit -> 0-255 pixel levels
        dpix = np.moveaxis(d, 1 if s.layout == "NCHW" else 3, -1) * pix_unit
        m: dict[str, Any] = {"max_abs": float(d.max()), "mean_abs": float(d.mean()),
                             "max_pixel_levels": float(dpix.max()), "mean_pixel_levels": float(dpix.mean()),
                             "images": len(images), "worst_image": str(images[int(per_img.argmax())]),
                             "tolerance": PREPROCESS_MAX_ABS}
        if mode is not None:
            ya, yb = h.native(card, mode, ref), h.native(card, mode, nat)
            m["top1_agree"] = float((ya.argmax(1) == yb.argmax(1)).mean())
        ok = m["max_abs"] <= PREPROCESS_MAX_ABS
        reason = (f"max_abs {m['max_abs']:.2e} (max {m['max_pixel_levels']:.3g} pixel levels, mean "
                  f"{m['mean_pixel_levels']:.3g}) over {len(images)} images"
                  + (f", top-1 agreement {m['top1_agree']:.3f}" if "top1_agree" in m else ""))
        if not ok:
            reason = f"max_abs {m['max_abs']:.2e} > {PREPROCESS_MAX_ABS:.0e} (worst: {Path(m['worst_image']).name}); " \
                     + reason
        return CheckResult(card.id, name, "pass" if ok else "fail", reason, mode or "-", m)
