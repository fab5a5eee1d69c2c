"""Golden fingerprints (``fixtures/golden/``): what each card looked like when last accepted. Framework-free.

Per card, ``<id>.json``:

* ``weights``: url, sha256 and size of the upstream file as last seen (null until a machine that can reach upstream
  records them), and its HTTP validators (ETag, Last-Modified, Content-Length) and Hugging Face revision sha;
* ``spec``: the preprocessing spec derived from the framework;
* ``published``: the numbers the framework's own metadata publishes (``meta`` op);
* ``versions``: the worker's package versions;
* ``probe``: top-5 per probe image of the seeded model natively and through ONNX, with the logits themselves in
  ``<id>.npz`` (float32, compressed): a converter or framework upgrade that changes outputs shows up here.

``mbv2-parity golden update [MODEL...]`` recomputes, prints the diff against what is stored, and writes only
with ``--write``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..registry import Card

if TYPE_CHECKING:
    from ..harness import Harness

from ..paths import GOLDEN_DIR


def golden_path(card_id: str, root: Path | None = None) -> Path:
    return (root or GOLDEN_DIR) / (card_id.replace("/", "__") + ".json")


def load(card_id: str, root: Path | None = None) -> dict[str, Any] | None:
    p = golden_path(card_id, root)
    if not p.is_file():
        return None
    doc = json.loads(p.read_text())
    npz = p.with_suffix(".npz")
    if npz.is_file():
        with np.load(npz) as z:
            doc["_logits"] = {k: z[k] for k in z.files}
    return dict(doc)


def save(doc: dict[str, Any], root: Path | None = None) -> Path:
    p = golden_path(doc["card"], root)
    p.parent.mkdir(parents=True, exist_ok=True)
    logits = doc.pop("_logits", None)
    p.write_text(json.dumps(doc, indent=1, sort_keys=True, default=str) + "\n")
    if logits:
        arrays: dict[str, Any] = {k: np.asarray(v, np.float32) for k, v in logits.items()}
        np.savez_compressed(p.with_suffix(".npz"), **arrays)
    if logits is not None:
        doc["_logits"] = logits
    return p


GOLDEN_RUNTIME = "ort-opt-off"   # the exported graph as written: a converter change shows up unmasked


def compute(h: Harness, card: Card) -> dict[str, Any]:
    """The current fingerprint of a card (seeded weights; no download)."""
    from .. import runtimes
    from ..harness import DEFAULT_OPSET
    from ..preprocess import preprocess_batch
    from ..probes import synthetic_images
    client = h.client(card.framework)
    spec = client.derive_spec(card).to_dict()
    meta = client.meta(card)
    x = preprocess_batch(synthetic_images(), card.preprocess)  # synthetic only: the same on every machine
    native = h.native(card, "seeded", x)
    with runtimes.create(GOLDEN_RUNTIME) as rt:
        rt.load(runtimes.Target(h, card, "seeded", DEFAULT_OPSET))
        onnx_y = rt.infer(x)
    versions = h.pool.info(card.framework).get("versions", {})
    return {"card": card.id, "schema": 1,
            "weights": {"url": card.weights.url, "sha256": card.weights.sha256 or None, "size": None,
                        "etag": None, "last_modified": None, "content_length": None,
                        "hf_revision": card.weights.hf_revision or None},
            "spec": spec, "published": {k: v["value"] for k, v in meta.published.items()},
            "versions": versions,
            "probe": {"n": len(x), "top5_native": np.argsort(-native, 1)[:, :5].tolist(),
                      "top5_onnx": np.argsort(-onnx_y, 1)[:, :5].tolist(), "opset": DEFAULT_OPSET},
            "_logits": {"native": native, "onnx": onnx_y}}


def diff(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """Human-readable differences between two fingerprints ([] when equal)."""
    if old is None:
        return ["no golden record yet"]
    out = []
    for section in ("weights", "spec", "published", "versions"):
        a, b = old.get(section) or {}, new.get(section) or {}
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k) and not (section == "weights" and b.get(k) is None):
                out.append(f"{section}.{k}: {a.get(k)!r} -> {b.get(k)!r}")
    la, lb = old.get("_logits") or {}, new.get("_logits") or {}
    for k in sorted(set(la) & set(lb)):
        if la[k].shape != lb[k].shape:
            out.append(f"probe logits {k}: shape {la[k].shape} -> {lb[k].shape}")
            continue
        d = float(np.abs(la[k] - lb[k]).max())
        if d > 1e-3:
            out.append(f"probe logits {k}: max |diff| {d:.3g}")
    for k in ("top5_native", "top5_onnx"):
        if (old.get("probe") or {}).get(k) != (new.get("probe") or {}).get(k):
            out.append(f"probe {k} changed")
    return out
