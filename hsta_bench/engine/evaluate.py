"""One evaluation: a model on a dataset under a protocol, fold by fold, to per-sample predictions.

    plan()       the model's recipe, the prepared inputs, labels and checked subject-independent folds
    run_folds()  trains the folds of a plan (or a group of them) and returns their predictions
    evaluate()   both, over every fold, in this process

`hsta-bench run` does not call evaluate(): it makes the plans, then dispatches their folds as trials
(hsta_bench/orchestrate/), which call run_folds() wherever they run.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import polars as pl
import torch
from pydantic import Field

from hsta_bench import config as config_mod
from hsta_bench.config import Bool, Float, Int
from hsta_bench.data import protocols
from hsta_bench.data.load import load_manifest
from hsta_bench.data.manifest import label_column
from hsta_bench.data.registry import get_source
from hsta_bench.engine import augment, batched, provenance, splits, train
from hsta_bench.engine import weights as weights_mod
from hsta_bench.engine.recipes import Recipe, check_tuned_on, evaluation_of, fold_recipes, recipe, tuned_entry
from hsta_bench.engine.train import FoldData, Inputs
from hsta_bench.engine.weights import fold_file
from hsta_bench.errors import UserError
from hsta_bench.models import create_model, meta_model, model_class, model_inputs
from hsta_bench.models.inputs import encoding_of, preprocess_settings
from hsta_bench.models.registry import check_forward, is_builtin
from hsta_bench.preprocess import load_prepared
from hsta_bench.preprocess.kinds import KINDS

PREDICTION_COLUMNS = (
    "dataset",
    "protocol",
    "model",
    "fold",
    "subject",
    "sample_id",
    "source",
    "label",
    "pred",
    "synthetic",
    "logits",
)


@dataclass(frozen=True)
class EvaluationConfig:
    """configs/evaluation.yaml (every setting's default, and what each means)"""

    scheme: Literal["loso", "kfold"]
    k: Annotated[Int, Field(ge=2)]  # kfold
    protocol: str | None  # configs/protocols.yaml; None: the dataset's default
    val_subjects: Annotated[Int, Field(ge=0)]
    val_rule: Literal["draw", "own-database"]  # engine/splits.py; a recipe may set it (its `evaluation:`)
    seed: Int
    bootstrap: Annotated[Int, Field(ge=0)]
    level: Annotated[Float, Field(gt=0, lt=1)]
    audit: Bool  # record test predictions every audit_every epochs (engine/audit.py): never a result
    audit_every: Annotated[Int, Field(ge=1)]
    save_weights: Bool  # each fold's final weights in the run folder (engine/weights.py)
    weights: str | None  # a folder of fold weights to score instead of training (run --weights)


def evaluation_config(cfg: dict) -> EvaluationConfig:
    """The evaluation section, typed and checked (every problem is one line naming the setting)."""
    e = config_mod.typed(EvaluationConfig, cfg["evaluation"], "evaluation")
    if e.protocol is not None:
        protocols.get(e.protocol)
    if e.weights is not None and (e.audit or e.save_weights):
        raise UserError("evaluation.weights (scoring given weights, no training) cannot go with audit or save_weights")
    return e


def subject_names(manifest) -> np.ndarray:
    """The subject of every row, as text (the names folds and splits use)."""
    return manifest["subject"].cast(pl.Utf8).to_numpy().astype(str)


def subject_keys(manifest) -> np.ndarray:
    """source/subject of every row: a subject's name across datasets (a composite keeps its sources')."""
    return (
        manifest.select(pl.concat_str([pl.col("source"), pl.col("subject").cast(pl.Utf8)], separator="/"))
        .to_series()
        .to_numpy()
        .astype(str)
    )


def compatible(model_inputs, dataset: str) -> bool:
    """Whether `dataset` can give every input the model takes."""
    provides = get_source(dataset).inputs
    return all(provides in KINDS[kind].sources for kind in model_inputs)


@dataclass
class Plan:
    model: str
    dataset: str
    protocol: str
    classes: tuple[str, ...]
    recipe: Recipe
    manifest: pl.DataFrame  # the labelled, prepared samples (row order = everything below)
    y: np.ndarray
    folds: list
    inputs: Inputs | None  # None in a plan made with prepare=False (a dry run's: never trained)
    synthetic: bool
    evaluation: dict = field(default_factory=dict)
    fold_recipes: dict[int, Recipe] = field(default_factory=dict)  # fold index -> Recipe, where a fold has its own
    encoding: dict = field(default_factory=dict)  # input kind -> how the model reads it (models/inputs.py)
    weights: str | None = None  # a folder of fold weights scored instead of training (engine/weights.py)
    save_weights: bool = False  # keep each fold's final weights
    audit_every: int = 0  # > 0: record test predictions every so many epochs (engine/audit.py)
    # fold_batch auto: device type -> what batched.probe measured there (travels with the plan to its trials)
    fold_batch_probe: dict = field(default_factory=dict)

    def recipe_of(self, index: int) -> Recipe:
        return self.fold_recipes.get(index, self.recipe)

    def fold_seed(self, index: int) -> int:
        return self.recipe_of(index).train.seed + index

    def settings(self) -> dict:
        """Everything that decides this evaluation's numbers, resolved (engine/provenance.py)."""
        return provenance.of_plan(self)

    def key(self) -> str:
        """The config key: a short hash of `settings()` (engine/provenance.py: stable as settings are added)."""
        return provenance.key(self.settings())


def plan(model: str, dataset: str, cfg: dict, preset: str | None = None, announce=None, prepare: bool = True) -> Plan:
    """The evaluation of `model` on `dataset`. `prepare=False` (a dry run, orchestrate/estimate.py) skips the
    preprocessing, which on real data is the expensive part (optical flow): the samples are the data layer's
    usable ones, and `inputs` is None."""
    rec = recipe(model, cfg, preset)
    # the recipe's own validation rule (Dual-Inception's: engine/splits.py) over configs/evaluation.yaml
    ev = evaluation_config({**cfg, "evaluation": evaluation_of(rec, cfg)})
    source = get_source(dataset)
    protocol_name = ev.protocol or source.protocols[0]
    protocol = protocols.get(protocol_name)
    if not set(protocol.adapters) & set(source.parts or (dataset,)):
        raise UserError(f"evaluation.protocol={protocol_name}: does not apply to {dataset}")
    probe = meta_model(model, len(protocol.classes), rec.overrides)  # shapes and declarations, no memory
    if not is_builtin(model):  # a model from outside: its forward and loss checked before any fold trains
        check_forward(model, len(protocol.classes), rec.overrides)
    if not compatible(probe.inputs, dataset):
        raise UserError(f"model {model} needs {', '.join(probe.inputs)}, which {dataset} cannot give")
    settings = _with_sets(cfg, preprocess_settings(probe.inputs))
    if prepare:
        prepared = load_prepared(dataset, settings, announce=announce)
        samples = prepared.manifest
    else:  # samples whose files turn out unreadable are excluded only when preprocessing reads them
        samples = load_manifest(dataset, settings, announce=announce).usable
    label = label_column(protocol_name)
    manifest = samples.with_row_index("_row").filter(pl.col(label).is_not_null())
    if manifest.height == 0:
        raise UserError(f"{dataset}: no sample has a label under protocol {protocol_name}")
    rows = manifest["_row"].to_numpy()
    y = (
        manifest[label]
        .replace_strict(list(protocol.classes), list(range(len(protocol.classes))), return_dtype=pl.Int64)
        .to_numpy()
    )
    folds = splits.make_folds(
        manifest["subject"].to_numpy(),
        ev.scheme,
        ev.k,
        ev.val_subjects,
        ev.seed,
        ev.val_rule,
        manifest["source"].to_numpy(),
    )
    encoding = encoding_of(probe)
    inputs = (
        Inputs({kind: prepared.inputs(kind, rows) for kind in probe.inputs}, encoding=encoding) if prepare else None
    )
    synthetic = bool(manifest["synthetic"].any())
    keys = subject_keys(manifest)
    check_tuned_on(tuned_entry(cfg, model).get("tuned_on"), keys, synthetic, f"tuned.{model}")
    own = fold_recipes(model, dataset, folds, rec, cfg, keys, synthetic)
    seen = []
    for r in own.values():  # a fold's own model settings must not change what the model reads
        if r.overrides != rec.overrides and r.overrides not in seen:
            seen.append(r.overrides)
            if model_inputs(model, len(protocol.classes), **r.overrides) != probe.inputs:
                raise UserError(
                    f"{r.source}: changes the inputs {model} reads; only settings that keep them can "
                    "differ between folds"
                )
    given = None
    if ev.weights:  # every fold's file there and fitting the model, before anything is scored
        given = str(weights_mod.check_folder(ev.weights, folds, "evaluation.weights"))
        weights_mod.check_all(Path(given), folds, probe, {"model": model, "classes": list(protocol.classes)})
    return Plan(
        model,
        dataset,
        protocol_name,
        protocol.classes,
        rec,
        manifest.drop("_row"),
        y,
        folds,
        inputs,
        synthetic,
        {k: getattr(ev, k) for k in ("scheme", "k", "val_subjects", "val_rule", "seed")},
        own,
        encoding,
        given,
        ev.save_weights,
        ev.audit_every if ev.audit else 0,
    )


def _with_sets(cfg: dict, sets: list[str]) -> dict:
    """A copy of `cfg` with `--set`-style overrides applied (the preprocessing a model needs)."""
    return config_mod.apply_sets(copy.deepcopy(cfg), sets)


def _fold_data(p: Plan, fold):
    assert p.inputs is not None  # only plans made with prepare=False (estimates, never trained) have none
    # test labels stay here: the trainer gets the test rows only
    return FoldData(p.inputs, fold.train, p.y[fold.train], fold.val, p.y[fold.val], fold.test)


def use_fold_batch(p: Plan, device: str) -> bool:
    """Whether the folds of `p` train stacked (engine/batched.py) on `device`, where they train: for models
    that allow it, when the folds share a recipe and select the last epoch; `auto` where it measures faster
    (`fold_batch_pays`)."""
    mode = p.recipe.train.fold_batch
    if mode == "never" or p.recipe.train.selection != "last" or p.fold_recipes:  # folds stacked share a recipe
        return False

    if augment.active(p.recipe.train):  # the stacked loop draws flips only; these train fold by fold
        return False
    batchable = model_class(p.model).fold_batchable
    if mode == "always" or not batchable:
        return batchable
    return fold_batch_pays(p, device)


def fold_batch_pays(p: Plan, device: str) -> bool:
    """Whether stacking `p`'s folds trains a fold-step faster than the plain loop on `device` at the recipe's
    batch, as batched.probe measures it (once per model, batch and device in a process; kept on the plan, so
    its trials decide alike). Where it cannot be measured, a dry run's plan without data or a GPU this process
    does not have, the rule is the device's type: stacked on CUDA, where a small model's step is per-call
    overhead, plain on a CPU."""
    kind = torch.device(device).type
    if kind in p.fold_batch_probe:
        return bool(p.fold_batch_probe[kind]["stacked"])
    if p.inputs is None or (kind == "cuda" and not torch.cuda.is_available()):
        return kind == "cuda"
    cfg = p.recipe.train
    placement = train.placement_for(replace(cfg, device="cuda" if kind == "cuda" else "cpu"))
    key = (
        p.model,
        json.dumps(p.recipe.overrides, sort_keys=True, default=str),
        cfg.batch_size,
        cfg.optimizer,
        placement.device,
        placement.precision,
        tuple((k, a.shape[1:]) for k, a in sorted(p.inputs.arrays.items())),
    )

    def measure() -> dict:  # only where this process has not measured the key yet
        data = [_fold_data(p, f) for f in p.folds[:4]]
        build = lambda: create_model(p.model, len(p.classes), **p.recipe.overrides)  # noqa: E731
        return batched.probe(build, data, cfg, len(p.classes), placement)

    p.fold_batch_probe[kind] = batched.probed(key, measure)
    return bool(p.fold_batch_probe[kind]["stacked"])


@dataclass
class FoldResults:
    """What `run_folds` returns for its folds: their test predictions as columns (numpy, in the folds' order),
    when and where they trained, and what the plan asked to keep besides."""

    rows: np.ndarray  # the manifest rows predicted (the folds' test rows)
    fold: np.ndarray  # each row's fold name
    pred: np.ndarray  # each row's predicted class index
    logits: np.ndarray  # each row's logits (rows, classes), float32: pred is their argmax
    chosen_epoch: dict  # fold name -> the epoch whose model predicted
    seconds: float  # wall time of all of them
    started_at: float  # wall clock (time.time) the training began
    placement: dict  # where and how they trained (engine/device.py), with `fold_batched`
    audit: dict = field(default_factory=dict)  # fold name -> epoch -> test predictions (engine/audit.py)
    states: dict = field(default_factory=dict)  # fold name -> final weights (--save-weights)

    def per_fold(self, folds: list) -> list[FoldResults]:
        """One FoldResults per fold of `folds` (those these results hold), their seconds shared out evenly."""
        parts = []
        for fold in folds:
            mask = self.fold == fold.name
            parts.append(
                FoldResults(
                    self.rows[mask],
                    self.fold[mask],
                    self.pred[mask],
                    self.logits[mask],
                    {fold.name: self.chosen_epoch[fold.name]},
                    self.seconds / len(folds),
                    self.started_at,
                    self.placement,
                    {k: v for k, v in self.audit.items() if k == fold.name},
                    {k: v for k, v in self.states.items() if k == fold.name},
                )
            )
        return parts


def run_folds(p: Plan, indices: list[int] | None = None, progress=None, placement=None) -> FoldResults:
    """Train the folds `indices` (all by default) where `placement` says (engine/device.py; default: where
    this process would put them), or score the plan's given weights without training."""
    indices = list(range(len(p.folds))) if indices is None else list(indices)
    folds = [p.folds[i] for i in indices]
    placement = placement or train.placement_for(p.recipe.train)
    stacked = not p.weights and use_fold_batch(p, placement.device)

    def builder(overrides):
        return lambda: create_model(p.model, len(p.classes), **overrides)

    started, started_at = time.perf_counter(), time.time()
    if p.weights:
        meta = {"model": p.model, "classes": list(p.classes)}
        outcomes = [
            train.predict_given(
                builder(p.recipe_of(f.index).overrides),
                _fold_data(p, f),
                fold_file(Path(p.weights), f.name),
                meta,
                placement,
            )
            for f in folds
        ]
        if progress:
            progress(len(folds))
    elif stacked:
        outcomes = batched.fit_predict_folds(
            builder(p.recipe.overrides),
            [_fold_data(p, f) for f in folds],
            p.recipe.train,
            len(p.classes),
            [p.fold_seed(f.index) for f in folds],
            placement=placement,
            audit_every=p.audit_every,
            keep_state=p.save_weights,
        )
        if progress:
            progress(len(folds))
    else:
        outcomes = []
        for fold in folds:
            r = p.recipe_of(fold.index)
            outcomes.append(
                train.fit_predict(
                    builder(r.overrides),
                    _fold_data(p, fold),
                    r.train,
                    len(p.classes),
                    p.fold_seed(fold.index),
                    placement,
                    p.audit_every,
                    p.save_weights,
                )
            )
            if progress:
                progress(1)
    rows = np.concatenate([f.test for f in folds]) if folds else np.zeros(0, int)
    logits = (
        np.concatenate([o.logits for o in outcomes]).astype(np.float32)
        if folds
        else np.zeros((0, len(p.classes)), np.float32)
    )
    return FoldResults(
        rows=rows,
        fold=np.concatenate([[f.name] * len(f.test) for f in folds]) if folds else np.zeros(0, str),
        pred=logits.argmax(1),
        logits=logits,
        chosen_epoch={f.name: o.chosen_epoch for f, o in zip(folds, outcomes)},
        seconds=time.perf_counter() - started,
        started_at=started_at,
        placement={
            **placement.record(),
            "fold_batched": stacked,
            **({"fold_batch_probe": probe} if (probe := p.fold_batch_probe.get(placement.type)) else {}),
        },
        audit={f.name: o.audit for f, o in zip(folds, outcomes) if o.audit is not None},
        states={f.name: o.state for f, o in zip(folds, outcomes) if o.state is not None},
    )


def predictions_frame(p: Plan, parts: list[FoldResults]):
    rows = np.concatenate([part.rows for part in parts])
    order = np.argsort(rows, kind="stable")
    rows = rows[order]
    m = p.manifest
    classes = np.array(p.classes)
    return pl.DataFrame(
        {
            "dataset": p.dataset,
            "protocol": p.protocol,
            "model": p.model,
            "fold": np.concatenate([part.fold for part in parts])[order].astype(str),
            "subject": m["subject"].cast(pl.Utf8).to_numpy()[rows].astype(str),
            "sample_id": m["sample_id"].to_numpy()[rows].astype(str),
            "source": m["source"].to_numpy()[rows].astype(str),
            "label": classes[p.y[rows]],
            "pred": classes[np.concatenate([part.pred for part in parts])[order]],
            "synthetic": m["synthetic"].to_numpy()[rows].astype(bool),
            # the model's scores in the protocol's class order, what equality of two trainings is judged on (the
            # classes of a model that barely moved agree whatever happened to it); a list, not a fixed-width
            # array, since a run's evaluations have different numbers of classes
            "logits": pl.Series(np.concatenate([part.logits for part in parts])[order]).cast(pl.List(pl.Float32)),
        }
    ).select(PREDICTION_COLUMNS)


@dataclass
class Evaluation:
    plan: Plan
    predictions: pl.DataFrame
    splits: pl.DataFrame
    seconds: float
    chosen_epochs: dict


def evaluate(
    model: str, dataset: str, cfg: dict, preset: str | None = None, progress=None, announce=None
) -> Evaluation:
    """Every fold of `model` on `dataset`, one after another in this process."""
    p = plan(model, dataset, cfg, preset, announce)
    started = time.perf_counter()
    part = run_folds(p, progress=progress)
    return Evaluation(
        p,
        predictions_frame(p, [part]),
        splits.table(p.folds, p.manifest, dataset, p.protocol),
        time.perf_counter() - started,
        part.chosen_epoch,
    )
