"""Training one fold: the optimiser, schedule, sampling, augmentation and model selection of a run.

What a fold's trainer sees is a `FoldData`: inputs for every row, labels for the training and
validation rows only. The test rows come without labels, so nothing here can select or stop on them;
the test labels are used once, by the caller, to score the predictions returned.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch

from hsta_bench.models.inputs import to_tensor


@dataclass(frozen=True)
class TrainConfig:
    optimizer: str = "adamw"  # adamw | adam | sgd
    lr: float = 1e-3
    weight_decay: float = 0.05
    momentum: float = 0.9  # sgd
    betas: tuple[float, ...] = (0.9, 0.999)
    batch_size: int = 32
    epochs: int = 50
    schedule: str = "cosine"  # constant | cosine (per step, after warm-up)
    warmup_epochs: int = 0
    min_lr: float = 0.0
    layer_decay: float = 1.0  # < 1: layer-wise lr decay for models that number their layers (HSTA)
    balanced: bool = False  # class-balanced sampling (each epoch draws as many samples as the fold has)
    augment: bool = False  # random horizontal flips (a flow image's u is negated with it)
    selection: str = "last"  # last: the model after the fixed epoch budget; best_val: best validation UF1
    patience: int = 0  # best_val: stop after this many epochs without improvement (0: never stop early)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    fold_batch: str = "auto"  # auto (on CUDA) | always | never: train all folds of a small model together

    def check(self, where: str) -> "TrainConfig":
        from hsta_bench.errors import UserError

        choices = {"optimizer": ("adamw", "adam", "sgd"), "schedule": ("constant", "cosine"),
                   "selection": ("last", "best_val"), "device": ("auto", "cpu", "cuda"),
                   "fold_batch": ("auto", "always", "never")}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise UserError(f"{where}.{key}={getattr(self, key)!r}: expected one of {', '.join(allowed)}")
        if self.epochs < 1 or self.batch_size < 1:
            raise UserError(f"{where}: epochs and batch_size must be at least 1")
        return self


def device_for(cfg: TrainConfig) -> torch.device:
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.device)


class Inputs:
    """A model's inputs for every sample: cached uint8 arrays, made float tensors a batch at a time
    (or all at once when small)."""

    def __init__(self, arrays: dict[str, np.ndarray], keep_bytes: int = 512 << 20):
        self.arrays = arrays
        self.keep_bytes = keep_bytes
        self.count = len(next(iter(arrays.values())))
        floats = sum(a.size for a in arrays.values()) * 4
        self.whole = {k: to_tensor(k, np.asarray(a)) for k, a in arrays.items()} if floats <= keep_bytes else None

    def __getstate__(self):  # sent to a Ray trial: the uint8 arrays only (a quarter of the floats' size)
        return {"arrays": self.arrays, "keep_bytes": self.keep_bytes}

    def __setstate__(self, state):
        self.__init__(state["arrays"], state["keep_bytes"])

    def get(self, rows: np.ndarray, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        rows = np.asarray(rows)
        if self.whole is not None:
            index = torch.from_numpy(rows)
            return {k: v[index].to(device) for k, v in self.whole.items()}
        return {k: to_tensor(k, np.asarray(a[rows])).to(device) for k, a in self.arrays.items()}


@dataclass
class FoldData:
    inputs: Inputs
    train: np.ndarray  # rows
    train_labels: np.ndarray
    val: np.ndarray
    val_labels: np.ndarray
    test: np.ndarray  # rows only: no labels


def flip(batch: dict[str, torch.Tensor], which: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mirror the samples where `which` is true; a flow image's u channel changes sign (1 - u on its 0..1
    min-max scale), its v and strain do not."""
    out = {}
    for kind, x in batch.items():
        mirrored = x.flip(-1)
        if kind == "flow":
            mirrored = torch.cat([1 - mirrored[:, :1], mirrored[:, 1:]], dim=1)
        shape = (-1,) + (1,) * (x.ndim - 1)
        out[kind] = torch.where(which.view(shape).to(x.device), mirrored, x)
    return out


def epoch_order(labels: np.ndarray, balanced: bool, n_classes: int, generator: torch.Generator) -> np.ndarray:
    """Positions into the training rows for one epoch: a permutation, or class-balanced draws."""
    n = len(labels)
    if not balanced:
        return torch.randperm(n, generator=generator).numpy()
    counts = np.bincount(labels, minlength=n_classes)
    weights = torch.from_numpy(1.0 / counts[labels]).double()
    return torch.multinomial(weights, n, replacement=True, generator=generator).numpy()


def batches(order: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Split an epoch into batches; a last batch of one sample joins the one before (batch norm needs two)."""
    parts = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if len(parts) > 1 and len(parts[-1]) == 1:
        parts[-2] = np.concatenate([parts[-2], parts.pop()])
    return parts


def lr_factor(step: int, total: int, warmup: int, cfg: TrainConfig) -> float:
    """Multiplier of the base lr at `step` (0-based) of `total`: linear warm-up, then constant or cosine
    down to min_lr."""
    if step < warmup:
        return (step + 1) / warmup
    if cfg.schedule == "constant":
        return 1.0
    floor = cfg.min_lr / cfg.lr if cfg.lr else 0.0
    progress = (step - warmup) / max(1, total - warmup)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def param_groups(model: torch.nn.Module, cfg: TrainConfig) -> list[dict]:
    """No weight decay on biases, norms and tokens; layer-wise lr scales where the model numbers layers."""
    layers = model.lr_layers() if cfg.layer_decay < 1.0 and hasattr(model, "lr_layers") else None
    groups: dict[tuple[float, float], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        decay = 0.0 if (p.ndim <= 1 or "token" in name) else cfg.weight_decay
        scale = 1.0
        if layers is not None:
            layer_id, count = layers(name)
            scale = cfg.layer_decay ** (count - layer_id)
        groups.setdefault((decay, scale), []).append(p)
    return [{"params": ps, "weight_decay": d, "lr_scale": s} for (d, s), ps in groups.items()]


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=cfg.lr, betas=tuple(cfg.betas))


def predict(model: torch.nn.Module, inputs: Inputs, rows: np.ndarray, device, batch_size: int = 256) -> np.ndarray:
    """Logits for `rows`, in eval mode."""
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            out.append(model(inputs.get(rows[start : start + batch_size], device)).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, getattr(model, "num_classes", 0)), np.float32)


def val_uf1(model, data: FoldData, device, n_classes: int) -> float:
    from hsta_bench.engine.metrics import scores

    logits = predict(model, data.inputs, data.val, device)
    return scores(data.val_labels, logits.argmax(1), n_classes)["uf1"]


@dataclass
class FoldOutcome:
    logits: np.ndarray  # (test rows, classes)
    epochs: int  # epochs trained
    chosen_epoch: int  # the epoch whose model made the predictions (1-based)


class FoldTrainer:
    """One fold's model in training, an epoch at a time: `fit_predict` runs it to the end of its budget,
    tuning (hsta_bench/tuning/objective.py) steps several in lockstep and scores them after each epoch.

    Each trainer keeps its own copy of torch's global random stream (dropout, stochastic depth draw from
    it), so trainers stepped in turn give the same models as trained one after another.
    """

    def __init__(self, build, data: FoldData, cfg: TrainConfig, n_classes: int, seed: int):
        self.data, self.cfg, self.n_classes = data, cfg, n_classes
        self.device = device_for(cfg)
        torch.manual_seed(seed)
        self.model = build().to(self.device)
        self.optimizer = make_optimizer(self.model, cfg)
        self.generator = torch.Generator().manual_seed(seed)
        self.labels = torch.from_numpy(data.train_labels).long()
        per_epoch = len(batches(np.arange(len(data.train)), cfg.batch_size))
        self.total, self.warmup = cfg.epochs * per_epoch, cfg.warmup_epochs * per_epoch
        self.step = 0
        self.epoch = 0
        self._cuda = [self.device.index or 0] if self.device.type == "cuda" else []
        self._streams = self._read_streams()

    def _read_streams(self):
        return torch.get_rng_state(), [torch.cuda.get_rng_state(d) for d in self._cuda]

    def train_epoch(self) -> None:
        cfg, data = self.cfg, self.data
        with torch.random.fork_rng(devices=self._cuda):  # this trainer's stream in, the caller's back after
            cpu, cuda = self._streams
            torch.set_rng_state(cpu)
            for d, state in zip(self._cuda, cuda):
                torch.cuda.set_rng_state(state, d)
            self.model.train()
            order = epoch_order(data.train_labels, cfg.balanced, self.n_classes, self.generator)
            for part in batches(order, cfg.batch_size):
                factor = lr_factor(self.step, self.total, self.warmup, cfg)
                for group in self.optimizer.param_groups:
                    group["lr"] = cfg.lr * factor * group["lr_scale"]
                batch = data.inputs.get(data.train[part], self.device)
                if cfg.augment:
                    batch = flip(batch, torch.rand(len(part), generator=self.generator) < 0.5)
                loss = torch.nn.functional.cross_entropy(self.model(batch), self.labels[part].to(self.device))
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                self.step += 1
            self._streams = self._read_streams()
        self.epoch += 1

    def predict(self, rows: np.ndarray) -> np.ndarray:
        return predict(self.model, self.data.inputs, rows, self.device)


def fit_predict(build, data: FoldData, cfg: TrainConfig, n_classes: int, seed: int) -> FoldOutcome:
    """Train a model from `build()` on the fold's training rows, choose it (last epoch, or the best on the
    validation rows), and return its logits on the test rows."""
    trainer = FoldTrainer(build, data, cfg, n_classes, seed)
    use_val = cfg.selection == "best_val" and len(data.val) > 0
    best, best_state, best_epoch, since = -1.0, None, cfg.epochs, 0
    for epoch in range(1, cfg.epochs + 1):
        trainer.train_epoch()
        if use_val:
            score = val_uf1(trainer.model, data, trainer.device, n_classes)
            if score > best:
                best, best_state, best_epoch, since = score, copy.deepcopy(trainer.model.state_dict()), epoch, 0
            else:
                since += 1
                if cfg.patience and since >= cfg.patience:
                    break
    if use_val and best_state is not None:
        trainer.model.load_state_dict(best_state)
    else:
        best_epoch = trainer.epoch
    return FoldOutcome(trainer.predict(data.test), trainer.epoch, best_epoch)
