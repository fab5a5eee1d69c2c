"""Framework isolation: every deep-learning framework runs in its own long-lived worker process. Framework-free.

The parent (pytest or the CLI) never imports torch / tensorflow / paddle (TensorFlow then Paddle in one process
segfaults here). A worker is ``python -m adapters.worker <framework>`` started with the interpreter of that
framework's stack (``parity.workers.interpreters``), reused across models. Requests and replies are JSON lines
(``parity.workers.protocol``) on the worker's stdin and a private copy of its stdout (the framework's own prints
go to a log file); arrays travel as ``.npy`` files in a shared work directory, models as files.

A worker that dies (segfault, os._exit, OOM kill) or exceeds its per-request timeout raises ``WorkerCrashed`` /
``WorkerTimeout`` naming the framework, the request and the models it had loaded, with the tail of its log; the
pool starts a fresh worker for the next request and bumps the framework's ``generation`` so the harness knows the
models of the dead worker are gone. A worker whose framework cannot be imported is not retried: the same one-line
error (with the variable and tox env to fix it) is raised again at once.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from .. import settings
from ..errors import ParityError
from ..frameworks import stack_of
from ..paths import ADAPTERS, PACKAGE, workdir_path
from .interpreters import resolve

# A worker's first reply comes after its framework imports (7-9 s on an idle 2-core machine); 180 s was exceeded
# twice on such a machine running the test suite at -n 2 beside another test process (memory pressure, swapping):
# a false red. A start that hangs is still caught, later.
START_TIMEOUT_S = 600.0


class WorkerError(ParityError):
    """The adapter raised inside the worker (``kind`` is the exception class there), or the worker broke."""

    exit_code = 1

    def __init__(self, message: str, kind: str = "WorkerError", hint: str = "") -> None:
        super().__init__(message, hint)
        self.kind = kind

    def one_line(self) -> str:
        return f"{self.kind}: " + super().one_line() if self.kind not in str(self) else super().one_line()


class WorkerCrashed(WorkerError):
    pass


class WorkerTimeout(WorkerError):
    pass


def _signal_name(rc: int | None) -> str:
    if rc is not None and rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit code {rc}"


def code_root(workdir: Path) -> Path:
    """A directory holding only this project's packages (links to ``parity`` and ``adapters``): the worker's
    PYTHONPATH. In a wheel install both live in site-packages, whose other packages must not shadow the worker's."""
    root = workdir / ".code"
    root.mkdir(parents=True, exist_ok=True)
    for pkg in (PACKAGE, ADAPTERS):
        link = root / pkg.name
        if not link.exists():
            with contextlib.suppress(FileExistsError):
                link.symlink_to(pkg, target_is_directory=True)
    return root


class Worker:
    """One framework worker process: one request at a time (``call`` holds a lock, so threads sharing a worker, as
    `check --jobs` does with the deployment host, queue instead of interleaving their requests)."""

    _ids = itertools.count()

    def __init__(self, framework: str, workdir: Path, timeout: float) -> None:
        self.framework = framework
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        self.loaded: list[str] = []  # model keys this worker has built (named in crash reports)
        self.log_path = self.workdir / f"worker-{framework}-{os.getpid()}-{next(self._ids)}.log"
        self._log: IO[bytes] = open(self.log_path, "wb")  # noqa: SIM115 - lives as long as the worker (close())
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(code_root(self.workdir.parent))]
                                            + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.python = resolve(stack_of(framework)).python
        self.started = time.perf_counter()
        try:
            self.proc = subprocess.Popen([self.python, "-m", "adapters.worker", framework], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=self._log, cwd=str(self.workdir), env=env)
        except OSError as e:
            self._log.close()
            stack = stack_of(framework)
            raise WorkerError(f"cannot start the {framework} worker with {self.python}: {e.strerror}",
                              kind="AdapterUnavailable", hint=f"`tox -e {stack.tox_env}` builds it; set "
                                                              f"{stack.env_var}") from None
        self._replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._call_lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            hello = self._wait_reply("hello", START_TIMEOUT_S)
        except BaseException:   # interrupted (Ctrl-C, SIGTERM) while starting: no pool knows this process yet
            self.kill()
            self._log.close()
            raise
        self.start_seconds = time.perf_counter() - self.started
        if not hello.get("ok"):  # the adapter could not be imported in that interpreter: one line + hint
            self.proc.wait(timeout=10)
            self._log.close()
            raise WorkerError(hello.get("error", "worker failed to start"), kind=hello.get("kind", "WorkerError"),
                              hint=hello.get("hint", ""))
        self.info: dict[str, Any] = hello.get("result", {})

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
        except (OSError, ValueError):
            return ""
        return "\n".join(lines[-n:])

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def _describe(self, op: str) -> str:
        models = ", ".join(self.loaded) or "none loaded yet"
        return f"{self.framework} worker (pid {self.proc.pid}) during {op!r}; models: {models}"

    def _died(self, op: str) -> WorkerCrashed:
        rc = self.proc.wait(timeout=10)
        return WorkerCrashed(f"{self._describe(op)}: worker died ({_signal_name(rc)}). Log tail ({self.log_path}):\n"
                             f"{self.log_tail()}", kind="WorkerCrashed")

    def _wait_reply(self, op: str, timeout: float) -> dict[str, Any]:
        try:
            reply = self._replies.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            raise WorkerTimeout(f"{self._describe(op)}: no reply within {timeout:.0f}s; worker killed. "
                                f"Log tail ({self.log_path}):\n{self.log_tail()}", kind="WorkerTimeout") from None
        if reply is None:
            raise self._died(op)
        return reply

    def call(self, op: str, timeout: float | None = None, **params: Any) -> Any:
        with self._call_lock:
            return self._call(op, timeout, **params)

    def _call(self, op: str, timeout: float | None = None, **params: Any) -> Any:
        if not self.alive:
            raise WorkerCrashed(f"{self._describe(op)}: worker is not running ({_signal_name(self.proc.returncode)})",
                                kind="WorkerCrashed")
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps({"op": op, "params": params}) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._died(op) from None
        reply = self._wait_reply(op, timeout or self.timeout)
        if not reply.get("ok"):   # the worker's text starts with its kind: the kind is said once, by whoever shows it
            kind = reply.get("kind", "WorkerError")
            raise WorkerError(str(reply.get("error", "unknown worker error")).removeprefix(f"{kind}: "), kind=kind,
                              hint=reply.get("hint", ""))
        result = reply.get("result")
        if op in ("build", "derive") and isinstance(result, dict) and result.get("key") not in self.loaded:
            self.loaded.append(str(result["key"]))
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
            except Exception:  # noqa: BLE001 - a worker that does not exit cleanly is killed: closing must not fail
                self.kill()
        self._log.close()


class WorkerPool:
    """Lazily started, reused worker per framework; a dead worker is replaced on the next ``get``."""

    def __init__(self, workdir: Path | None = None, timeout: float | None = None) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="mbv2-parity-")
            workdir = Path(self._tmp.name)
        self.workdir = workdir_path(workdir)   # the workers' cwd is their own directory: never a relative path
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout or settings.worker_timeout()
        self.workers: dict[str, Worker] = {}
        self.generation: dict[str, int] = {}   # bumped whenever a (re)started worker replaces the previous one
        self.start_seconds: dict[str, list[float]] = {}
        self._unavailable: dict[str, WorkerError] = {}
        self._arrays = itertools.count()
        self._lock = threading.Lock()
        self._starting: dict[str, threading.Lock] = {}
        self.closed = False

    def get(self, framework: str) -> Worker:
        with self._lock:   # one start per framework even when threads ask at once (`check --jobs`)
            lock = self._starting.setdefault(framework, threading.Lock())
        with lock:
            return self._get(framework)

    def _get(self, framework: str) -> Worker:
        if self.closed:   # after close() (Ctrl-C): a thread still running checks gets an error, never a new worker
            raise WorkerError(f"the worker pool is closed: no {framework} worker is started", kind="PoolClosed")
        if framework in self._unavailable:  # its framework cannot be imported: the same error, not a retry
            raise self._unavailable[framework]
        w = self.workers.get(framework)
        if w is None or not w.alive:
            if w is not None:
                w.close()
            try:
                w = Worker(framework, self.workdir / framework, self.timeout)
            except WorkerError as e:
                if e.kind == "AdapterUnavailable":
                    self._unavailable[framework] = e
                raise
            self.workers[framework] = w
            self.generation[framework] = self.generation.get(framework, 0) + 1
            self.start_seconds.setdefault(framework, []).append(w.start_seconds)
        return w

    def call(self, framework: str, op: str, **params: Any) -> Any:
        return self.get(framework).call(op, **params)

    def info(self, framework: str) -> dict[str, Any]:
        """What the framework's worker reported at start (versions, pid, python)."""
        return self.get(framework).info

    def put_array(self, arr: npt.NDArray[Any], name: str = "array") -> str:
        path = self.new_path(name)
        np.save(path, np.ascontiguousarray(arr))
        return path

    def new_path(self, name: str = "array") -> str:
        """A fresh .npy path in the pool's exchange directory (for a worker to write)."""
        with self._lock:
            n = next(self._arrays)
        return str(self.workdir / f"{name}-{n}.npy")

    def close(self, kill: bool = False) -> None:
        """Every worker closed (stdin closed, it exits after its current request); ``kill``: killed at once (Ctrl-C,
        SIGTERM: a request in flight is abandoned, and only this process may have received the signal)."""
        self.closed = True
        for w in list(self.workers.values()):
            if kill:
                w.kill()
            w.close()
        self.workers.clear()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close(kill=isinstance(e, KeyboardInterrupt))
