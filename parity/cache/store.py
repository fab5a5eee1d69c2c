"""A content-addressed store of artifacts across runs. Framework-free.

An entry is a directory ``<root>/v1/entries/<key[:2]>/<key>/`` holding its files and ``manifest.json`` (every file's
sha256 and size, the ingredients the key was made of, what the producer reported, when it was made and last used).
The key is the sha256 of a canonical JSON of the ingredients: never a path or an mtime.

Writes are lock-free: an entry is staged in ``<root>/v1/tmp/<unique>/`` and appears by one ``rename``; when two runs
make the same key, the second rename fails and that run keeps the first one's entry (both are the same artifact).
A read copies each file out while hashing it and compares with the manifest: a truncated, partial or damaged entry is
moved aside (``rename`` to ``trash/``) and rebuilt, never trusted. Last use is recorded in the manifest (rewritten
by rename, not the filesystem atime), and ``evict`` removes least-recently-used entries beyond the size bound.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = "v1"
CHUNK = 1 << 20


def canonical(doc: Any) -> str:
    """The canonical JSON of key ingredients: sorted keys, no whitespace; a non-JSON value is refused (a key made
    from ``repr`` of an object could hold a memory address)."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def make_key(ingredients: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(ingredients).encode()).hexdigest()


def file_sha256(path: Path | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _copy_hashing(src: Path, dst: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    tmp = dst.with_name(f".{dst.name}.{uuid.uuid4().hex[:8]}.part")
    with open(src, "rb") as fi, open(tmp, "wb") as fo:
        while chunk := fi.read(CHUNK):
            h.update(chunk)
            fo.write(chunk)
            n += len(chunk)
    os.replace(tmp, dst)
    return h.hexdigest(), n


@dataclass
class Event:
    """One use of the store, for the run's results: ``hit`` (reused), ``miss`` (made and stored), ``rebuilt`` (a
    corrupt entry was found, moved aside and made again), ``off`` (the cache is disabled)."""
    kind: str
    key: str
    outcome: str
    card: str = ""
    seconds: float = 0.0          # what the reuse cost (hit) or what making it cost (miss/rebuilt)
    saved: float = 0.0            # the recorded producing time a hit skipped
    why: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "key": self.key[:16], "outcome": self.outcome, "card": self.card,
                "seconds": round(self.seconds, 3), "saved": round(self.saved, 3), **({"why": self.why} if self.why else {})}


@dataclass
class Store:
    root: Path
    max_bytes: int
    events: list[Event] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def base(self) -> Path:
        return self.root / FORMAT

    def entry_dir(self, key: str) -> Path:
        return self.base / "entries" / key[:2] / key

    def record(self, ev: Event) -> None:
        with self._lock:
            self.events.append(ev)

    # ------------------------------------------------------------------ read
    def fetch(self, key: str, dests: dict[str, Path] | Path) -> dict[str, Any] | None:
        """Copy the entry's files to ``dests`` (name -> path; or a directory: each file under its stored name), each
        checked against the manifest's sha256; the manifest, or None on a miss. A damaged entry (missing manifest or
        file, wrong size or hash) is discarded and ``Corrupt`` raised: the caller rebuilds it."""
        d = self.entry_dir(key)
        for attempt in range(3):
            man = self._manifest(d)
            if man is not None:
                break
            if not d.exists():
                return None
            # an entry is born whole (one rename): seen without its manifest it was either evicted and stored again
            # between our two looks (look again), or damaged
            time.sleep(0.05 * (attempt + 1))
        else:
            self.discard(key, "no readable manifest")
            raise Corrupt("no readable manifest")
        files = man.get("files", {})
        if isinstance(dests, Path):
            dests = {n: dests / n for n in files}
        if set(files) != set(dests):
            self.discard(key, f"files {sorted(files)} != {sorted(dests)}")
            raise Corrupt(f"holds files {sorted(files)}, expected {sorted(dests)}")
        for name, dst in dests.items():
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                sha, n = _copy_hashing(d / "files" / name, dst)
            except FileNotFoundError:
                now = self._manifest(d)
                if now is None or now.get("created") != man.get("created"):
                    return None              # evicted (and maybe stored again) by another run while we read it
                self.discard(key, f"{name} missing")
                raise Corrupt(f"{name} missing") from None
            want = files[name]
            if sha != want["sha256"] or n != want["bytes"]:
                dst.unlink(missing_ok=True)
                self.discard(key, f"{name}: {n} bytes sha256 {sha[:12]}, manifest {want['bytes']} {want['sha256'][:12]}")
                raise Corrupt(f"{name} is {n} bytes (sha256 {sha[:12]}), the manifest says {want['bytes']} "
                              f"({want['sha256'][:12]})")
        self._touch(d, man)
        return man

    def _manifest(self, d: Path) -> dict[str, Any] | None:
        try:
            man = json.loads((d / "manifest.json").read_text())
        except (OSError, ValueError):
            return None
        return man if isinstance(man, dict) and isinstance(man.get("files"), dict) else None

    def _touch(self, d: Path, man: dict[str, Any]) -> None:
        """Record the use in the manifest (rename of a complete copy: a concurrent reader sees the old or the new
        one, both whole). The filesystem atime is not used: noatime mounts and copies do not keep it."""
        man = {**man, "accessed": time.time()}
        tmp = d / f".manifest.{uuid.uuid4().hex[:8]}.tmp"
        try:
            tmp.write_text(json.dumps(man, indent=1, sort_keys=True))
            os.replace(tmp, d / "manifest.json")
        except OSError:                       # evicted meanwhile: the files were already copied out and checked
            tmp.unlink(missing_ok=True)

    # ----------------------------------------------------------------- write
    def put(self, key: str, files: dict[str, Path], meta: dict[str, Any], ingredients: dict[str, Any],
            seconds: float) -> None:
        """Store ``files`` (name -> path) under ``key``: staged, then renamed into place in one step. If another run
        stored the key first, its entry is kept (it is the same artifact) and ours dropped."""
        stage = self.base / "tmp" / f"{key[:16]}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        (stage / "files").mkdir(parents=True)
        try:
            listed = {}
            for name, src in files.items():
                sha, n = _copy_hashing(Path(src), stage / "files" / name)
                listed[name] = {"sha256": sha, "bytes": n}
            now = time.time()
            man = {"key": key, "format": FORMAT, "files": listed, "meta": meta, "ingredients": ingredients,
                   "seconds": seconds, "created": now, "accessed": now}
            (stage / "manifest.json").write_text(json.dumps(man, indent=1, sort_keys=True))
            final = self.entry_dir(key)
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(stage, final)
            except OSError:                   # it exists: another run stored the same key first
                return
        finally:
            if stage.exists():
                shutil.rmtree(stage, ignore_errors=True)
        self.evict()

    def discard(self, key: str, why: str = "") -> None:
        """Move an entry aside in one rename, then delete it (a reader holding it sees it vanish, never half)."""
        d = self.entry_dir(key)
        trash = self.base / "trash" / f"{key[:16]}.{uuid.uuid4().hex[:8]}"
        trash.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(d, trash)
        except OSError:
            return
        shutil.rmtree(trash, ignore_errors=True)

    # --------------------------------------------------------------- bounds
    def entries(self) -> list[tuple[float, int, str]]:
        """(last used, bytes, key) of every complete entry."""
        out = []
        for d in (self.base / "entries").glob("*/*"):
            man = self._manifest(d)
            if man is None:
                continue
            size = sum(int(f.get("bytes", 0)) for f in man["files"].values())
            out.append((float(man.get("accessed", 0.0)), size, d.name))
        return out

    def size(self) -> int:
        return sum(s for _, s, _ in self.entries())

    def evict(self, keep: int | None = None) -> list[str]:
        """Remove least-recently-used entries until the store holds at most ``keep`` bytes (default: the bound)."""
        bound = self.max_bytes if keep is None else keep
        ents = sorted(self.entries())
        total = sum(s for _, s, _ in ents)
        gone = []
        for _, s, key in ents:
            if total <= bound:
                break
            self.discard(key, "evicted")
            total -= s
            gone.append(key)
        self._sweep()
        return gone

    def _sweep(self, older: float = 3600.0) -> None:
        """Staging directories of runs that died mid-write (older than an hour) are removed."""
        now = time.time()
        for d in (self.base / "tmp").glob("*"):
            try:
                if now - d.stat().st_mtime > older:
                    shutil.rmtree(d, ignore_errors=True)
            except OSError:
                continue


class Corrupt(Exception):
    """A stored entry failed its check (it was discarded; the caller rebuilds)."""
