"""TFLite model metadata: the ``NormalizationOptions`` a ``.tflite`` file carries for its image input.

Source (format learned from, re-stated): tensorflow/tflite-support ``tensorflow_lite_support/metadata/
metadata_schema.fbs`` (``ModelMetadata`` -> ``subgraph_metadata`` -> ``input_tensor_metadata`` ->
``process_units`` -> ``ProcessUnitOptions`` union member 1 ``NormalizationOptions {mean:[float]; std:[float]}``;
``content`` -> ``ImageProperties.color_space`` (1 = RGB, 2 = GRAYSCALE)); the metadata is a flatbuffer with file
identifier ``M001`` stored in the model buffer named by the model's ``metadata`` entry ``TFLITE_METADATA``
(TFLite schema). Read with the ``flatbuffers`` runtime's generic ``Table`` accessors (no TensorFlow, no
tflite_support). Both real files in ../shared/realdata/tflite carry it (mean 127.5, std 127.5, RGB).

Semantics: ``x = (pixel - mean) / std`` on 0-255 pixels, one value broadcast to all channels; the input tensor's
shape gives the size and NHWC layout. Not declared: the resize (the application's; taken from upstream).
``fix`` rewrites the mean/std floats in place (same vector lengths), so the file stays a valid model; a
per-channel value where the file holds one is refused (rebuild the metadata with tflite_support's writers).
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from ...spec import PreprocessSpec
from . import ConfigError, Declared, Importer, register, upstream_model_norm

NORMALIZATION_OPTIONS = 1      # ProcessUnitOptions union index
IMAGE_PROPERTIES = 2           # ContentProperties union index
COLOR_SPACES = {0: "UNKNOWN", 1: "RGB", 2: "GRAYSCALE"}


class _Meta:
    """Generic flatbuffer walking over the metadata buffer."""

    def __init__(self, data: bytes):
        import flatbuffers
        from flatbuffers.table import Table
        self.fb, self.Table, self.data = flatbuffers, Table, data
        self.root = Table(data, flatbuffers.encode.Get(flatbuffers.packer.uoffset, data, 0))

    def _off(self, t: Any, i: int) -> int:
        return int(t.Offset(4 + 2 * i))

    def sub(self, t: Any, i: int) -> Any:
        o = self._off(t, i)
        return self.Table(t.Bytes, t.Indirect(o + t.Pos)) if o else None

    def tables(self, t: Any, i: int) -> list[Any]:
        o = self._off(t, i)
        if not o:
            return []
        start = t.Vector(o)
        return [self.Table(t.Bytes, t.Indirect(start + 4 * k)) for k in range(t.VectorLen(o))]

    def u8(self, t: Any, i: int) -> int:
        o = self._off(t, i)
        return int(t.Get(self.fb.number_types.Uint8Flags, o + t.Pos)) if o else 0

    def float_positions(self, t: Any, i: int) -> list[int]:
        o = self._off(t, i)
        if not o:
            return []
        start = t.Vector(o)
        return [start + 4 * k for k in range(t.VectorLen(o))]

    def float_at(self, pos: int) -> float:
        return float(struct.unpack_from("<f", self.data, pos)[0])


def _metadata(raw: bytes, path: Path) -> tuple[bytes, int, Any]:
    """(metadata flatbuffer, its offset in the file, the tflite Model)."""
    import tflite
    try:
        model = tflite.Model.GetRootAsModel(raw, 0)
        for i in range(model.MetadataLength()):
            md = model.Metadata(i)
            if md.Name() == b"TFLITE_METADATA":
                data = model.Buffers(md.Buffer()).DataAsNumpy().tobytes()
                return data, raw.find(data), model
    except Exception as e:  # noqa: BLE001 - a corrupt flatbuffer raises anything: a user's bad file
        raise ConfigError(f"{path.name}: not a readable .tflite model ({type(e).__name__})") from None
    raise ConfigError(f"{path.name}: the model carries no TFLITE_METADATA",
                      hint="add it with tflite_support's metadata writers, or audit the deployment config instead")


def _units(raw: bytes, path: Path) -> tuple[_Meta, int, list[int], list[int], int, tuple[int, ...]]:
    data, offset, model = _metadata(raw, path)
    if data[4:8] != b"M001":
        raise ConfigError(f"{path.name}: TFLITE_METADATA has identifier {data[4:8]!r}, expected M001")
    meta = _Meta(data)
    mean_pos: list[int] = []
    std_pos: list[int] = []
    colour = 0
    sgs = meta.tables(meta.root, 3)
    inputs = meta.tables(sgs[0], 2) if sgs else []
    if inputs:
        for pu in meta.tables(inputs[0], 4):
            if meta.u8(pu, 0) == NORMALIZATION_OPTIONS:
                opt = meta.sub(pu, 1)
                mean_pos, std_pos = meta.float_positions(opt, 0), meta.float_positions(opt, 1)
        content = meta.sub(inputs[0], 3)
        if content is not None and meta.u8(content, 0) == IMAGE_PROPERTIES:
            props = meta.sub(content, 1)
            colour = meta.u8(props, 0) if props is not None else 0
    sub = model.Subgraphs(0)
    shape = tuple(int(v) for v in sub.Tensors(sub.Inputs(0)).ShapeAsNumpy())
    return meta, offset, mean_pos, std_pos, colour, shape


class TfliteMetadata(Importer):
    name = "tflite-metadata"
    doc = "TFLite model metadata: NormalizationOptions (mean/std) and ImageProperties of the input"

    def sniff(self, path: Path, text: str) -> bool:
        return path.suffix == ".tflite"

    def load(self, path: Path, text: str) -> Declared:
        raw = path.read_bytes()
        meta, _, mean_pos, std_pos, colour, shape = _units(raw, path)
        d = Declared(self.name, str(path), {})
        if not mean_pos:
            raise ConfigError(f"{path.name}: the input's metadata has no NormalizationOptions",
                              hint="the normalization is not declared in this file")
        mean = tuple(meta.float_at(p) for p in mean_pos)
        std = tuple(meta.float_at(p) for p in std_pos)
        if len(mean) == 1:
            d.notes.append("one mean/std in NormalizationOptions: broadcast to the three channels")
        d.fields.update(scale=1.0, mean=mean * 3 if len(mean) == 1 else mean, std=std * 3 if len(std) == 1 else std)
        if COLOR_SPACES.get(colour) == "RGB":
            d.fields["channel_order"] = "RGB"
        else:
            d.unknown.append(f"ImageProperties.color_space: {COLOR_SPACES.get(colour, colour)}")
        if len(shape) == 4:
            d.fields.update(crop_size=shape[1], layout="NHWC")
        d.notes.append("mean/std applied to 0-255 pixels (for a quantized input they describe what its "
                       "quantization stands for); the resize is the application's: taken from upstream")
        return d

    def fix(self, path: Path, text: str, target: PreprocessSpec) -> bytes:
        raw = bytearray(path.read_bytes())
        _, offset, mean_pos, std_pos, _, _ = _units(bytes(raw), path)
        mean, std = upstream_model_norm(target)
        if target.channel_order != "RGB":
            raise ConfigError("TFLite ImageProperties here say RGB: a BGR upstream cannot be written in place")
        for positions, values, what in ((mean_pos, mean, "mean"), (std_pos, std, "std")):
            if len(positions) == 1 and len(set(values)) != 1:
                raise ConfigError(f"the file holds one {what} value; upstream has three ({values})",
                                  hint="rebuild the metadata with tflite_support's MetadataWriter")
            for k, p in enumerate(positions):
                struct.pack_into("<f", raw, offset + p, values[k if len(positions) == 3 else 0])
        return bytes(raw)


register(TfliteMetadata())
