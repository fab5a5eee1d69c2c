"""Framework isolation: every deep-learning framework runs in its own long-lived worker process.

The parent (pytest or the CLI) never imports torch / tensorflow / paddle (TensorFlow then Paddle in one
process segfaults here). A worker is ``python -m adapters.worker <framework>`` started with the
interpreter of that framework's environment (``$MBV2_PARITY_PYTHON_<STACK>``, e.g. the tox env
``w-torch``), reused across models. Requests and replies are JSON lines on the worker's stdin and a
private copy of its stdout (the framework's own prints go to a log file); arrays travel as ``.npy``
files in a shared work directory, models as ``.onnx`` files.

A worker that dies (segfault, os._exit, OOM kill) or exceeds its per-request timeout raises
``WorkerCrashed`` / ``WorkerTimeout`` naming the framework, the request and the models it had loaded,
with the tail of its log; the pool starts a fresh worker for the next request.
"""
from __future__ import annotations

import itertools
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from .paths import ROOT

# Which software stack (and so which environment / interpreter) each adapter needs.
STACK_OF = {"torchvision": "torch", "timm": "torch", "mmcls": "torch", "keras": "tf", "ppcls": "paddle"}
DEFAULT_TIMEOUT_S = float(os.environ.get("MBV2_PARITY_WORKER_TIMEOUT", "900"))
START_TIMEOUT_S = 180.0


class WorkerError(RuntimeError):
    """The adapter raised inside the worker; ``kind`` is the exception class name there."""

    def __init__(self, message: str, kind: str = "WorkerError", hint: str = ""):
        super().__init__(message)
        self.kind = kind
        self.hint = hint


class WorkerCrashed(WorkerError):
    pass


class WorkerTimeout(WorkerError):
    pass


def worker_python(framework: str) -> str:
    stack = STACK_OF.get(framework, framework)
    return os.environ.get(f"MBV2_PARITY_PYTHON_{stack.upper()}") or sys.executable


def _signal_name(rc: int) -> str:
    if rc is not None and rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit code {rc}"


class Worker:
    """One framework worker process. Not thread-safe: one request at a time."""

    _ids = itertools.count()

    def __init__(self, framework: str, workdir: Path, timeout: float = DEFAULT_TIMEOUT_S):
        self.framework = framework
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        self.loaded: list[str] = []  # model keys this worker has built (named in crash reports)
        self.log_path = self.workdir / f"worker-{framework}-{os.getpid()}-{next(self._ids)}.log"
        self._log = open(self.log_path, "wb")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.python = worker_python(framework)
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [self.python, "-m", "adapters.worker", framework],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, cwd=str(ROOT), env=env,
        )
        self._replies: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        hello = self._wait_reply("hello", START_TIMEOUT_S)
        self.start_seconds = time.perf_counter() - self.started
        if not hello.get("ok"):  # the adapter could not be imported in that interpreter: one line + hint
            self.proc.wait(timeout=10)
            self._log.close()
            raise WorkerError(hello.get("error", "worker failed to start"), kind=hello.get("kind", "WorkerError"),
                              hint=hello.get("hint", ""))
        self.info: dict[str, Any] = hello.get("result", {})

    # ---------------------------------------------------------------- plumbing
    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self._replies.put(json.loads(line))
            except json.JSONDecodeError:
                self._replies.put({"ok": False, "kind": "ProtocolError", "error": f"bad reply line: {line[:200]!r}"})
        self._replies.put(None)  # EOF

    def log_tail(self, n: int = 15) -> str:
        try:
            self._log.flush()
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def _describe(self, op: str) -> str:
        models = ", ".join(self.loaded) or "none loaded yet"
        return f"{self.framework} worker (pid {self.proc.pid}) during {op!r}; models: {models}"

    def _wait_reply(self, op: str, timeout: float) -> dict[str, Any]:
        try:
            reply = self._replies.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            raise WorkerTimeout(f"{self._describe(op)}: no reply within {timeout:.0f}s; worker killed. "
                                f"Log tail ({self.log_path}):\n{self.log_tail()}", kind="WorkerTimeout") from None
        if reply is None:
            rc = self.proc.wait(timeout=10)
            raise WorkerCrashed(f"{self._describe(op)}: worker died ({_signal_name(rc)}). "
                                f"Log tail ({self.log_path}):\n{self.log_tail()}", kind="WorkerCrashed")
        return reply

    def call(self, op: str, timeout: float | None = None, **params: Any) -> Any:
        if not self.alive:
            raise WorkerCrashed(f"{self._describe(op)}: worker is not running ({_signal_name(self.proc.returncode)})",
                                kind="WorkerCrashed")
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps({"op": op, "params": params}) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            rc = self.proc.wait(timeout=10)
            raise WorkerCrashed(f"{self._describe(op)}: worker died ({_signal_name(rc)}). "
                                f"Log tail:\n{self.log_tail()}", kind="WorkerCrashed") from None
        reply = self._wait_reply(op, timeout or self.timeout)
        if not reply.get("ok"):
            raise WorkerError(reply.get("error", "unknown worker error"), kind=reply.get("kind", "WorkerError"),
                              hint=reply.get("hint", ""))
        result = reply.get("result")
        if op == "build" and isinstance(result, dict) and result.get("key") and result["key"] not in self.loaded:
            self.loaded.append(result["key"])
        return result

    def kill(self) -> None:
        if self.alive:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def close(self) -> None:
        if self.alive:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
                self.proc.wait(timeout=20)
            except Exception:
                self.kill()
        self._log.close()


class WorkerPool:
    """Lazily started, reused worker per framework; a dead worker is replaced on the next ``get``."""

    def __init__(self, workdir: Path | None = None, timeout: float = DEFAULT_TIMEOUT_S):
        self._tmp = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="mbv2-parity-")
            workdir = Path(self._tmp.name)
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        self.workers: dict[str, Worker] = {}
        self.generation: dict[str, int] = {}   # bumped whenever a (re)started worker replaces the previous one
        self.start_seconds: dict[str, list[float]] = {}
        self._arrays = itertools.count()

    def get(self, framework: str) -> Worker:
        w = self.workers.get(framework)
        if w is None or not w.alive:
            if w is not None:
                w.close()
            w = Worker(framework, self.workdir / framework, self.timeout)
            self.workers[framework] = w
            self.generation[framework] = self.generation.get(framework, 0) + 1
            self.start_seconds.setdefault(framework, []).append(w.start_seconds)
        return w

    def call(self, framework: str, op: str, **params: Any) -> Any:
        return self.get(framework).call(op, **params)

    # arrays -------------------------------------------------------------------
    def put_array(self, arr: np.ndarray, name: str = "array") -> str:
        path = self.workdir / f"{name}-{next(self._arrays)}.npy"
        np.save(path, np.ascontiguousarray(arr))
        return str(path)

    def new_path(self, name: str = "array") -> str:
        """A fresh .npy path in the pool's exchange directory (for a worker to write)."""
        return str(self.workdir / f"{name}-{next(self._arrays)}.npy")

    @staticmethod
    def get_array(path: str) -> np.ndarray:
        return np.load(path)

    def close(self) -> None:
        for w in self.workers.values():
            w.close()
        self.workers.clear()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
