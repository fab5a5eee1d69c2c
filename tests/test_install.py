"""Installed as a wheel (`pip install .`, not editable): the registry and golden fingerprints ship inside the package,
the default work directory is ./build of the current directory (never site-packages), and workers run the installed
code."""
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp / "dist"), str(ROOT)]
    p = subprocess.run([*build, "--no-build-isolation"], capture_output=True, text=True)
    if p.returncode != 0:  # no setuptools in this env: let pip fetch the build backend
        p = subprocess.run(build, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    wheel = next((tmp / "dist").glob("mbv2_parity-*.whl"))
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True)
    # the dependencies: this environment's site-packages as a plain path entry (its editable-install hook is not run)
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv, site


def test_wheel_ships_the_registry_and_uses_the_current_directory(installed, tmp_path):
    venv, site = installed
    code = "import parity, parity.paths as p; print(parity.__file__); print(p.REGISTRY_FILE); print(p.default_workdir())"
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={k: v for k, v in os.environ.items() if k != "MBV2_PARITY_WORKDIR"})
    pkg, registry, workdir = out.stdout.split()
    assert pkg.startswith(str(site)) and registry.startswith(str(site)) and Path(registry).is_file()
    assert Path(workdir) == tmp_path / "build"
    p = subprocess.run([str(venv / "bin" / "mbv2-parity"), "list"], capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 0 and "timm/mobilenetv2_050.lamb_in1k" in p.stdout, p.stderr


def test_installed_check_runs_its_workers_from_the_installed_code(installed, tmp_path):
    venv, site = installed
    env = {k: v for k, v in os.environ.items() if k != "MBV2_PARITY_WORKDIR"}
    p = subprocess.run([str(venv / "bin" / "mbv2-parity"), "check", "timm/mobilenetv2_050.lamb_in1k", "--weights",
                        "seeded"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert p.returncode == 0, p.stdout[-1500:] + p.stderr[-1500:]
    doc = json.loads((tmp_path / "build" / "results.json").read_text())
    assert {r["status"] for r in doc["results"]} == {"pass"}
    link = tmp_path / "build" / "workers" / ".code" / "parity"
    assert link.resolve() == (site / "parity").resolve()
