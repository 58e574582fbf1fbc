"""What a leaderboard row's recipe column says: what the model's recipe is (its file's `origin`: the
release's only where it is) and what the row ran differently from that recipe as it stands today, read from the
row's resolved settings in the store (engine/provenance.py), epochs included.

A row at today's recipe is ranked; one that differs (a budget, an ablation, an earlier recipe) is shown in a
table of its own (tables.py), with its differences in this column.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from hsta_bench.engine import provenance


@dataclass(frozen=True)
class Described:
    label: str  # what the recipe is: "the release's", "ours, a CPU budget", "released weights", ...
    differences: tuple[str, ...] | None  # from today's recipe; None: the row's settings are not in the store
    seed: int | None = None  # the training seed (train.seed) the row ran, where its settings are known
    group: str = ""  # the same for rows whose settings differ in the training seed only ("": not known)

    @property
    def at_recipe(self) -> bool:
        return self.differences == ()

    def text(self) -> str:
        if self.differences is None:
            return f"{self.label}; settings not kept"
        return self.label + (f"; {', '.join(self.differences)}" if self.differences else "")


def _value(v) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return str(v)


def today(model: str, cfg: dict, preset: str | None) -> dict:
    """Today's recipe of `model` under `preset`, resolved as a run would: training settings, build overrides,
    fold settings (provenance's shape)."""
    from hsta_bench.engine.recipes import evaluation_of, recipe  # noqa: PLC0415 - torch (TrainConfig)

    rec = recipe(model, cfg, preset or None)
    evaluation = evaluation_of(rec, cfg)
    return provenance.complete(
        {
            "train": asdict(rec.train),
            "overrides": rec.overrides,
            "evaluation": {k: evaluation[k] for k in provenance.FOLD_SETTINGS if k in evaluation},
        }
    )


def differences(settings: dict, now: dict) -> tuple[str, ...]:
    """Each setting of `settings` that `now` (today's recipe) sets otherwise: `epochs=30 (recipe: 60)`."""
    out = []
    for section in ("train", "evaluation", "overrides"):
        ran, current = settings.get(section) or {}, now.get(section) or {}
        for key in sorted(set(ran) | set(current)):
            a, b = ran.get(key), current.get(key)
            if json.dumps(a, default=str) == json.dumps(b, default=str):  # tuples and lists alike
                continue
            out.append(f"{key}={_value(a)} (recipe: {_value(b) if b is not None else 'not set'})")
    return tuple(out)


def describe(entry: dict, settings: dict | None, cfg: dict) -> Described:
    """The recipe column of a store entry whose resolved settings are `settings` (None: not kept)."""
    from hsta_bench.engine.recipes import recipe_name  # noqa: PLC0415 - torch (TrainConfig)

    seed, group = None, ""
    if settings is not None:
        seed = int(settings["train"]["seed"])
        group = provenance.key({**settings, "train": {**settings["train"], "seed": None}})
    if entry.get("selection") == "given":
        return Described("released weights, scored", (), seed, group)
    name = recipe_name(entry["model"], cfg)
    origin = str((cfg["models"].get(name) or {}).get("origin") or "ours") if name else "ours (the training defaults)"
    preset = entry.get("preset") or ""
    label = origin if preset in ("", "paper") else f"{preset} preset of {origin}"
    if settings is None:
        return Described(label, None)
    now = today(entry["model"], cfg, preset)
    now["train"]["seed"] = settings["train"]["seed"]  # seeds are draws of one recipe, not a difference from it
    return Described(label, differences(settings, now), seed, group)
