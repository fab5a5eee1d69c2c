"""The run's verdict: `report --strict` is green only when a check ran in this run, every step finished with exit 0,
and the results are complete; a second `check` merges; a crashed or interrupted step fails the run."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from parity import runlog

CARD = "timm/mobilenetv2_050.lamb_in1k"
TV = "torchvision/mobilenet_v2.IMAGENET1K_V1"


def cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "parity.cli", *args], capture_output=True, text=True, timeout=900, **kw)


def test_strict_report_on_an_empty_workdir_is_nothing(tmp_path):
    p = cli("report", "--strict", "--workdir", str(tmp_path))
    assert p.returncode == 3 and "nothing to report" in p.stderr, p.stderr


def test_check_json_elsewhere_is_found_through_the_manifest_and_a_second_check_merges(tmp_path):
    w, elsewhere = tmp_path / "w", tmp_path / "elsewhere.json"
    p = cli("check", CARD, "--weights", "seeded", "--workdir", str(w), "--json", str(elsewhere), "--fresh")
    assert p.returncode == 0, p.stdout[-1500:] + p.stderr[-1500:]
    assert not (w / "results.json").exists()
    p = cli("report", "--strict", "--workdir", str(w))
    assert p.returncode == 0, p.stderr
    doc = json.loads((w / "report.json").read_text())
    assert doc["summary"]["pass"] >= 3 and doc["problems"] == []
    # a second check of another card in the same run joins it; the first card's results stay
    p = cli("check", "torchvision/mobilenet_v2.IMAGENET1K_V1", "--weights", "seeded", "--workdir", str(w),
            "--json", str(elsewhere))
    assert p.returncode == 0 and "merged with" in p.stdout, p.stdout[-1500:]
    cards = {r["card"] for r in json.loads(elsewhere.read_text())["results"]}
    assert cards == {CARD, "torchvision/mobilenet_v2.IMAGENET1K_V1"}


def test_results_of_another_run_are_moved_aside_not_overwritten(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps({"run": "old", "results": []}))
    p = cli("check", CARD, "--weights", "seeded", "--workdir", str(tmp_path), "--fresh")
    assert p.returncode == 0 and (tmp_path / "results.prev.json").is_file() and "another run" in p.stdout


def test_a_step_that_never_finished_fails_the_strict_report(tmp_path):
    p = cli("check", CARD, "--weights", "seeded", "--workdir", str(tmp_path), "--fresh")
    assert p.returncode == 0
    runlog.start(tmp_path, "count", ["count"], [tmp_path / "counts.json"])   # as a killed `count` leaves it
    p = cli("report", "--strict", "--workdir", str(tmp_path))
    assert p.returncode == 1 and "never finished" in p.stderr, p.stderr


def test_a_failing_step_fails_the_strict_report(tmp_path):
    p = cli("check", CARD, "--weights", "seeded", "--workdir", str(tmp_path), "--fresh")
    assert p.returncode == 0
    p = cli("count", "ppcls/MobileNetV2.pretrained", "--convention", "flopz", "--workdir", str(tmp_path))
    assert p.returncode == 2
    p = cli("report", "--strict", "--workdir", str(tmp_path))
    assert p.returncode == 1 and "`count` exited 2" in p.stderr, p.stderr


def test_ctrl_c_writes_partial_results_and_the_report_refuses_them(tmp_path, fresh):
    proc = subprocess.Popen([sys.executable, "-m", "parity.cli", "check", CARD, "ppcls/MobileNetV2.pretrained",
                             "--weights", "seeded", "--workdir", str(tmp_path), "--fresh", "--jobs", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # a shell that starts jobs in the background hands them SIGINT ignored (and Python then
                            # keeps it ignored): the check must get Ctrl-C as a terminal would deliver it
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300
    while time.time() < deadline:                      # wait until the first card's checks are printed
        run = runlog.load(tmp_path)
        if run and (tmp_path / "workers" / "ppcls").exists():
            break
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err[-2000:]
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["partial"] is True and {r["card"] for r in doc["results"]} == {CARD}
    assert runlog.load(tmp_path).steps[-1].exit_code == 130
    p = cli("report", "--strict", "--workdir", str(tmp_path))
    assert p.returncode == 1 and "partial" in p.stderr, p.stderr


@pytest.mark.slow   # CI time (32 s): workers started from a relative default work dir
# (test_install.py::test_installed_check_runs_its_workers_from_the_installed_code), a second check merging
# (test_check_json_elsewhere_is_found_through_the_manifest_and_a_second_check_merges), relative --workdir and
# MBV2_PARITY_WORKDIR resolved against the caller's cwd (test_a_relative_workdir_is_the_callers), both stacks'
# versions kept (test_a_second_check_keeps_the_other_stacks_versions)
def test_relative_workdirs_start_workers_and_a_second_check_keeps_both_stacks_versions(tmp_path):
    # `--workdir wd` and MBV2_PARITY_WORKDIR=./wd are relative to the caller's cwd; workers run in their own directory
    p = cli("check", CARD, "--weights", "seeded", "--workdir", "wd", "--fresh", cwd=tmp_path)
    assert p.returncode == 0, p.stdout[-1500:] + p.stderr[-1500:]
    p = cli("check", TV, "--weights", "seeded", cwd=tmp_path, env={**os.environ, "MBV2_PARITY_WORKDIR": "./wd"})
    assert p.returncode == 0 and "merged with" in p.stdout, p.stdout[-1500:] + p.stderr[-1500:]
    doc = json.loads((tmp_path / "wd" / "results.json").read_text())
    assert {r["card"] for r in doc["results"]} == {CARD, TV}
    # the versions of both invocations' workers: the first one's timm worker, the second one's torchvision worker
    assert doc["versions"]["timm"]["torch"] and doc["versions"]["torchvision"]["torch"] and doc["versions"]["core"]


def test_a_relative_workdir_is_the_callers(tmp_path, monkeypatch):
    """`--workdir wd` and MBV2_PARITY_WORKDIR=./wd name a directory of the caller's cwd, made absolute once (workers
    run with their own directory as cwd)."""
    from parity.paths import default_workdir, workdir_path
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MBV2_PARITY_WORKDIR", "./wd")
    assert default_workdir() == tmp_path / "wd" and workdir_path("wd") == tmp_path / "wd"
    assert default_workdir().is_absolute() and workdir_path("wd").is_absolute()


def test_a_second_check_keeps_the_other_stacks_versions(tmp_path):
    """A second check in the same run: the versions of the stacks it ran replace the first check's, the others are
    kept (the first check's timm worker beside the second's torchvision worker)."""
    from parity.cli.check import merge_previous
    out = tmp_path / "results.json"
    out.write_text(json.dumps({"run": "r1", "results": [], "versions": {"timm": {"torch": "2"}, "core": {"numpy": "1"}}}))
    _, versions = merge_previous(out, "r1", [], {"torchvision": {"torch": "2"}, "core": {"numpy": "2"}})
    assert versions == {"timm": {"torch": "2"}, "torchvision": {"torch": "2"}, "core": {"numpy": "2"}}, versions


def test_sigterm_writes_partial_results_stops_the_workers_and_exits_143(tmp_path, fresh):
    proc = subprocess.Popen([sys.executable, "-m", "parity.cli", "check", CARD, TV, "--weights", "seeded",
                             "--workdir", str(tmp_path), "--fresh", "--jobs", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline:                      # wait until the second card's worker is being started
        if runlog.load(tmp_path) and (tmp_path / "workers" / "torchvision").exists():
            break
        time.sleep(0.5)
    workers = _children(proc.pid)
    assert workers, "no worker process was started"
    proc.send_signal(signal.SIGTERM)   # what a CI runner sends on cancel and timeout
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 143 and "terminated" in err and "Traceback" not in err, (proc.returncode, err[-2000:])
    assert err.strip().count("\n") == 0, err
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["partial"] is True and {r["card"] for r in doc["results"]} == {CARD}
    assert runlog.load(tmp_path).steps[-1].exit_code == 143
    left = [pid for pid in workers if _alive(pid)]
    assert not left, f"worker processes left running: {left}"


def _children(pid):
    """Every descendant pid of ``pid`` (from /proc)."""
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids + [g for k in kids for g in _children(k)]


def _alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
