"""Published numbers of deployed MobileNetV2s (``[[deployed]]`` in the registry): a runtime, a precision, a metric and
the digits as printed, with the source and citation. They are facts to cite beside the suite's own deployed table
(`eval`), never a verdict on another model: most of them measured weights that are not one of the cards."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from ..registry import Registry, RegistryError

FIELDS = ("model", "runtime", "precision", "metric", "digits", "source", "citation")


@dataclass(frozen=True)
class DeployedCell:
    model: str
    runtime: str
    precision: str
    metric: str
    digits: str
    source: str
    citation: str

    @property
    def value(self) -> float:
        return float(Decimal(self.digits))


def deployed_cells(reg: Registry) -> list[DeployedCell]:
    out = []
    for i, d in enumerate(reg.sections.get("deployed", [])):
        missing = [f for f in FIELDS if not str(d.get(f, "")).strip()]
        if missing:
            raise RegistryError(f"[[deployed]] #{i + 1}: missing {', '.join(missing)}")
        extra = sorted(set(d) - set(FIELDS))
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
        out.append(DeployedCell(**{f: str(d[f]) for f in FIELDS}))
    return out


def table_rows(reg: Registry) -> list[dict[str, Any]]:
    return [{**vars(c), "where": reg.sources[c.source].get("where", "")} for c in deployed_cells(reg)]
