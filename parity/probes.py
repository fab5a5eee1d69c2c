"""The fixed probe batch: seeded synthetic images of several sizes, plus real images when present.

Synthetic images are made from a seed (smooth colour fields, shapes, texture and noise) so that every
machine gets the same bytes; they have the statistics of photographs closely enough to give seeded
models non-degenerate activations. The real images are read from ``../shared/realdata`` (never copied).
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .fileio import atomic
from .paths import realdata_dir

PROBE_SEED = 20261123
CALIB_SEED = 7
# (height, width): square, landscape, portrait, smaller than the crop, large
PROBE_SIZES = ((224, 224), (256, 320), (500, 375), (180, 240), (480, 640), (333, 500))
N_REAL_PROBES = 8


def synthetic_image(seed: int, h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for c in range(3):  # low-frequency colour field
        for _ in range(3):
            fy, fx = rng.uniform(0.5, 4.0, 2) / np.array([h, w])
            ph = rng.uniform(0, 2 * np.pi)
            img[:, :, c] += rng.uniform(20, 60) * np.sin(2 * np.pi * (fy * yy + fx * xx) + ph)
        img[:, :, c] += rng.uniform(60, 190)
    for _ in range(int(rng.integers(3, 8))):  # shapes with hard edges
        colour = rng.uniform(0, 255, 3)
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        r = rng.uniform(0.05, 0.3) * min(h, w)
        if rng.random() < 0.5:
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2
        else:
            mask = (np.abs(yy - cy) < r) & (np.abs(xx - cx) < r * rng.uniform(0.3, 2.0))
        img[mask] = 0.3 * img[mask] + 0.7 * colour
    stripes = np.sin(2 * np.pi * (xx * rng.uniform(0.05, 0.2) + yy * rng.uniform(0.05, 0.2)))
    img += (stripes * rng.uniform(5, 25))[:, :, None]
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def synthetic_images(seed: int = PROBE_SEED, sizes: Sequence[tuple[int, int]] = PROBE_SIZES) -> list[np.ndarray]:
    return [synthetic_image(seed * 1000 + i, h, w) for i, (h, w) in enumerate(sizes)]


def real_image_paths(limit: int = N_REAL_PROBES) -> list[Path]:
    """A fixed selection of the real labeled images (coral set first, then the ImageNet sample)."""
    root = realdata_dir()
    if root is None:
        return []
    coral = sorted(p for p in (root / "images" / "coral").glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".bmp", ".png"))
    sample = sorted((root / "images" / "imagenet_sample_1000").glob("*.JPEG"))
    picked = coral[: limit // 2] + sample[:: max(1, len(sample) // max(1, limit - limit // 2))][: limit - limit // 2]
    return picked[:limit]


@lru_cache(maxsize=1)
def probe_images() -> tuple[tuple[str, Any], ...]:
    """(name, image) pairs of the probe batch: synthetic ones always, real ones when available."""
    items: list[tuple[str, Any]] = [(f"synthetic-{h}x{w}", im) for (h, w), im in zip(PROBE_SIZES, synthetic_images())]
    items += [(f"real:{p.name}", p) for p in real_image_paths()]
    return tuple(items)


def calibration_images(n: int = 8) -> list[np.ndarray]:
    sizes = [PROBE_SIZES[i % len(PROBE_SIZES)] for i in range(n)]
    return synthetic_images(CALIB_SEED, sizes)


def edge_case_files(directory: Path | str) -> list[Path]:
    """Image files with what ILSVRC2012 val really contains, written from seeded pixels: a CMYK JPEG, a grayscale
    JPEG, a PNG named .JPEG, a JPEG whose EXIF says 'rotate 90', a palette PNG with transparency, and a plain
    RGB JPEG smaller than the crop. Deterministic bytes for a given Pillow."""
    from PIL import Image
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    base = synthetic_image(PROBE_SEED + 77, 300, 400)
    out = []

    def save(name: str, img: Any, **kw: Any) -> None:
        p = d / name
        if not p.exists():
            with atomic(p) as tmp:   # another thread may read the probe while it is written
                img.save(tmp, **kw)
        out.append(p)

    save("cmyk.JPEG", Image.fromarray(base).convert("CMYK"), format="JPEG", quality=92)
    save("gray.JPEG", Image.fromarray(base).convert("L"), format="JPEG", quality=92)
    save("png_named_jpeg.JPEG", Image.fromarray(base), format="PNG")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW to display
    save("exif_rotated.JPEG", Image.fromarray(base), format="JPEG", quality=92, exif=exif.tobytes())
    save("palette_alpha.png", Image.fromarray(base).convert("P", palette=Image.Palette.ADAPTIVE), format="PNG",
         transparency=0)
    save("small_rgb.JPEG", Image.fromarray(synthetic_image(PROBE_SEED + 78, 150, 200)), format="JPEG", quality=92)
    return out


def preprocessing_images(directory: Path | str, n_real: int = 24) -> list[Path]:
    """Files for proving preprocessing: the edge cases above + real labeled images (coral set, then an even
    selection of the ImageNet sample, which includes grayscale JPEGs and images smaller than 224)."""
    return edge_case_files(directory) + real_image_paths(n_real)
