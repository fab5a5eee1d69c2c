"""Which card, with which weights, an artifact was made from: structure first (input size, stem width, padding
style), then behaviour. Candidates are compared on the probe images preprocessed with each candidate's own spec:

* seeded weights: against the card's golden fingerprint (``fixtures/golden``: the seeded model's logits on the
  synthetic probes, no model built);
* the real TFLite weights (``--weights real``) on the width-1.0 cards whose padding the artifact has;
* for a TFLite MobileNetV2, its own weights dequantized into that card (``canonical:FILE``): the architecture
  reproduced, the quantization aside.

Each candidate gets the mean per-probe Pearson correlation of the scores (probabilities against the reference's softmax
when the artifact ends in a softmax) and the top-5 overlap. Framework-free."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..drift import golden
from ..paths import realdata_dir
from ..preprocess import preprocess_batch
from ..probes import probe_images, synthetic_images
from ..registry import Card, Registry
from ..spec import PreprocessSpec
from .metadata import metadata_spec

if TYPE_CHECKING:
    from ..harness import Harness
    from .artifact import Artifact

Array = npt.NDArray[Any]
# how a candidate was fed when its match was found, where the artifact carries preprocessing metadata (e.g. an IR's
# baked mean_values): as the metadata says, or only as the card's spec says (the metadata disagrees with the file)
AS_METADATA, NOT_AS_METADATA = ", fed as its metadata says", ", fed the card's spec, not as its metadata says"
IDENTICAL = {"fp32": 0.995, "fp16": 0.99, "bf16": 0.98, "int8": 0.9}   # correlation that says "made from"


def width_of(card: Card) -> float:
    b = card.build
    for k in ("width_mult", "widen_factor", "scale", "alpha"):
        if k in b:
            return float(b[k])
    digits = "".join(ch for ch in card.arch.split("_")[-1] if ch.isdigit())
    return int(digits) / 100 if digits else 1.0


def stem_of(width: float) -> int:
    """The stem's output channels at ``width``: ``_make_divisible(32 * width, 8)`` (the MobileNetV2 paper's rule)."""
    v = 32 * width
    new = max(8, int(v + 4) // 8 * 8)
    return new + 8 if new < 0.9 * v else new


def softmax(z: Array) -> Array:
    e = np.exp(z - z.max(1, keepdims=True))
    out: Array = e / e.sum(1, keepdims=True)
    return out


def comparable(art: Artifact, test: Array, ref: Array) -> tuple[Array, Array]:
    return (test, softmax(ref)) if art.probabilities else (test, ref)


def correlation(a: Array, b: Array) -> float:
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    den = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    return float(np.mean(np.where(den > 0, (a * b).sum(1) / np.where(den > 0, den, 1), 0.0)))


def top5_overlap(a: Array, b: Array) -> float:
    ta, tb = np.argsort(-a, 1)[:, :5], np.argsort(-b, 1)[:, :5]
    return float(np.mean([len(set(x) & set(y)) / 5 for x, y in zip(ta.tolist(), tb.tolist(), strict=True)]))


@dataclass
class Match:
    card: str
    weights: str            # seeded | real | canonical:FILE
    evidence: str           # golden fingerprint | native model
    correlation: float
    top5: float

    def line(self) -> str:
        return f"{self.card} with {self.weights} weights ({self.evidence}): correlation {self.correlation:.4f}, " \
               f"top-5 overlap {self.top5:.2f}"


@dataclass
class Identification:
    matches: list[Match] = field(default_factory=list)
    structure: list[str] = field(default_factory=list)
    candidates: list[str] = field(default_factory=list)
    threshold: float = 0.99
    ran_at: str = "fp32"      # the precision the artifact ran at for identification (the file's own, where forced)

    @property
    def best(self) -> Match | None:
        return max(self.matches, key=lambda m: m.correlation) if self.matches else None

    @property
    def identical(self) -> bool:
        return self.best is not None and self.best.correlation >= self.threshold

    def sentence(self) -> str:
        b = self.best
        if b is None:
            return "no candidate card could be compared"
        if self.identical:
            return f"made from {b.card} with {b.weights} weights (correlation {b.correlation:.4f}, {b.evidence})"
        return f"closest: {b.card} with {b.weights} weights; not identical (correlation {b.correlation:.2f})"

    def to_dict(self) -> dict[str, Any]:
        return {"sentence": self.sentence(), "identical": self.identical, "threshold": self.threshold,
                "ran_at": self.ran_at,
                "structure": self.structure, "candidates": self.candidates,
                "matches": [vars(m) for m in sorted(self.matches, key=lambda m: -m.correlation)]}


def candidates(reg: Registry, art: Artifact, claimed: Card | None) -> tuple[list[Card], list[str]]:
    """Cards the artifact's structure allows, with the reasons (input size, stem width)."""
    st, why = art.structure, []
    cards = list(reg)
    if art.size:
        cards = [c for c in cards if c.preprocess.crop_size == art.size]
        why.append(f"input {art.size}x{art.size}")
    if st.get("stem_channels"):
        kept = [c for c in cards if stem_of(width_of(c)) == st["stem_channels"]]
        if kept:
            cards = kept
            why.append(f"stem {st['stem_channels']} channels")
    if claimed is not None and claimed not in cards:
        cards.append(claimed)
    return cards, why


def _feed(art: Artifact, spec: PreprocessSpec, images: Any) -> Array:
    return preprocess_batch(images, spec.replace(layout=art.layout, dtype="float32"))


def identify(h: Harness, reg: Registry, art: Artifact, claimed: Card | None = None) -> Identification:
    """Each candidate fed as the artifact's own metadata says (e.g. raw pixels: an IR's baked mean_values) and as the
    card's spec, the better kept: the evidence says which, so metadata that lies does not hide the weights."""
    cards, why = candidates(reg, art, claimed)
    st = art.structure
    ident = Identification(threshold=IDENTICAL.get(art.exact_precision or art.precision, 0.99),
                           candidates=[c.id for c in cards], ran_at=art.exact_precision or art.precision)
    if st:
        ident.structure = [f"padding {st.get('padding')} (TF-SAME)" if st.get("padding") == "same" else
                           f"padding {st.get('padding')}", f"activation {st.get('activation')}",
                           f"{st.get('convs')} conv units", f"{art.classes} classes", *why]
    synth = synthetic_images()
    cache: dict[str, Array] = {}
    if not art.size:   # a dynamic input size: the 224 cards first, the others only when none of them is it
        cards = sorted(cards, key=lambda c: c.preprocess.crop_size != 224)
    for card in cards:
        if ident.identical and card.preprocess.crop_size != 224:
            break
        g = golden.load(card.id)
        logits = (g or {}).get("_logits", {}).get("native")
        if logits is None:
            continue
        meta = metadata_spec(art, card.preprocess)[0]
        fed: dict[str, tuple[float, float]] = {}
        for spec, how in ((meta, AS_METADATA), (card.preprocess, "")):
            if spec is None or (how and spec == card.preprocess):
                continue
            key = repr(sorted(spec.to_dict().items()))
            if key not in cache:
                cache[key] = art.scores(art.run(h, _feed(art, spec, synth), exact=True))
            t, r = comparable(art, cache[key], np.asarray(logits, np.float64))
            fed[how] = (correlation(t, r), top5_overlap(t, r))
        how = max(fed, key=lambda k: fed[k][0])
        said = how
        if how == "" and AS_METADATA in fed and fed[AS_METADATA][0] < ident.threshold <= fed[""][0]:
            said = NOT_AS_METADATA     # made from it, but matching only when fed otherwise than its metadata says
        ident.matches.append(Match(card.id, "seeded", f"golden fingerprint{said}", *fed[how]))
    real = realdata_dir()
    if real is not None and not ident.identical:
        pad = st.get("padding", "unknown")
        wide = [c for c in cards if width_of(c) == 1.0 and (pad == "unknown" or c.padding == pad)]
        modes = ["real"] + ([f"canonical:{art.path}"] if art.fmt.name == "tflite" else [])
        images = [im for _, im in probe_images()]
        for card in wide[:1] if pad != "unknown" else wide[:2]:
            x_ref = preprocess_batch(images, card.preprocess)
            t = art.scores(art.run(h, _feed(art, card.preprocess, images), exact=True))
            for mode in modes:
                try:
                    ref = h.native(card, mode, x_ref)
                except Exception:  # noqa: BLE001 - a card the weights do not fit is no candidate
                    continue
                a, b = comparable(art, t, np.asarray(ref, np.float64))
                label = "real (the shared TF2 PTQ TFLite file's)" if mode == "real" else "its own (dequantized)"
                ident.matches.append(Match(card.id, label if mode == "real" else mode, "native model",
                                           correlation(a, b), top5_overlap(a, b)))
    return ident
