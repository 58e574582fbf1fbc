"""What identifies an evaluation's numbers: its resolved settings, and the config key that names them.

An evaluation's settings are everything that decides its numbers: the model, the dataset and label
protocol, the training settings (TrainConfig), the model's build overrides, the fold settings, how the
model reads its inputs and, for given weights, which weights. The config key is a short hash of them.

The key hashes the settings with every value at its NEUTRAL value left out. NEUTRAL is frozen: a value in
it never changes, and a setting added to the code is added to it with the value that does what the code did
before the setting existed (randaugment none, erase 0, val_rule draw, ...). So adding a setting leaves the
key of every evaluation that does not use it as it was, and a row of the leaderboard stays reproducible to
its key by today's code (tests/test_leaderboard_store.py checks every committed row).

Given weights are named by their content (a digest of the fold files), not by where one machine keeps them.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import asdict
from pathlib import Path

# frozen (see the module's docstring): never change a value here, only add settings
NEUTRAL: dict[str, dict] = {
    "train": {
        "optimizer": "adamw",
        "lr": 1.0e-3,
        "weight_decay": 0.05,
        "momentum": 0.9,
        "betas": [0.9, 0.999],
        "batch_size": 32,
        "epochs": 50,
        "schedule": "cosine",
        "warmup_epochs": 0,
        "min_lr": 0.0,
        "layer_decay": 1.0,
        "balanced": False,
        "augment": False,
        "randaugment": "none",
        "erase": 0.0,
        "repeat": 1,
        "selection": "last",
        "patience": 0,
        "seed": 0,
        "device": "auto",
        "fold_batch": "auto",
        "precision": "auto",
        "staging": "auto",
        "compile": False,
    },
    "evaluation": {"scheme": "loso", "k": 5, "val_subjects": 0, "val_rule": "draw", "seed": 0},
}
FOLD_SETTINGS = tuple(NEUTRAL["evaluation"])  # the evaluation settings that decide an evaluation's folds


def _plain(value):
    """JSON's view of a value (tuples as lists), so that settings read back from YAML compare equal."""
    return json.loads(json.dumps(value, default=str))


def of_plan(plan) -> dict:
    """The resolved settings of an evaluation plan (engine/evaluate.Plan), complete."""
    settings = {
        "model": plan.model,
        "dataset": plan.dataset,
        "protocol": plan.protocol,
        "train": asdict(plan.recipe.train),
        "overrides": dict(plan.recipe.overrides),
        "evaluation": {k: plan.evaluation[k] for k in FOLD_SETTINGS if k in plan.evaluation},
        "encoding": dict(plan.encoding),
    }
    if plan.fold_recipes:
        settings["folds"] = {
            plan.folds[i].name: {"train": asdict(r.train), "overrides": dict(r.overrides)}
            for i, r in sorted(plan.fold_recipes.items())
        }
    if plan.weights:
        settings["weights"] = weights_digest(plan.weights)
    return _plain(settings)


def weights_digest(folder) -> str:
    """The content of a folder of fold weights (its files' names and bytes), as `sha256:` and 16 hex digits."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).iterdir() if p.is_file()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return f"sha256:{digest.hexdigest()[:16]}"


def _lean(train: dict) -> dict:
    return {k: v for k, v in train.items() if NEUTRAL["train"].get(k, object()) != v}


def canonical(settings: dict) -> dict:
    """The settings the key hashes: those at their NEUTRAL value left out, and an input read the default
    way."""
    s = _plain(settings)
    out = {k: s[k] for k in ("model", "dataset", "protocol")}
    out["train"] = _lean(s.get("train") or {})
    out["overrides"] = s.get("overrides") or {}
    out["evaluation"] = {
        k: v for k, v in (s.get("evaluation") or {}).items() if NEUTRAL["evaluation"].get(k, object()) != v
    }
    encoding = {k: v for k, v in (s.get("encoding") or {}).items() if v != "default"}
    if encoding:
        out["encoding"] = encoding
    if s.get("folds"):
        out["folds"] = {
            name: {"train": _lean(f.get("train") or {}), "overrides": f.get("overrides") or {}}
            for name, f in s["folds"].items()
        }
    if s.get("weights"):
        out["weights"] = s["weights"]
    return out


def key(settings: dict) -> str:
    """The config key of resolved settings: 12 hex digits."""
    blob = json.dumps(canonical(settings), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def complete(settings: dict) -> dict:
    """Settings recorded before a setting existed, with it at its NEUTRAL value (what the code then did)."""
    s = copy.deepcopy(_plain(settings))
    s["train"] = {**NEUTRAL["train"], **(s.get("train") or {})}
    s["evaluation"] = {**NEUTRAL["evaluation"], **(s.get("evaluation") or {})}
    return s


def as_config(settings: dict, recipe: str) -> dict:
    """The settings as a --config file (the shape of configs/): under the model's recipe `recipe`
    (configs/models/RECIPE.yaml) every training setting and build override, its fold settings at both
    levels (a recipe's own fold settings come over the evaluation section's), and the label protocol.
    `hsta-bench run --dataset D --model M --preset paper --config FILE` resolves to exactly these settings
    while the recipe's build overrides are a subset of them; given weights are named on the command line."""
    s = complete(settings)
    fold = {k: s["evaluation"][k] for k in ("val_rule", "val_subjects")}
    return {
        "models": {recipe: {"train": s["train"], "model": s.get("overrides") or {}, "evaluation": fold}},
        "evaluation": {**s["evaluation"], "protocol": s["protocol"]},
    }
