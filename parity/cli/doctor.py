"""`mbv2-parity doctor`: what this installation can run -- each worker stack's interpreter (and where it came from),
its framework versions and what it is missing; the core's own runtimes; shared data; network mode."""
from __future__ import annotations

import argparse
import importlib.metadata
import sys
from typing import Any

from rich.markup import escape

from .. import frameworks, settings
from ..errors import EXIT_FAILED, EXIT_OK
from ..paths import REGISTRY_FILE, default_workdir, realdata_dir
from ..workers.interpreters import probe, resolve
from .common import console, table


def add(sub: Any) -> None:
    p = sub.add_parser("doctor", help="each worker stack's interpreter, framework versions and what is missing")
    p.set_defaults(fn=run)


def run(args: argparse.Namespace) -> int:
    t = table("worker stacks", ["stack", "tox env", "variable", "interpreter", "from", "versions", "missing"])
    broken = 0
    for stack in frameworks.STACKS.values():
        interp = probe(resolve(stack), stack.modules, stack.distributions)
        users = ", ".join(f.name for f in frameworks.FRAMEWORKS.values() if f.stack == stack.name)
        broken += bool(interp.missing)
        if not interp.exists:    # one line saying so, not every package of the stack as "missing"
            lacks = (f"[bold red]no such interpreter: {escape(interp.python)} does not exist[/] (set by "
                     f"{stack.env_var}; `tox -e {stack.tox_env}` builds one)")
        elif interp.missing:
            lacks = "[bold red]" + escape(", ".join(interp.missing)) + "[/]"
        else:
            lacks = "[green]none[/]"
        t.add_row(f"{stack.name} ({users})", stack.tox_env, stack.env_var, escape(interp.python), interp.source,
                  escape(", ".join(f"{k} {v}" for k, v in sorted(interp.versions.items()))), lacks)
    console.print(t)
    core = table("core (this interpreter)", ["what", "value"])
    core.add_row("python", escape(sys.executable))
    for d in ("numpy", "onnx", "onnxruntime", "pillow", "opencv-python-headless", "rich", "pooch"):
        try:
            core.add_row(d, importlib.metadata.version(d))
        except importlib.metadata.PackageNotFoundError:
            core.add_row(d, "[bold red]missing[/]")
            broken += 1
    core.add_row("registry", escape(str(REGISTRY_FILE)) + ("" if REGISTRY_FILE.is_file() else " [bold red]missing[/]"))
    core.add_row("shared real data", escape(str(realdata_dir() or "absent (real-data tests skip)")))
    core.add_row("network", "offline (MBV2_PARITY_OFFLINE)" if settings.offline() else "allowed")
    core.add_row("default workdir", escape(str(default_workdir())))
    console.print(core)
    if broken:
        console.print("[bold red]incomplete[/]: `tox -e w-torch,w-tf,w-paddle,w-deploy,w-executorch` builds the worker "
                      "stacks; tox -e parity / tests set the MBV2_PARITY_PYTHON_* variables")
        return EXIT_FAILED
    return EXIT_OK
