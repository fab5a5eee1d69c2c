"""The weights modes of a card: ``seeded``, ``pretrained``, ``file:PATH``, ``canonical:PATH``. Framework-free.

* ``seeded``: deterministic weights with realistic statistics (``parity.kit.SeededRecipe``), the seed derived from
  the card id; the BN statistics are calibrated on a seeded synthetic batch preprocessed with the card's spec.
* ``pretrained``: the upstream file, downloaded and verified (``parity.weights.download``).
* ``file:PATH``: a native weight file of the card's framework (pickles through restricted loaders).
* ``canonical:PATH``: canonical weights (``parity.weights.canonical``), or a MobileNetV2 ``.tflite`` converted to them;
  the file's padding is used (or refused).
* ``real``: the real ImageNet-trained MobileNetV2 1.0 of ``../shared/realdata`` (the TF2 PTQ TFLite file, dequantized,
  TF-"SAME" padding) as canonical weights; a check skips, with the reason, where they are absent or where the card's
  width is not 1.0.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from .. import frameworks
from ..errors import UsageError
from ..registry import Card

MODES = ("seeded", "pretrained", "real", "file:PATH", "canonical:PATH")
REAL_TFLITE = ("tflite", "tf2_mobilenet_v2_1.0_224_ptq.tflite")


def seed_for(card: Card) -> int:
    """A stable seed per card (sha256 of its id), so seeded weights are reproducible everywhere."""
    return int.from_bytes(hashlib.sha256(card.id.encode()).digest()[:4], "big") % (2 ** 31)


def parse_mode(mode: str) -> tuple[str, str | None]:
    if mode in ("seeded", "pretrained", "real"):
        return mode, None
    for kind in ("file", "canonical"):
        if mode.startswith(kind + ":") and len(mode) > len(kind) + 1:
            return kind, mode[len(kind) + 1:]
    raise UsageError(f"unknown weights mode {mode!r}", hint=f"use one of {', '.join(MODES)}")


def validate(mode: str, cards: list[Card]) -> None:
    """Refuse, before any work, a weights mode that cannot work for these cards: a missing file, a native file of
    another framework (by its suffix) or not of its framework's format (``formats``: a garbage or truncated file), a
    canonical file that does not load."""
    kind, path = parse_mode(mode)
    if path is None:
        return
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"--weights {mode}: no such file", hint="give the path of a weight file")
    if kind == "canonical":
        if p.suffix == ".tflite":
            return  # converted (and checked) when a card is built
        from .canonical import load
        pad = load(p).padding
        for card in cards:
            fw = frameworks.get(card.framework)
            if "padding" not in card.build and pad not in fw.paddings:
                raise UsageError(f"--weights {mode}: the weights were trained with {pad!r} padding; {card.id} "
                                 f"({card.framework}) builds {', '.join(fw.paddings)} only",
                                 hint="the model would not be the one the weights were trained as; pick cards of "
                                      f"frameworks that build {pad!r}")
        return
    owners = frameworks.by_suffix(p.name)
    for card in cards:
        fw = frameworks.get(card.framework)
        if owners and fw not in owners:
            raise UsageError(f"--weights {mode}: a {owners[0].weight_format} file ({p.suffix}) for "
                             f"{card.id}, a {card.framework} card that loads {'/'.join(fw.weight_suffixes)}",
                             hint=f"{p.suffix} files fit the {', '.join(f.name for f in owners)} cards; or convert "
                                  f"it with `mbv2-parity transplant {p.name} --to {card.framework}`")
    from .formats import problem
    for fmt in sorted({frameworks.get(c.framework).weight_format for c in cards}):
        why = problem(p, fmt)
        if why:
            fws = sorted({c.framework for c in cards if frameworks.get(c.framework).weight_format == fmt})
            raise UsageError(f"--weights {mode}: not a {fmt} file: {why}",
                             hint=f"the file is corrupt or not {'/'.join(fws)} weights; re-download it or re-save "
                                  "the state dict with the framework's own save function")


def padding_note(mode: str) -> str:
    """For canonical weights: the padding every card will be built with (the file's), said once."""
    kind, path = parse_mode(mode)
    if kind != "canonical" or path is None or path.endswith(".tflite"):
        return ""
    from .canonical import load
    return (f"{Path(path).name}: weights trained with {load(path).padding!r} padding; every card is built with it "
            "(a framework's own padding would be another model)")
