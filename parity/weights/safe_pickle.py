"""Loading pickle-based weight files without running code from them. Framework-free (numpy only).

``paddle.load`` (``.pdparams``) is a plain ``pickle.load``: a crafted file runs any code it names. Here a
restricted unpickler admits only what a state dict holds -- containers, strings, numbers and numpy arrays (the
three globals numpy needs to rebuild an array) -- as ``torch.load(weights_only=True)`` does for ``.pth`` files.
Anything else is refused with the global it asked for; nothing from the file is ever called.
"""
from __future__ import annotations

import collections
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ParityError

# (module, name) a state dict may reference: numpy's array reconstruction and OrderedDict
ALLOWED = {
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "scalar"),
    ("collections", "OrderedDict"),
}


class UnsafePickle(ParityError):
    """The file asks the unpickler for something a state dict never needs: refused, nothing executed."""


class _Restricted(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED:
            if module == "collections":
                return collections.OrderedDict
            return super().find_class(module, name)
        raise UnsafePickle(f"refuses to load: the pickle asks for {module}.{name}, which a state dict never holds "
                           "(a crafted or non-weights file)",
                           hint="only plain state dicts of arrays are loaded; re-export the weights with the "
                                "framework's own save function")


def load_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """A pickled mapping of names to arrays, loaded without executing anything; non-array entries (paddle's
    ``StructuredToParameterName@@`` name table) are dropped."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            obj = _Restricted(f).load()
    except UnsafePickle as e:
        raise UnsafePickle(f"{path.name}: {e}", e.hint) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise UnsafePickle(f"{path.name}: not a pickled state dict ({type(e).__name__}: {str(e)[:120]})",
                           hint="corrupt file, or not a weight file of this framework") from None
    if not isinstance(obj, dict):
        raise UnsafePickle(f"{path.name}: holds a {type(obj).__name__}, not a state dict (name -> array)")
    out = {str(k): v for k, v in obj.items() if isinstance(v, np.ndarray)}
    if not out:
        raise UnsafePickle(f"{path.name}: a mapping with no arrays: not a weight file")
    return out
