"""Published numbers of deployed MobileNetV2s (``[[deployed]]`` in the registry): a runtime, a precision, a metric and
the digits as printed, with the source and citation. They are facts to cite beside the suite's own deployed table
(`eval`), never a verdict on another model: most of them measured weights that are not one of the cards."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from ..registry import Registry, RegistryError

FIELDS = ("model", "runtime", "precision", "metric", "digits", "source", "citation")
OPTIONAL = ("sha256",)      # of the measured file, where its bytes are known: `verify` matches a file by it


@dataclass(frozen=True)
class DeployedCell:
    model: str
    runtime: str
    precision: str
    metric: str
    digits: str
    source: str
    citation: str
    sha256: str = ""

    @property
    def value(self) -> float:
        return float(Decimal(self.digits))


def deployed_cells(reg: Registry) -> list[DeployedCell]:
    out = []
    for i, d in enumerate(reg.sections.get("deployed", [])):
        missing = [f for f in FIELDS if not str(d.get(f, "")).strip()]
        if missing:
            raise RegistryError(f"[[deployed]] #{i + 1}: missing {', '.join(missing)}")
        extra = sorted(set(d) - set(FIELDS) - set(OPTIONAL))
        if extra:
            raise RegistryError(f"[[deployed]] #{i + 1}: unknown field(s) {', '.join(extra)}")
        if d["source"] not in reg.sources:
            raise RegistryError(f"[[deployed]] #{i + 1}: source {d['source']!r} not in [sources]")
        if d["precision"] not in ("fp32", "fp16", "bf16", "int8"):
            raise RegistryError(f"[[deployed]] #{i + 1}: precision {d['precision']!r}: fp32, fp16, bf16 or int8")
        try:
            Decimal(str(d["digits"]))
        except InvalidOperation:
            raise RegistryError(f"[[deployed]] #{i + 1}: digits {d['digits']!r} is not a number") from None
        sha = str(d.get("sha256", "")).lower()
        if sha and (len(sha) != 64 or any(ch not in "0123456789abcdef" for ch in sha)):
            raise RegistryError(f"[[deployed]] #{i + 1}: sha256 {d['sha256']!r} is not 64 hex digits")
        out.append(DeployedCell(**{f: str(d[f]) for f in FIELDS}, sha256=sha))
    return out


def cells_for_file(cells: list[DeployedCell], name: str, sha256: str) -> tuple[list[DeployedCell], str]:
    """The published numbers of one file: the rows whose ``sha256`` is the file's; else the rows without a sha256
    whose model text names the file (``name``, without its suffix), with how they matched."""
    by_hash = [c for c in cells if sha256 and c.sha256 == sha256]
    if by_hash:
        return by_hash, "sha256 of the file"
    by_name = [c for c in cells if not c.sha256 and name and name in c.model]
    return by_name, ("file name only (the registry gives no sha256 for this row: the bytes are not checked)"
                     if by_name else "")


def table_rows(reg: Registry) -> list[dict[str, Any]]:
    return [{**vars(c), "where": reg.sources[c.source].get("where", "")} for c in deployed_cells(reg)]
