"""Framework isolation: the parent imports no framework; a crashing worker fails clearly and is replaced."""
import subprocess
import sys

import pytest

from parity.frameworks import STACKS
from parity.workers import WorkerCrashed, WorkerError, WorkerPool
from support import REGISTRY, nontrivial_check, onnx_check

FRAMEWORK_MODULES = tuple(m for s in STACKS.values() for m in s.modules)


def test_parent_process_imports_no_framework(harness):
    card = REGISTRY.get("timm/mobilenetv2_100.ra_in1k")
    assert onnx_check(harness, card).status == "pass"
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in FRAMEWORK_MODULES)
    assert loaded == [], f"framework modules imported in the parent: {loaded}"


def test_cli_and_core_import_no_framework():
    code = ("import sys, parity.cli, parity.harness, parity.checks, parity.runtimes, parity.weights.download, "
            "parity.preprocess, parity.evaluation.evaluate, parity.drift.watch, parity.report; parity.checks.kinds(); "
            "parity.runtimes.names();"
            f"bad=[m for m in sys.modules if m.split('.')[0] in {FRAMEWORK_MODULES!r}]; print(bad); sys.exit(bool(bad))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_crashing_worker_gives_clear_failure_and_is_replaced(tmp_path, fresh):
    card = REGISTRY.get("torchvision/mobilenet_v2.IMAGENET1K_V1")
    from parity.harness import Harness
    with Harness(REGISTRY, workdir=tmp_path) as h:
        h.build(card)
        pid = h.pool.workers["torchvision"].proc.pid
        r = onnx_check(h, card, fault="crash")
        assert r.status == "error"
        assert "WorkerCrashed" in r.reason and "SIGSEGV" in r.reason and card.id in r.reason
        r2 = onnx_check(h, card)                       # the harness rebuilds what the dead worker held
        assert r2.status == "pass", r2.reason
        assert h.pool.workers["torchvision"].proc.pid != pid


@pytest.mark.slow   # CI time (17 s): a dead worker found at the next call, replaced (WorkerPool._get) and its models
# rebuilt (the generation in Harness.build): test_crashing_worker_gives_clear_failure_and_is_replaced's second check
def test_worker_killed_between_two_checks_of_the_same_card_is_rebuilt(tmp_path, fresh):
    """An OOM kill (SIGKILL) between two checks: the second check still passes, in a new worker."""
    import os
    import signal
    card = REGISTRY.get("timm/mobilenetv2_050.lamb_in1k")
    from parity.harness import Harness
    with Harness(REGISTRY, workdir=tmp_path) as h:
        assert nontrivial_check(h, card).status == "pass"
        pid = h.pool.workers["timm"].proc.pid
        os.kill(pid, signal.SIGKILL)
        h.pool.workers["timm"].proc.wait()
        for r in (nontrivial_check(h, card), onnx_check(h, card)):
            assert r.status == "pass", r.reason
        assert h.pool.workers["timm"].proc.pid != pid


def test_worker_errors_are_one_line_with_kind(tmp_path):
    with WorkerPool(tmp_path) as pool:
        with pytest.raises(WorkerError) as e:
            pool.call("timm", "run", key="nope", input=str(tmp_path / "x.npy"))
        assert e.value.kind in ("AdapterError", "FileNotFoundError")
        with pytest.raises(WorkerError, match="unknown op"):
            pool.call("timm", "fly")
        assert pool.call("timm", "ping")["pong"]


def test_missing_framework_is_reported_not_hung(tmp_path, monkeypatch):
    monkeypatch.setenv("MBV2_PARITY_PYTHON_TF", sys.executable)  # the core env has no tensorflow
    with WorkerPool(tmp_path) as pool:
        with pytest.raises(WorkerError) as e:
            pool.call("keras", "ping")
        assert "cannot load adapter 'keras'" in str(e.value) or isinstance(e.value, WorkerCrashed)
