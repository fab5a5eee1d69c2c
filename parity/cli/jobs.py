"""`--jobs` of `check` and `eval`: the cards of independent worker stacks run at once (one thread per stack, at most
``jobs`` at once), and each card's lines and result come out in card order, the same as a sequential run."""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from .. import frameworks

R = TypeVar("R")
Line = Callable[[str], None]


def stack_groups(cards: list[Any]) -> list[list[Any]]:
    """The cards per worker stack, in the order of their first card: stacks share nothing but the deployment host,
    so they can run at once; cards of one stack run one after the other (one worker each, bounded memory)."""
    groups: dict[str, list[Any]] = {}
    for c in cards:
        groups.setdefault(frameworks.get(c.framework).stack, []).append(c)
    return list(groups.values())


def in_card_order(cards: list[Any], jobs: int, one: Callable[[Any, Line], R], line: Line,
                  start: Callable[[Any], None], finish: Callable[[Any, R], None]) -> None:
    """``one(card, note)`` per card; ``note`` takes the card's lines. Sequentially (``jobs`` 1 or one stack) each
    card is ``start``-ed, its lines go to ``line`` as they come and it is ``finish``-ed. Concurrently its lines are
    held and the same calls happen, in the order of ``cards``, as soon as it and every card before it are done."""
    groups = stack_groups(cards)
    if jobs == 1 or len(groups) == 1:
        for card in cards:
            start(card)
            finish(card, one(card, line))
        return
    done: queue.Queue[str] = queue.Queue()
    lines: dict[str, list[str]] = {c.id: [] for c in cards}
    per_card: dict[str, R] = {}
    stop = threading.Event()

    def work(group: list[Any]) -> None:
        for card in group:
            if stop.is_set():   # interrupted (Ctrl-C) or failed: no further card is started
                return
            per_card[card.id] = one(card, lines[card.id].append)
            done.put(card.id)

    ex = ThreadPoolExecutor(max_workers=min(jobs, len(groups)), thread_name_prefix="jobs")
    futures = [ex.submit(work, g) for g in groups]
    try:
        shown = 0
        while shown < len(cards):
            try:
                done.get(timeout=0.5)
            except queue.Empty:
                for f in futures:   # a bug in a thread surfaces here, not as a hang
                    if f.done():
                        f.result()  # re-raises what the thread raised
                continue
            while shown < len(cards) and cards[shown].id in per_card:
                card = cards[shown]
                start(card)
                for ln in lines[card.id]:
                    line(ln)
                finish(card, per_card[card.id])
                shown += 1
    finally:
        stop.set()
        ex.shutdown(wait=False, cancel_futures=True)
