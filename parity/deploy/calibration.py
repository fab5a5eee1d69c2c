"""The calibration set of a static quantization, chosen by seed 000's rule -- N images with every class present
(stratified over the labels) -- from ``--calib DIR`` (a labeled dataset), else the shared ImageNet sample, else
seeded synthetic images (for seeded-weight tests: no classes to stratify). Preprocessed with the card's own spec and
fingerprinted with it: a quantized artifact records which images and which spec made it, and an artifact made with
another spec is refused by the deployment check."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import UsageError
from ..evaluation.dataset import DatasetError, open_dataset
from ..fileio import atomic
from ..paths import realdata_dir
from ..preprocess import preprocess_batch
from ..probes import synthetic_images
from ..spec import PreprocessSpec

if TYPE_CHECKING:
    from ..harness import Harness

DEFAULT_IMAGES = 1000   # seed 000: "任选1000张 ... 请保证每个类别都有数据" (1000 images, every class present)
SAMPLE = ("images", "imagenet_sample_1000", "labels.txt")


@dataclass(frozen=True)
class CalibSet:
    path: str              # .npy of the preprocessed images, in the card's layout
    n: int
    classes: int           # distinct labels among them (0 for synthetic)
    source: str            # where the images came from
    images_digest: str     # which files (paths + content stats)
    spec_digest: str       # the spec they were preprocessed with

    @property
    def fingerprint(self) -> str:
        return f"{self.images_digest}:{self.spec_digest}"

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "classes": self.classes, "source": self.source, "images": self.images_digest,
                "spec": self.spec_digest}


def choose(calib_dir: str | None, n: int, seed: int = 0) -> tuple[list[Any], list[int], str, str]:
    """(images, labels, source, digest): ``n`` images stratified by class (every class present when n allows)."""
    if n <= 0:
        raise UsageError(f"calibration images: {n}; at least 1")
    if calib_dir:
        try:
            ds = open_dataset(calib_dir)
        except DatasetError as e:
            raise UsageError(f"--calib {calib_dir}: {e}", e.hint) from None
    else:
        root = realdata_dir()
        if root is None or not (root.joinpath(*SAMPLE)).is_file():
            ims = synthetic_images(seed + 99, [(240, 320)] * min(n, 16))
            return (list(ims), [], f"{len(ims)} seeded synthetic images (no labeled images here; {n} asked for)",
                    f"synthetic-{seed}-{len(ims)}")
        ds = open_dataset(root.joinpath(*SAMPLE))
    sub = ds.subset(n, seed)
    return list(sub.paths), sub.labels.tolist(), f"{len(sub)} of {ds.root} ({ds.layout})", sub.content_fingerprint()


def calibration(h: Harness, spec: PreprocessSpec, calib_dir: str | None = None, n: int = DEFAULT_IMAGES,
                seed: int = 0, preprocess_with: PreprocessSpec | None = None) -> CalibSet:
    """The calibration tensor for a card whose spec is ``spec`` (cached per images and spec). ``preprocess_with``
    injects a fault: the images preprocessed with another spec (recorded as such: the deploy check refuses it)."""
    images, labels, source, digest = choose(calib_dir, n, seed)
    used = preprocess_with or spec
    out = h.workdir / "calibration" / f"{digest}-{used.digest()}.npy"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)

        def make() -> dict[str, Any]:
            with atomic(out) as tmp:   # another thread (`check --jobs`) may find it and hand it to a worker
                np.save(tmp, preprocess_batch(images, used))
            return {}
        # keyed on the images by content (their bytes and labels, not their paths) and the spec by digest
        content = [h.cache.sha256(p) if isinstance(p, (str, Path))
                   else hashlib.sha256(np.ascontiguousarray(p).tobytes()).hexdigest() for p in images]
        h.cache.files("calibration", {"images": hashlib.sha256("".join(content).encode()).hexdigest(),
                                      "labels": labels, "spec": used.digest(), "seed": seed},
                      {"calib.npy": out}, make, workdir=h.workdir)
    return CalibSet(str(out), len(images), len(set(labels)), source, digest, used.digest())


def calib_dir_path(raw: str | None) -> str | None:
    """``--calib``, refused before any work unless it is a labeled dataset (``choose`` reads it the same way)."""
    if raw and not Path(raw).exists():
        raise UsageError(f"--calib {raw}: not found", hint="a labeled dataset (the `eval --data` layouts)")
    if raw:
        try:
            open_dataset(raw)
        except DatasetError as e:
            raise UsageError(f"--calib {raw}: {e}", e.hint or "a labeled dataset (the `eval --data` layouts)") from None
    return raw
