"""Training one fold: the optimiser, schedule, sampling, augmentation and model selection of a run.

What a fold's trainer sees is a `FoldData`: inputs for every row, labels for the training and
validation rows only. The test rows come without labels, so nothing here can select or stop on them;
the test labels are used once, by the caller, to score the predictions returned.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal, cast

import numpy as np
import torch
from pydantic import Field

from hsta_bench import config
from hsta_bench.config import Bool, Float, Int
from hsta_bench.engine import augment
from hsta_bench.engine.device import Placement, Precision, place, precision, to_device
from hsta_bench.engine.metrics import scores
from hsta_bench.engine.weights import load_into
from hsta_bench.errors import UserError
from hsta_bench.models.inputs import mirror, normalise, to_tensor

if TYPE_CHECKING:
    from collections.abc import Callable


@dataclass(frozen=True)
class TrainConfig:
    """configs/train.yaml, which holds every setting's default (and what each means); build one from a loaded
    configuration (engine/recipes.py) or, without one, with `train_config(**overrides)`."""

    optimizer: Literal["adamw", "adam", "sgd"]
    lr: Annotated[Float, Field(gt=0)]
    weight_decay: Annotated[Float, Field(ge=0)]
    momentum: Annotated[Float, Field(ge=0)]  # sgd
    betas: tuple[Annotated[Float, Field(ge=0, lt=1)], ...]
    batch_size: Annotated[Int, Field(ge=1)]
    epochs: Annotated[Int, Field(ge=1)]
    schedule: Literal["constant", "cosine"]  # per step, after warm-up
    warmup_epochs: Annotated[Int, Field(ge=0)]
    min_lr: Annotated[Float, Field(ge=0)]
    layer_decay: Annotated[Float, Field(gt=0, le=1)]  # < 1: layer-wise lr decay for models that number their layers
    balanced: Bool  # class-balanced sampling (each epoch draws as many samples as the fold has)
    augment: Bool  # random horizontal flips (a flow image's u is negated with it)
    randaugment: str  # timm's RandAugment spec or none (HSTA's release: rand-m7-n4-mstd0.5-inc1); engine/augment.py
    erase: Annotated[Float, Field(ge=0, le=1)]  # random erasing: the probability a sample loses a box
    repeat: Annotated[Int, Field(ge=1)]  # repeated augmentation: copies of each sample in a batch (num_sample)
    # last: after the fixed epoch budget; best_val: best validation UF1; best_val_loss: lowest validation loss
    selection: Literal["last", "best_val", "best_val_loss"]
    patience: Annotated[Int, Field(ge=0)]  # best_val: stop after this many epochs without improvement (0: never)
    seed: Annotated[Int, Field(ge=0)]
    device: Literal["auto", "cpu", "cuda"]  # where a fold trains (engine/device.py decides what auto means)
    fold_batch: Literal["auto", "always", "never"]  # train all folds of a small model together (auto: measured)
    precision: Precision  # auto (bf16 where the GPU has it, fp32 on a CPU) | fp32 | tf32 | bf16
    staging: Literal["auto", "device", "host"]  # inputs kept on the GPU as uint8, or copied per batch
    compile: Bool  # torch.compile the model (one fold at a time; not the fold-batched path)

    def check(self, where: str) -> TrainConfig:
        """What the field types cannot say: the RandAugment spec parses (types and ranges: config.typed)."""
        augment.check(self.randaugment, self.erase, self.repeat, where)
        return self


def train_config(**overrides) -> TrainConfig:
    """configs/train.yaml's settings with `overrides`, checked like a recipe's (for code and tests that train
    without a loaded configuration)."""
    return config.typed(TrainConfig, {**config.shipped()["train"], **overrides}, "train").check("train")


def placement_for(cfg: TrainConfig, granted: tuple[str, ...] | None = None, share: float = 0.0) -> Placement:
    """Where a fold with these settings trains (engine/device.py); `granted`: its trial's GPUs from Ray."""
    return place(cfg.device, cfg.precision, granted, share)


class Inputs:
    """A model's inputs for every sample: cached uint8 arrays. On a CPU they become float tensors a batch at a
    time (or all at once, on first use, when small); on a GPU see `feed`."""

    def __init__(
        self, arrays: dict[str, np.ndarray], keep_bytes: int = 512 << 20, encoding: dict[str, str] | None = None
    ):
        self.arrays = arrays
        self.encoding = {k: (encoding or {}).get(k, "default") for k in arrays}  # models/inputs.py
        self.keep_bytes = keep_bytes
        self.count = len(next(iter(arrays.values())))
        self.nbytes = sum(a.size * a.itemsize for a in arrays.values())
        self._whole: dict | None = None
        self._feeds: dict = {}

    def __getstate__(self):  # sent to a Ray trial: the uint8 arrays only (a quarter of the floats' size)
        return {"arrays": self.arrays, "keep_bytes": self.keep_bytes, "encoding": self.encoding}

    def __setstate__(self, state):
        self.__init__(state["arrays"], state["keep_bytes"], state.get("encoding"))

    @property
    def whole(self) -> dict | None:
        if self._whole is None and self.nbytes * 4 <= self.keep_bytes:
            self._whole = {k: to_tensor(k, np.asarray(a), self.encoding[k]) for k, a in self.arrays.items()}
        return self._whole

    def get(self, rows: np.ndarray, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        rows = np.asarray(rows)
        if torch.device(device).type != "cpu":
            return self.feed(torch.device(device)).get(rows)
        if self.whole is not None:
            index = torch.from_numpy(rows)
            return {k: v[index].to(device) for k, v in self.whole.items()}
        return {k: to_tensor(k, np.asarray(a[rows]), self.encoding[k]).to(device) for k, a in self.arrays.items()}

    def feed(self, device: torch.device, staging: str = "auto", share: float = 0.0) -> Feed:
        """These inputs on `device`, made once per device (a trial's folds share one copy)."""
        key = (str(device), staging)
        if key not in self._feeds:
            self._feeds[key] = Feed(self, device, staging, share)
        return self._feeds[key]


class Feed:
    """Inputs where a fold trains. On a CPU: `Inputs.get`, unchanged. Elsewhere the uint8 arrays are staged
    on the device once (`staging: device`; auto when they take at most a quarter of the trial's share of
    the GPU's memory) and each batch is gathered and normalised there, or (`host`) gathered on the host and
    copied as uint8 from pinned memory without waiting; either way no step waits for the host."""

    def __init__(self, inputs: Inputs, device: torch.device, staging: str = "auto", share: float = 0.0):
        self.inputs, self.device = inputs, torch.device(device)
        if staging == "auto":
            staging = (
                "device" if self.device.type != "cuda" or inputs.nbytes <= _stage_budget(self.device, share) else "host"
            )
        self.staging = "host" if self.device.type == "cpu" else staging
        self.staged = (
            {k: to_device(np.asarray(a), self.device) for k, a in inputs.arrays.items()}
            if self.staging == "device"
            else None
        )

    def get(self, rows: np.ndarray, device=None) -> dict[str, torch.Tensor]:
        """The batch of `rows` (host positions) on the feed's device (`device` is the feed's own)."""
        if self.device.type == "cpu":
            return self.inputs.get(rows)
        if self.staged is not None:
            return self.get_index(to_device(np.asarray(rows, dtype=np.int64), self.device))
        return {
            k: normalise(k, to_device(np.asarray(a[np.asarray(rows)]), self.device), self.inputs.encoding[k])
            for k, a in self.inputs.arrays.items()
        }

    def get_index(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        """The batch of rows given as an index tensor already on the device (no copy from the host when
        staged; the host path has to bring the rows back to gather them)."""
        if self.staged is None:
            return self.get(index.cpu().numpy())
        return {k: normalise(k, v[index], self.inputs.encoding[k]) for k, v in self.staged.items()}


def _stage_budget(device: torch.device, share: float) -> float:
    total = torch.cuda.get_device_properties(device.index or 0).total_memory
    return 0.25 * total * (share if 0 < share < 1 else 1.0)


@dataclass
class FoldData:
    inputs: Inputs
    train: np.ndarray  # rows
    train_labels: np.ndarray
    val: np.ndarray
    val_labels: np.ndarray
    test: np.ndarray  # rows only: no labels


def flip(batch: dict[str, torch.Tensor], which, encoding: dict[str, str] | None = None) -> dict[str, torch.Tensor]:
    """Mirror the samples where `which` (a bool tensor or array, one per sample) is true; a flow image's u
    changes sign with it (models/inputs.mirror), in the encoding the model reads (`encoding`: kind -> name)."""
    device = next(iter(batch.values())).device
    which = (
        to_device(np.asarray(which), device) if not isinstance(which, torch.Tensor) or which.device != device else which
    )
    out = {}
    for kind, x in batch.items():
        mirrored = mirror(kind, x, (encoding or {}).get(kind, "default"))
        shape = (-1,) + (1,) * (x.ndim - 1)
        out[kind] = torch.where(which.view(shape), mirrored, x)
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
        last = parts.pop()  # popped first: `parts[-2] = ...parts.pop()` would overwrite the batch before that
        parts[-1] = np.concatenate([parts[-1], last])
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
    layers = (
        # nn.Module.__getattr__ types it Tensor | Module: a model's lr_layers() gives name -> (layer id, top id)
        cast("Callable[[], Callable[[str], tuple[int, int]]]", model.lr_layers)()
        if cfg.layer_decay < 1.0 and hasattr(model, "lr_layers")
        else None
    )
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


def make_optimizer(
    model: torch.nn.Module, cfg: TrainConfig, device: torch.device | None = None
) -> torch.optim.Optimizer:
    """torch.optim's optimiser of the recipe, fused (one kernel over every parameter, one pass over memory) on
    CUDA and on a CPU: on this 2-core CPU, with one thread, a whole step of Dual-Inception at batch 3, whose
    Adam state is 6.4 M weights, is 2.6x faster fused than with torch's default multi-tensor Adam; STSTNet's
    at batch 256 does not change (1.03x; tests/benchmarks/test_fold_batch_bench.py, test_fused_optimiser_step)."""
    groups = param_groups(model, cfg)
    fused = {"fused": True} if device is None or device.type in ("cuda", "cpu") else {}
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, **fused)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    # betas' length is not checked (TrainConfig.check): another than 2 fails in torch (IndexError, ValueError)
    return cls(groups, lr=cfg.lr, betas=tuple(cfg.betas), **fused)  # type: ignore[arg-type]


def predict(model: torch.nn.Module, inputs, rows: np.ndarray, device, batch_size: int = 256) -> np.ndarray:
    """Logits for `rows`, in eval mode (`inputs`: Inputs, or a Feed on the model's device)."""
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            out.append(model(inputs.get(rows[start : start + batch_size], device)).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, getattr(model, "num_classes", 0)), np.float32)


def val_uf1(model, data: FoldData, device, n_classes: int, inputs=None) -> float:
    logits = predict(model, inputs if inputs is not None else data.inputs, data.val, device)
    return scores(data.val_labels, logits.argmax(1), n_classes)["uf1"]


def val_loss(model, data: FoldData, device, inputs=None) -> float:
    """The mean cross-entropy over the validation rows, in eval mode (Keras's val_loss, unweighted)."""
    logits = predict(model, inputs if inputs is not None else data.inputs, data.val, device)
    return float(torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(data.val_labels).long()))


@dataclass
class FoldOutcome:
    logits: np.ndarray  # (test rows, classes)
    epochs: int  # epochs trained
    chosen_epoch: int  # the epoch whose model made the predictions (1-based; 0: given weights, not trained)
    audit: dict | None = None  # epoch -> predicted classes of the test rows (engine/audit.py), when audited
    state: dict | None = None  # the chosen model's weights (on the CPU), when asked to keep them


def audited(epoch: int, epochs: int, every: int) -> bool:
    """Whether the audit records the test predictions after `epoch` (1-based): every `every`, and the last."""
    return every > 0 and (epoch % every == 0 or epoch == epochs)


def cpu_state(model: torch.nn.Module) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


class NonFiniteLoss(UserError):
    """A fold's training loss became NaN or infinite: its predictions would mean nothing."""


class FoldTrainer:
    """One fold's model in training, an epoch at a time: `fit_predict` runs it to the end of its budget,
    tuning (hsta_bench/tuning/objective.py) steps several in lockstep and scores them after each epoch.

    Each trainer keeps its own copy of torch's global random stream (dropout, stochastic depth draw from
    it), so trainers stepped in turn give the same models as trained one after another. On a GPU nothing in
    a step waits for the host: inputs, training rows and labels live on the device, and a step's sample
    positions are copied there asynchronously.
    """

    def __init__(
        self, build, data: FoldData, cfg: TrainConfig, n_classes: int, seed: int, placement: Placement | None = None
    ):
        self.data, self.cfg, self.n_classes = data, cfg, n_classes
        self.placement = placement or placement_for(cfg)
        self.device = self.placement.torch_device
        torch.manual_seed(seed)
        self.model = build().to(self.device)
        self.forward = torch.compile(self.model) if cfg.compile else self.model
        self.optimizer = make_optimizer(self.model, cfg, self.device)
        self.generator = torch.Generator().manual_seed(seed)
        self.randaugment = augment.parse_randaugment(cfg.randaugment)
        self.feed = data.inputs.feed(self.device, cfg.staging, self.placement.gpu_share)
        self.on_cpu = self.device.type == "cpu"
        self.labels = torch.from_numpy(data.train_labels).long()
        if not self.on_cpu:  # the fold's rows and labels once on the device; a step sends its positions only
            self.labels = self.labels.to(self.device)
            self.rows = to_device(np.asarray(data.train, dtype=np.int64), self.device)
        per_epoch = len(batches(np.arange(len(data.train)), cfg.batch_size))
        self.total, self.warmup = cfg.epochs * per_epoch, cfg.warmup_epochs * per_epoch
        self.step = 0
        self.epoch = 0
        self._cuda = [self.device.index or 0] if self.device.type == "cuda" else []
        self._streams = self._read_streams()

    def _read_streams(self):
        return torch.get_rng_state(), [torch.cuda.get_rng_state(d) for d in self._cuda]

    def _batch(self, part: np.ndarray):
        if self.on_cpu:
            return self.feed.get(self.data.train[part]), self.labels[part]
        where = to_device(np.asarray(part, dtype=np.int64), self.device)
        if self.feed.staged is None:  # inputs gathered on the host: the rows are there already
            return self.feed.get(self.data.train[part]), self.labels[where]
        return self.feed.get_index(self.rows[where]), self.labels[where]

    def _augmented(self, batch: dict[str, torch.Tensor], labels: torch.Tensor):
        """The recipe's augmentations of a training batch: repeated copies, RandAugment, flips, erasing
        (engine/augment.py), in that order, drawn from this fold's generator."""
        cfg, encoding = self.cfg, self.data.inputs.encoding
        batch, labels = augment.repeat(batch, labels, cfg.repeat)
        if self.randaugment is not None:
            batch = augment.randaugment(batch, self.randaugment, self.generator, encoding)
        if cfg.augment:
            batch = flip(batch, torch.rand(len(labels), generator=self.generator) < 0.5, encoding)
        if cfg.erase > 0:
            batch = augment.erase(batch, cfg.erase, self.generator, encoding)
        return batch, labels

    def train_epoch(self) -> None:
        cfg, data = self.cfg, self.data
        with torch.random.fork_rng(devices=self._cuda), precision(self.placement):
            cpu, cuda = self._streams  # this trainer's stream in, the caller's back after
            torch.set_rng_state(cpu)
            for d, state in zip(self._cuda, cuda):
                torch.cuda.set_rng_state(state, d)
            self.model.train()
            order = epoch_order(data.train_labels, cfg.balanced, self.n_classes, self.generator)
            self.epoch_loss = torch.zeros((), device=self.device)  # summed where it is: no wait per step
            for part in batches(order, cfg.batch_size):
                factor = lr_factor(self.step, self.total, self.warmup, cfg)
                for group in self.optimizer.param_groups:
                    group["lr"] = cfg.lr * factor * group["lr_scale"]
                batch, labels = self._augmented(*self._batch(part))
                loss = torch.nn.functional.cross_entropy(self.forward(batch), labels)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                self.epoch_loss += loss.detach().float()
                self.step += 1
            self._streams = self._read_streams()
        self.epoch += 1

    def predict(self, rows: np.ndarray) -> np.ndarray:
        with precision(self.placement):
            return predict(self.model, self.feed, rows, self.device)

    def val_uf1(self) -> float:
        with precision(self.placement):
            return val_uf1(self.model, self.data, self.device, self.n_classes, self.feed)

    def val_score(self) -> float:
        """What `best_val` selection maximises: the validation UF1, or minus the validation loss."""
        if self.cfg.selection == "best_val_loss":
            with precision(self.placement):
                return -val_loss(self.model, self.data, self.device, self.feed)
        return self.val_uf1()


def fit_predict(
    build,
    data: FoldData,
    cfg: TrainConfig,
    n_classes: int,
    seed: int,
    placement: Placement | None = None,
    audit_every: int = 0,
    keep_state: bool = False,
) -> FoldOutcome:
    """Train a model from `build()` on the fold's training rows, choose it (last epoch, or the best on the
    validation rows), and return its logits on the test rows. `audit_every` > 0 also returns the test
    predictions every so many epochs (engine/audit.py): recorded, never looked at here; `keep_state` the
    chosen model's weights."""
    trainer = FoldTrainer(build, data, cfg, n_classes, seed, placement)
    use_val = cfg.selection != "last" and len(data.val) > 0
    best, best_state, best_epoch, since = -math.inf, None, cfg.epochs, 0
    audit: dict[int, np.ndarray] = {}
    for epoch in range(1, cfg.epochs + 1):
        trainer.train_epoch()
        if not torch.isfinite(trainer.epoch_loss):  # a model that diverged predicts nothing: say so, not a score
            raise NonFiniteLoss(
                f"training loss {trainer.epoch_loss.item()} in epoch {epoch} (not finite: the "
                "model diverged or its forward makes NaN; a lower train.lr may help)"
            )
        if audited(epoch, cfg.epochs, audit_every):  # eval-mode predictions: no random draw, no statistics move
            audit[epoch] = trainer.predict(data.test).argmax(1)
        if use_val:
            score = trainer.val_score()
            if score > best:  # strictly better, as Keras's ModelCheckpoint(save_best_only) keeps
                best, best_state, best_epoch, since = score, copy.deepcopy(trainer.model.state_dict()), epoch, 0
            else:
                since += 1
                if cfg.patience and since >= cfg.patience:
                    break
    if use_val and best_state is not None:
        trainer.model.load_state_dict(best_state)
    else:
        best_epoch = trainer.epoch
    return FoldOutcome(
        trainer.predict(data.test),
        trainer.epoch,
        best_epoch,
        audit if audit_every > 0 else None,
        cpu_state(trainer.model) if keep_state else None,
    )


def predict_given(build, data: FoldData, state_file, meta: dict, placement: Placement | None = None) -> FoldOutcome:
    """The test logits of a model from `build()` with the weights in `state_file` (engine/weights.py), untrained."""
    placement = placement or place("auto", "auto")
    model = build()
    load_into(model, state_file, meta)
    model = model.to(placement.torch_device)
    feed = data.inputs.feed(placement.torch_device)
    with precision(placement):
        logits = predict(model, feed, data.test, placement.torch_device)
    return FoldOutcome(logits, 0, 0)
