"""Known findings (``parity.findings``, ``fixtures/known_findings.toml``): a reproduced finding is ``expected`` (green),
and each way it can change turns it red: it disappears, fails differently, or its numbers move. A file entry without
numbers, reason or source is refused at load. The check command and the report apply them (exit codes)."""
import copy
import json
import subprocess
import sys
import textwrap

import pytest

from parity import findings
from parity.paths import FIXTURES
from parity.registry import RegistryError

pytestmark = pytest.mark.judging

ENTRY = textwrap.dedent("""
    [[finding]]
    id = "demo"
    cards = ["torchvision/*"]
    checks = ["deploy-torch-*"]
    modes = ["real"]
    status = "fail"
    fails_with = "SQNR"
    reason = "the recipe swaps ReLU6 for ReLU"
    documented = "README, Known gaps"
    source = "pytorch/vision torchvision/models/quantization/mobilenetv2.py"
    [finding.measured]
    "{runtime}.sqnr_db" = { value = 5.0, tol = 1.0 }
""")


def result(status="fail", reason="SQNR 5.2 dB < 20 dB", sqnr=5.2, card="torchvision/mobilenet_v2.IMAGENET1K_V1",
           check="deploy-torch-qnnpack", mode="real"):
    return {"card": card, "check": check, "status": status, "reason": reason, "mode": mode,
            "metrics": {check.removeprefix("deploy-"): {"sqnr_db": sqnr}}}


@pytest.fixture
def demo(tmp_path):
    p = tmp_path / "f.toml"
    p.write_text(ENTRY)
    return findings.load(p)


def test_a_reproduced_finding_is_expected(demo):
    (r,) = findings.apply([result()], demo)
    assert r["status"] == "expected" and "known finding demo" in r["reason"]
    assert r["metrics"]["finding"] == {"id": "demo", "status": "fail", "reason": "SQNR 5.2 dB < 20 dB"}


@pytest.mark.parametrize(("changed", "says"), [
    ({"status": "pass", "reason": "int8: SQNR 30 dB"}, "no longer reproduces"),          # the finding disappeared
    ({"status": "error", "reason": "internal error"}, "fails differently"),              # another status
    ({"reason": "cosine 0.3 < 0.5"}, "fails differently"),                               # another reason
    ({"sqnr": 6.5}, "moved: {runtime}.sqnr_db 6.5 outside 5 ± 1"),                      # numbers out of tolerance
    ({"sqnr": 3.9}, "outside"),
])
def test_a_changed_finding_is_red(demo, changed, says):
    (r,) = findings.apply([result(**changed)], demo)
    assert r["status"] == "fail" and says in r["reason"], r["reason"]


def test_a_number_not_measured_is_a_change(demo):
    r = result()
    r["metrics"] = {}
    (out,) = findings.apply([r], demo)
    assert out["status"] == "fail" and "not measured" in out["reason"]


def test_uncovered_and_skipped_results_are_untouched_and_apply_is_idempotent(demo):
    other = result(card="timm/mobilenetv2_050.lamb_in1k")
    seeded = result(mode="seeded")
    skipped = result(status="skip", reason="../shared/realdata is absent")
    assert findings.apply([other, seeded, skipped], demo) == [other, seeded, skipped]
    once = findings.apply([result()], demo)
    assert findings.apply(copy.deepcopy(once), demo) == once
    # judged again against a tighter entry: the stored own outcome is what is judged, not the `expected` label
    tight = [findings.Finding(**{**vars(demo[0]), "measured": (findings.Measured("{runtime}.sqnr_db", 5.0, 0.1),)})]
    (again,) = findings.apply(copy.deepcopy(once), tight)
    assert again["status"] == "fail" and "outside" in again["reason"]
    assert findings.apply(copy.deepcopy(once), [])[0]["status"] == "fail"    # the entry removed: red again


@pytest.mark.parametrize("field", ["measured", "reason", "source", "documented", "fails_with", "checks"])
def test_an_entry_without_numbers_reason_or_source_is_refused(tmp_path, field):
    lines = ENTRY.splitlines()
    if field == "measured":
        text = "\n".join(ln for ln in lines if "finding.measured" not in ln and "sqnr_db" not in ln)
    else:
        text = "\n".join(ln for ln in lines if not ln.startswith(f"{field} ="))
    p = tmp_path / "f.toml"
    p.write_text(text)
    with pytest.raises(RegistryError, match=f"missing {field}"):
        findings.load(p)


@pytest.mark.parametrize(("bad", "says"), [('"{runtime}.sqnr_db" = { value = 5.0 }', "measured"),
                                           ('"{runtime}.sqnr_db" = { value = 5.0, tol = -1 }', "measured"),
                                           ('"{runtime}.sqnr_db" = 5.0', "measured")])
def test_a_measured_number_needs_a_value_and_a_tolerance(tmp_path, bad, says):
    p = tmp_path / "f.toml"
    p.write_text(ENTRY.replace('"{runtime}.sqnr_db" = { value = 5.0, tol = 1.0 }', bad))
    with pytest.raises(RegistryError, match=says):
        findings.load(p)


def test_the_project_findings_file_loads_and_every_entry_is_documented():
    got = findings.load(FIXTURES / "known_findings.toml")
    assert got, "the project records its known findings"
    for f in got:
        assert f.measured and f.reason and f.source and f.documented


def test_report_strict_is_green_with_a_reproduced_finding_and_red_when_it_is_removed(tmp_path):
    """The report re-judges the results with the file as it is now: an entry removed turns the run red."""
    from parity import runlog
    wd = tmp_path / "wd"
    wd.mkdir()
    run, step = runlog.start(wd, "check", ["check"], [wd / "results.json"], fresh=True)
    (wd / "results.json").write_text(json.dumps({
        "run": run.id, "partial": False, "versions": {},
        "results": [result(), {**result(check="spec", status="pass", reason="ok"), "metrics": {}}]}))
    runlog.finish(wd, step, 0)
    f = tmp_path / "f.toml"
    f.write_text(ENTRY)

    def report(path):
        env = {**__import__("os").environ, "MBV2_PARITY_FINDINGS": str(path)}
        return subprocess.run([sys.executable, "-m", "parity.cli", "report", "--strict", "--workdir", str(wd)],
                              capture_output=True, text=True, env=env)
    ok = report(f)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "known findings as expected" in ok.stdout + ok.stderr
    f.write_text(ENTRY.replace("value = 5.0, tol = 1.0", "value = 5.0, tol = 0.1"))     # tightened
    assert report(f).returncode == 1
    f.write_text("")                                                                      # removed
    assert report(f).returncode == 1


PLUGIN = '''
from parity import checks
from parity.checks import Check, CheckResult


@checks.register
class KnownToFail(Check):
    """a check that fails the same way every run, with a measured number: what a known finding covers"""
    kind = "demo-known-to-fail"
    standard = True

    def run(self, h, card, mode="seeded", **params):
        return CheckResult(card.id, self.kind, "fail", "SQNR 5.2 dB < 20 dB", mode, {"demo": {"sqnr_db": 5.2}})
'''


def test_check_is_green_with_the_finding_and_red_without_it(tmp_path):
    """`check` (the command `tox -e parity` runs) on one card: a failure its finding covers is `expected` and the run is
    green (check and report --strict); the entry removed, or its tolerance tightened, and the same run is red."""
    import os
    (tmp_path / "known_to_fail_plugin.py").write_text(PLUGIN)
    f = tmp_path / "f.toml"
    f.write_text(ENTRY.replace('cards = ["torchvision/*"]', 'cards = ["timm/*"]')
                 .replace('checks = ["deploy-torch-*"]', 'checks = ["demo-known-to-fail"]')
                 .replace('modes = ["real"]', 'modes = ["seeded"]')
                 .replace('"{runtime}.sqnr_db"', '"demo.sqnr_db"'))
    env = {**os.environ, "MBV2_PARITY_PLUGINS": "known_to_fail_plugin", "MBV2_PARITY_FINDINGS": str(f),
           "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    wd = tmp_path / "wd"

    def cli(*argv):
        return subprocess.run([sys.executable, "-m", "parity.cli", *argv, "--workdir", str(wd)], capture_output=True,
                              text=True, env=env, timeout=900)
    p = cli("check", "timm/mobilenetv2_050.lamb_in1k", "--weights", "seeded", "--fresh", "--jobs", "1")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    assert "1 known findings as expected" in p.stdout
    doc = json.loads((wd / "results.json").read_text())
    (r,) = [r for r in doc["results"] if r["check"] == "demo-known-to-fail"]
    assert r["status"] == "expected" and r["metrics"]["finding"]["id"] == "demo"
    assert doc["machine"]["cpu"]["source"] == "/proc/cpuinfo"
    assert cli("report", "--strict").returncode == 0
    f.write_text(f.read_text().replace("value = 5.0, tol = 1.0", "value = 5.0, tol = 0.1"))    # tightened
    assert cli("report", "--strict").returncode == 1
    p = cli("check", "timm/mobilenetv2_050.lamb_in1k", "--weights", "seeded", "--fresh", "--jobs", "1")
    assert p.returncode == 1 and "known finding demo moved" in p.stdout
    f.write_text("")                                                                             # removed
    assert cli("report", "--strict").returncode == 1
