"""The model registry: model cards read from ``fixtures/registry.toml``.

Like timm's ``pretrained_cfg``, one card per weight tag carries everything about it: how to build it,
where its weights live and how they are pinned, its preprocessing spec and the numbers upstream
published for it (with citations). Nothing else in the project lists models.
"""
from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from . import frameworks
from .errors import ParityError
from .kit import build_digest
from .paths import REGISTRY_FILE
from .spec import PreprocessSpec


class RegistryError(ParityError):
    """The registry file is unreadable or a card is malformed."""


class UnknownModel(ParityError):
    """An id or pattern that is not in the registry; the message lists close matches."""


ROUNDINGS = ("nearest", "down")


@dataclass(frozen=True)
class Published:
    metric: str          # top1 | top5 | params | flops | file_size
    digits: str          # exactly as published
    unit: str            # % | M | count | MFLOPs | GFLOPS | G | MB ...
    source: str          # key into [sources]
    citation: str
    convention: str = ""  # counting convention that reproduces it (FLOPs/params), see parity/flops.py
    note: str = ""
    rounded_to: int | None = None  # decimals the source really rounded to when it pads ("0.050" = 0.05)
    tolerance_rel: float = 0.0     # > 0 only where no convention reproduces the number exactly (note says why)
    rounding: str = "nearest"      # how the source rounded: nearest | down (truncated, as TF-slim's MACs column)

    def __post_init__(self) -> None:
        if self.rounding not in ROUNDINGS:
            raise RegistryError(f"published {self.metric} {self.digits}: rounding {self.rounding!r} not one of "
                                f"{', '.join(ROUNDINGS)}")

    @property
    def value(self) -> float:
        return float(self.digits)

    @property
    def decimals(self) -> int:
        """Decimals a reproduced number is rounded to: as printed upstream, or ``rounded_to`` where the source
        demonstrably rounds coarser and pads (every cell of the column ends in 0)."""
        if self.rounded_to is not None:
            return self.rounded_to
        exp = Decimal(self.digits).as_tuple().exponent
        return max(0, -int(exp))


@dataclass(frozen=True)
class WeightsRef:
    url: str
    hash_prefix: str = ""
    sha256: str = ""
    file_size_mb: float | None = None
    format: str = "torch-pickle"
    cache: str = "mbv2-parity"
    hf_hub_id: str = ""
    hf_filename: str = ""
    hf_revision: str = ""
    unpinned: str = ""  # why neither sha256 nor hash_prefix is recorded (upstream publishes none)

    @property
    def filename(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Card:
    id: str
    framework: str
    arch: str
    tag: str
    upstream_id: str
    build: dict[str, Any]
    weights: WeightsRef
    preprocess: PreprocessSpec
    published: tuple[Published, ...] = ()
    unpublished: str = ""  # why no accuracy is published for this card
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    base_id: str = ""      # the registry card a variant was made from

    def published_for(self, metric: str, source: str | None = None) -> list[Published]:
        return [p for p in self.published if p.metric == metric and (source is None or p.source == source)]

    @property
    def padding(self) -> str:
        """The padding this card builds with: ``build.padding``, else its framework's native one."""
        return str(self.build.get("padding") or frameworks.get(self.framework).native_padding)

    @property
    def faults(self) -> tuple[str, ...]:
        return tuple(self.build.get("faults", ()))

    @property
    def build_digest(self) -> str:
        """Identity of what is built (id alone is not: a variant can pin the padding the card leaves open)."""
        return build_digest(self.build)

    def variant(self, padding: str | None = None, faults: Iterable[str] = (), **build: Any) -> Card:
        """The card built another way, under its own id: another padding (always pinned explicitly, so weights
        whose metadata names a padding do not override it), injected faults (``parity.faults``), other build
        arguments."""
        new = {**self.build, **build}
        suffix = [f"{k}={v}" for k, v in sorted(build.items())]
        if padding:
            new["padding"] = padding
            if padding != frameworks.get(self.framework).native_padding:
                suffix.append(padding)
        faults = tuple(faults)
        if faults:
            new["faults"] = [*self.faults, *faults]
            suffix += [f.replace(":", "") for f in faults]
        if new == self.build:
            return self
        return dataclasses.replace(self, id=self.id + "".join("+" + s for s in suffix), build=new,
                                   base_id=self.base_id or self.id)

    def to_request(self) -> dict[str, Any]:
        """The JSON-able card sent to a worker process (id and build as on this object, so a variant reaches the
        worker as such)."""
        return {**self.raw, "id": self.id, "build": dict(self.build), "build_digest": self.build_digest,
                "base_id": self.base_id or self.id}


@dataclass(frozen=True)
class Unlisted:
    """A checkpoint an ecosystem's code would try to download but no published table lists (``[[unlisted]]``)."""
    id: str              # the id a card for it would have (refused by ``Registry.get`` with ``why``)
    framework: str
    upstream_id: str
    build: dict[str, Any]
    would_download: str
    source: str
    why: str


def _unlisted(entries: list[dict[str, Any]], sources: dict[str, Any]) -> tuple[Unlisted, ...]:
    out = []
    for e in entries:
        try:
            u = Unlisted(**e)
        except TypeError as err:
            raise RegistryError(f"[[unlisted]] {e.get('upstream_id', '?')}: {err}") from None
        if u.framework not in frameworks.FRAMEWORKS or u.source not in sources:
            raise RegistryError(f"[[unlisted]] {u.upstream_id}: framework {u.framework!r} / source {u.source!r} unknown")
        out.append(u)
    return tuple(out)


@dataclass(frozen=True)
class PreprocessRecord:
    """How an ecosystem's preprocessing function mapped pixels in some versions (``[[preprocess_history]]``)."""
    framework: str
    holds_for: str
    function: str
    scale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str
    citation: str

    def matches(self, spec: dict[str, Any]) -> bool:
        """Whether a spec (as a golden fingerprint stores it) normalizes like this record."""
        try:
            return (abs(float(spec["scale"]) - self.scale) < 1e-12
                    and all(abs(float(a) - b) < 1e-9 for a, b in zip(spec["mean"], self.mean, strict=True))
                    and all(abs(float(a) - b) < 1e-9 for a, b in zip(spec["std"], self.std, strict=True)))
        except (KeyError, TypeError, ValueError):
            return False


@dataclass(frozen=True)
class HubEntry:
    """A torch.hub entry point that reaches a card (``[[hub]]``): ``hub:REPO:REF/ENTRY`` selects that card."""
    repo: str
    ref: str
    entry: str
    kwargs: str
    card: str
    resolves_to: str
    how: str
    source: str
    citation: str

    @property
    def id(self) -> str:
        return f"hub:{self.repo}:{self.ref}/{self.entry}"


def _checked_deployed_weights(d: dict[str, Any]) -> dict[str, Any]:
    """``deployed_weights.<runtime>``: a published file of another precision (a weights entry each), read by that
    deploy runtime in pretrained mode; checked here so a typo is a registry error, not a traceback in a run."""
    for runtime, entry in (d.get("deployed_weights") or {}).items():
        if not isinstance(entry, dict):
            raise RegistryError(f"card {d.get('id', '?')}: deployed_weights.{runtime} is not a table")
        WeightsRef(**entry)   # TypeError on an unknown or missing field: reported by the caller as a RegistryError
    return d


def _card_from_dict(d: dict[str, Any]) -> Card:
    try:
        card_id = d["id"]
        framework = d["framework"]
        if framework not in frameworks.FRAMEWORKS:
            raise RegistryError(f"card {card_id}: framework {framework!r} not one of {frameworks.names()}")
        expected = f"{framework}/{d['arch']}.{d['tag']}"
        if card_id != expected:
            raise RegistryError(f"card id {card_id!r} must be {expected!r} (framework/arch.tag)")
        return Card(
            id=card_id,
            framework=framework,
            arch=d["arch"],
            tag=d["tag"],
            upstream_id=d["upstream_id"],
            build=dict(d.get("build", {})),
            weights=WeightsRef(**d["weights"]),
            preprocess=PreprocessSpec.from_dict(d["preprocess"]),
            published=tuple(Published(**p) for p in d.get("published", [])),
            unpublished=d.get("unpublished", ""),
            raw=_checked_deployed_weights(d),
        )
    except KeyError as e:
        raise RegistryError(f"card {d.get('id', '?')}: missing field {e}") from None
    except TypeError as e:
        raise RegistryError(f"card {d.get('id', '?')}: {e}") from None


class Registry:
    def __init__(self, cards: Iterable[Card], sources: dict[str, dict[str, Any]] | None = None,
                 path: Path | None = None, sections: dict[str, Any] | None = None):
        self.cards: list[Card] = list(cards)
        self.sources = sources or {}
        self.path = path
        self.sections = sections or {}   # other top-level tables (e.g. [preprocess_matrix])
        ids = [c.id for c in self.cards]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise RegistryError(f"duplicate card ids: {sorted(dup)}")
        for c in self.cards:
            for p in c.published:
                if p.source not in self.sources:
                    raise RegistryError(f"card {c.id}: published source {p.source!r} not in [sources]")
        self._by_id = {c.id: c for c in self.cards}
        self.unlisted = _unlisted(self.sections.get("unlisted", []), self.sources)
        clash = [u.id for u in self.unlisted if u.id in self._by_id]
        if clash:
            raise RegistryError(f"[[unlisted]] {clash[0]} is also a card: a checkpoint is one or the other")
        try:
            self.preprocess_history = tuple(PreprocessRecord(**{**e, "mean": tuple(e["mean"]), "std": tuple(e["std"])})
                                            for e in self.sections.get("preprocess_history", []))
        except (TypeError, KeyError) as err:
            raise RegistryError(f"[[preprocess_history]]: {err}") from None
        for rec in self.preprocess_history:
            if rec.source not in self.sources:
                raise RegistryError(f"[[preprocess_history]] {rec.holds_for[:40]}: source {rec.source!r} not in [sources]")

        try:
            self.hub = tuple(HubEntry(**e) for e in self.sections.get("hub", []))
        except TypeError as err:
            raise RegistryError(f"[[hub]]: {err}") from None
        for e in self.hub:
            if e.card not in self._by_id or e.source not in self.sources:
                raise RegistryError(f"[[hub]] {e.id}: card {e.card!r} or source {e.source!r} unknown")
            if e.resolves_to != self._by_id[e.card].weights.url:
                raise RegistryError(f"[[hub]] {e.id} resolves to {e.resolves_to}, but card {e.card} downloads "
                                    f"{self._by_id[e.card].weights.url}: not the same weights")

    def history_of(self, framework: str, spec: dict[str, Any]) -> list[PreprocessRecord]:
        """The recorded versions of ``framework``'s preprocessing that ``spec`` normalizes like."""
        return [r for r in self.preprocess_history if r.framework == framework and r.matches(spec)]

    @classmethod
    def load(cls, path: Path | str = REGISTRY_FILE) -> Registry:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise RegistryError(f"registry file not found: {path}",
                                hint="a broken install: reinstall mbv2-parity (the registry ships in parity.fixtures)") from None
        except tomllib.TOMLDecodeError as e:
            raise RegistryError(f"registry {path} is not valid TOML: {e}") from None
        sections = {k: v for k, v in data.items() if k not in ("cards", "sources", "schema")}
        return cls((_card_from_dict(c) for c in data.get("cards", [])), data.get("sources", {}), path, sections)

    def __iter__(self) -> Iterator[Card]:
        return iter(self.cards)

    def __len__(self) -> int:
        return len(self.cards)

    def get(self, card_id: str) -> Card:
        if card_id.startswith("hub:"):
            hit = next((e for e in self.hub if e.id == card_id), None)
            if hit is None:
                raise UnknownModel(f"unknown hub entry {card_id!r}",
                                   hint="known: " + (", ".join(e.id for e in self.hub) or "none"))
            return self._by_id[hit.card]
        try:
            return self._by_id[card_id]
        except KeyError:
            unl = next((u for u in self.unlisted if u.id == card_id), None)
            if unl is not None:
                raise UnknownModel(f"{card_id} is not a card: {unl.why}",
                                   hint=f"{unl.upstream_id} would download {unl.would_download}") from None
            close = difflib.get_close_matches(card_id, list(self._by_id), n=3, cutoff=0.4)
            if not close:  # try matching the part after the framework prefix
                tails = {c.id.split("/", 1)[1]: c.id for c in self.cards}
                close = [tails[t] for t in difflib.get_close_matches(card_id, list(tails), n=3, cutoff=0.4)]
            hint = f"; did you mean: {', '.join(close)}" if close else ""
            raise UnknownModel(f"unknown model {card_id!r}{hint}", hint="run `mbv2-parity list`") from None

    def reference(self, framework: str) -> Card:
        """The card that represents ``framework`` in the cross matrix and transplants (framework table)."""
        return self.get(frameworks.get(framework).reference_card)

    def select(self, patterns: Iterable[str] | None = None) -> list[Card]:
        """Cards matching ids, framework names or shell globs (``timm/*``); all cards when empty."""
        patterns = list(patterns or [])
        if not patterns:
            return list(self.cards)
        out: list[Card] = []
        for pat in patterns:
            if pat in frameworks.FRAMEWORKS:
                hits = [c for c in self.cards if c.framework == pat]
            elif any(ch in pat for ch in "*?["):
                hits = [c for c in self.cards if fnmatch.fnmatch(c.id, pat)]
            else:
                hits = [self.get(pat)]
            if not hits:
                raise UnknownModel(f"pattern {pat!r} matches no model", hint="run `mbv2-parity list`")
            out.extend(h for h in hits if h not in out)
        return out


@lru_cache(maxsize=4)
def load_registry(path: str | None = None) -> Registry:
    return Registry.load(path or REGISTRY_FILE)
