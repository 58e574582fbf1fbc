"""Label protocols as data (configs/protocols.yaml): which emotions become which classes, per dataset.

The protocol is the one place that decides labels; adapters only report the emotion as written.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from hsta_bench import config
from hsta_bench.errors import UserError


def fold_emotion(text: str | None) -> str | None:
    return " ".join(text.split()).casefold() if text is not None else None


@dataclass(frozen=True)
class Protocol:
    name: str
    description: str
    classes: tuple[str, ...]
    map: dict[str, dict[str | None, str]]  # adapter -> folded emotion -> class (a YAML null key folds to None)
    exclude: frozenset[str]

    @property
    def adapters(self) -> tuple[str, ...]:
        return tuple(self.map)

    def label(self, adapter: str, emotion: str | None, sample_id: str) -> str | None:
        if sample_id in self.exclude:
            return None
        return self.map.get(adapter, {}).get(fold_emotion(emotion))


@functools.cache
def _load() -> dict[str, Protocol]:
    raw = config.shipped()["protocols"]
    out = {}
    for name, spec in raw.items():
        classes = tuple(spec["classes"])
        mapping = {
            adapter: {fold_emotion(k): v for k, v in emotions.items()} for adapter, emotions in spec["map"].items()
        }
        for adapter, emotions in mapping.items():
            stray = sorted(set(emotions.values()) - set(classes))
            if stray:
                raise UserError(f"configs/protocols.yaml: {name}.map.{adapter} maps to unknown class(es) {stray}")
        out[name] = Protocol(name, spec.get("description", ""), classes, mapping, frozenset(spec.get("exclude") or ()))
    return out


def names() -> list[str]:
    return list(_load())


def get(name: str) -> Protocol:
    protocols = _load()
    if name not in protocols:
        raise UserError(f"unknown protocol '{name}' (known: {', '.join(protocols)})")
    return protocols[name]
