"""Where a long `check` is: one line per worker stack -- cards done / total, the current card and step, elapsed time and
an ETA from the per-card wall times earlier runs recorded in the artifact cache (``progress.json`` beside the
store; cards never timed count as the mean of those that were). On a terminal the lines are live (rich); piped, a
plain line per stack is printed every ``every`` seconds, so a log shows progress while results wait for card order."""
from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import frameworks


@dataclass
class Lane:
    stack: str
    cards: list[str]
    done: int = 0
    current: str = ""
    step: str = ""
    started: float = field(default_factory=time.monotonic)
    card_started: float = field(default_factory=time.monotonic)


def _fmt(seconds: float) -> str:
    s = int(max(seconds, 0))
    return f"{s // 3600}h{s // 60 % 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class Progress:
    def __init__(self, cards: list[Any], record: Path | None, key: str = "", every: float = 30.0,
                 out: Callable[[str], None] = print, live: bool = False) -> None:
        self.lanes: dict[str, Lane] = {}
        for c in cards:
            stack = frameworks.get(c.framework).stack
            self.lanes.setdefault(stack, Lane(stack, [])).cards.append(c.id)
        self.record, self.key, self.every, self.out, self.live = record, key, every, out, live
        self.past: dict[str, float] = self._load()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live: Any = None

    # ------------------------------------------------------------ timings
    def _load(self) -> dict[str, float]:
        if self.record is None:
            return {}
        try:
            doc = json.loads(self.record.read_text())
        except (OSError, ValueError):
            return {}
        got = doc.get(self.key, {}) if isinstance(doc, dict) else {}
        return {k: float(v) for k, v in got.items() if isinstance(v, (int, float))}

    def _save(self, card: str, seconds: float) -> None:
        """Record a card's wall time (re-read, merged, written by rename: runs sharing the cache never see half a
        file; the last writer of a card wins)."""
        if self.record is None:
            return
        try:
            doc = json.loads(self.record.read_text()) if self.record.is_file() else {}
        except (OSError, ValueError):
            doc = {}
        doc.setdefault(self.key, {})[card] = round(seconds, 2)
        tmp = self.record.with_name(f".{self.record.name}.{os.getpid()}.{uuid.uuid4().hex[:6]}")
        try:
            self.record.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
            os.replace(tmp, self.record)
        except OSError:
            tmp.unlink(missing_ok=True)

    def eta(self, lane: Lane) -> float | None:
        """Seconds left on a lane: the recorded times of its cards not done, less the current card's elapsed time;
        None when no card was ever timed."""
        if not self.past:
            return None
        mean = sum(self.past.values()) / len(self.past)
        left = sum(self.past.get(c, mean) for c in lane.cards[lane.done:])
        if lane.current:
            left -= min(time.monotonic() - lane.card_started, self.past.get(lane.current, mean))
        return max(left, 0.0)

    # ------------------------------------------------------------- events
    def lane_of(self, card: Any) -> Lane:
        return self.lanes[frameworks.get(card.framework).stack]

    def start_card(self, card: Any) -> None:
        with self._lock:
            lane = self.lane_of(card)
            lane.current, lane.step, lane.card_started = card.id, "", time.monotonic()
        self._refresh()

    def step(self, card: Any, what: str) -> None:
        with self._lock:
            self.lane_of(card).step = what
        self._refresh()

    def end_card(self, card: Any) -> None:
        with self._lock:
            lane = self.lane_of(card)
            seconds = time.monotonic() - lane.card_started
            lane.done += 1
            lane.current = lane.step = ""
        self._save(card.id, seconds)
        self._refresh()

    def lines(self) -> list[str]:
        out = []
        with self._lock:
            for lane in self.lanes.values():
                eta = self.eta(lane)
                where = f"{lane.current} {lane.step}".strip() if lane.current else (
                    "done" if lane.done == len(lane.cards) else "waiting")
                out.append(f"[{lane.stack}] {lane.done}/{len(lane.cards)} cards, {where}, "
                           f"{_fmt(time.monotonic() - lane.started)} elapsed"
                           + (f", ETA {_fmt(eta)}" if eta is not None and lane.done < len(lane.cards) else ""))
        return out

    # ------------------------------------------------------------ display
    def _refresh(self) -> None:
        if self._live is not None:
            from rich.text import Text
            self._live.update(Text("\n".join(self.lines()), style="dim"))

    def _tick(self) -> None:
        while not self._stop.wait(self.every):
            for ln in self.lines():
                self.out(f"progress {ln}")

    def __enter__(self) -> Progress:
        if self.live:
            from rich.live import Live

            from .common import console
            self._live = Live(console=console, transient=True, refresh_per_second=2)
            self._live.__enter__()
            self._refresh()
        elif self.every > 0:
            self._thread = threading.Thread(target=self._tick, name="progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None
