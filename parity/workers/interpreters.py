"""Which interpreter runs each worker stack, and whether it has the stack's frameworks. Framework-free.

Order: ``$MBV2_PARITY_PYTHON_<STACK>`` (tox sets it), else the checkout's ``.tox/<env>/bin/python`` when it exists,
else this interpreter. A variable naming a missing file, or an interpreter without the stack's packages, is
refused once, up front, with the variable and the tox env that provides it (``preflight``); ``mbv2-parity doctor``
prints the whole table.
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .. import settings
from ..errors import UsageError
from ..frameworks import STACKS, Stack
from ..paths import ROOT


@dataclass
class Interpreter:
    stack: str
    python: str
    source: str                  # env | discovered | fallback
    exists: bool
    missing: list[str] = field(default_factory=list)    # stack modules it cannot import
    versions: dict[str, str] = field(default_factory=dict)


def resolve(stack: Stack) -> Interpreter:
    env = settings.worker_python(stack.env_var)
    if env:
        return Interpreter(stack.name, env, "env", Path(env).is_file())
    found = ROOT / ".tox" / stack.tox_env / "bin" / "python"
    if found.is_file():
        return Interpreter(stack.name, str(found), "discovered", True)
    return Interpreter(stack.name, sys.executable, "fallback", True)


_PROBE = """
import importlib.util, importlib.metadata, json, sys
mods, dists = json.loads(sys.argv[1]), json.loads(sys.argv[2]); out = {"missing": [], "versions": {}}
for m in mods:
    if importlib.util.find_spec(m) is None:
        out["missing"].append(m)
for d in dists:
    try:
        out["versions"][d] = importlib.metadata.version(d)
    except importlib.metadata.PackageNotFoundError:
        pass
print(json.dumps(out))
"""


def probe(interp: Interpreter, modules: tuple[str, ...], distributions: tuple[str, ...] = ()) -> Interpreter:
    """Ask the interpreter which of ``modules`` it can import (without importing them) and the versions of
    ``distributions``."""
    if not interp.exists:
        interp.missing = list(modules)
        return interp
    try:
        p = subprocess.run([interp.python, "-c", _PROBE, json.dumps(list(modules)), json.dumps(list(distributions))],
                           capture_output=True, text=True, timeout=60)
        d = json.loads(p.stdout.strip().splitlines()[-1])
        interp.missing, interp.versions = d["missing"], d["versions"]
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired) as e:
        interp.missing = [f"(cannot run {interp.python}: {type(e).__name__})"]
    return interp


def preflight(stacks: set[str]) -> None:
    """Refuse, before any work, a stack whose interpreter is missing or lacks its first framework."""
    for name in sorted(stacks):
        stack = STACKS[name]
        interp = resolve(stack)
        if not interp.exists:
            raise UsageError(f"{stack.env_var}={interp.python}: no such interpreter",
                             hint=f"build it with `tox -e {stack.tox_env}` or point {stack.env_var} at a python that "
                                  f"has {stack.modules[0]}")
        probe(interp, stack.modules[:1])
        if interp.missing:
            how = {"env": f"{stack.env_var}={interp.python}", "discovered": interp.python,
                   "fallback": f"{stack.env_var} is unset, so this interpreter ({interp.python})"}[interp.source]
            raise UsageError(f"{how} cannot import {interp.missing[0]} (stack {name!r})",
                             hint=f"`tox -e {stack.tox_env}` builds it; tox -e parity/tests set {stack.env_var}")
