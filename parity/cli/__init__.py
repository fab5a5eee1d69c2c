"""``mbv2-parity``: one module per command (``parity/cli/<command>.py``), each adding its parser and its ``run``
(and a ``prepare`` that refuses bad input before any worker starts). Framework-free (workers do the frameworks).

Every error a user can cause is one line with a hint and its exit code (``parity.errors``); anything else is a bug:
one line on screen, the traceback in ``WORKDIR/mbv2-parity.log``, exit 4. Steps of a run (check, count, eval, cross,
preprocess) are recorded in ``WORKDIR/run.json`` (``parity.runlog``).
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

from .. import runlog
from ..errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_USAGE, ParityError, Terminated
from ..paths import default_workdir, workdir_path
from . import audit, bench, check, count, doctor, drift, eval, eval_runs, listing, preprocess, report, verify, weights
from .common import console

COMMANDS = (listing, check, count, preprocess, weights, eval, eval_runs, bench, drift, report, doctor, audit, verify)
LOG = "mbv2-parity.log"
# commands that are steps of a run, and the results file each writes unless --json says otherwise
STEP_OUTPUTS = {"check": "results.json", "count": "counts.json", "eval": "eval.json", "cross": "cross.json",
                "preprocess": "preprocess.json", "bench": "bench.json", "audit": "audit.json",
                "verify": "verify.json"}


class Parser(argparse.ArgumentParser):
    """argparse with the suite's one-line errors (no usage block): what was wrong and where the help is."""

    def error(self, message: str) -> NoReturn:
        print(f"mbv2-parity: error: {message} (hint: `{self.prog} -h` lists the options)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


DESCRIPTION = ("Checks that MobileNetV2 from torchvision, timm, mmpretrain, PaddleClas and Keras computes the same "
               "function, counts the same FLOPs and params, and keeps its top-1 after ONNX export, conversion and "
               "deployment (fp16, int8).")
EPILOG = ("`mbv2-parity COMMAND -h` lists a command's options. Exit codes: 0 ok, 1 a check failed, 2 bad input "
          "(refused before any work), 3 nothing checked, 4 a bug (traceback in WORKDIR/mbv2-parity.log), "
          "130 interrupted.")


def parser() -> argparse.ArgumentParser:
    ap = Parser(prog="mbv2-parity", description=DESCRIPTION, epilog=EPILOG)
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    for mod in COMMANDS:
        mod.add(sub)
    for choice in sub._choices_actions:  # `mbv2-parity COMMAND -h` opens with what the command does
        cmd = sub.choices[choice.dest]
        if not cmd.description:
            cmd.description = choice.help
    return ap


def namespace_for(argv: list[str]) -> argparse.Namespace:
    return parser().parse_args(eval_runs.route(argv))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser().parse_args(eval_runs.route(argv))
    except SystemExit as e:  # argparse: usage errors exit 2 with its own one line
        return int(e.code or 0)
    return dispatch(args, argv)


def _log_to(wd: Path) -> None:
    try:
        wd.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(wd / LOG)
    except OSError:
        return
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log = logging.getLogger("mbv2_parity")
    log.handlers = [handler]
    log.setLevel(logging.INFO)


def _terminate(_signum: int, _frame: Any) -> None:
    raise Terminated


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a CI runner's cancel or timeout) raises ``Terminated`` in the main thread, as Ctrl-C raises
    KeyboardInterrupt: partial results are written, workers stopped; the previous handler is restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def dispatch(args: argparse.Namespace, argv: list[str]) -> int:
    with _sigterm_as_interrupt():
        return _dispatch(args, argv)


def _dispatch(args: argparse.Namespace, argv: list[str]) -> int:
    """prepare (refuse bad input) -> record the step -> run; every outcome an exit code, nothing as a traceback."""
    wd = workdir_path(args.workdir) if getattr(args, "workdir", None) else default_workdir()
    step = None
    rc = EXIT_INTERNAL
    why = ""
    try:
        if getattr(args, "step", None):  # recorded before its input is checked: a refused step fails the run too
            from .common import workdir
            wd = workdir(args)
            _log_to(wd)
            name = args.results_name(args) if getattr(args, "results_name", None) else STEP_OUTPUTS[args.step]
            out = [Path(getattr(args, "json", None) or wd / name)]
            run, step = runlog.start(wd, args.step, argv, out, fresh=getattr(args, "fresh", False))
            args.run_id = run.id
        prepare = getattr(args, "prepare", None)
        if prepare is not None:
            prepare(args)
        rc = int(args.fn(args))
    except ParityError as e:
        print(f"mbv2-parity: error: {e.one_line()}", file=sys.stderr)
        rc, why = e.exit_code, e.one_line()
    except Terminated:
        print("mbv2-parity: terminated by SIGTERM (workers stopped; partial results written and marked partial)",
              file=sys.stderr)
        rc = EXIT_TERMINATED
    except KeyboardInterrupt:
        print("mbv2-parity: interrupted (partial results written and marked partial)", file=sys.stderr)
        rc = EXIT_INTERRUPTED
    except Exception as e:  # noqa: BLE001 - a bug: one line here, the traceback in the log
        _log_to(wd)
        logging.getLogger("mbv2_parity").error("internal error in `%s`:\n%s", " ".join(argv), traceback.format_exc())
        first = str(e).splitlines()[0] if str(e) else ""
        print(f"mbv2-parity: internal error (a bug, please report it): {type(e).__name__}: {first} (traceback in "
              f"{wd / LOG})", file=sys.stderr)
        rc, why = EXIT_INTERNAL, f"internal error: {type(e).__name__}: {first}"
    finally:
        if step is not None:   # what it ran on and, when it ended in an error, why (the report names both)
            subject = {k: str(v) for k in ("config",) if (v := getattr(args, k, None)) is not None}
            runlog.finish(wd, step, rc, **subject, **({"why": why} if why else {}))
    console.file.flush()
    return rc


__all__ = ["EXIT_USAGE", "dispatch", "main", "namespace_for", "parser"]
