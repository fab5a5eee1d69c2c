"""The run manifest (parity.runlog) and the report's verdict (parity.report.verdict), exactly: every message, every
field written and read back, the manifest's timestamps and ids, a crash while writing it, manifests that cannot be
read."""
import json
import re
from pathlib import Path

import pytest

from parity import runlog
from parity.errors import EXIT_FAILED, EXIT_NOTHING, EXIT_OK
from parity.report.verdict import verdict

pytestmark = pytest.mark.judging

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{4}$")    # ISO 8601 with the UTC offset


def checked_run(tmp_path):
    _r, s = runlog.start(tmp_path, "check", ["check"], [tmp_path / "results.json"], fresh=True)
    runlog.finish(tmp_path, s, 0)
    return runlog.load(tmp_path)


def doc(passed=3, failed=0, errors=0, mismatches=(0,), **extra):
    return {"summary": {"pass": passed, "fail": failed, "skip": 0, "error": errors},
            "rows": [{"counts": {"mismatch": m}} for m in mismatches], **extra}


# --- the report's verdict ----------------------------------------------------------------------------------------

def test_verdict_messages(tmp_path):
    run = checked_run(tmp_path)
    assert verdict(doc(), None) == (EXIT_NOTHING, "nothing to report: no `check` recorded in this run")
    assert verdict(doc(), run) == (EXIT_OK, "3 checks passed")                       # a doc without "problems"
    assert verdict(doc(passed=0), run) == (EXIT_NOTHING, "nothing to report: the run's checks were all skipped")
    assert verdict(doc(failed=1, errors=2, mismatches=(1, 1)), run) == (
        EXIT_FAILED, "the run is not green: 5 failing checks/cells")
    assert verdict(doc(errors=2, mismatches=(0, 3), problems=["step `count` exited 2", "results partial"]), run) == (
        EXIT_FAILED, "the run is not green: step `count` exited 2; results partial; 5 failing checks/cells")
    assert verdict(doc(problems=["results partial"]), run) == (EXIT_FAILED, "the run is not green: results partial")


def test_verdict_does_not_change_the_report(tmp_path):
    d = doc(failed=1, problems=["x"])
    verdict(d, checked_run(tmp_path))
    assert d["problems"] == ["x"]


# --- the run manifest ----------------------------------------------------------------------------------------------

def test_start_records_the_step_exactly(tmp_path):
    wd = tmp_path / "a" / "b" / "work"                                  # created with its parents
    argv = ["check", "--fresh"]
    run, step = runlog.start(wd, "check", argv, [tmp_path / "out" / ".." / "r.json"], fresh=True)
    argv.append("later")                                                # the step keeps its own copy
    assert re.fullmatch(r"[0-9a-f]{12}", run.id) and re.fullmatch(r"[0-9a-f]{8}", step.id)
    assert run.workdir == str(wd.resolve()) and TIMESTAMP.match(run.started) and TIMESTAMP.match(step.started)
    assert (step.command, step.argv, step.outputs) == ("check", ["check", "--fresh"], [str(tmp_path / "r.json")])
    assert (step.finished, step.exit_code, step.summary, step.state) == (None, None, {}, "unfinished")
    back = runlog.load(wd)
    assert (back.id, back.started, back.workdir) == (run.id, run.started, run.workdir)
    assert back.steps == [step]


def test_finish_records_exit_code_and_summary(tmp_path):
    _run, step = runlog.start(tmp_path, "eval", ["eval"], [], fresh=True)
    runlog.finish(tmp_path, step, 3, why="0 of 5 images evaluated", n=0)
    (s,) = runlog.load(tmp_path).steps
    assert (s.exit_code, s.summary, s.state) == (3, {"why": "0 of 5 images evaluated", "n": 0}, "exit 3")
    assert TIMESTAMP.match(s.finished)


def test_problems_messages(tmp_path):
    _r, s1 = runlog.start(tmp_path, "check", ["check"], [], fresh=True)
    _r, s2 = runlog.start(tmp_path, "count", ["count"], [])
    _r, s3 = runlog.start(tmp_path, "eval", ["eval"], [])
    _r, s4 = runlog.start(tmp_path, "cross", ["cross"], [])
    runlog.finish(tmp_path, s2, 2, why="a published cell mismatched")
    runlog.finish(tmp_path, s3, 1)
    runlog.finish(tmp_path, s4, 0, why="ignored: exit 0")
    assert runlog.load(tmp_path).problems() == [
        f"step `check` started {s1.started} never finished (crashed, killed or still running)",
        "step `count` exited 2 (a published cell mismatched)",
        "step `eval` exited 1"]


def test_manifest_is_one_field_per_line(tmp_path):
    """run.json is meant to be read by people too: indented JSON, not one long line."""
    runlog.start(tmp_path, "check", ["check"], [], fresh=True)
    text = (tmp_path / "run.json").read_text()
    lines = text.splitlines()
    assert len(lines) > 10 and lines[0] == "{" and re.match(r'^\s+"id": "[0-9a-f]{12}",$', lines[1])
    assert json.loads(text)["steps"][0]["command"] == "check"


def test_a_crash_while_writing_leaves_the_previous_manifest(tmp_path, monkeypatch):
    """The manifest is written to a temporary file beside it (a name per process and thread, parity.fileio) and moved
    over run.json: a crash before the move leaves the previous manifest whole and no temporary behind."""
    run, _ = runlog.start(tmp_path, "check", ["check"], [], fresh=True)
    before = (tmp_path / "run.json").read_text()
    moves = []

    def crash(src, dst):
        moves.append((str(src), str(dst)))
        raise OSError("disk full")

    monkeypatch.setattr(runlog.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        runlog.start(tmp_path, "count", ["count"], [])
    assert len(moves) == 1 and moves[0][1] == str(tmp_path / "run.json"), moves
    assert Path(moves[0][0]).parent == tmp_path and Path(moves[0][0]).name != "run.json"
    assert not Path(moves[0][0]).exists()
    assert (tmp_path / "run.json").read_text() == before
    monkeypatch.undo()
    assert [s.command for s in runlog.load(tmp_path).steps] == ["check"] and runlog.load(tmp_path).id == run.id


def test_load_tolerates_no_steps_and_refuses_broken_manifests(tmp_path):
    assert runlog.load(tmp_path) is None
    m = tmp_path / "run.json"
    m.write_text(json.dumps({"id": "abc", "started": "2024-01-01T00:00:00+0000", "workdir": "/w"}))
    r = runlog.load(tmp_path)
    assert (r.id, r.started, r.workdir, r.steps) == ("abc", "2024-01-01T00:00:00+0000", "/w", [])
    for broken in ("{", json.dumps({"started": "x", "workdir": "/w"}),
                   json.dumps({"id": "a", "started": "x", "workdir": "/w", "steps": [{"id": "s", "bogus": 1}]}),
                   json.dumps({"id": "a", "started": "x", "workdir": "/w", "steps": None})):
        m.write_text(broken)
        assert runlog.load(tmp_path) is None, broken


def test_finish_without_a_manifest_does_nothing(tmp_path):
    step = runlog.Step("s", "check", [], "t")
    runlog.finish(tmp_path, step, 0)
    assert not (tmp_path / "run.json").exists()


def test_a_step_is_credited_only_with_the_outputs_it_wrote(tmp_path):
    """A step that ends non-zero (refused, failed) leaving its output as an earlier step wrote it, or that never
    finishes, is not credited with that file: the report never shows an earlier result as its own."""
    out = tmp_path / "audit.json"
    _r, s1 = runlog.start(tmp_path, "audit", ["audit", "a.yml"], [out], fresh=True)
    out.write_text('{"verdict": "pass"}')
    runlog.finish(tmp_path, s1, 0)
    _r, s2 = runlog.start(tmp_path, "audit", ["audit", "b.yml"], [out])          # refused: writes nothing
    runlog.finish(tmp_path, s2, 2, why="--fix OUT must not overwrite CONFIG")
    _r, s3 = runlog.start(tmp_path, "audit", ["audit", "c.yml"], [out])          # fails having written
    out.write_text('{"verdict": "fail", "longer": 1}')
    runlog.finish(tmp_path, s3, 1)
    runlog.start(tmp_path, "audit", ["audit", "d.yml"], [out])                  # killed: never finishes
    _r, s5 = runlog.start(tmp_path, "eval", ["eval"], [tmp_path / "none.json"])
    runlog.finish(tmp_path, s5, 0)                                               # exit 0: its output stays listed
    run = runlog.load(tmp_path)
    a, b, c, d, e = run.steps
    assert (a.outputs, a.not_written) == ([str(out)], [])
    assert (b.outputs, b.not_written) == ([], [str(out)])
    assert (c.outputs, c.not_written) == ([str(out)], [])
    assert d.written() == [] and d.outputs == [str(out)]
    assert e.outputs == [str(tmp_path / "none.json")] and e.not_written == []
    assert run.outputs("audit") == [out, out]                                    # a's and c's, not b's or d's
    out.write_text('{"verdict": "pass", "rewritten": true}')                     # d wrote before being killed
    assert runlog.load(tmp_path).steps[3].written() == [str(out)]
    missing = tmp_path / "gone.json"
    _r, s6 = runlog.start(tmp_path, "count", ["count"], [missing])
    runlog.finish(tmp_path, s6, 3)
    assert runlog.load(tmp_path).steps[-1].not_written == [str(missing)]
