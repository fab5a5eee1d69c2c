"""Sharded evaluation: a deterministic partition of a dataset, per-image records, the versioned eval JSON, and the
merge and per-image diff of eval JSONs. Framework-free, no worker: merge and diff read files only.

* **Partition** (``shard``): stratified by class and independent of the order of files on disk. Images are named by
  their path relative to the dataset root (``image_ids``); within each class they are ordered by the sha256 of that
  name, and the j-th goes to shard ``(j + offset(class)) mod N`` (the offset, also from a sha256, spreads the
  classes' remainders so shard sizes differ by at most a few images). Every class is split as evenly as N allows.
* **Records**: per evaluated image its top-5 class indices and the runtime's outputs there, and a digest of its
  float32 logits row; per result the run's identity (card, build digest, weights digest, spec digest, runtime,
  precision, runtime version and options) and per file the dataset fingerprint (sorted ``id<TAB>label`` lines, so
  independent of file order and of where the dataset is mounted) and the suite version.
* **Merge** refuses, each with a one-line reason: a file that is not an eval JSON of this format version, a file
  written without ``--shard``, shards of different identity (the first differing field is named), a shard given
  twice, shards that overlap, missing shards, and shards whose union is not the dataset they claim.
* **Diff**: two eval JSONs of the same images; the images whose top-1 changed with their labels and both
  predictions, and the net top-1 change B - A with its paired 95 % interval (``paired_difference``) and McNemar's
  exact p-value (``mcnemar``).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError
from .dataset import Dataset
from .verdicts import EvalResult, mcnemar, paired_difference, wilson

FORMAT = "mbv2-parity-eval"
VERSION = 2          # 1: the eval.json before per-image records (no "format" key); 2: per-image records, identity
PER_IMAGE = ("id", "label", "top5", "score", "logits_sha256")


class ShardError(UsageError):
    """Shard files or eval JSONs that cannot be merged or compared (refused with the reason, exit 2)."""


def _h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def image_ids(ds: Dataset) -> list[str]:
    """Each image's name: its path relative to the dataset root (POSIX), else the path as given."""
    root = Path(ds.root)
    out = []
    for p in ds.paths:
        try:
            out.append(Path(p).relative_to(root).as_posix())
        except ValueError:
            out.append(Path(p).as_posix())
    return out


def fingerprint(ids: list[str], labels: list[int]) -> str:
    """sha256 (16 hex) of the sorted ``id<TAB>label`` lines: the same set of labeled images in any order."""
    return _h("".join(sorted(f"{i}\t{y}\n" for i, y in zip(ids, labels))))[:16]


def parse_shard(text: str) -> tuple[int, int]:
    """``K/N`` with 1 <= K <= N, else a UsageError."""
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard {text!r}: expected K/N, e.g. 2/8") from None
    if n < 1 or not 1 <= k <= n:
        raise UsageError(f"--shard {text}: K must be between 1 and N (shards are numbered 1..N)")
    return k, n


def shard(ds: Dataset, k: int, n: int) -> Dataset:
    """Shard ``k`` of ``n`` of ``ds`` (see the module doc), its images ordered by name."""
    ids = image_ids(ds)
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise UsageError(f"--shard: image {dup} is listed more than once: shards could overlap",
                         hint="list every image once")
    by_class: dict[int, list[int]] = {}
    for i, y in enumerate(ds.labels.tolist()):
        by_class.setdefault(int(y), []).append(i)
    picked = []
    for c, members in by_class.items():
        members.sort(key=lambda i: _h(ids[i]))
        offset = int(_h(f"class {c}")[:8], 16) % n
        picked += [i for j, i in enumerate(members) if (j + offset) % n == k - 1]
    picked.sort(key=lambda i: ids[i])
    return Dataset(ds.root, ds.layout + f"[shard {k}/{n}]", tuple(ds.paths[i] for i in picked), ds.labels[picked],
                   ds.label_evidence)


@dataclass
class ImageRecords:
    """Per-image top-5, scores and logits digests of one runtime, accumulated batch by batch."""

    top5: list[list[int]] = field(default_factory=list)
    scores: list[list[float]] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)

    def add(self, logits: np.ndarray) -> None:
        logits = np.asarray(logits, np.float32)
        idx = np.argsort(-logits, axis=1, kind="stable")[:, :5]      # the order count_correct ranks by
        self.top5 += idx.tolist()
        self.scores += np.take_along_axis(logits, idx, 1).astype(float).tolist()
        self.digests += [hashlib.sha256(np.ascontiguousarray(row).tobytes()).hexdigest()[:16] for row in logits]


def images_block(r: EvalResult, ds: Dataset) -> dict[str, Any]:
    """The per-image records of a result, ordered by image name, and the images it could not decode."""
    order = sorted(range(len(r.ids)), key=lambda i: r.ids[i])
    kept = set(r.ids)
    labels = dict(zip(image_ids(ds), ds.labels.tolist()))
    skipped = sorted(i for i in labels if i not in kept)
    return {"id": [r.ids[i] for i in order], "label": [r.labels[i] for i in order],
            "top5": [r.top5_classes[i] for i in order], "score": [r.scores[i] for i in order],
            "logits_sha256": [r.digests[i] for i in order],
            "skipped_id": skipped, "skipped_label": [labels[i] for i in skipped]}


def result_identity(card: Any, weights_kind: str, weights_sha256: str, r: EvalResult,
                    options: dict[str, Any]) -> dict[str, Any]:
    """What must be equal for two shards' results to be parts of one evaluation."""
    return {"card": card.id, "build_digest": card.build_digest, "weights": weights_kind,
            "weights_sha256": weights_sha256, "spec_sha256": card.preprocess.digest(), "runtime": r.backend,
            "precision": r.runtime.get("precision"), "runtime_version": r.runtime.get("version"),
            "options": json.loads(json.dumps(options, sort_keys=True, default=str))}


def document(full: Dataset, evaluated: Dataset, shard_kn: tuple[int, int] | None, run_id: str) -> dict[str, Any]:
    """The head of an eval JSON (results are appended by the caller)."""
    from .. import __version__
    from ..machine import read_cpu
    ids = image_ids(full)
    doc: dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "suite": __version__, "run": run_id,
        "dataset": {"path": str(full.root), "layout": full.layout, "n": len(full),
                    "fingerprint": fingerprint(ids, full.labels.tolist())},
        "shard": None, "results": [], "machine": {"cpu": read_cpu()}}
    if shard_kn:
        doc["shard"] = {"k": shard_kn[0], "n": shard_kn[1], "images": len(evaluated),
                        "fingerprint": fingerprint(image_ids(evaluated), evaluated.labels.tolist())}
    return doc


# ------------------------------------------------------------------------------------------------ reading
def load(path: str | Path) -> dict[str, Any]:
    """An eval JSON of this format version, or a ShardError saying what it is instead."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except FileNotFoundError:
        raise ShardError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ShardError(f"{p}: not a JSON file ({str(e).splitlines()[0][:80]})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ShardError(f"{p}: not an eval JSON of mbv2-parity (no \"format\": \"{FORMAT}\")",
                         hint="give files written by `eval --json` or `eval merge --json`")
    if doc.get("version") != VERSION:
        raise ShardError(f"{p}: eval JSON version {doc.get('version')}, this suite reads version {VERSION}",
                         hint="evaluate again with this version of the suite")
    return doc


def identity(doc: dict[str, Any]) -> dict[str, Any]:
    """Everything two shards of one evaluation share: suite version, dataset, shard count, every result's identity."""
    results = {key(r): r.get("identity", {"status": r.get("status")}) for r in doc["results"]}
    return {"suite": doc["suite"], "dataset": doc["dataset"]["fingerprint"], "images": doc["dataset"]["n"],
            "shards": (doc.get("shard") or {}).get("n"), "results": results}


def key(r: dict[str, Any]) -> str:
    return f"{r['card']} [{r.get('backend', r.get('status'))}]"


def first_difference(a: Any, b: Any, path: str = "") -> str:
    """The first field where two identities differ, as 'path: a vs b'."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            if k not in a or k not in b:
                return f"{path}{k}: {'missing' if k not in a else 'present'} vs {'missing' if k not in b else 'present'}"
            if a[k] != b[k]:
                return first_difference(a[k], b[k], f"{path}{k} > ")
        return ""
    return f"{path.rstrip(' >')}: {a!r} vs {b!r}"


def result_from(r: dict[str, Any], images: dict[str, Any]) -> EvalResult:
    """An EvalResult recomputed from per-image records (top-1/top-5 counted again, Wilson intervals)."""
    labels = np.asarray(images["label"], np.int64)
    top5 = np.asarray(images["top5"], np.int64).reshape(len(labels), -1)
    c1 = int((top5[:, 0] == labels).sum()) if len(labels) else 0
    c5 = int((top5 == labels[:, None]).any(1).sum()) if len(labels) else 0
    n = len(labels)
    return EvalResult(r["card"], r["backend"], r["mode"], r["dataset"], n, len(images["skipped_id"]), c1 / max(n, 1),
                      c5 / max(n, 1), wilson(c1, n), wilson(c5, n), r["seconds"], r["images_per_s"], r["cache_hit"],
                      r.get("skipped_files", []), top5[:, 0].tolist(), labels.tolist(), r.get("cache_dir", ""),
                      r.get("runtime", {}), list(images["id"]), top5.tolist(), list(images["score"]),
                      list(images["logits_sha256"]))


# ------------------------------------------------------------------------------------------------ merge
def covered(images: dict[str, Any]) -> tuple[list[str], list[int]]:
    """The images a result covers: evaluated and undecodable, with their labels."""
    return list(images["id"]) + list(images["skipped_id"]), list(images["label"]) + list(images["skipped_label"])


def _check_shards(docs: list[tuple[str, dict[str, Any]]]) -> int:
    """The refusals of a merge, in the order a user can act on them; returns N."""
    for p, d in docs:
        if not d.get("shard"):
            raise ShardError(f"{p}: not a shard (written without --shard)",
                             hint="merge combines files of `eval --shard K/N --json PATH`")
    p0, d0 = docs[0]
    for p, d in docs[1:]:
        why = first_difference(identity(d0), identity(d))
        if why:
            raise ShardError(f"{p} is not a shard of the same evaluation as {p0}: {why}")
    n = int(d0["shard"]["n"])
    seen: dict[int, str] = {}
    for p, d in docs:
        k = int(d["shard"]["k"])
        if k in seen:
            raise ShardError(f"shard {k}/{n} given twice: {seen[k]} and {p}")
        seen[k] = p
    owner: dict[str, str] = {}
    for p, d in docs:
        for r in d["results"]:
            if "images" not in r:
                continue
            ids, labels = covered(r["images"])
            if fingerprint(ids, labels) != d["shard"]["fingerprint"]:
                raise ShardError(f"{p}: {key(r)} covers other images than its shard {d['shard']['k']}/{n} "
                                 "(the file was edited or mixed)")
        for i in shard_ids(d):
            if i in owner:
                raise ShardError(f"shards overlap: image {i} is in {owner[i]} and {p}",
                                 hint="merge shards of one partition (the same N and dataset)")
            owner[i] = p
    missing = [k for k in range(1, n + 1) if k not in seen]
    if missing:
        raise ShardError(f"missing shard{'s' if len(missing) > 1 else ''} "
                         f"{', '.join(f'{k}/{n}' for k in missing)} (given: {', '.join(map(str, sorted(seen)))})",
                         hint="every shard K/N must be merged; re-run the missing ones")
    return n


def shard_ids(d: dict[str, Any]) -> list[str]:
    for r in d["results"]:
        if "images" in r:
            return covered(r["images"])[0]
    return []


def merge(paths: list[str]) -> tuple[dict[str, Any], list[tuple[dict[str, Any], EvalResult | None]]]:
    """The head of the merged eval JSON and, per result key in the first shard's order, (the result dict of the first
    shard, the EvalResult recomputed over every shard's images; None for a card every shard skipped)."""
    docs = [(str(p), load(p)) for p in paths]
    if not docs:
        raise ShardError("eval merge: no shard files given")
    n = _check_shards(docs)
    docs.sort(key=lambda pd: int(pd[1]["shard"]["k"]))
    head = {k: v for k, v in docs[0][1].items() if k not in ("results", "shard", "deployed", "status")}
    head.update(shard=None, results=[], merged_from=[{"file": p, "k": d["shard"]["k"], "n": n} for p, d in docs])
    out: list[tuple[dict[str, Any], EvalResult | None]] = []
    for r0 in docs[0][1]["results"]:
        if "images" not in r0:
            out.append((r0, None))
            continue
        parts = [next(r for r in d["results"] if key(r) == key(r0)) for _, d in docs]
        images: dict[str, list[Any]] = {f: [] for f in (*PER_IMAGE, "skipped_id", "skipped_label")}
        for part in parts:
            for f in images:
                images[f] += part["images"][f]
        union_ids, union_labels = covered(images)
        if fingerprint(union_ids, union_labels) != head["dataset"]["fingerprint"]:
            raise ShardError(f"the {n} shards cover {len(union_ids)} images that are not the dataset they name "
                             f"({head['dataset']['n']} images, fingerprint {head['dataset']['fingerprint']})")
        order = sorted(range(len(images["id"])), key=lambda j: images["id"][j])
        images.update({f: [images[f][j] for j in order] for f in PER_IMAGE})
        skip_order = sorted(range(len(images["skipped_id"])), key=lambda j: images["skipped_id"][j])
        images.update({f: [images[f][j] for j in skip_order] for f in ("skipped_id", "skipped_label")})
        seconds = sum(float(p["seconds"]) for p in parts)
        merged = {**r0, "seconds": seconds, "images_per_s": len(order) / seconds if seconds else 0.0,
                  "cache_hit": all(p["cache_hit"] for p in parts),
                  "skipped_files": [f for p in parts for f in p.get("skipped_files", [])]}
        res = result_from(merged, images)
        res.dataset = head["dataset"]["layout"]
        out.append(({**merged, "images": images}, res))
    return head, out


# ------------------------------------------------------------------------------------------------ diff
def coverage(doc: dict[str, Any]) -> tuple[str, int]:
    """(fingerprint, count) of the images an eval JSON covers: its shard's, else its dataset's."""
    s = doc.get("shard")
    return (s["fingerprint"], s["images"]) if s else (doc["dataset"]["fingerprint"], doc["dataset"]["n"])


def pairs(a: dict[str, Any], b: dict[str, Any], runtimes: list[str]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The results to compare: same card and runtime in both, or the one result of each (``runtimes``: one name
    selects it on both sides, two names A's and B's)."""
    if len(runtimes) > 2:
        raise ShardError(f"--runtime given {len(runtimes)} times: once (both sides) or twice (A's, then B's)")
    ra = [r for r in a["results"] if "images" in r and (not runtimes or r["backend"] == runtimes[0])]
    rb = [r for r in b["results"] if "images" in r and (not runtimes or r["backend"] == runtimes[-1])]
    kb = {key(r): r for r in rb}
    common = [(r, kb[key(r)]) for r in ra if key(r) in kb]
    if common:
        return common
    if len(ra) == 1 and len(rb) == 1 and ra[0]["card"] == rb[0]["card"]:
        return [(ra[0], rb[0])]
    if runtimes and not (ra and rb):   # name what each file does have, not "none" when the filter emptied it
        have = {side: sorted({r["backend"] for r in doc["results"] if "images" in r}) for side, doc in (("A", a), ("B", b))}
        missing = [f"{side} has no {rt!r} result (its runtimes: {', '.join(have[side]) or 'none'})"
                   for side, rt, found in (("A", runtimes[0], ra), ("B", runtimes[-1], rb)) if not found]
        raise ShardError(f"no result to compare: {'; '.join(missing)}",
                         hint="--runtime NAME (on both sides) or --runtime NAME_IN_A --runtime NAME_IN_B")
    raise ShardError(f"no result to compare: A has {', '.join(map(key, ra)) or 'none'}, B has "
                     f"{', '.join(map(key, rb)) or 'none'}",
                     hint="pick one runtime per side: --runtime NAME_IN_A --runtime NAME_IN_B")


def diff(a: dict[str, Any], b: dict[str, Any], ra: dict[str, Any], rb: dict[str, Any]) -> dict[str, Any]:
    """Per-image comparison of two results over the images both evaluated (see the module doc)."""
    ia, ib = ra["images"], rb["images"]
    pos_b = {i: j for j, i in enumerate(ib["id"])}
    common = [(j, pos_b[i]) for j, i in enumerate(ia["id"]) if i in pos_b]
    if not common:
        raise ShardError(f"{key(ra)} and {key(rb)}: no image evaluated in both")
    ja, jb = (np.asarray(v, np.int64) for v in zip(*common))
    la, lb = np.asarray(ia["label"])[ja], np.asarray(ib["label"])[jb]
    if (la != lb).any():
        first = ia["id"][int(ja[np.argmax(la != lb)])]
        raise ShardError(f"the two runs label image {first} differently: not the same dataset")
    t5a, t5b = np.asarray(ia["top5"])[ja], np.asarray(ib["top5"])[jb]
    sa, sb = np.asarray(ia["score"])[ja][:, 0], np.asarray(ib["score"])[jb][:, 0]
    ok_a, ok_b = t5a[:, 0] == la, t5b[:, 0] == la
    d1, lo1, hi1 = paired_difference(ok_b, ok_a)
    in5a, in5b = (t5a == la[:, None]).any(1), (t5b == la[:, None]).any(1)
    d5, lo5, hi5 = paired_difference(in5b, in5a)
    dig = np.asarray(ia["logits_sha256"])[ja] != np.asarray(ib["logits_sha256"])[jb]
    changed = np.flatnonzero(t5a[:, 0] != t5b[:, 0])
    rows = [{"id": ia["id"][int(ja[j])], "label": int(la[j]), "a_top1": int(t5a[j, 0]), "a_score": float(sa[j]),
             "b_top1": int(t5b[j, 0]), "b_score": float(sb[j]),
             "outcome": "fixed" if ok_b[j] else ("broken" if ok_a[j] else "both wrong")} for j in changed]
    return {"a": key(ra), "b": key(rb), "a_identity": ra.get("identity"), "b_identity": rb.get("identity"),
            "images": len(common), "only_in_a": len(ia["id"]) - len(common), "only_in_b": len(ib["id"]) - len(common),
            "top1_a": float(ok_a.mean()), "top1_b": float(ok_b.mean()), "top1_change": d1, "top1_change_ci": [lo1, hi1],
            "top5_a": float(in5a.mean()), "top5_b": float(in5b.mean()), "top5_change": d5, "top5_change_ci": [lo5, hi5],
            "mcnemar_p": mcnemar(ok_a, ok_b), "top1_changed": len(rows),
            "fixed": sum(r["outcome"] == "fixed" for r in rows), "broken": sum(r["outcome"] == "broken" for r in rows),
            "logits_changed": int(dig.sum()), "changed": rows}
