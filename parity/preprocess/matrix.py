"""The preprocessing difference matrix: what each framework's spec does to the same images, and what it costs a
model to get another framework's preprocessing. Framework-free (the model runs in its worker).

* pixel matrix: for each pair of specs, the mean |difference| in 0-255 levels of the decoded, resized and
  cropped RGB images (the geometric part: decoder, resize rule, backend, interpolation, crop), plus whether their
  normalizations are the same arithmetic (``spec.affine()``);
* top-1 column: a model with real weights fed each spec's tensor (its own spec's layout), top-1 accuracy on
  labeled images and the change against the model's own spec: "why does my converted model score lower?".
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..spec import PreprocessSpec
from .reference import geometric as geometric_one
from .reference import preprocess_batch


def geometric(images: list[Any], spec: PreprocessSpec) -> np.ndarray:
    return np.stack([geometric_one(im, spec) for im in images]).astype(np.int16)


@dataclass
class DifferenceMatrix:
    names: list[str]
    mean_pixel_diff: np.ndarray          # [i, j] mean |geom_i - geom_j| in 0-255 levels
    same_normalization: np.ndarray       # [i, j] bool
    top1: dict[str, float]               # spec name -> top-1 of the model fed with it
    own: str                             # the model's own spec name
    n_images: int

    def to_dict(self) -> dict[str, Any]:
        return {"names": self.names, "mean_pixel_diff": self.mean_pixel_diff.round(3).tolist(),
                "same_normalization": self.same_normalization.tolist(), "top1": self.top1, "own": self.own,
                "n_images": self.n_images}

    def markdown(self) -> str:
        head = "| spec | " + " | ".join(self.names) + " | top-1 of the real-weights model fed this spec |"
        lines = [head, "|" + "---|" * (len(self.names) + 2)]
        for i, a in enumerate(self.names):
            cells = [("—" if i == j else f"{self.mean_pixel_diff[i, j]:.2f}" + ("" if self.same_normalization[i, j]
                                                                               else " ≠norm")) for j in range(len(self.names))]
            t = self.top1.get(a)
            delta = "" if t is None or a == self.own else f" ({100 * (t - self.top1[self.own]):+.1f} pts)"
            lines.append(f"| {a} | " + " | ".join(cells) + f" | {'' if t is None else f'{100 * t:.1f} %'}{delta}"
                         + (" (own)" if a == self.own else "") + " |")
        return "\n".join(lines)


def difference_matrix(specs: dict[str, PreprocessSpec], images: list[Any],
                      run_model: Callable[[np.ndarray, str], np.ndarray] | None = None, labels: list[int] | None = None,
                      own: str = "") -> DifferenceMatrix:
    """``run_model(x_nchw_or_nhwc, layout) -> logits``: the real-weights model; ``labels``: class index per image."""
    names = list(specs)
    geo = {n: geometric(images, s) for n, s in specs.items()}
    k = len(names)
    pix = np.zeros((k, k))
    same = np.zeros((k, k), bool)
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            pix[i, j] = float(np.abs(geo[a] - geo[b]).mean()) if geo[a].shape == geo[b].shape else float("nan")
            aa, ab = specs[a].affine(), specs[b].affine()
            same[i, j] = bool(np.allclose(aa[0], ab[0], rtol=1e-6) and np.allclose(aa[1], ab[1], rtol=1e-6, atol=1e-9))
    top1: dict[str, float] = {}
    if run_model is not None and labels is not None:
        y = np.asarray(labels)
        for n, s in specs.items():
            x = preprocess_batch(images, s)
            top1[n] = float((run_model(x, s.layout).argmax(1) == y).mean())
    return DifferenceMatrix(names, pix, same, top1, own, len(images))


def labeled_sample(root: Path, limit: int) -> tuple[list[Path], list[int]]:
    """The ImageNet sample (``file class_index`` lines), an even selection of ``limit`` images."""
    lines = (root / "images" / "imagenet_sample_1000" / "labels.txt").read_text().split("\n")
    pairs = [ln.split() for ln in lines if ln.strip()]
    step = max(1, len(pairs) // max(1, limit))
    pick = pairs[::step][:limit]
    return [root / "images" / "imagenet_sample_1000" / f for f, _ in pick], [int(c) for _, c in pick]
