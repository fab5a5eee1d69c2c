"""What a config's preprocessing costs on real images: the tensor difference against the upstream pipeline (mean
and max |difference| in model-input units, PSNR over upstream's input range), the top-1 agreement of the card's
model fed the two, and with labels the top-1 of each and their paired difference with its 95 % interval
(``parity.evaluation.verdicts``: Wilson, Newcombe's paired method). Framework-free: ``run_model`` is a callable
(ONNX Runtime in the CLI, a synthetic model in tests)."""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..evaluation.verdicts import paired_difference, wilson
from ..preprocess import preprocess_batch
from ..spec import PreprocessSpec

RunModel = Callable[[np.ndarray], np.ndarray]   # a batch in the upstream layout -> logits
BATCH = 25


@dataclass
class Cost:
    n: int
    mean_abs: float           # model-input units
    max_abs: float
    psnr_db: float            # over upstream's input range (inf: identical)
    agreement: float | None = None      # top-1 of the model on the two pipelines agreeing
    agreement_ci: tuple[float, float] | None = None
    top1_upstream: float | None = None
    top1_config: float | None = None
    top1_upstream_ci: tuple[float, float] | None = None
    top1_config_ci: tuple[float, float] | None = None
    top1_change: float | None = None    # config - upstream, with its paired 95 % interval
    top1_change_ci: tuple[float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in asdict(self).items()}

    def line(self) -> str:
        s = (f"{self.n} images: |Δ| mean {self.mean_abs:.4f} max {self.max_abs:.3f} (input units), "
             f"PSNR {'∞' if math.isinf(self.psnr_db) else f'{self.psnr_db:.1f}'} dB")
        if self.agreement is not None and self.agreement_ci is not None:
            s += (f"; top-1 agreement {100 * self.agreement:.1f} % "
                  f"[{100 * self.agreement_ci[0]:.1f}, {100 * self.agreement_ci[1]:.1f}]")
        if self.top1_change is not None and self.top1_change_ci is not None:
            s += (f"; top-1 {100 * (self.top1_upstream or 0):.1f} % -> {100 * (self.top1_config or 0):.1f} % "
                  f"({100 * self.top1_change:+.1f} pts [{100 * self.top1_change_ci[0]:+.1f}, "
                  f"{100 * self.top1_change_ci[1]:+.1f}])")
        return s


def input_range(spec: PreprocessSpec) -> float:
    return max(abs(spec.scale / s) for s in spec.std) * 255.0


def tensors(images: Sequence[str | Path | np.ndarray], up: PreprocessSpec, cfg: PreprocessSpec) \
        -> tuple[np.ndarray, np.ndarray]:
    """Both pipelines' tensors in upstream's layout (a layout difference is a finding of its own, not a pixel
    difference)."""
    return preprocess_batch(images, up), preprocess_batch(images, cfg.replace(layout=up.layout, dtype=up.dtype))


def measure(images: Sequence[str | Path | np.ndarray], up: PreprocessSpec, cfg: PreprocessSpec,
            run_model: RunModel | None = None, labels: Sequence[int] | None = None) -> Cost:
    n = len(images)
    if n == 0:
        raise ValueError("no images to measure on")
    sums, worst, sq = 0.0, 0.0, 0.0
    top_up: list[int] = []
    top_cfg: list[int] = []
    for i in range(0, n, BATCH):
        xu, xc = tensors(images[i:i + BATCH], up, cfg)
        d = np.abs(xu.astype(np.float64) - xc)
        sums += float(d.sum())
        sq += float((d ** 2).sum())
        worst = max(worst, float(d.max()))
        if run_model is not None:
            top_up += run_model(xu).argmax(1).tolist()
            top_cfg += run_model(xc).argmax(1).tolist()
    count = n * int(np.prod(xu.shape[1:]))
    rmse = math.sqrt(sq / count)
    cost = Cost(n, sums / count, worst, math.inf if rmse == 0 else 20 * math.log10(input_range(up) / rmse))
    if run_model is None:
        return cost
    agree = int(sum(a == b for a, b in zip(top_up, top_cfg)))
    cost.agreement, cost.agreement_ci = agree / n, wilson(agree, n)
    if labels is not None:
        y = np.asarray(labels)
        cu, cc = np.asarray(top_up) == y, np.asarray(top_cfg) == y
        cost.top1_upstream, cost.top1_config = float(cu.mean()), float(cc.mean())
        cost.top1_upstream_ci, cost.top1_config_ci = wilson(int(cu.sum()), n), wilson(int(cc.sum()), n)
        d, lo, hi = paired_difference(cc, cu)
        cost.top1_change, cost.top1_change_ci = d, (lo, hi)
    return cost
