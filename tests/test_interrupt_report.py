"""After Ctrl-C, the checks the interrupted card already ran are in the partial results and in the report (they
were listed as "not run" when only finished cards were kept)."""
import json
import signal
import subprocess
import sys
import time

from parity import report
from support import REGISTRY

CARD = "ppcls/MobileNetV2.pretrained"


def test_an_interrupted_cards_passed_checks_are_reported(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "parity.cli", "check", CARD, "--weights", "seeded", "--workdir",
                             str(tmp_path), "--fresh", "--jobs", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    passed = []
    deadline = time.time() + 600
    while time.time() < deadline:              # the card's first passed check printed: Ctrl-C in the middle of it
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("  ") and " pass " in line:
            passed.append(line.split()[0])
            break
    assert passed, "no check passed before the deadline"
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130 and "interrupted" in err, err[-2000:]
    doc = json.loads((tmp_path / "results.json").read_text())
    got = {r["check"]: r["status"] for r in doc["results"] if r["card"] == CARD}
    assert doc["partial"] is True and got.get(passed[0]) == "pass", (passed, got)
    rep = json.loads(report.write(tmp_path, REGISTRY)["json"].read_text())
    row = next(r for r in rep["rows"] if r["card"] == CARD)
    assert row["status"] != "not run" and row["checks"].get(passed[0]) == "pass", row
