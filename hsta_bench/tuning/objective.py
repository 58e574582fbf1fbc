"""The objective of a trial: a sampled configuration trained on a study's inner folds, scored on their
validation subjects after every epoch (what ASHA stops on and Optuna's TPE learns from).

The inner folds train in lockstep, one epoch each in turn (engine/train.py FoldTrainer), so the score
after epoch e pools the validation predictions of every inner fold's model at epoch e. Only the study's
samples are in the data a trial gets (nested.py): a held-out subject cannot be touched here.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import ray
import torch
from ray import tune

from hsta_bench.engine.device import granted_gpus
from hsta_bench.engine.metrics import scores
from hsta_bench.engine.train import FoldData, FoldTrainer, placement_for
from hsta_bench.models import create_model
from hsta_bench.tuning import space


def epochs(data, params: dict) -> Iterator[dict]:
    """Train `params` (a sampled point) on `data` (nested.StudyData); yield the validation scores after
    each epoch, with the subjects the trial trained and validated on."""
    recipe = space.apply(data.recipe, params)
    n_classes = len(data.classes)

    def build():
        return create_model(data.model, n_classes, **recipe.overrides)

    torch.set_num_threads(max(1, int(data.cpus)))
    placement = placement_for(recipe.train, granted_gpus(), data.gpus)  # where Ray's grant puts this trial
    nothing = np.zeros(0, dtype=int)
    trainers = [
        FoldTrainer(
            build,
            FoldData(data.inputs, f.train, data.y[f.train], f.val, data.y[f.val], nothing),
            recipe.train,
            n_classes,
            recipe.train.seed + f.index,
            placement,
        )
        for f in data.folds
    ]
    val = np.concatenate([f.val for f in data.folds])
    seen = sorted(set(data.subjects[np.concatenate([f.train for f in data.folds] + [val])].tolist()))
    for epoch in range(1, recipe.train.epochs + 1):
        for trainer in trainers:
            trainer.train_epoch()
        pred = np.concatenate([t.predict(f.val).argmax(1) for t, f in zip(trainers, data.folds)])
        s = scores(data.y[val], pred, n_classes)
        yield {
            "epoch": epoch,
            "val_uf1": float(s["uf1"]),
            "val_uar": float(s["uar"]),
            "val_acc": float(s["acc"]),
            "val_n": int(len(val)),
            "subjects_seen": seen,
            "device": placement.device,
            "device_name": placement.name,
            "precision": placement.precision,
        }


def trainable(config: dict, data: dict) -> None:
    """A Ray Tune trial of study config["study"] (`data`: each study's object-store reference); each
    epoch's scores are reported, and ASHA may end the trial at any report."""
    for result in epochs(ray.get(data[config["study"]]), config):
        tune.report(result)
