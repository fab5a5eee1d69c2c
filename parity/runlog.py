"""The run manifest (``WORKDIR/run.json``): which commands ran in this work directory, how each ended, and where
each wrote its results. Framework-free.

A *run* is a sequence of steps (``check``, ``count``, ``cross``, ``eval``, ...) that ends in a report. Every step
is recorded when it starts and again when it finishes, with its exit code and output files, so the report can
tell a step that crashed or was killed (started, never finished) from one that passed, and can find results
written elsewhere (``check --json X``). ``check --fresh`` starts a new run; without it, steps join the current one.

A step's outputs are the files it really wrote: each output's signature (mtime, size, inode) is taken when the step
starts; a step that ends with a non-zero exit (refused, failed, crashed) and left an output unchanged (an earlier
step's file, or none) has it moved to ``not_written``, and a step that never finished counts only the outputs changed
since it started: an earlier result is never reported as this step's.
"""
from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .fileio import write_text

MANIFEST = "run.json"


@dataclass
class Step:
    id: str
    command: str
    argv: list[str]
    started: str
    outputs: list[str] = field(default_factory=list)
    finished: str | None = None
    exit_code: int | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    before: dict[str, list[int] | None] = field(default_factory=dict)   # output -> its signature at start
    not_written: list[str] = field(default_factory=list)               # outputs this step left as they were

    def written(self) -> list[str]:
        """The outputs this step wrote (a step that never finished: those changed since it started)."""
        if self.exit_code is not None:
            return list(self.outputs)
        return [o for o in self.outputs if _signature(o) is not None and _signature(o) != self.before.get(o)]

    @property
    def state(self) -> str:
        if self.exit_code is None:
            return "unfinished"
        return "ok" if self.exit_code == 0 else f"exit {self.exit_code}"


@dataclass
class Run:
    id: str
    started: str
    workdir: str
    steps: list[Step] = field(default_factory=list)

    def problems(self) -> list[str]:
        """Why this run cannot be reported as green ([] when every step finished with exit 0)."""
        out = []
        for s in self.steps:
            if s.exit_code is None:
                out.append(f"step `{s.command}` started {s.started} never finished (crashed, killed or still running)")
            elif s.exit_code != 0:
                out.append(f"step `{s.command}` exited {s.exit_code}"
                           + (f" ({s.summary.get('why')})" if s.summary.get("why") else ""))
        return out

    def outputs(self, command: str) -> list[Path]:
        return [Path(o) for s in self.steps if s.command == command for o in s.written()]


def _signature(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_mtime_ns, st.st_size, st.st_ino]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _write(path: Path, run: Run) -> None:
    write_text(path, json.dumps(asdict(run), indent=1))   # atomic, a temporary name per process and thread


def load(workdir: Path) -> Run | None:
    p = Path(workdir) / MANIFEST
    if not p.is_file():
        return None
    try:
        d = json.loads(p.read_text())
        return Run(d["id"], d["started"], d["workdir"], [Step(**s) for s in d.get("steps", [])])
    except (ValueError, KeyError, TypeError):
        return None


def start(workdir: Path, command: str, argv: list[str], outputs: list[Path], fresh: bool = False) -> tuple[Run, Step]:
    """Record a step as started (a new run when ``fresh`` or when there is none)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    run = None if fresh else load(workdir)
    if run is None:
        run = Run(uuid.uuid4().hex[:12], _now(), str(workdir.resolve()))
    outs = [str(Path(o).resolve()) for o in outputs]
    step = Step(uuid.uuid4().hex[:8], command, list(argv), _now(), outs, before={o: _signature(o) for o in outs})
    run.steps.append(step)
    _write(workdir / MANIFEST, run)
    return run, step


def finish(workdir: Path, step: Step, exit_code: int, **summary: Any) -> None:
    run = load(Path(workdir))
    if run is None:
        return
    for s in run.steps:
        if s.id == step.id:
            s.finished, s.exit_code, s.summary = _now(), int(exit_code), summary
            if s.exit_code != 0:   # refused or failed: an output it left unchanged is an earlier step's
                kept = [o for o in s.outputs if _signature(o) is not None and _signature(o) != s.before.get(o)]
                s.not_written = [o for o in s.outputs if o not in kept]
                s.outputs = kept
    _write(Path(workdir) / MANIFEST, run)
