"""The judging code alone (no workers): the run verdict, the run manifest, card status and skip grouping, published
cells. Each rule is shown to hold and to fail; `tox -e mutation` mutates these modules against the `judging` tests."""
import pytest

from parity import runlog
from parity.counting.flops import check_cell
from parity.errors import EXIT_FAILED, EXIT_NOTHING, EXIT_OK
from parity.registry import Published, RegistryError
from parity.report.verdict import card_status, skip_groups, verdict

pytestmark = pytest.mark.judging


def doc(passed=3, failed=0, errors=0, mismatch=0, problems=()):
    return {"summary": {"pass": passed, "fail": failed, "skip": 0, "error": errors},
            "rows": [{"counts": {"mismatch": mismatch}}], "problems": list(problems)}


@pytest.fixture
def run(tmp_path):
    _r, s = runlog.start(tmp_path, "check", ["check"], [tmp_path / "results.json"], fresh=True)
    runlog.finish(tmp_path, s, 0)
    return runlog.load(tmp_path)


def test_verdict_is_green_only_with_evidence(run, tmp_path):
    assert verdict(doc(), run)[0] == EXIT_OK
    assert verdict(doc(), None)[0] == EXIT_NOTHING                               # no run at all
    assert verdict(doc(passed=0), run)[0] == EXIT_NOTHING                        # everything skipped
    code, why = verdict(doc(failed=1), run)
    assert code == EXIT_FAILED and "1 failing" in why
    assert verdict(doc(errors=1), run)[0] == EXIT_FAILED
    assert verdict(doc(mismatch=2), run)[0] == EXIT_FAILED and "2 failing" in verdict(doc(mismatch=2), run)[1]
    code, why = verdict(doc(problems=["step `count` exited 2"]), run)
    assert code == EXIT_FAILED and "`count` exited 2" in why
    _other, s = runlog.start(tmp_path / "x", "count", ["count"], [tmp_path / "x" / "c.json"], fresh=True)
    runlog.finish(tmp_path / "x", s, 0)
    assert verdict(doc(), runlog.load(tmp_path / "x"))[0] == EXIT_NOTHING       # a run without a check


def test_run_problems_name_unfinished_and_failed_steps(tmp_path):
    runlog.start(tmp_path, "check", ["check"], [tmp_path / "r.json"], fresh=True)
    assert "never finished" in runlog.load(tmp_path).problems()[0]
    r, s = runlog.start(tmp_path / "b", "count", ["count"], [tmp_path / "c.json"], fresh=True)
    runlog.finish(tmp_path / "b", s, 2)
    assert runlog.load(tmp_path / "b").problems() == ["step `count` exited 2"]
    r, s = runlog.start(tmp_path / "c", "count", ["count"], [tmp_path / "c.json"], fresh=True)
    runlog.finish(tmp_path / "c", s, 0)
    assert runlog.load(tmp_path / "c").problems() == []
    assert runlog.load(tmp_path / "c").outputs("count") == [(tmp_path / "c.json").resolve()]
    r2, _ = runlog.start(tmp_path / "c", "check", ["check"], [tmp_path / "r.json"])
    assert r2.id == r.id                                                       # joins the run
    r3, _ = runlog.start(tmp_path / "c", "check", ["check"], [tmp_path / "r.json"], fresh=True)
    assert r3.id != r.id and len(runlog.load(tmp_path / "c").steps) == 1       # --fresh starts over


def test_card_status_never_calls_an_unrun_card_a_pass():
    def r(s):
        return {"status": s}
    assert card_status([]) == "not run"
    assert card_status([r("skip"), r("skip")]) == "skip"
    assert card_status([r("pass"), r("skip")]) == "pass"
    assert card_status([r("pass"), r("error")]) == "fail" and card_status([r("fail")]) == "fail"


def test_skips_grouped_by_reason_without_the_url():
    res = [{"status": "skip", "reason": "offline (url: https://a)", "card": "a", "check": "c", "mode": "m"},
           {"status": "skip", "reason": "offline (url: https://b)", "card": "b", "check": "c", "mode": "m"},
           {"status": "skip", "reason": "no cells", "card": "b", "check": "d", "mode": "m"},
           {"status": "pass", "reason": "offline", "card": "c", "check": "c", "mode": "m"}]
    g = skip_groups(res)
    assert g == {"offline": ["a c [m]", "b c [m]"], "no cells": ["b d [m]"]}


def pub(digits, unit="M", conv="macs", **kw):
    return Published("flops", digits, unit, "s", "row", conv, **kw)


def test_published_cell_exact_tolerance_and_mismatch():
    assert check_cell(pub("300.77"), {"macs": 300.774e6}).status == "exact"          # rounded as printed
    assert check_cell(pub("300.78"), {"macs": 300.774e6}).status == "mismatch"
    assert check_cell(pub("0.30", unit="GFLOPs", rounded_to=1), {"macs": 300.774e6}).status == "exact"
    assert check_cell(pub("301.33", tolerance_rel=0.005), {"macs": 300.774e6}).status == "within-tolerance"
    assert check_cell(pub("310.00", tolerance_rel=0.005), {"macs": 300.774e6}).status == "mismatch"
    assert check_cell(pub("300", conv=""), {"macs": 300e6}).status == "no-convention"
    assert check_cell(pub("300", conv="thop"), {"thop": None}).status == "not-computable"
    assert check_cell(pub("300", unit="furlongs"), {"macs": 300e6}).status == "not-computable"
    c = check_cell(pub("310.00", tolerance_rel=0.005), {"macs": 300.774e6})
    assert c.residual_rel == pytest.approx(300.774 / 310 - 1)


def test_truncating_sources_are_checked_truncated():
    """TF-slim's (keras-applications') MACs column truncates: 300.77 M prints as 300, 153.94 M as 153. A rounded
    reading of the same count is a mismatch; a truncated reading of a count one unit off is too."""
    assert check_cell(pub("300", rounding="down"), {"macs": 300.774e6}).status == "exact"
    assert check_cell(pub("300"), {"macs": 300.774e6}).status == "mismatch"            # nearest: 301
    assert check_cell(pub("153", rounding="down"), {"macs": 153.94e6}).status == "exact"
    assert check_cell(pub("154", rounding="down"), {"macs": 153.94e6}).status == "mismatch"
    assert check_cell(pub("299", rounding="down"), {"macs": 300.774e6}).status == "mismatch"
    assert check_cell(pub("3.47", rounding="down"), {"macs": 3.47e6}).status == "exact"   # float noise below .47
    # sources that round to 1e5 (mmpretrain's metafile: rounded_to = -5), truncated or not, print without decimals
    assert check_cell(pub("3500000", unit="count", rounded_to=-5), {"macs": 3504872}).status == "exact"
    assert check_cell(pub("3500000", unit="count", rounded_to=-5, rounding="down"), {"macs": 3504872}).status == "exact"
    with pytest.raises(RegistryError, match="rounding 'up'"):
        pub("300", rounding="up")
