"""Worker process entry point: ``python -m adapters.worker <framework>``.

Serves JSON-line requests from the parent (see ``parity/workers/``) with one adapter. The protocol
stream is a private duplicate of the original stdout; fd 1 itself is pointed at stderr so that prints
from the framework (C or Python) cannot corrupt the protocol.
"""
from __future__ import annotations

import importlib
import json
import os
import sys
import traceback


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m adapters.worker FRAMEWORK", file=sys.stderr)
        return 2
    framework = argv[0]
    from parity.frameworks import stack_of  # framework-free
    stack = stack_of(framework)
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def reply(ok: bool, **kw) -> None:
        proto.write(json.dumps({"ok": ok, **kw}, default=_jsonable) + "\n")
        proto.flush()

    try:
        module = importlib.import_module(f"adapters.{framework}")
        adapter = module.Adapter()
    except Exception as e:  # noqa: BLE001 - the framework is missing or broken in this environment
        traceback.print_exc()
        reply(False, kind="AdapterUnavailable",
              error=f"cannot load adapter {framework!r} with {sys.executable}: {type(e).__name__}: {e}",
              hint=f"install its stack (tox -e {stack.tox_env}) or point {stack.env_var} at an interpreter that "
                   f"has it")
        return 3
    reply(True, result={"framework": framework, "pid": os.getpid(), "python": sys.executable,
                        "versions": adapter.versions()})

    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            result = adapter.handle(req["op"], req.get("params", {}))
            reply(True, result=result)
        except Exception as e:  # noqa: BLE001 - any adapter failure is one reply; the worker serves on
            traceback.print_exc()
            reply(False, kind=type(e).__name__, error=f"{type(e).__name__}: {e}", hint=getattr(e, "hint", ""))
    return 0


def _jsonable(o):
    try:
        import numpy as np
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:
        pass
    return str(o)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
