"""A CPU trial's step, measured: what `run --dry-run` and `tune --dry-run` time on this machine instead of
assuming a FLOP rate for it.

On a CPU, FLOPs say little about a small model's step: STSTNet's 1,683 parameters and Off-ApexNet's convolutions
at batch 64 run far below the matrix-product rate, and by how much depends on the model. So a dry run that plans
CPU trials trains each model for a few steps through the engine's own trainer (engine/train.FoldTrainer: the
recipe's optimiser, batch, precision and input encoding) on random inputs of the recipe's shapes, with the
trial's threads, and predicts one batch, and takes the faster of two timed rounds; a fold's start (building the
model and its trainer) is timed once. A model whose step the FLOP
estimate puts over `estimate.measure.max_step_s` is not measured (the dry run would take minutes); its FLOP
estimate stands, and the output says which were measured.

Measured here, alone. A run's trials share the machine's memory and caches (two at once on 2 cores), which is
what `estimate.measure.contention` stands for (measured: configs/estimate.yaml).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from hsta_bench.engine.device import place, torch_threads
from hsta_bench.engine.train import FoldData, FoldTrainer, Inputs
from hsta_bench.models import create_model, meta_model


@dataclass(frozen=True)
class Measured:
    train_step_s: float  # one training step at the recipe's batch
    predict_step_s: float  # one prediction batch (engine/train.predict's)
    fold_setup_s: float  # a fold's start: the model built and initialised, its optimiser, its inputs' feed


_MEASURED: dict[tuple, Measured] = {}


def _arrays(model: str, classes: int, overrides: dict, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random cached inputs (uint8, channels last, as preprocessing stores them) for `n` samples."""
    rng = np.random.default_rng(seed)
    shapes = meta_model(model, classes, overrides).inputs  # channels first: (3, S, S), (3, T, S, S)
    return {kind: rng.integers(0, 256, (n, *shape[1:], shape[0]), dtype=np.uint8) for kind, shape in shapes.items()}


def measure(
    model: str, classes: int, overrides: dict, train, encoding: dict, threads: int, predict_batch: int, steps: int = 3
) -> Measured:
    """Seconds of one training step of `model` with recipe `train` (engine/train.TrainConfig) and of one
    prediction batch of `predict_batch` rows, on this machine's CPU with `threads` threads; measured once per
    process."""
    key = (model, classes, repr(sorted(overrides.items())), repr(train), repr(sorted(encoding.items())), threads)
    if key in _MEASURED:
        return _MEASURED[key]
    cfg = dataclasses.replace(train, epochs=1, warmup_epochs=0, device="cpu", compile=False)
    n = steps * cfg.batch_size
    test = min(n, predict_batch)
    inputs = Inputs(_arrays(model, classes, overrides, n), encoding=encoding)
    labels = np.arange(n) % classes
    empty = np.arange(0)
    fold = FoldData(inputs, np.arange(n), labels, empty, empty, np.arange(test))
    with torch_threads(threads), torch.device("cpu"):  # a dry run plans its models on the meta device
        start = time.perf_counter()
        trainer = FoldTrainer(
            lambda: create_model(model, classes, **overrides), fold, cfg, classes, 0, place("cpu", cfg.precision)
        )
        setup_s = time.perf_counter() - start
        train_s = _fastest(trainer.train_epoch) / math.ceil(n / cfg.batch_size)
        predict_s = _fastest(lambda: trainer.predict(fold.test)) * predict_batch / test  # scaled to a full batch
    _MEASURED[key] = Measured(train_s, predict_s, setup_s)
    return _MEASURED[key]


def _fastest(fn) -> float:
    """One call to warm up (allocator, kernel choice, the optimiser's state), then the faster of two timed."""
    fn()
    best = math.inf
    for _ in range(2):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best
