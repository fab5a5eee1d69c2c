"""The formats `verify` knows: one ``Format`` row each (how it is recognised, which worker runs it, what the parent can
read of it without a framework), and the one-line refusals (truncated, unknown, unsupported). Framework-free.

Adding a format = one ``register(Format(...))`` row (and its runner in ``adapters/artifacts.py`` for the worker that
hosts it). A format whose runtime is not installed here is a row with ``unsupported`` set: detected and refused with
that reason, never misread as another format.
"""
from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import frameworks
from ..errors import UsageError


class ArtifactRefused(UsageError):
    """The file cannot be verified: truncated, unknown, of an unsupported format or for another task (exit 2)."""


@dataclass(frozen=True)
class Format:
    name: str                          # onnx | tflite | ...
    title: str                         # what the user reads
    host: str                          # the worker that runs it: a framework adapter or `deploy`; "" = none
    sniff: Callable[[Path, bytes], bool]
    companions: Callable[[Path], list[Path]] = field(default=lambda p: [])
    inspect: Callable[[Path], dict[str, Any]] | None = None   # parent-side reading (framework-free), raises on damage
    unsupported: str = ""              # why it cannot be run here ("" = it can)
    # options that make its runtime run an fp32 file at fp32 where the runtime would choose a lower precision for the
    # CPU by default (OpenVINO's INFERENCE_PRECISION_HINT f32 on a bf16 CPU); empty: the runtime cannot be told
    exact_options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    exact_how: str = ""                # those options as the user would set them


FORMATS: dict[str, Format] = {}

# hosts and the Keras format's name come from the framework table (parity.frameworks), never as literals
_TF = frameworks.tflite_host().name                    # TFLite, Keras files and SavedModels run in its worker
_TORCHSCRIPT = next(f.name for f in frameworks.FRAMEWORKS.values() if "torchscript" in f.deploy_runtimes)
_PADDLE = next(f.name for f in frameworks.FRAMEWORKS.values() if "paddle-inference" in f.deploy_runtimes)
KERAS_SUFFIX = f".{_TF}"


def register(fmt: Format) -> Format:
    FORMATS[fmt.name] = fmt
    return fmt


def _suffix(p: Path, *s: str) -> bool:
    return p.name.lower().endswith(s)


def _zip_names(p: Path) -> list[str]:
    try:
        with zipfile.ZipFile(p) as z:
            return z.namelist()
    except (zipfile.BadZipFile, OSError):
        return []


def _beside(p: Path, *suffixes: str) -> list[Path]:
    return [p.with_suffix(s) for s in suffixes]


def _torchscript(p: Path, head: bytes) -> bool:
    if not head.startswith(b"PK\x03\x04") or _suffix(p, KERAS_SUFFIX):
        return False
    names = _zip_names(p)
    return any(n.endswith(("/constants.pkl", "/bytecode.pkl")) or "/code/" in n for n in names) or (
        not names and _suffix(p, ".pt", ".ptl", ".pth"))


def _inspect_zip(p: Path) -> dict[str, Any]:
    try:
        with zipfile.ZipFile(p) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError) as e:
        raise ArtifactRefused(f"{p.name}: truncated or damaged archive ({e})",
                              hint="copy the file again; its end (the zip directory) is missing") from None
    if bad:
        raise ArtifactRefused(f"{p.name}: damaged archive member {bad}", hint="copy the file again")
    return {}


def _inspect_onnx(p: Path) -> dict[str, Any]:
    from .structure import onnx_structure
    return onnx_structure(p)


def _inspect_tflite(p: Path) -> dict[str, Any]:
    from .structure import tflite_structure
    return tflite_structure(p)


def _inspect_openvino(p: Path) -> dict[str, Any]:
    from .structure import openvino_structure
    return openvino_structure(p)


def _savedmodel(p: Path, head: bytes) -> bool:
    return p.is_dir() and (p / "saved_model.pb").is_file()


register(Format("onnx", "ONNX", "deploy", lambda p, h: _suffix(p, ".onnx"), inspect=_inspect_onnx))
register(Format("tflite", "TFLite / LiteRT", _TF, lambda p, h: h[4:8] == b"TFL3", inspect=_inspect_tflite))
register(Format("openvino", "OpenVINO IR", "deploy", lambda p, h: _suffix(p, ".xml") and b"<net" in h[:4096],
                companions=lambda p: _beside(p, ".bin"), inspect=_inspect_openvino, exact_options={"f32": True},
                exact_how="INFERENCE_PRECISION_HINT f32"))
register(Format("torchscript", "TorchScript", _TORCHSCRIPT, _torchscript, inspect=_inspect_zip))
register(Format("paddle", "Paddle inference model", _PADDLE,
                lambda p, h: _suffix(p, ".pdmodel") or (_suffix(p, ".json") and p.with_suffix(".pdiparams").exists()),
                companions=lambda p: _beside(p, ".pdiparams")))
register(Format(_TF, "Keras model (.keras / full-model .h5)", _TF,
                lambda p, h: _suffix(p, KERAS_SUFFIX) or (h.startswith(b"\x89HDF\r\n\x1a\n") and not _suffix(p, ".weights.h5")),
                inspect=lambda p: _inspect_zip(p) if _suffix(p, KERAS_SUFFIX) else {}))
register(Format("savedmodel", "TF SavedModel", _TF, _savedmodel))
def _inspect_pte(p: Path) -> dict[str, Any]:
    """A .pte's extended header (``eh00``, ExecuTorch's exir/_serialize/_program.py: program size, segment base offset
    and segment data size, little-endian) against the file's length: a truncated copy is refused here."""
    with p.open("rb") as f:
        head = f.read(64)
    if head[4:6] != b"ET":   # named .pte, but not ExecuTorch's flatbuffer (file identifier "ET.." at byte 4)
        raise ArtifactRefused(f"{p.name}: not an ExecuTorch program (no 'ET' file identifier at byte 4; first bytes "
                              f"{head[:8]!r})", hint="a .pte from ExecuTorch's to_executorch().buffer; copy it again")
    at = head.find(b"eh00")
    if at < 0 or len(head) < at + 24:
        return {}
    length = int.from_bytes(head[at + 4:at + 8], "little")
    program = int.from_bytes(head[at + 8:at + 16], "little")
    base = int.from_bytes(head[at + 16:at + 24], "little")
    segments = int.from_bytes(head[at + 24:at + 32], "little") if length > 24 else 0
    need, size = max(program, base + segments), p.stat().st_size
    if size < need:
        raise ArtifactRefused(f"{p.name}: truncated ExecuTorch program ({size} bytes; its header says {need})",
                              hint="copy the file again")
    return {}


register(Format("executorch", "ExecuTorch", frameworks.HOSTS["executorch"],
                lambda p, h: h[4:6] == b"ET" or _suffix(p, ".pte"), inspect=_inspect_pte))


def _inspect_ncnn(p: Path) -> dict[str, Any]:
    from .structure import ncnn_structure
    return ncnn_structure(p)


def _inspect_mnn(p: Path) -> dict[str, Any]:
    from .structure import mnn_structure
    return mnn_structure(p)


register(Format("ncnn", "ncnn (.param + .bin)", "deploy", lambda p, h: _suffix(p, ".param") or h.startswith(b"7767517"),
                companions=lambda p: _beside(p, ".bin"), inspect=_inspect_ncnn))
register(Format("mnn", "MNN", "deploy", lambda p, h: _suffix(p, ".mnn"), inspect=_inspect_mnn))


def detect(path: Path) -> Format:
    """The file's format, or a one-line refusal: missing, empty, unknown, unsupported, companion file missing."""
    if not path.exists():
        raise ArtifactRefused(f"ARTIFACT {path}: no such file", hint="the path of the file you ship")
    head = b""
    if path.is_file():
        if path.stat().st_size == 0:
            raise ArtifactRefused(f"{path.name}: empty file", hint="copy the file again")
        with path.open("rb") as f:
            head = f.read(8192)
    for fmt in FORMATS.values():
        if fmt.sniff(path, head):
            if fmt.unsupported:
                raise ArtifactRefused(f"{path.name}: {fmt.unsupported}")
            missing = [c for c in fmt.companions(path) if not c.exists()]
            if fmt.name == "paddle":
                missing = [c for c in missing if c.suffix == ".pdiparams"]
            if missing:
                raise ArtifactRefused(f"{path.name}: {fmt.title} without its {missing[0].name}",
                                      hint=f"keep {missing[0].name} beside {path.name}")
            return fmt
    known = ", ".join(f.title for f in FORMATS.values())
    raise ArtifactRefused(f"{path.name}: not a format verify knows (first bytes {head[:8]!r})",
                          hint=f"verify reads {known}")
