"""Upstream drift watch: did a weight file, a preprocessing default, a converter or a published number change?

For each card, against its golden fingerprint (``parity.golden``):

1. **weights**: an HTTP ``HEAD`` of the weight URL (ETag, Last-Modified, Content-Length) and, for Hugging Face
   hosted weights, the repo's revision sha; only when a validator changed (or none is recorded) is the file
   downloaded and hashed. A changed sha256 is a *weights* diff: which tensors changed and by how much (relative L2
   per tensor, through the canonical format) and how the probe logits/top-5 move.
2. **preprocessing**: the spec the framework derives today vs the recorded one.
3. **converter**: seeded weights (unchanged) give different ONNX logits than recorded: a converter/runtime upgrade.
   Different native logits too: the framework itself changed.
4. **published**: the numbers the framework's metadata publishes vs the recorded ones.

Every diff carries a stable fingerprint (sha256 of card, kind and the new state) so the same diff is never filed
twice. Nothing here raises on one card's failure: each card's outcome (change, unchanged, unreachable, error) is
recorded and the run continues.
"""
from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import frameworks, settings
from ..registry import Card, Registry
from ..weights.download import WeightsUnavailable, download, effective_url
from . import golden as golden_mod

if TYPE_CHECKING:
    from ..harness import Harness

CONVERTER_MAX_ABS = 1e-3   # seeded logits, same weights: above this the converter/runtime output changed


@dataclass
class Diff:
    card: str
    kind: str                       # weights | preprocessing | converter | framework | published
    summary: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        state = json.dumps({"card": self.card, "kind": self.kind, "new": self.details.get("new")}, sort_keys=True,
                           default=str)
        return hashlib.sha256(state.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fingerprint": self.fingerprint}


@dataclass
class CardWatch:
    card: str
    status: str                     # changed | unchanged | unreachable | error | no-golden
    diffs: list[Diff] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def head(url: str) -> dict[str, Any]:
    req = urllib.request.Request(effective_url(url), method="HEAD")
    with urllib.request.urlopen(req, timeout=settings.http_timeout()) as r:
        h = r.headers
        return {"etag": h.get("ETag"), "last_modified": h.get("Last-Modified"),
                "content_length": int(h["Content-Length"]) if h.get("Content-Length") else None}


def hf_revision(repo_id: str, revision: str = "main") -> str | None:
    base = settings.hf_endpoint()
    with urllib.request.urlopen(f"{base}/api/models/{repo_id}/revision/{revision or 'main'}",
                                timeout=settings.http_timeout()) as r:
        sha = json.loads(r.read()).get("sha")
        return str(sha) if sha else None


def _canonical_of(h: Harness, card: Card, path: Path) -> dict[str, np.ndarray] | None:
    """The weight file's tensors through the canonical format (None where the card's weights have no canonical form:
    only the reference card of a framework does, or every card of a framework that says so)."""
    from ..weights import canonical
    if card.id != frameworks.get(card.framework).reference_card and not frameworks.get(card.framework).any_card_canonical:
        return None
    out = path.with_suffix(".canonical.safetensors")
    built = h.build(card, f"file:{path}")
    h.client(card.framework).export_canonical(built.key, out)
    return canonical.load(out).tensors


def tensor_changes(old: dict[str, np.ndarray], new: dict[str, np.ndarray], top: int = 10) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if a is None or b is None or a.shape != b.shape:
            rows.append({"tensor": k, "rel_l2": None, "note": "added/removed/reshaped"})
            continue
        num = float(np.linalg.norm((a - b).astype(np.float64)))
        if num:
            rows.append({"tensor": k, "rel_l2": num / max(float(np.linalg.norm(a.astype(np.float64))), 1e-12)})
    rows.sort(key=lambda r: -(r["rel_l2"] or float("inf")))
    return rows[:top] + ([{"tensor": f"... {len(rows) - top} more", "rel_l2": None}] if len(rows) > top else [])


def watch_card(h: Harness, card: Card, gold: dict[str, Any] | None, cache: Path,
               download_always: bool = False) -> CardWatch:
    cw = CardWatch(card.id, "unchanged")
    if gold is None:
        cw.status = "no-golden"
        cw.notes.append("no golden fingerprint: run `mbv2-parity golden update --write` first")
        return cw
    try:
        _watch_weights(h, card, gold.get("weights") or {}, cache, download_always, cw)
    except (WeightsUnavailable, urllib.error.URLError, TimeoutError, OSError) as e:
        cw.status = "unreachable"
        cw.notes.append(f"upstream unreachable: {str(e)[:200]}")
    try:  # preprocessing, converter/framework, published: no network needed
        new = golden_mod.compute(h, card)
        cw.diffs += _spec_diffs(card, gold, new, h.registry) + _output_diffs(card, gold, new) + _published_diffs(card, gold, new)
    except Exception as e:  # one card's failure is recorded; the watch goes on  # noqa: BLE001
        cw.status = "error"
        cw.notes.append(f"{type(e).__name__}: {str(e)[:300]}")
    if cw.diffs:
        cw.status = "changed"
    return cw


def _watch_weights(h: Harness, card: Card, gw: dict[str, Any], cache: Path, download_always: bool,
                   cw: CardWatch) -> None:
    """HEAD validators (and the Hub revision); download and hash only when one changed or none is recorded."""
    hd = head(card.weights.url)
    rev = hf_revision(card.weights.hf_hub_id, card.weights.hf_revision) \
        if card.weights.hf_hub_id and settings.watch_hf() else None
    changed = [k for k in ("etag", "last_modified", "content_length")
               if hd.get(k) is not None and gw.get(k) is not None and hd[k] != gw[k]]
    if rev and gw.get("hf_revision") and rev != gw["hf_revision"]:
        changed.append("hf_revision")
    cw.notes.append(f"HEAD {hd}; validators changed: {changed or 'none'}")
    if not (download_always or changed or not gw.get("sha256")):
        return
    here = cache / card.id.replace("/", "__")
    new_path, sha = download(card.weights.url, here / "new.bin")
    if gw.get("sha256") and sha != gw["sha256"]:
        d = Diff(card.id, "weights", f"weight file changed upstream: sha256 {gw['sha256'][:12]}... -> {sha[:12]}...",
                 {"old": {k: gw.get(k) for k in ("sha256", "size", "etag", "last_modified")},
                  "new": {"sha256": sha, "size": new_path.stat().st_size, **hd, "hf_revision": rev},
                  "changed_validators": changed})
        old_path = here / f"{gw['sha256']}.bin"
        if old_path.is_file():
            _weights_evidence(h, card, old_path, new_path, d)
        else:
            d.details["tensors_note"] = "the previous file is not in the watch cache: per-tensor diff unavailable"
        cw.diffs.append(d)
    os.replace(new_path, here / f"{sha}.bin")


def _weights_evidence(h: Harness, card: Card, old_path: Path, new_path: Path, d: Diff) -> None:
    """Which tensors changed (relative L2) and how the probe logits move; the diff is filed even when this fails."""
    from ..preprocess import preprocess_batch
    from ..probes import synthetic_images
    try:
        old_t, new_t = _canonical_of(h, card, old_path), _canonical_of(h, card, new_path)
        if old_t and new_t:
            d.details["tensors"] = tensor_changes(old_t, new_t)
        x = preprocess_batch(synthetic_images(), card.preprocess)
        ya, yb = h.native(card, f"file:{old_path}", x), h.native(card, f"file:{new_path}", x)
        d.details["probe"] = {"max_abs_logit_change": float(np.abs(ya - yb).max()),
                              "top1_agree": float((ya.argmax(1) == yb.argmax(1)).mean()),
                              "top5_old": np.argsort(-ya, 1)[:, :5].tolist(),
                              "top5_new": np.argsort(-yb, 1)[:, :5].tolist()}
    except Exception as e:  # noqa: BLE001
        d.details["probe_error"] = f"{type(e).__name__}: {str(e)[:200]}"


def _spec_diffs(card: Card, gold: dict[str, Any], new: dict[str, Any], registry: Registry) -> list[Diff]:
    """A changed preprocessing default; where the registry's ``[[preprocess_history]]`` knows the old or the new
    normalization, the diff names the versions each holds for."""
    spec_old, spec_new = gold.get("spec") or {}, new["spec"]
    changed = {k: (spec_old.get(k), spec_new.get(k)) for k in set(spec_old) | set(spec_new)
               if k != "source" and spec_old.get(k) != spec_new.get(k)}
    if not changed:
        return []
    known = {side: [f"{r.function} ({r.holds_for}; {r.source}: {r.citation})" for r in
                    registry.history_of(card.framework, spec)] for side, spec in (("old", spec_old), ("new", spec_new))}
    summary = "preprocessing default changed: " + ", ".join(
        f"{k} {a!r} -> {b!r}" for k, (a, b) in sorted(changed.items()))
    normalization_changed = bool({"scale", "mean", "std"} & set(changed))
    if not normalization_changed or known["old"] == known["new"]:
        known = {"old": [], "new": []}       # history names a normalization change only
    if known["old"] and known["new"]:
        summary += f" (was {known['old'][0].split(' (')[0]}, now {known['new'][0].split(' (')[0]})"
    return [Diff(card.id, "preprocessing", summary,
                 {"old": spec_old, "new": spec_new, "fields": sorted(changed), "history": known})]


def _output_diffs(card: Card, gold: dict[str, Any], new: dict[str, Any]) -> list[Diff]:
    out = []
    lo, ln = gold.get("_logits") or {}, new["_logits"]
    for kind, key in (("converter", "onnx"), ("framework", "native")):
        if key in lo and lo[key].shape == ln[key].shape:
            dmax = float(np.abs(lo[key] - ln[key]).max())
            if dmax > CONVERTER_MAX_ABS:
                what = ("same weights, different ONNX output (converter/runtime upgrade?)" if kind == "converter"
                        else "same weights, different native output (framework upgrade?)")
                out.append(Diff(card.id, kind, f"{what}: max |logit change| {dmax:.3g}",
                                {"max_abs": dmax, "old_versions": gold.get("versions"),
                                 "new": {"versions": new["versions"], "top5": new["probe"][f"top5_{key}"]},
                                 "top1_agree": float((lo[key].argmax(1) == ln[key].argmax(1)).mean())}))
    return out


def _published_diffs(card: Card, gold: dict[str, Any], new: dict[str, Any]) -> list[Diff]:
    po, pn = gold.get("published") or {}, new["published"]
    changed = {k: (po.get(k), pn.get(k)) for k in set(po) | set(pn) if po.get(k) != pn.get(k)}
    if not changed:
        return []
    return [Diff(card.id, "published", "published metrics changed: " + ", ".join(
        f"{k} {a} -> {b}" for k, (a, b) in sorted(changed.items())), {"old": po, "new": pn})]


def report_markdown(results: list[CardWatch]) -> str:
    lines = ["# mbv2-parity upstream watch", "", "| card | status | diffs |", "|---|---|---|"]
    for r in results:
        lines.append(f"| {r.card} | {r.status} | {'; '.join(d.kind for d in r.diffs) or '-'} |")
    for r in results:
        for d in r.diffs:
            lines += ["", diff_markdown(d)]
    return "\n".join(lines) + "\n"


def diff_markdown(d: Diff) -> str:
    out = [f"## {d.card}: {d.kind}", "", d.summary, "", f"fingerprint: `mbv2-parity:{d.fingerprint}`", ""]
    det = d.details
    if d.kind == "weights":
        out += [f"* old sha256: `{(det.get('old') or {}).get('sha256')}`", f"* new sha256: `{det['new']['sha256']}`",
                f"* changed validators: {det.get('changed_validators')}"]
        if det.get("tensors"):
            out += ["", "| tensor | relative L2 change |", "|---|---|"]
            for t in det["tensors"]:
                rel = "" if t["rel_l2"] is None else f"{t['rel_l2']:.3e}"
                out.append(f"| {t['tensor']} | {rel} |")
        if det.get("probe"):
            p = det["probe"]
            out += ["", f"probe batch: max |logit change| {p['max_abs_logit_change']:.3g}, top-1 agreement "
                        f"{p['top1_agree']:.2f}"]
        if det.get("tensors_note"):
            out.append(det["tensors_note"])
    elif d.kind == "preprocessing":
        out += [f"* {k}: `{det['old'].get(k)!r}` -> `{det['new'].get(k)!r}`" for k in det["fields"]]
        for side in ("old", "new"):
            out += [f"* {side} normalization is {h}" for h in (det.get("history") or {}).get(side, [])]
    elif d.kind in ("converter", "framework"):
        out += [f"* max |logit change| on the probe batch: {det['max_abs']:.3g}, top-1 agreement {det['top1_agree']:.2f}",
                f"* versions before: `{json.dumps(det.get('old_versions'), sort_keys=True)}`",
                f"* versions now: `{json.dumps(det['new']['versions'], sort_keys=True)}`"]
    elif d.kind == "published":
        out += [f"* {k}: {det['old'].get(k)} -> {det['new'].get(k)}" for k in sorted(set(det["old"]) | set(det["new"]))
                if det["old"].get(k) != det["new"].get(k)]
    out.append(dataset_evidence(d.card))
    return "\n".join(out)


def dataset_evidence(card: str) -> str:
    """Where the per-image evidence of a top-1 change comes from: with a dataset configured, the `eval` + `eval diff`
    commands against the last full validation (and that workflow's runs when the repository is known)."""
    from .. import settings
    if not settings.imagenet():
        return "\nTop-1 change on a dataset: configure `MBV2_PARITY_IMAGENET` and run `mbv2-parity eval`."
    repo = settings.github_repo()
    runs = f" (the last one: https://github.com/{repo}/actions/workflows/full-val.yml, artifact `full-val`)" if repo else ""
    return ("\nPer-image evidence on the configured dataset: `mbv2-parity eval " + card + " --data "
            "$MBV2_PARITY_IMAGENET --json after.json`, then `mbv2-parity eval diff before.json after.json` against the "
            "merged JSON of the last full validation" + runs + ": the images whose top-1 changed, with labels and both "
            "predictions, and the net top-1 change with its paired 95 % interval and McNemar's p.")
