"""Plug-ins from outside the package: modules named in ``MBV2_PARITY_PLUGINS`` and ``mbv2_parity.plugins`` entry
points are imported once; each registers its runtimes (``parity.runtimes.register``) and checks
(``parity.checks.register``)."""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from . import settings
from .errors import UsageError

_loaded: set[str] = set()


def load() -> None:
    mods = settings.plugins() + [ep.value for ep in entry_points(group="mbv2_parity.plugins")]
    for mod in mods:
        if mod in _loaded:
            continue
        _loaded.add(mod)
        try:
            importlib.import_module(mod)
        except ImportError as e:
            raise UsageError(f"plug-in {mod!r} cannot be imported: {e}", hint="MBV2_PARITY_PLUGINS names modules "
                                                                            "on the Python path") from None
