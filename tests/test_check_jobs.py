"""`check --jobs`: the stacks run concurrently, bounded by --jobs, each card's lines and results in card order, the
same as a sequential run (the checks themselves replaced by timed fakes: fast, and the order of completion is
forced to differ from the order of the cards)."""
import argparse
import threading
import time

import pytest

from parity import frameworks
from parity.checks import CheckResult
from parity.cli import check as C
from parity.cli.common import console
from support import REGISTRY

CARDS = [REGISTRY.get(i) for i in ("keras/mobilenet_v2.alpha_1.0_224", "timm/mobilenetv2_050.lamb_in1k",
                                   "ppcls/MobileNetV2_x0_25.pretrained", "torchvision/mobilenet_v2.IMAGENET1K_V1",
                                   "keras/mobilenet_v2.alpha_0.35_224")]
# keras (first card) is the slowest: with concurrency the other stacks finish first
DELAY = {"keras": 0.4, "timm": 0.05, "ppcls": 0.1, "torchvision": 0.05}


@pytest.fixture()
def fake_checks(monkeypatch):
    live, seen = set(), {"max": 0, "same_stack": False}
    lock = threading.Lock()

    def plan(card, *a):
        return [card.id]

    def run_plan(h, card, items, each, before=None):
        stack = frameworks.get(card.framework).stack
        with lock:
            seen["same_stack"] |= stack in live
            live.add(stack)
            seen["max"] = max(seen["max"], len(live))
        time.sleep(DELAY[card.framework])
        with lock:
            live.discard(stack)
        out = [CheckResult(card.id, kind, "seeded", "pass", f"{card.id} {kind}", {}) for kind in ("spec", "meta")]
        for r in out:
            each(r)
        return out

    monkeypatch.setattr(C.checks, "plan", plan)
    monkeypatch.setattr(C.checks, "run_plan", run_plan)
    return seen


def run(jobs, capsys):
    args = argparse.Namespace(cards=CARDS, jobs=jobs, weights=["seeded"], opset=[17], deploy=[], deploy_options={})
    results = []
    t0 = time.perf_counter()
    C.run_cards(None, args, results)
    wall = time.perf_counter() - t0
    console.file.flush()
    return results, capsys.readouterr().out, wall


def test_concurrent_check_prints_and_returns_in_card_order_like_a_sequential_run(fake_checks, capsys):
    seq, out_seq, wall_seq = run(1, capsys)
    assert fake_checks["max"] == 1
    con, out_con, wall_con = run(2, capsys)
    assert [r.to_dict() for r in con] == [r.to_dict() for r in seq]            # same results, same order
    assert out_con == out_seq                                                  # same lines, card by card
    assert [ln for ln in out_con.splitlines() if not ln.startswith(" ")] == [c.id for c in CARDS]
    assert fake_checks["max"] == 2 and not fake_checks["same_stack"]           # bounded by --jobs, stacks apart
    assert wall_con < 0.85 * wall_seq, (wall_con, wall_seq)


def test_stack_groups_and_jobs_argument():
    groups = C.stack_groups(CARDS)
    assert [[c.id for c in g] for g in groups] == [[CARDS[0].id, CARDS[4].id], [CARDS[1].id, CARDS[3].id],
                                                   [CARDS[2].id]]
    from parity.cli import main
    assert main(["check", "--jobs", "0", "timm/mobilenetv2_050.lamb_in1k"]) == 2


def test_piped_check_prints_progress_per_stack_while_results_wait_for_card_order(fake_checks, capsys):
    """The first card (keras) is the slowest: its results hold back every other card's lines, but the progress lines
    say where each stack is meanwhile."""
    args = argparse.Namespace(cards=CARDS, jobs=4, weights=["seeded"], opset=[17], deploy=[], deploy_options={},
                              progress_every=0.1)
    C.run_cards(None, args, [])
    console.file.flush()
    out = capsys.readouterr().out
    prog = [ln for ln in out.splitlines() if ln.startswith("progress [")]
    assert any(ln.startswith("progress [tf] 0/2 cards, keras/mobilenet_v2.alpha_1.0_224") for ln in prog), out
    assert any(ln.startswith("progress [torch] 2/2 cards, done") for ln in prog), out
    first_result = out.index("keras/mobilenet_v2.alpha_1.0_224 spec")
    assert out.index("progress [") < first_result                 # progress came before the first card's results
