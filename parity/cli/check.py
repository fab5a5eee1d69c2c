"""`mbv2-parity check`: the standard checks of every selected card (spec, meta, FLOPs/params cells, ONNX parity per
weights mode and opset), a results table, results JSON; exit 1 on any failure, 3 when nothing was checked."""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import checks, findings, frameworks, machine, runtimes
from ..cache import Cache, stack_listing
from ..checks import CheckResult
from ..errors import EXIT_FAILED, EXIT_NOTHING, EXIT_OK, UsageError
from ..harness import DEFAULT_OPSET, Harness, write_json
from ..registry import load_registry
from ..weights import modes as weight_modes
from .common import (
    add_models,
    add_quant_options,
    add_workdir,
    check_opsets,
    clip,
    console,
    json_out,
    preflight,
    quant_options,
    say,
    select,
    status,
    table,
)
from .common import workdir as get_workdir
from .jobs import in_card_order, stack_groups
from .progress import Progress

__all__ = ["add", "prepare", "run", "run_cards", "stack_groups"]


def add(sub: Any) -> None:
    p = sub.add_parser("check", help="run spec/meta/counts/ONNX-parity checks and print a results table")
    add_models(p)
    p.add_argument("--weights", action="append", default=None,
                   help="seeded | pretrained | real | file:PATH | canonical:PATH (repeatable; default: seeded and "
                        "pretrained)")
    p.add_argument("--opset", type=int, action="append", default=None, help="ONNX opset (repeatable; default 17)")
    p.add_argument("--deploy", action="append", default=None, metavar="RUNTIME",
                   help="also check a deployment runtime against native fp32 (repeatable; `all`: every deploy runtime "
                        "that fits the card; `list --runtimes`)")
    add_quant_options(p)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="worker stacks checked at once (default: the core count; 1: one card after the other); the "
                        "output and results are in card order either way")
    add_workdir(p, "results.json")
    p.add_argument("--fresh", action="store_true",
                   help="start a new run in WORKDIR (default: join the current run, merging results)")
    add_cache_options(p)
    p.add_argument("--progress-every", type=float, default=30.0, metavar="SECONDS",
                   help="piped output: a progress line per worker stack every SECONDS (0: none); on a terminal the "
                        "lines are live")
    p.set_defaults(fn=run, prepare=prepare, step="check")


def add_cache_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-cache", action="store_true",
                   help="make every artifact (models' outputs, ONNX, fp16/int8, converted files, counts) and store "
                        "nothing ($MBV2_PARITY_NO_CACHE=1)")
    p.add_argument("--cache-dir", default=None,
                   help="the artifact cache across runs (default $MBV2_PARITY_ARTIFACTS, else "
                        "$XDG_CACHE_HOME/mbv2-parity/artifacts)")
    p.add_argument("--cache-max-gb", type=float, default=None,
                   help="size bound of the artifact cache in GiB; least recently used entries go first "
                        "($MBV2_PARITY_ARTIFACTS_MAX_GB, default 20)")


def make_cache(args: argparse.Namespace) -> Cache:
    """The artifact cache the options ask for; a cache directory that cannot be written or a bound that is not
    positive is refused before any work (exit 2)."""
    from .. import settings
    bound = args.cache_max_gb if args.cache_max_gb is not None else settings.artifact_cache_max_gb()
    if bound <= 0:
        raise UsageError(f"--cache-max-gb {bound}: must be more than 0", hint="--no-cache stores nothing")
    root = Path(args.cache_dir) if args.cache_dir else settings.artifact_cache_dir()
    enabled = not (args.no_cache or settings.no_cache())
    if enabled:
        try:
            (root / "v1").mkdir(parents=True, exist_ok=True)
            probe = root / "v1" / f".write-test-{os.getpid()}"
            probe.write_text("")
            probe.unlink()
        except OSError as e:
            raise UsageError(f"--cache-dir {root}: not writable ({e.strerror})",
                             hint="pick a directory you can write, or --no-cache") from None
    return Cache(root, int(bound * 2 ** 30), enabled)


def prepare(args: argparse.Namespace) -> None:
    """Everything that can be refused is refused here, before a worker starts."""
    if args.jobs < 1:
        raise UsageError(f"--jobs {args.jobs}: must be at least 1", hint="1 checks one card after the other")
    if args.progress_every < 0:
        raise UsageError(f"--progress-every {args.progress_every}: must be 0 (off) or more seconds")
    args.weights = args.weights or ["seeded", "pretrained"]
    args.opset = args.opset or [DEFAULT_OPSET]
    args.cards = select(args)
    for mode in args.weights:
        weight_modes.validate(mode, args.cards)
        note = weight_modes.padding_note(mode)
        if note:
            say(note)
    check_opsets(args.cards, args.opset)
    args.deploy = deploy_names(args.deploy or [])
    selected = runtimes.names("deploy") if "all" in args.deploy else args.deploy
    args.deploy_options = quant_options(args, selected)
    if "all" in args.deploy and set(args.weights) == {"seeded"} and any(
            getattr(args, k) is not None for k in ("calib", "calib_images", "quant", "calib_method")):
        say("note: --deploy all plans no int8 runtime for seeded weights: the calibration options take effect with "
            "--weights real, pretrained or file:")
    args.findings = findings.load(findings.default_path())   # a broken findings file is refused before any work
    args.cache = make_cache(args)
    preflight(args.cards)


def deploy_names(asked: list[str]) -> list[str]:
    """``--deploy`` values: `all`, a deploy runtime, or a family (`openvino` = its default configuration)."""
    out = []
    deploy = runtimes.names("deploy")
    for a in asked:
        family = [v for (f, _), v in runtimes.FAMILIES.items() if f == a and v in deploy and a not in deploy]
        if family:          # a family: every deployment runtime of it (`--deploy openvino`: f32, default, bf16, int8)
            out += [n for n in dict.fromkeys(family) if n not in out]
            continue
        name = a if a == "all" else runtimes.resolve(a)
        if name != "all" and name not in deploy:
            raise UsageError(f"--deploy {a}: {name} is not a deployment runtime (an fp32 ONNX or native runtime is "
                             "checked by the onnx check already)", hint=f"one of all, {', '.join(deploy)}")
        out.append(name)
    return out


def merge_previous(out: Path, run_id: str, results: list[CheckResult],
                   versions: dict[str, dict[str, str]]) -> tuple[list[CheckResult], dict[str, dict[str, str]]]:
    """A second `check` in the same run merges with the first one's results (newer results replace older ones of the
    same card, check and weights) and versions (per worker stack and the core: the newer replaces the older, the
    others are kept); results of another run are moved aside to ``<name>.prev.json``, never silently overwritten."""
    if not out.is_file():
        return results, versions
    try:
        old = json.loads(out.read_text())
    except ValueError:
        old = {}
    if old.get("run") != run_id:
        prev = out.with_suffix(".prev.json")
        out.replace(prev)
        say(f"note: {out} held results of another run: moved to {prev}")
        return results, versions
    mine = {(r.card, r.check, r.mode) for r in results}
    kept = [CheckResult(**{k: v for k, v in d.items() if k in CheckResult.__dataclass_fields__})
            for d in old.get("results", []) if (d["card"], d["check"], d["mode"]) not in mine]
    if kept:
        say(f"note: merged with {len(kept)} earlier results of this run in {out} (`check --fresh` starts a new run)")
    old_versions = old.get("versions") if isinstance(old.get("versions"), dict) else {}
    return kept + results, {**old_versions, **versions}


def run(args: argparse.Namespace) -> int:
    wd = get_workdir(args)
    out = json_out(args, wd, "results.json")
    results: list[CheckResult] = []
    t0 = time.perf_counter()
    partial, timings, versions = True, {}, {}
    cache: Cache = getattr(args, "cache", None) or Cache.from_settings()
    try:
        with Harness(load_registry(), workdir=wd, cache=cache) as h:
            run_cards(h, args, results)
            timings = h.timings
            versions = run_versions(h, {c.framework for c in args.cards})
        partial = False
    finally:  # Ctrl-C or a crash of the parent: what was checked is written, marked partial
        wall = time.perf_counter() - t0
        results[:] = judged(results, getattr(args, "findings", []))
        previous, versions = merge_previous(out, args.run_id, results, versions)
        merged = [r.to_dict() for r in judged(previous, getattr(args, "findings", []))]
        write_json({"results": merged, "wall_seconds": wall, "run": args.run_id, "partial": partial,
                    "timings": timings, "versions": versions, "machine": machine.profile(merged),
                    "cache": {**cache.summary(), "events": [e.to_dict() for e in cache.events]}}, out)
    show(results, wall, len(args.cards))
    say(cache_line(cache))
    counts = {s: sum(r.status == s for r in results) for s in ("pass", "fail", "skip", "error", findings.EXPECTED)}
    say(f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped, {counts['error']} errors, "
        f"{counts[findings.EXPECTED]} known findings as expected; results: {out}")
    if counts["fail"] or counts["error"]:
        return EXIT_FAILED
    if not counts["pass"] and not counts[findings.EXPECTED]:
        print("mbv2-parity: nothing checked: every check was skipped (reasons above)", file=sys.stderr)
        return EXIT_NOTHING
    return EXIT_OK


def judged(results: list[CheckResult], known: list[findings.Finding]) -> list[CheckResult]:
    """The results judged against the known findings (``parity.findings``): a reproduced finding is ``expected``."""
    return [CheckResult(**d) for d in findings.apply([r.to_dict() for r in results], known)]


def _fit(prefix: str, styled: str, reason: str) -> str:
    """One line per check at any width: the reason cut at a space to what is left of the console's width (the whole
    reason is in the results, and below the table for every failure, error and skip)."""
    return styled + _e(clip(reason, max(24, console.width - len(prefix) - 1)))


def cache_line(cache: Cache) -> str:
    """What the artifact cache did this run, in one line."""
    if not cache.enabled:
        return "artifact cache: off (--no-cache): every artifact was made"
    evs = [e for e in cache.events if e.outcome != "off"]
    n = {o: sum(e.outcome == o for e in evs) for o in ("hit", "miss", "rebuilt")}
    saved = sum(e.saved for e in evs)
    return (f"artifact cache {cache.store.root}: {n['hit']} reused (their making took {saved:.1f}s when made), "
            f"{n['miss']} made and stored" + (f", {n['rebuilt']} damaged entries rebuilt" if n["rebuilt"] else ""))


def _line(r: CheckResult) -> str:
    head = f"  {r.check:<19} {r.mode:<10} "
    return _fit(f"{head}{r.status} ", f"{_e(head)}{status(r.status)} ", r.reason)


def skip_groups(results: list[CheckResult]) -> list[tuple[str, list[CheckResult]]]:
    """A card's skips grouped by reason (offline, a card's pretrained checks all skip for the same one), in the order
    of their first check."""
    groups: dict[str, list[CheckResult]] = {}
    for r in results:
        if r.status == "skip":
            groups.setdefault(r.reason, []).append(r)
    return list(groups.items())


def _checks(rs: list[CheckResult]) -> str:
    modes = sorted({r.mode for r in rs})
    return f"{len(rs)} checks ({', '.join(dict.fromkeys(r.check for r in rs))}; {', '.join(modes)})"


def _skip_line(rs: list[CheckResult]) -> str:
    if len(rs) == 1:
        return _line(rs[0])
    head = f"  {f'{len(rs)} checks':<19} {', '.join(sorted({r.mode for r in rs})):<10} "   # named below the table
    return _fit(f"{head}skip ", f"{_e(head)}{status('skip')} ", rs[0].reason)


def run_cards(h: Harness, args: argparse.Namespace, results: list[CheckResult]) -> None:
    """Every card's plan; with ``--jobs`` > 1 the stacks run concurrently (``jobs.in_card_order``): each card's lines
    are printed, and its results kept, in the order of the cards: the same output and results as a sequential run."""
    live: dict[str, list[CheckResult]] = {}   # each card's results as they come: kept when the card is interrupted
    finished: set[str] = set()
    known = getattr(args, "findings", [])
    # per-card wall times are recorded beside the artifact cache, per set of flags (an ETA compares like with like)
    flags = json.dumps([args.weights, args.opset, args.deploy, args.deploy_options], sort_keys=True, default=str)
    cache = getattr(h, "cache", None)
    record = cache.store.root / "progress.json" if cache is not None and cache.enabled else None
    every = getattr(args, "progress_every", 30.0)

    def finish(card: Any, res: list[CheckResult]) -> None:
        results.extend(res)
        finished.add(card.id)

    with Progress(args.cards, record, hashlib.sha256(flags.encode()).hexdigest()[:16], every,
                  lambda s: console.print(_e(s), style="dim"), live=console.is_terminal and every > 0) as prog:
        def one(card: Any, note: Callable[[str], None]) -> list[CheckResult]:
            items = checks.plan(card, tuple(args.weights), tuple(args.opset), tuple(args.deploy), args.deploy_options)
            got = live.setdefault(card.id, [])

            def each(r: CheckResult) -> None:
                (r,) = judged([r], known)   # a known finding reproduced is printed as `expected`
                got.append(r)
                if r.status != "skip":      # skips come after the card's other lines, one line per reason
                    note(_line(r))
            prog.start_card(card)
            try:
                res = judged(checks.run_plan(h, card, items, each, before=lambda it: prog.step(card, it.label())),
                             known)
            finally:
                prog.end_card(card)
            for _why, rs in skip_groups(res):
                note(_skip_line(rs))
            return res

        try:
            in_card_order(args.cards, args.jobs, one, console.print,
                          lambda card: console.print(f"[bold]{_e(card.id)}[/]"), finish)
        finally:   # Ctrl-C or a crash: the checks an unfinished card already ran are results too (not "not run")
            for card in args.cards:
                if card.id not in finished:
                    results.extend(live.get(card.id, []))


def run_versions(h: Harness, families: set[str] | None = None) -> dict[str, dict[str, str]]:
    """The versions this run used: the core's packages and every worker's framework stack; a framework of the run
    whose worker never started (everything it needed came from the artifact cache) gets its stack's distributions
    as read for the cache keys, marked as such."""
    import importlib.metadata
    core = {}
    for d in ("mbv2-parity", "numpy", "onnx", "onnxruntime", "pillow", "opencv-python-headless"):
        try:
            core[d] = importlib.metadata.version(d)
        except importlib.metadata.PackageNotFoundError:
            continue
    core["python"] = sys.version.split()[0]
    out = {"core": core, **{fw: dict(w.info.get("versions", {})) for fw, w in sorted(h.pool.workers.items())}}
    for fw in sorted((families or set()) - set(out)):
        stack = frameworks.stack_of(fw)
        listed = stack_listing(stack.name)
        if listed:
            out[fw] = {**{d: listed[d] for d in stack.distributions if d in listed},
                       "read": "installed distributions (no worker started: every artifact came from the cache)"}
    return out


def show(results: list[CheckResult], wall: float, n_cards: int) -> None:
    """The table (ids whole, metrics short), then the reason of every failure, error and skip below it."""
    t = table(f"mbv2-parity check: {n_cards} cards, {wall:.1f}s",
              ["card", "check", "weights", "status", "max_abs per runtime", "top-1 / top-5"],
              [r.card for r in results])
    cards = list(dict.fromkeys(r.card for r in results))
    for card in cards:
        mine = [r for r in results if r.card == card]
        for r in mine:
            if r.status == "skip":
                continue
            rts = [k for k, v in r.metrics.items() if isinstance(v, dict) and "max_abs" in v]
            mx = " / ".join(f"{r.metrics[k]['max_abs']:.1e}" for k in rts)
            tk = f"{r.metrics[rts[0]]['top1_agree']:.2f} / {r.metrics[rts[0]]['top5_agree']:.2f}" if rts else ""
            t.add_row(_e(r.card), r.check, _e(r.mode), status(r.status), mx, tk)
        for _why, rs in skip_groups(mine):   # identical skips of a card: one row (every one is in the results)
            if len(rs) == 1:
                t.add_row(_e(card), rs[0].check, _e(rs[0].mode), status("skip"), "", "")
            else:
                t.add_row(_e(card), f"{len(rs)} checks", _e(", ".join(sorted({r.mode for r in rs}))), status("skip"),
                          "", "")
    console.print(t)
    for card in cards:
        mine = [r for r in results if r.card == card]
        for r in mine:
            if r.status in ("fail", "error"):
                console.print(f"{status(r.status)} {_e(r.card)} {r.check} ({_e(r.mode)}): {_e(r.reason)}")
        for why, rs in skip_groups(mine):
            what = f"{rs[0].check} ({rs[0].mode})" if len(rs) == 1 else _checks(rs)
            console.print(f"{status('skip')} {_e(card)} {_e(what)}: {_e(why)}")


def _e(text: str) -> str:
    from rich.markup import escape
    return escape(text)
