"""The artifact cache across runs: what the harness makes (native reference outputs, exported ONNX files, fp16/int8
files, NNCF IRs, TFLite/TorchScript/Paddle Inference files, calibration tensors, FLOPs/params counts) stored under a
key of everything that determines it, so that a second run with nothing changed skips the producing work -- never
the judging: every check compares the reused artifact again. Framework-free.

Key ingredients (``Cache.key``): the kind of artifact, its own ingredients (card id and build digest, preprocessing
spec digest, weights sha256, opset, exporter, precision and quantization options, the calibration tensor's sha256,
the sha256 of the file it is derived from), the versions of every package of the stack that makes it (read from the
stack's interpreter, not imported) and the suite code digest (every source file of ``parity/`` and ``adapters/``).
Never a path or an mtime.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import settings
from ..paths import ADAPTERS, PACKAGE
from .store import Corrupt, Event, Store, file_sha256, make_key

__all__ = ["Cache", "Corrupt", "Event", "Store", "file_sha256", "suite_digest"]

_SUITE: str | None = None
_STACKS: dict[str, str] = {}
_LISTED: dict[str, dict[str, str]] = {}   # stack -> {distribution: version} as read for its key
_LOCK = threading.Lock()
WORKDIR = "${WORKDIR}"


def suite_digest() -> str:
    """sha256 of the suite's source (every .py of parity/ and adapters/, by relative path), once per process: any
    change of the code that makes an artifact makes a new key."""
    global _SUITE
    if _SUITE is None:
        h = hashlib.sha256()
        for root in (PACKAGE, ADAPTERS):
            for p in sorted(root.rglob("*.py")):
                if "__pycache__" in p.parts:
                    continue
                h.update(f"{root.name}/{p.relative_to(root).as_posix()}\0".encode())
                h.update(p.read_bytes())
                h.update(b"\0")
        _SUITE = h.hexdigest()
    return _SUITE


_LIST = ("import importlib.metadata as m, json, sys; print(json.dumps([sys.version] + sorted("
         "f\"{d.metadata['Name']}=={d.version}\" for d in m.distributions())))")


def stack_versions(stack: str) -> str:
    """sha256 of every installed distribution (name==version) and the Python version of a stack's interpreter --
    the converter and runtime versions that make its artifacts -- read by running the interpreter without importing
    any framework (~0.1 s), once per process."""
    with _LOCK:
        if stack in _STACKS:
            return _STACKS[stack]
    from ..frameworks import STACKS
    from ..workers.interpreters import resolve
    interp = resolve(STACKS[stack])
    try:
        out = subprocess.run([interp.python, "-c", _LIST], capture_output=True, text=True, timeout=120, check=True)
        listed = json.loads(out.stdout.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError) as e:
        listed = [f"unreadable {interp.python}: {type(e).__name__}"]   # still a key; a working stack differs
    digest = hashlib.sha256(json.dumps(listed).encode()).hexdigest()
    with _LOCK:
        _STACKS[stack] = digest
        _LISTED[stack] = dict(d.split("==", 1) for d in listed[1:] if "==" in d)
    return digest


def stack_listing(stack: str) -> dict[str, str]:
    """The distributions (name -> version) of a stack's interpreter as read for a cache key in this process; empty
    when no key of that stack was made here. A run that took everything of a stack from the cache started no worker
    of it: these are the versions its reused artifacts were keyed on."""
    with _LOCK:
        return dict(_LISTED.get(stack, {}))


class Cache:
    """The harness's view of the store: ``files`` makes-or-reuses an artifact of one or more files plus a JSON
    record; ``record`` makes-or-reuses a JSON record alone. ``enabled`` False: everything is made, nothing stored
    (``--no-cache``), and the events say so."""

    def __init__(self, root: Path | None = None, max_bytes: int | None = None, enabled: bool = True) -> None:
        self.enabled = enabled
        self.store = Store(root or settings.artifact_cache_dir(), max_bytes if max_bytes is not None
                           else int(settings.artifact_cache_max_gb() * 2 ** 30))
        self._hashes: dict[tuple[str, int, int, str], str] = {}

    @classmethod
    def from_settings(cls) -> Cache:
        return cls(enabled=not settings.no_cache())

    @property
    def events(self) -> list[Event]:
        return self.store.events

    def key(self, kind: str, ingredients: dict[str, Any], stack: str | None = None) -> tuple[str, dict[str, Any]]:
        full = {"kind": kind, "suite": suite_digest(), **ingredients}
        if stack:
            full["stack"] = {"name": stack, "packages": stack_versions(stack)}
        return make_key(full), full

    def sha256(self, path: Path | str, digest: Callable[[Path | str], str] = file_sha256) -> str:
        """A file's sha256, or another ``digest`` of its content (remembered within the run by path, size, mtime and
        digest: the key holds the content hash)."""
        st = os.stat(path)
        memo = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns, f"{digest.__module__}.{digest.__qualname__}")
        if memo not in self._hashes:
            self._hashes[memo] = digest(path)
        return self._hashes[memo]

    def files(self, kind: str, ingredients: dict[str, Any], dests: dict[str, Path] | Path,
              make: Callable[[], dict[str, Any]], *, card: str = "", stack: str | None = None,
              workdir: Path | None = None, outputs: Callable[[dict[str, Any]], dict[str, Path]] | None = None
              ) -> dict[str, Any]:
        """The artifact's record, its files at ``dests`` (name -> path): copied out of the store and checked when it
        holds the key, else made by ``make()`` (which writes the files and returns the record) and stored.
        ``outputs(record)``: the files a make really wrote when they are known only after it (name -> path; default
        ``dests``). Paths inside the record are stored relative to ``workdir``."""
        if not self.enabled:
            t0 = time.perf_counter()
            rec = make()
            self.store.record(Event(kind, "", "off", card, time.perf_counter() - t0))
            return rec
        key, full = self.key(kind, ingredients, stack)
        outcome, why = "miss", ""
        t0 = time.perf_counter()
        try:
            man = self.store.fetch(key, dests)
        except Corrupt as e:
            man, outcome, why = None, "rebuilt", str(e)
        if man is not None:
            self.store.record(Event(kind, key, "hit", card, time.perf_counter() - t0, float(man.get("seconds", 0.0))))
            return _unrel(man["meta"], workdir, dests)
        t0 = time.perf_counter()
        rec = make()
        seconds = time.perf_counter() - t0
        wrote = outputs(rec) if outputs else dests
        assert isinstance(wrote, dict), "a make whose files are named by it needs outputs="
        self.store.put(key, {n: Path(p) for n, p in wrote.items()}, _rel(rec, workdir, dests), full, seconds)
        self.store.record(Event(kind, key, outcome, card, seconds, why=why))
        return rec

    def record(self, kind: str, ingredients: dict[str, Any], make: Callable[[], dict[str, Any]], *, card: str = "",
               stack: str | None = None, workdir: Path | None = None) -> dict[str, Any]:
        return self.files(kind, ingredients, {}, make, card=card, stack=stack, workdir=workdir)

    def summary(self, card: str | None = None) -> dict[str, Any]:
        """Counts of hits, misses, rebuilds per kind (of one card, or all), and the producing seconds the hits saved."""
        evs = [e for e in self.events if card is None or e.card == card]
        out: dict[str, Any] = {"enabled": self.enabled, "root": str(self.store.root)}
        for e in evs:
            row = out.setdefault("kinds", {}).setdefault(e.kind, {"hit": 0, "miss": 0, "rebuilt": 0, "off": 0})
            row[e.outcome] += 1
        out["saved_seconds"] = round(sum(e.saved for e in evs), 1)
        return out


def _dest_token(name: str) -> str:
    return f"${{DEST:{name}}}"


def _rel(rec: dict[str, Any], workdir: Path | None, dests: dict[str, Path] | Path | None = None) -> dict[str, Any]:
    """The record with every string that is one of the ``dests`` paths (a file of the entry) rewritten to that file's
    name in the entry, and every string that starts with the work directory's path (a file it made) rewritten to start
    with ``${WORKDIR}``: a later run that reuses it puts the files where it asks for them (another name when the same
    content is asked for under another name), in its own work directory. Only whole strings (dests) and whole leading
    path components (``"<workdir>/``) match, so no other text changes."""
    text = json.dumps(rec, default=str)
    for name, p in (dests.items() if isinstance(dests, dict) else ()):
        for form in dict.fromkeys((str(Path(p).resolve()), str(p))):
            text = text.replace(json.dumps(form), json.dumps(_dest_token(name)))
    if workdir is not None:
        for form in dict.fromkeys((str(workdir.resolve()), str(workdir))):
            text = text.replace(json.dumps(form + "/")[:-1], f'"{WORKDIR}/')
    return dict(json.loads(text))


def _unrel(rec: dict[str, Any], workdir: Path | None, dests: dict[str, Path] | Path | None = None) -> dict[str, Any]:
    text = json.dumps(rec)
    for name, p in (dests.items() if isinstance(dests, dict) else ()):
        text = text.replace(json.dumps(_dest_token(name)), json.dumps(str(p)))
    if workdir is not None:
        text = text.replace(f'"{WORKDIR}/', json.dumps(str(workdir) + "/")[:-1])
    return dict(json.loads(text))
