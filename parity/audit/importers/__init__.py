"""Importers: one module per deployment-config format, each turning a file into what it declares about the
preprocessing (``Declared``: spec fields on the config's own scale, the assumptions made, the fields it did not
understand, the calibration preprocessing when the format declares it apart) and writing a corrected file in the same
format (``fix``). A plug-in registers more with ``register`` (like runtimes and checks, ``parity.plugins``)."""
from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
        return _merge(upstream, self.fields, self.colour_named)

    def calibration_spec(self, upstream: PreprocessSpec) -> PreprocessSpec | None:
        return None if self.calibration is None else _merge(upstream, self.calibration, self.colour_named)

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


def detect(path: Path, text: str) -> Importer:
    _load_builtins()
    hits = [imp for imp in _REGISTRY.values() if imp.sniff(path, text)]
    if len(hits) != 1:
        what = "no known format" if not hits else f"several formats ({', '.join(i.name for i in hits)})"
        raise ConfigError(f"{path.name}: {what} recognized", hint=f"name it with --format ({', '.join(names())})")
    return hits[0]


def read(path: Path, fmt: str | None = None) -> tuple[Importer, Declared, str]:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}", hint="give the path of the deployment config") from None
    text = data.decode("utf-8", errors="replace") if path.suffix != ".tflite" else ""
    imp = get(fmt) if fmt else detect(path, text)
    return imp, imp.load(path, text), text


def _load_builtins() -> None:
    from . import deepstream, horizon, mmdeploy, openvino, paddle, rknn, tflite_meta, vastai  # noqa: F401 (registers)


# ------------------------------------------------------------------ helpers shared by the importers
_NUM = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def numbers(value: Any, what: str, n: int | None = 3) -> tuple[float, ...]:
    """``[1, 2, 3]``, ``"1 2 3"``, ``"1,2,3"``, ``"data[1,2,3]"``, ``"(1, 2, 3)"`` or one number -> floats;
    one value is broadcast to ``n``."""
    if isinstance(value, (int, float)):
        vals: tuple[float, ...] = (float(value),)
    elif isinstance(value, (list, tuple)):
        vals = tuple(float(v) for v in value)
    elif isinstance(value, str):
        vals = tuple(float(m) for m in _NUM.findall(value.split("[", 1)[-1] if "[" in value else value))
    else:
        raise ConfigError(f"{what}: expected numbers, got {value!r}")
    if n and len(vals) == 1:
        vals = vals * n
    if n and len(vals) != n:
        raise ConfigError(f"{what}: expected {n} values, got {len(vals)} ({value!r})")
    return vals


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
