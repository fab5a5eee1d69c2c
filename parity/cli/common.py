"""What every command shares: the console, status styles, option helpers and the checks that refuse bad input
before any worker starts. Framework-free."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from .. import frameworks, settings
from ..errors import UsageError
from ..paths import default_workdir, workdir_path
from ..registry import Card, Registry, load_registry

STYLE = {"pass": "green", "fail": "bold red", "skip": "yellow", "error": "bold magenta", "expected": "cyan"}
DEFAULT_WIDTH = 120


def terminal_width() -> int | None:
    """None on a terminal (rich measures it); when piped: ``$COLUMNS``, else the width of the terminal the user
    runs in (stderr or stdin), else 120."""
    if sys.stdout.isatty():
        return None
    cols = settings.columns()
    if cols:
        return cols
    for fd in (2, 0):
        try:
            return os.get_terminal_size(fd).columns
        except OSError:
            continue
    return DEFAULT_WIDTH


console = Console(width=terminal_width(), highlight=False)


def say(text: str) -> None:
    """Print text that comes from cards, paths, sources or errors literally (rich markup escaped)."""
    console.print(escape(text))


def clip(text: str, n: int) -> str:
    """``text`` shortened to at most ``n`` characters at a space (a number or a word is never cut), with `…`."""
    if len(text) <= n:
        return text
    cut = text.rfind(" ", 0, n - 1)
    return (text[:cut] if cut > 0 else text[:n - 1]).rstrip(" ,;") + " …"


def status(s: str) -> str:
    return f"[{STYLE.get(s, 'white')}]{s}[/]"


WHOLE = ("id", "card")   # columns never wrapped or cut: two ids must never look the same
HEADER_FOLD = 8          # a column header longer than this may fold (never a cell)
BLOCK_KEY = 22           # widest column name shown in full in the one-record-per-block layout


class FitTable:
    """A table that fits the width it is printed at without ever splitting a word (a number, a status, an id):

    * as a table when every column fits at its longest word (the ``WHOLE`` columns at their longest cell); cells wrap
      at spaces only, the spare width goes to the columns that would wrap most;
    * else, when it has ``details`` columns (long text such as the published numbers a result was checked against),
      as a table without them, each row's details on lines below the table;
    * otherwise one record per block: the record's id on a line, then one ``column: value`` line per non-empty cell.

    Printed with ``console.print`` like a rich table (it is a rich renderable: the layout is chosen at print time from
    the width the console gives it)."""

    def __init__(self, title: str, columns: list[str], ids: list[str] | None = None, details: tuple[str, ...] = (),
                 row_key: tuple[str, ...] = ()) -> None:
        self.title = title
        self.columns = list(columns)
        self.details = details     # columns that may leave the table (below it, row by row)
        self.row_key = row_key or tuple(c for c in self.columns if c in WHOLE)[:1] or (self.columns[0],)
        self.rows: list[list[Text]] = []

    @property
    def row_count(self) -> int:
        return len(self.rows)

    def add_row(self, *cells: Any) -> None:
        row = [c if isinstance(c, Text) else Text.from_markup("" if c is None else str(c)) for c in cells]
        self.rows.append(row + [Text("")] * (len(self.columns) - len(row)))

    def widths(self, width: int, keep: list[int] | None = None) -> list[int] | None:
        """Content width per column (of ``keep``, default all) for a table of at most ``width`` columns, or None
        when the words do not fit."""
        natural, least = [], []
        keep = list(range(len(self.columns))) if keep is None else keep
        for i in keep:
            name = self.columns[i]
            cells = [r[i].plain for r in self.rows]
            full = max((cell_len(line) for c in cells for line in c.splitlines() or [""]), default=0)
            words = [cell_len(w) for c in cells for w in c.split()]
            head_words = max((cell_len(w) for w in name.split()), default=1)
            natural.append(max(full, cell_len(name)))
            # a header may fold past HEADER_FOLD characters (a command names such columns whole below its table)
            least.append(max(full if name in WHOLE else max(words, default=0), min(head_words, HEADER_FOLD), 1))
        room = width - (3 * len(keep) + 1)       # borders and padding of the default box
        if sum(natural) <= room:
            return natural
        if sum(least) > room:
            return None
        out, spare = list(least), room - sum(least)
        want = [n - m for n, m in zip(natural, least)]
        total = sum(want)
        for i, w in enumerate(want):
            out[i] += min(w, spare * w // total) if total else 0
        left = room - sum(out)
        for i in sorted(range(len(out)), key=lambda j: natural[j] - out[j], reverse=True):
            add = min(left, natural[i] - out[i])
            out[i] += add
            left -= add
        return out

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        keep = list(range(len(self.columns)))
        widths = self.widths(options.max_width)
        if widths is None and self.details:
            keep = [i for i, c in enumerate(self.columns) if c not in self.details]
            widths = self.widths(options.max_width, keep)
        if widths is not None:
            t = Table(title=escape(self.title), title_justify="left")
            for i, w in zip(keep, widths):
                t.add_column(self.columns[i], width=w, no_wrap=self.columns[i] in WHOLE, overflow="fold")
            for r in self.rows:
                t.add_row(*(r[i] for i in keep))
            yield t
            for r in self.rows:     # the detail columns left out of the table: below it, row by row
                for i, name in enumerate(self.columns):
                    if i not in keep and r[i].plain.strip():
                        ident = ", ".join(r[self.columns.index(k)].plain for k in self.row_key)
                        yield Text(f"{ident}, {name}:", style="dim")
                        for line in r[i].wrap(console, max(20, options.max_width - 5), overflow="fold"):
                            line.rstrip()
                            yield Text("    ") + line
            return
        yield Text(self.title, style="italic")
        width = options.max_width
        key = next((i for i, c in enumerate(self.columns) if c in WHOLE), 0)
        kw = min(max(cell_len(c) for c in self.columns) + 4, BLOCK_KEY, width // 2)
        for r in self.rows:
            yield Text("- ", style="bold") + Text(r[key].plain, style="bold")
            for i, (name, cell) in enumerate(zip(self.columns, r)):
                if i == key or not cell.plain.strip():
                    continue
                label = f"  {name}: "
                indent = kw if cell_len(label) <= kw else 4
                room = width - indent
                if max(cell_len(w) for w in cell.plain.split()) > room:   # a word wider than the room beside
                    indent, room = 4, width - 4                            # the label: the value under it
                lines = cell.wrap(console, room, overflow="fold")
                head = Text(label.ljust(indent) if cell_len(label) <= indent else label, style="dim")
                if cell_len(label) > indent:
                    yield head
                    head = Text(" " * indent)
                for n, line in enumerate(lines):
                    line.rstrip()
                    yield (head if n == 0 else Text(" " * indent)) + line


def table(title: str, columns: list[str], ids: list[str] | None = None, details: tuple[str, ...] = (),
          row_key: tuple[str, ...] = ()) -> FitTable:
    """A table that fits the console (``FitTable``): ids, numbers and statuses are never split."""
    return FitTable(title, columns, ids, details, row_key)


def add_models(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", nargs="*", help="ids, framework names or globs (default: all)")


def add_workdir(p: argparse.ArgumentParser, json_default: str | None = None) -> None:
    p.add_argument("--workdir", default=None, help="where ONNX files, logs and results go (default ./build, or "
                                                   "$MBV2_PARITY_WORKDIR)")
    if json_default:
        p.add_argument("--json", help=f"results JSON path (default: WORKDIR/{json_default})")


def workdir(args: argparse.Namespace) -> Path:
    """The work directory, created and checked writable (refused before any work: not a directory, not writable)."""
    d = workdir_path(args.workdir) if getattr(args, "workdir", None) else default_workdir()
    if d.exists() and not d.is_dir():
        raise UsageError(f"--workdir {d}: exists and is not a directory")
    try:
        d.mkdir(parents=True, exist_ok=True)
        probe = d / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UsageError(f"--workdir {d}: not writable ({e.strerror})", hint="pick a directory you can write") from None
    return d


def json_out(args: argparse.Namespace, wd: Path, default: str) -> Path:
    """Where the command's results go; a directory or an unwritable place is refused before any work."""
    raw = getattr(args, "json", None)
    out = Path(raw) if raw else wd / default
    if out.is_dir():
        raise UsageError(f"--json {out}: is a directory", hint="give a file path, e.g. results.json")
    parent = out.parent
    if parent.exists() and not os.access(parent, os.W_OK):
        raise UsageError(f"--json {out}: its directory is not writable")
    if not parent.exists():
        try:
            parent.mkdir(parents=True)
        except OSError as e:
            raise UsageError(f"--json {out}: cannot create {parent} ({e.strerror})") from None
    return out


def select(args: argparse.Namespace, registry: Registry | None = None) -> list[Card]:
    return (registry or load_registry()).select(getattr(args, "models", None))


def check_opsets(cards: list[Card], opsets: list[int]) -> None:
    """Each requested opset within what each selected card's exporter supports (the range and its source)."""
    for fw in sorted({c.framework for c in cards}):
        lo, hi = frameworks.get(fw).opsets
        bad = [o for o in opsets if not lo <= o <= hi]
        if bad:
            raise UsageError(f"--opset {bad[0]}: the {fw} exporter supports opsets {lo}-{hi} "
                             f"({frameworks.get(fw).opset_source})")


def preflight(cards: list[Card]) -> None:
    """Every stack the cards need has an interpreter with its framework: refused once, up front, otherwise."""
    from ..workers.interpreters import preflight as check
    check({frameworks.get(c.framework).stack for c in cards})


def namespace(**kw: Any) -> argparse.Namespace:
    return argparse.Namespace(**kw)


def add_quant_options(p: argparse.ArgumentParser) -> None:
    """Calibration/quantization options of the int8 runtimes (default: each runtime's own, recorded in made_by)."""
    p.add_argument("--calib", help="labeled images for int8 calibration (default: the shared ImageNet sample)")
    p.add_argument("--calib-images", type=int, default=None,
                   help="calibration images, every class present (default 1000, seed 000's rule)")
    p.add_argument("--quant", choices=("per-channel", "per-tensor"), default=None,
                   help="ort-int8 weight granularity (default per-channel; per-tensor collapses MobileNetV2)")
    p.add_argument("--calib-method", choices=("minmax", "entropy", "percentile"), default=None,
                   help="ort-int8 calibration method (default minmax)")
    p.add_argument("--tflite", metavar="PATH", default=None,
                   help="the .tflite the tflite-file runtime runs (default: the shared TF2 PTQ int8 MobileNetV2; pair "
                        "it with its own weights: --weights canonical:PATH)")


def quant_options(args: argparse.Namespace, selected: list[str]) -> dict[str, dict[str, Any]]:
    """Per selected runtime, the calibration options it honors; an explicit option none of them takes is refused."""
    from .. import runtimes
    from ..deploy.calibration import calib_dir_path
    if args.calib_images is not None and args.calib_images <= 0:
        raise UsageError(f"--calib-images {args.calib_images}: at least 1", hint="omit it for 1000")
    if args.tflite and not Path(args.tflite).is_file():
        raise UsageError(f"--tflite {args.tflite}: no such file", hint="the path of a .tflite model")
    given = {"calib_dir": calib_dir_path(args.calib), "calib_images": args.calib_images, "granularity": args.quant,
             "method": args.calib_method, "path": str(Path(args.tflite).resolve()) if args.tflite else None}
    per, notes = runtimes.quant_options(selected, given)
    for n in notes:
        say(n)
    return per
