"""Files another process or thread may read while they are written (decode cache, calibration tensors, probe images,
results): written under a temporary name in the same directory and renamed into place (``os.replace``, atomic on one
filesystem), so a reader sees the whole file or none. Framework-free."""
from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` (same suffix, so writers that pick a format by it still do); renamed to
    ``path`` when the block ends without an exception, removed otherwise."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{os.getpid()}-{threading.get_ident()}-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> Path:
    with atomic(path) as tmp:
        tmp.write_text(text)
    return Path(path)
