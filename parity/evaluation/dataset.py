"""ImageNet-1k readers for the layouts users have. Framework-free.

Class indices are the standard ILSVRC2012 order: the 1000 WordNet ids sorted (n01440764 = 0 ... n15075141 = 999),
the order of ``val.txt``/``synset_words.txt`` and of torchvision/timm/mmpretrain/PaddleClas/keras outputs.

Layouts (``open_dataset(path)`` detects them):

* ``val/`` + ``val_label.txt`` (or ``val.txt`` / ``ILSVRC2012_val_labels.txt`` / ``labels.txt``, the last only when it
  holds pairs, not class names) under ``path``: ``FILE INDEX`` lines
  (the seed's layout; a class-name file ``label.txt``/``synset_words.txt`` beside it is checked if present);
* ImageFolder: ``path/<wnid>/*.JPEG`` (torchvision style), all 1000 synset directories, or fewer with
  ``synsets=`` naming the standard list;
* a list file ``path`` with ``PATH LABEL`` (or ``PATH,LABEL``) lines, relative to the file's directory.

A mapping that is not the 1000-class one is refused with the reason: indices outside 0..999, a 1001-class file
(index 0 = background, as TF-slim/TFLite use), 1-based indices, a class-name file with 1001 lines.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ParityError

NUM_CLASSES = 1000
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".bmp")
LABEL_FILES = ("val_label.txt", "val.txt", "ILSVRC2012_val_labels.txt", "ilsvrc2012_val_labels.txt", "labels.txt")
NAME_OR_PAIRS = ("labels.txt",)   # a class-name list in some layouts (TFLite's labels.txt): used only when it holds pairs
WNID = re.compile(r"^n\d{8}$")
WNID_IN_PATH = re.compile(r"(?:^|[/_.-])(n\d{8})(?:[/_.-]|$)")
SYNSET_FILES = ("synset_words.txt", "LOC_synset_mapping.txt", "synsets.txt")


class DatasetError(ParityError):
    """A dataset, list file or label mapping that cannot give a trustworthy top-1 (refused before any work)."""


@dataclass(frozen=True)
class Dataset:
    root: Path
    layout: str
    paths: tuple[Path, ...]
    labels: np.ndarray
    label_evidence: str = ""     # how the label mapping was confirmed (wnids in file names, synset dirs), if it was

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for p, y in zip(self.paths, self.labels.tolist()):
            h.update(f"{p}\t{y}\n".encode())
        return h.hexdigest()[:16]

    def content_fingerprint(self) -> str:
        """Paths, labels and every file's size, mtime_ns and ctime_ns: what a cache of decoded images is keyed on,
        so that replacing the bytes behind a path (even with the same size and a restored mtime: the ctime moves)
        never serves tensors decoded from the old bytes. A missing file is part of the key too."""
        h = hashlib.sha256()
        for p, y in zip(self.paths, self.labels.tolist()):
            try:
                st = os.stat(p)
                stat = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"
            except OSError:
                stat = "missing"
            h.update(f"{p}\t{y}\t{stat}\n".encode())
        return h.hexdigest()[:16]

    def missing(self) -> list[Path]:
        return [p for p in self.paths if not p.is_file()]

    def subset(self, limit: int, seed: int = 0) -> Dataset:
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
                       self.labels[picked], self.label_evidence)


def _check_labels(labels: np.ndarray, source: str, label_base: int | None = None) -> np.ndarray:
    """The labels as 0-based ILSVRC2012 indices, or a DatasetError saying why they cannot be.

    ``label_base``: 1 when the file is known to count from 1 (converted here), 0 when it is known to count from 0.
    Unknown (None) and the file has no label 0: refused -- a 1-based file over a subset of classes has no 0 and no
    1000 either, and would silently score ~0 % (off by one on every image) unless the file names carry the class
    (``check_wnids``)."""
    if labels.size == 0:
        raise DatasetError(f"{source}: no labeled images")
    if label_base == 1:
        labels = labels - 1
    lo, hi = int(labels.min()), int(labels.max())
    if label_base is None and hi == NUM_CLASSES and lo >= 1:
        raise DatasetError(f"{source}: labels run {lo}..{hi}: 1-based, or a 1001-class mapping with 0 = background",
                           hint="pass --label-base 1 if the file counts classes from 1 (TF-slim/TFLite files include "
                                "a background class 0: subtract 1 from every label)")
    if hi >= NUM_CLASSES or lo < 0:
        raise DatasetError(f"{source}: labels span {lo}..{hi}"
                           + (" after --label-base 1" if label_base == 1 else "")
                           + ", outside 0..999: not the ILSVRC2012 1000-class mapping",
                           hint="a 1001-class file (index 0 = background) needs --label-base 1")
    return labels


def _require_base(labels: np.ndarray, source: str, label_base: int | None, evidence: str | None) -> None:
    """A label file with no 0 (and max <= 999 after the checks above) is ambiguous: 0-based over a subset, or 1-based.
    Accepted when the user said which (``label_base``) or when the file names confirmed the mapping (``evidence``)."""
    if label_base is not None or evidence is not None or int(labels.min()) == 0:
        return
    raise DatasetError(f"{source}: no image has label 0 (labels span {int(labels.min())}..{int(labels.max())}): a "
                       "1-based label file cannot be told from a 0-based one over a subset of classes, and an "
                       "off-by-one mapping scores ~0 %",
                       hint="pass --label-base 0 or --label-base 1 to say how the file counts, or put the standard "
                            "synset list (synset_words.txt) beside the data so file names can be checked")


def check_wnids(paths: tuple[Path, ...] | list[Path], labels: np.ndarray, order: list[str], source: str) -> str | None:
    """Evidence from the data itself: where a file name or its directory carries a WordNet id (n01440764_...),
    its label must be that wnid's index in the standard order. Returns a one-line confirmation, None when no path
    carries a wnid, or raises DatasetError naming the shift (off by one) or the mismatch."""
    index = {w: i for i, w in enumerate(order)}
    expected, got = [], []
    for p, y in zip(paths, labels.tolist()):
        m = WNID_IN_PATH.search(f"{Path(p).parent.name}/{Path(p).name}")
        if m and m.group(1) in index:
            expected.append(index[m.group(1)])
            got.append(y)
    if not expected:
        return None
    e, g = np.asarray(expected), np.asarray(got)
    agree = float((e == g).mean())
    if agree == 1.0:
        return f"labels confirmed by the wnids in {len(e)} file names"
    for shift in (1, -1):
        if float((e + shift == g).mean()) >= 0.95:
            raise DatasetError(f"{source}: labels are off by {shift:+d}: {int((e + shift == g).sum())} of {len(e)} "
                               f"images carry the label of wnid index {shift:+d} (e.g. {Path(paths[0]).name})",
                               hint=f"pass --label-base {1 if shift == 1 else 0}" if shift == 1 else
                               "the file counts from -1: fix the label file")
    bad = int((e != g).sum())
    raise DatasetError(f"{source}: {bad} of {len(e)} labels disagree with the WordNet id in the file name "
                       "(not the ILSVRC2012 sorted-wnid order?)",
                       hint="labels must be indices into the sorted list of the 1000 ILSVRC2012 wnids")


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


def _synset_order(synsets: str | Path | None, *dirs: Path) -> list[str] | None:
    """The standard wnid order from ``synsets`` or a synset list found in ``dirs`` (None when there is none)."""
    cands = [Path(synsets)] if synsets is not None else [d / n for d in dirs for n in SYNSET_FILES]
    for f in cands:
        if f.is_file():
            order = [ln.split()[0] for ln in f.read_text(errors="replace").splitlines() if ln.strip()]
            if len(order) != NUM_CLASSES or not all(WNID.match(w) for w in order):
                raise DatasetError(f"{f.name}: {len(order)} lines, expected the {NUM_CLASSES} ILSVRC2012 wnids in order")
            return order
        if synsets is not None:
            raise DatasetError(f"synset list not found: {f}")
    return None


def _labeled(paths: list[Path], labels: np.ndarray, source: str, root: Path, layout: str, label_base: int | None,
             synsets: str | Path | None, *dirs: Path) -> Dataset:
    """Checks shared by the list-file and label-file layouts: mapping, wnid evidence, files present."""
    labels = _check_labels(labels, source, label_base)
    order = _synset_order(synsets, *dirs)
    evidence = check_wnids(paths, labels, order, source) if order is not None else None
    _require_base(labels, source, label_base, evidence)
    present = sum(p.is_file() for p in paths)
    if present == 0:
        raise DatasetError(f"{source}: none of the {len(paths)} listed images exists (first: {paths[0]})",
                           hint="paths in a list/label file are relative to the file's directory (val/ for val_label.txt)")
    return Dataset(root, layout, tuple(paths), labels, evidence or "")


def open_dataset(path: str | Path, synsets: str | Path | None = None, label_base: int | None = None) -> Dataset:
    """``label_base``: 0 or 1 when the label file's counting is known (see ``_require_base``); ``synsets``: the
    standard wnid list (else one beside the data is used) to check labels against wnids in file names."""
    p = Path(path)
    if label_base not in (None, 0, 1):
        raise DatasetError(f"label base {label_base!r}: must be 0 or 1")
    if not p.exists():
        raise DatasetError(f"dataset not found: {p}", hint="set MBV2_PARITY_IMAGENET or pass --data")
    if p.is_file():
        paths, labels = _read_pairs(p, p.parent)
        return _labeled(paths, labels, p.name, p.parent, f"list file {p.name}", label_base, synsets,
                        p.parent, p.parent.parent)
    for name in LABEL_FILES:
        lf = p / name
        if lf.is_file():
            img_dir = p / "val" if (p / "val").is_dir() else p
            try:
                paths, labels = _read_pairs(lf, img_dir)
            except DatasetError:
                if name in NAME_OR_PAIRS:
                    continue
                raise
            for names in ("label.txt", "synset_words.txt"):
                if (p / names).is_file():
                    _check_names(p / names)
            return _labeled(paths, labels, name, p, f"{img_dir.name}/ + {name}", label_base, synsets, p)
    subdirs = sorted(d.name for d in p.iterdir() if d.is_dir())
    wnids = [d for d in subdirs if WNID.match(d)]
    if wnids:
        order = _synset_order(synsets, p) if len(wnids) != NUM_CLASSES else None
        if order is not None:
            index = {w: i for i, w in enumerate(order)}
            unknown = [w for w in wnids if w not in index]
            if unknown:
                raise DatasetError(f"ImageFolder {p}: synsets not in the list: {unknown[:3]}")
        elif len(wnids) != NUM_CLASSES:
            raise DatasetError(f"ImageFolder {p}: {len(wnids)} synset directories, not 1000: their sorted order is not "
                               "the ILSVRC2012 class order", hint="pass the standard synset list (synset_words.txt)")
        else:
            index = {w: i for i, w in enumerate(wnids)}
        files = [f for w in wnids for f in sorted((p / w).iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
        return Dataset(p, "ImageFolder", tuple(files), np.asarray([index[f.parent.name] for f in files], np.int64),
                       "labels from synset directories")
    raise DatasetError(f"{p}: no val_label.txt/val.txt/labels.txt of 'FILE INDEX' lines, no synset directories: not a "
                       "known ImageNet layout",
                       hint="see README 'Evaluation' for the accepted layouts")
