"""Importers: one module per deployment-config format, each turning a file into what it declares about the
preprocessing (``Declared``: spec fields on the config's own scale, the assumptions made, the fields it did not
understand, the calibration preprocessing when the format declares it apart) and writing a corrected file in the same
format (``fix``). A plug-in registers more with ``register`` (like runtimes and checks, ``parity.plugins``)."""
from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ...errors import ParityError
from ...spec import PreprocessSpec


class ConfigError(ParityError):
    """A deployment config that cannot be read or audited (unknown format, unparsable, contradictory)."""


@dataclass
class Declared:
    """What one config says. ``fields``: ``PreprocessSpec`` fields it declares (mean/std/scale always together, in
    the model's channel order); ``calibration``: the same for its calibration preprocessing when the format writes
    that apart (None: calibration is not declared, or declared nowhere else)."""
    format: str
    source: str
    fields: dict[str, Any]
    notes: list[str] = field(default_factory=list)       # assumptions, one line each
    unknown: list[str] = field(default_factory=list)     # fields the importer did not understand (never dropped)
    calibration: dict[str, Any] | None = None
    colour_named: bool = False   # mean/std named by colour (R, G, B), channel order not declared
    companion: tuple[str, ...] = ()  # spec fields read from another file beside this one (fixed there, not here)

    def spec(self, upstream: PreprocessSpec) -> PreprocessSpec:
        """The config's pipeline: its declared fields over the upstream spec (undeclared = what upstream does)."""
        return named(Path(self.source), lambda: _merge(upstream, self.fields, self.colour_named))

    def calibration_spec(self, upstream: PreprocessSpec) -> PreprocessSpec | None:
        calib = self.calibration
        return None if calib is None else named(Path(self.source), lambda: _merge(upstream, calib, self.colour_named))

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "source": self.source, "fields": _jsonable(self.fields), "notes": self.notes,
                "unknown": self.unknown, "calibration": None if self.calibration is None
                else _jsonable(self.calibration)}


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def _merge(upstream: PreprocessSpec, fields: dict[str, Any], colour_named: bool = False) -> PreprocessSpec:
    f = dict(fields)
    if colour_named and "channel_order" not in f and upstream.channel_order == "BGR":
        f.update(mean=tuple(f["mean"])[::-1], std=tuple(f["std"])[::-1])  # R, G, B named -> the model's order
    if f.get("resize_mode") in ("squash", "letterbox") and "resize_size" not in f:
        f["resize_size"] = None
    backend, interp = f.get("backend", upstream.backend), f.get("interpolation", upstream.interpolation)
    if backend == "pil" and interp != "nearest" and "antialias" not in f:
        f["antialias"] = True     # a PIL resize antialiases every kernel but nearest: the only thing it can do
    try:
        return upstream.replace(**f)
    except ValueError as e:
        raise ConfigError(f"the config's preprocessing is not a valid spec: {e}") from None


class Importer:
    """One format. ``sniff`` says whether a file is this format (by name and content); ``load`` reads it;
    ``fix`` returns the file's text (bytes for a binary format) with the preprocessing fields set to ``target``
    (everything else kept). ``limits``: findings the format cannot avoid (e.g. one scale for three stds), reported
    after a fix but not counted against it."""

    name = ""
    doc = ""
    limits: tuple[str, ...] = ()

    def sniff(self, path: Path, text: str) -> bool:
        raise NotImplementedError

    def load(self, path: Path, text: str) -> Declared:
        raise NotImplementedError

    def fix(self, path: Path, text: str, target: PreprocessSpec) -> str | bytes:
        raise NotImplementedError


_REGISTRY: dict[str, Importer] = {}


def register(imp: Importer) -> Importer:
    _REGISTRY[imp.name] = imp
    return imp


def names() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def get(name: str) -> Importer:
    _load_builtins()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown config format {name!r}", hint=f"formats: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


# documents, not configs: their text names every format (a README), so sniffing would "recognize" several
DOCUMENTS = {".md": "a markdown document", ".markdown": "a markdown document", ".rst": "a reStructuredText document",
             ".html": "an HTML page", ".htm": "an HTML page", ".pdf": "a PDF document", ".ipynb": "a notebook"}


def detect(path: Path, text: str) -> Importer:
    """The one format that both recognizes the file and reads it. A hint to name ``--format`` only lists formats
    that read the file, so following it works."""
    _load_builtins()
    if path.suffix.lower() in DOCUMENTS:
        raise ConfigError(f"{path.name} is {DOCUMENTS[path.suffix.lower()]}, not a deployment config",
                          hint=f"give the toolchain's config file; formats read: {', '.join(names())}")
    hits = [imp for imp in _REGISTRY.values() if imp.sniff(path, text)]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise ConfigError(f"{path.name}: no known format recognized",
                          hint=f"formats read: {', '.join(names())}; if it is one of them, name it with --format")
    readers, why = _readers(hits, path, text)
    if len(readers) == 1:
        return readers[0]
    if readers:
        raise ConfigError(f"{path.name}: several formats recognized ({', '.join(i.name for i in hits)})",
                          hint=f"name it with --format: {' or '.join(i.name for i in readers)} can read it")
    raise ConfigError(f"{path.name} looks like {' or '.join(i.name for i in hits)} but none of them reads it: "
                      + "; ".join(why))


def _readers(candidates: list[Importer], path: Path, text: str) -> tuple[list[Importer], list[str]]:
    """The candidates that load the file without a ConfigError, and each other one's error."""
    ok, why = [], []
    for imp in candidates:
        try:
            imp.load(path, text)
        except ConfigError as e:
            why.append(f"{imp.name}: {e}")
            continue
        ok.append(imp)
    return ok, why


def read(path: Path, fmt: str | None = None) -> tuple[Importer, Declared, str]:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}", hint="give the path of the deployment config") from None
    text = data.decode("utf-8", errors="replace") if path.suffix != ".tflite" else ""
    imp = get(fmt) if fmt else detect(path, text)
    return imp, named(path, lambda: imp.load(path, text)), text


T = TypeVar("T")


def named(path: Path, fn: Callable[[], T]) -> T:
    """``fn()``, its ConfigError naming the file when the importer did not (a field's value, a spec)."""
    try:
        return fn()
    except ConfigError as e:
        if path.name in str(e):
            raise
        raise ConfigError(f"{path.name}: {e}", hint=e.hint) from None


def _load_builtins() -> None:
    from . import deepstream, horizon, mmdeploy, openvino, paddle, rknn, tflite_meta, vastai  # noqa: F401 (registers)


# ------------------------------------------------------------------ helpers shared by the importers
_NUM = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def numbers(value: Any, what: str, n: int | None = 3) -> tuple[float, ...]:
    """``[1, 2, 3]``, ``"1 2 3"``, ``"1,2,3"``, ``"data[1,2,3]"``, ``"(1, 2, 3)"`` or one number -> finite floats;
    one value is broadcast to ``n``. Anything else is a ConfigError naming ``what`` and the value."""
    try:
        if isinstance(value, bool):
            raise TypeError
        if isinstance(value, (int, float)):
            vals: tuple[float, ...] = (float(value),)
        elif isinstance(value, (list, tuple)):
            vals = tuple(as_float(v, what) for v in value)
        elif isinstance(value, str):
            vals = tuple(float(m) for m in _NUM.findall(value.split("[", 1)[-1] if "[" in value else value))
        else:
            raise TypeError
    except (TypeError, ValueError):
        raise bad(what, value, "numbers") from None
    if not vals or not all(math.isfinite(v) for v in vals):
        raise bad(what, value, "finite numbers")
    if n and len(vals) == 1:
        vals = vals * n
    if n and len(vals) != n:
        raise ConfigError(f"{what}: expected {n} values, got {len(vals)} ({value!r})")
    return vals


def bad(what: str, value: Any, expected: str) -> ConfigError:
    """The one-line refusal of a field's value: the field, the value as written, what it should be."""
    return ConfigError(f"{what} = {value!r}: expected {expected}")


def as_float(value: Any, what: str) -> float:
    """A finite number, written as a number or a string of one (``"0.0078"``, not ``"1/127.5"``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise bad(what, value, "a number")
    try:
        v = float(value)
    except ValueError:
        raise bad(what, value, "a number (a decimal, not an expression)") from None
    if not math.isfinite(v):
        raise bad(what, value, "a finite number")
    return v


def as_int(value: Any, what: str) -> int:
    """A whole number, written as a number or a string of one."""
    v = as_float(value, what)
    if v != int(v):
        raise bad(what, value, "a whole number")
    return int(v)


def as_map(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad(what, value, "a mapping of named fields")
    return value


def as_list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise bad(what, value, "a list")
    return value


def fmt_list(vals: Iterable[float], sep: str = ",") -> str:
    return sep.join(f"{v:.6g}" for v in vals)


def load_yaml(text: str, path: Path) -> Any:
    import yaml
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path.name} is not valid YAML: {str(e).splitlines()[0]}") from None


def load_json(text: str, path: Path) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path.name} is not valid JSON: {e.msg} (line {e.lineno})") from None


def dump_yaml(doc: Any) -> str:
    import yaml
    return str(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))


def upstream_model_norm(target: PreprocessSpec) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """``target``'s normalization as 0-255 ``(mean, std)`` in the model's channel order:
    ``x = (pixel - mean) / std``."""
    return (tuple(m / target.scale for m in target.mean), tuple(s / target.scale for s in target.std))
