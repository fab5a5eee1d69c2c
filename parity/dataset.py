"""ImageNet-1k readers for the layouts users have. Framework-free.

Class indices are the standard ILSVRC2012 order: the 1000 WordNet ids sorted (n01440764 = 0 ... n15075141 = 999),
the order of ``val.txt``/``synset_words.txt`` and of torchvision/timm/mmpretrain/PaddleClas/keras outputs.

Layouts (``open_dataset(path)`` detects them):

* ``val/`` + ``val_label.txt`` (or ``val.txt`` / ``ILSVRC2012_val_labels.txt``) under ``path``: ``FILE INDEX`` lines
  (the seed's layout; a class-name file ``label.txt``/``synset_words.txt`` beside it is checked if present);
* ImageFolder: ``path/<wnid>/*.JPEG`` (torchvision style), all 1000 synset directories, or fewer with
  ``synsets=`` naming the standard list;
* a list file ``path`` with ``PATH LABEL`` (or ``PATH,LABEL``) lines, relative to the file's directory.

A mapping that is not the 1000-class one is refused with the reason: indices outside 0..999, a 1001-class file
(index 0 = background, as TF-slim/TFLite use), 1-based indices, a class-name file with 1001 lines.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NUM_CLASSES = 1000
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".bmp")
LABEL_FILES = ("val_label.txt", "val.txt", "ILSVRC2012_val_labels.txt", "ilsvrc2012_val_labels.txt")
WNID = re.compile(r"^n\d{8}$")


class DatasetError(ValueError):
    def __init__(self, message: str, hint: str = ""):
        super().__init__(message + (f" (hint: {hint})" if hint else ""))
        self.hint = hint


@dataclass(frozen=True)
class Dataset:
    root: Path
    layout: str
    paths: tuple[Path, ...]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for p, y in zip(self.paths, self.labels.tolist()):
            h.update(f"{p}\t{y}\n".encode())
        return h.hexdigest()[:16]

    def subset(self, limit: int, seed: int = 0) -> "Dataset":
        """``limit`` images stratified by class: classes in a seeded order, round-robin over each class's seeded
        shuffle, so every class is represented as evenly as ``limit`` allows. Deterministic."""
        if not limit or limit >= len(self):
            return self
        rng = np.random.default_rng(seed)
        by_class: dict[int, list[int]] = {}
        for i, y in enumerate(self.labels.tolist()):
            by_class.setdefault(y, []).append(i)
        order = list(by_class)
        rng.shuffle(order)
        queues = {c: list(rng.permutation(by_class[c])) for c in order}
        picked: list[int] = []
        while len(picked) < limit:
            progressed = False
            for c in order:
                if queues[c] and len(picked) < limit:
                    picked.append(int(queues[c].pop(0)))
                    progressed = True
            if not progressed:
                break
        picked.sort()
        return Dataset(self.root, self.layout + f"[subset {limit}, seed {seed}]", tuple(self.paths[i] for i in picked),
                       self.labels[picked])


def _check_labels(labels: np.ndarray, source: str) -> None:
    if labels.size == 0:
        raise DatasetError(f"{source}: no labeled images")
    lo, hi = int(labels.min()), int(labels.max())
    if hi == NUM_CLASSES and lo >= 1:
        raise DatasetError(f"{source}: labels run 1..1000: 1-based, or a 1001-class mapping with 0 = background",
                           hint="subtract 1 from every label (TF-slim/TFLite files include a background class)")
    if hi >= NUM_CLASSES or lo < 0:
        raise DatasetError(f"{source}: labels span {lo}..{hi}, outside 0..999: not the ILSVRC2012 1000-class mapping",
                           hint="a 1001-class file (index 0 = background) needs every label minus 1")


def _check_names(path: Path) -> None:
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    if len(lines) == NUM_CLASSES + 1:
        raise DatasetError(f"{path.name}: {len(lines)} class names (first: {lines[0][:40]!r}): a 1001-class list",
                           hint="use the 1000-class synset list; index 0 'background' shifts every class by one")
    if len(lines) != NUM_CLASSES:
        raise DatasetError(f"{path.name}: {len(lines)} class names, expected {NUM_CLASSES}")


def _read_pairs(file: Path, base: Path) -> tuple[list[Path], np.ndarray]:
    paths, labels = [], []
    for n, ln in enumerate(file.read_text(errors="replace").splitlines(), 1):
        if not ln.strip() or ln.lstrip().startswith("#"):
            continue
        parts = ln.replace(",", " ").split()
        if len(parts) < 2:
            raise DatasetError(f"{file.name}:{n}: expected 'PATH LABEL', got {ln[:80]!r}")
        try:
            labels.append(int(parts[-1]))
        except ValueError:
            raise DatasetError(f"{file.name}:{n}: label {parts[-1]!r} is not an integer") from None
        paths.append(base / " ".join(parts[:-1]))
    return paths, np.asarray(labels, np.int64)


def open_dataset(path: str | Path, synsets: str | Path | None = None) -> Dataset:
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"dataset not found: {p}", hint="set MBV2_PARITY_IMAGENET or pass --data")
    if p.is_file():
        paths, labels = _read_pairs(p, p.parent)
        _check_labels(labels, p.name)
        return Dataset(p.parent, f"list file {p.name}", tuple(paths), labels)
    for name in LABEL_FILES:
        lf = p / name
        if lf.is_file():
            img_dir = p / "val" if (p / "val").is_dir() else p
            paths, labels = _read_pairs(lf, img_dir)
            _check_labels(labels, name)
            for names in ("label.txt", "synset_words.txt"):
                if (p / names).is_file():
                    _check_names(p / names)
            return Dataset(p, f"{img_dir.name}/ + {name}", tuple(paths), labels)
    subdirs = sorted(d.name for d in p.iterdir() if d.is_dir())
    wnids = [d for d in subdirs if WNID.match(d)]
    if wnids:
        if synsets is not None:
            order = [ln.split()[0] for ln in Path(synsets).read_text().splitlines() if ln.strip()]
            if len(order) != NUM_CLASSES:
                raise DatasetError(f"{Path(synsets).name}: {len(order)} synsets, expected {NUM_CLASSES}")
            index = {w: i for i, w in enumerate(order)}
            unknown = [w for w in wnids if w not in index]
            if unknown:
                raise DatasetError(f"ImageFolder {p}: synsets not in the list: {unknown[:3]}")
        elif len(wnids) != NUM_CLASSES:
            raise DatasetError(f"ImageFolder {p}: {len(wnids)} synset directories, not 1000: their sorted order is not "
                               "the ILSVRC2012 class order", hint="pass the standard synset list (synset_words.txt)")
        else:
            index = {w: i for i, w in enumerate(wnids)}
        paths, labels = [], []
        for w in wnids:
            for f in sorted((p / w).iterdir()):
                if f.suffix.lower() in IMAGE_SUFFIXES:
                    paths.append(f)
                    labels.append(index[w])
        return Dataset(p, "ImageFolder", tuple(paths), np.asarray(labels, np.int64))
    raise DatasetError(f"{p}: no val_label.txt/val.txt, no synset directories: not a known ImageNet layout",
                       hint="see README 'Evaluation' for the accepted layouts")
