"""Is a weight file what its framework can load? Read in the parent, before any worker starts, without running
anything from the file. Framework-free (the standard library and the restricted unpickler).

* ``torch-pickle``: ``torch.save``'s zip archive (a ``*/data.pkl`` whose opcodes parse) or the legacy format (a
  pickle of torch's magic number first).
* ``paddle-pickle``: a pickled state dict of arrays, loaded with the same restricted unpickler the ppcls worker uses.
* ``keras-h5``: the HDF5 signature (at offset 0, or after a user block of 512, 1024, 2048, ... bytes).

A file that fails is bad input (exit 2), named once with what it is not, not an adapter error after a worker
started and built the model.
"""
from __future__ import annotations

import io
import pickletools
import zipfile
from pathlib import Path
from typing import IO

from .. import frameworks
from .safe_pickle import UnsafePickle, load_state_dict

TORCH_MAGIC = 0x1950A86A20F9469CFC6C   # torch.serialization.MAGIC_NUMBER: the first pickle of a legacy torch file
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _pickle_parses(stream: IO[bytes]) -> list[tuple[str, object]]:
    """The opcodes of the first pickle in ``stream`` (names and arguments), up to its STOP; ValueError if it does not
    parse. Nothing is executed (``pickletools`` only reads)."""
    ops = []
    for op, arg, _pos in pickletools.genops(stream):
        ops.append((op.name, arg))
    if not ops or ops[-1][0] != "STOP":
        raise ValueError("no STOP opcode")
    return ops


def _torch(path: Path) -> str:
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                pkl = next((n for n in z.namelist() if n == "data.pkl" or n.endswith("/data.pkl")), None)
                if pkl is None:
                    return "a zip archive without data.pkl, not a torch.save checkpoint"
                _pickle_parses(io.BytesIO(z.read(pkl)))
        except (zipfile.BadZipFile, ValueError, EOFError, OSError) as e:
            return f"a damaged torch.save archive ({type(e).__name__}: {str(e)[:80]})"
        return ""
    with open(path, "rb") as f:
        try:
            ops = _pickle_parses(f)
        except (ValueError, EOFError, OSError):
            return "neither a torch.save zip archive nor a pickle"
    if [a for n, a in ops if n not in ("PROTO", "STOP", "FRAME")] != [TORCH_MAGIC]:
        return "a pickle that does not start with torch's magic number: not a torch.save checkpoint"
    return ""


def _paddle(path: Path) -> str:
    try:
        load_state_dict(path)
    except UnsafePickle as e:
        return str(e).removeprefix(f"{path.name}: ")
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    return ""


def _hdf5(path: Path) -> str:
    size = path.stat().st_size
    with open(path, "rb") as f:
        offset = 0
        while offset + len(HDF5_SIGNATURE) <= size:
            f.seek(offset)
            if f.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
                return ""
            offset = 512 if offset == 0 else offset * 2
    return "no HDF5 signature: not a keras .h5 / .weights.h5 file"


_BY_CONTAINER = {"torch-zip-or-legacy-pickle": _torch, "pickle": _paddle, "hdf5": _hdf5}
CHECKS = {fmt: _BY_CONTAINER[container] for fmt, container in frameworks.WEIGHT_CONTAINERS.items()}


def problem(path: str | Path, weight_format: str) -> str:
    """Why ``path`` is not a ``weight_format`` file ('' when it looks like one)."""
    check = CHECKS.get(weight_format)
    return check(Path(path)) if check else ""
