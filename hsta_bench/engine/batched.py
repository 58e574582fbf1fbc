"""Fold-batched training: the models of many folds trained together, as one computation.

Small models (STSTNet: 1,683 parameters) leave a CPU idle: a step on one fold's batch is mostly
overhead. Here the folds' models are stacked (torch.func.stack_module_state) and run with
torch.func.vmap, so one step trains every fold on its own batch. It is the same computation as training
the folds one by one:
- each fold keeps its own parameters, initialisation (seeded per fold, as in train.fit_predict), sample
  order and batch sizes; folds whose epochs have fewer batches sit out the extra steps;
- batches are padded to the largest fold's batch, and padded samples are masked out of the loss and of
  batch-norm statistics (MaskedBatchNorm), so they change nothing;
- the optimiser (Adam / AdamW / SGD) is element-wise, applied per fold with per-fold step counts and
  learning rates.
What differs: dropout masks come from one random stream for all folds, not from each fold's own, so
with dropout the predictions agree in distribution, not bit for bit; without dropout, with SGD, they
agree to float rounding (tested). With Adam they can part further: Adam divides every gradient by its
own running size, so a gradient that is zero up to rounding (STSTNet's conv biases: ~1e-8) becomes a
full-size step whose sign is the rounding's; the optimiser's arithmetic itself matches torch.optim
(tested).
On a CPU this is slower than the plain loop (STSTNet at batch 256: the plain step is already bound by
per-element work, not overhead; see tests/benchmarks/test_fold_batch_bench.py), so `fold_batch: auto`
uses it on CUDA only.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from hsta_bench.engine.train import FoldData, FoldOutcome, TrainConfig, batches, device_for, epoch_order, flip, lr_factor


class MaskedBatchNorm(nn.Module):
    """Batch norm whose training statistics skip padded samples (mask from `self.holder`)."""

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm, holder: dict):
        super().__init__()
        self.eps, self.momentum = bn.eps, bn.momentum
        self.weight, self.bias = bn.weight, bn.bias
        self.register_buffer("running_mean", bn.running_mean.clone())
        self.register_buffer("running_var", bn.running_var.clone())
        self.holder = holder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.ndim - 2)
        if self.training:
            mask = self.holder["mask"].to(x.dtype).view((-1,) + (1,) * (x.ndim - 1))
            dims = [0] + list(range(2, x.ndim))
            count = mask.sum() * (x[0, 0].numel())
            used = count > 0  # a fold sitting out this step: its statistics stay as they are
            count = count.clamp(min=2)
            mean = (x * mask).sum(dims) / count
            var = (((x - mean.view(shape)) ** 2) * mask).sum(dims) / count
            with torch.no_grad():
                unbiased = var * count / (count - 1)
                self.running_mean.copy_(torch.where(used, (1 - self.momentum) * self.running_mean + self.momentum * mean,
                                                    self.running_mean))
                self.running_var.copy_(torch.where(used, (1 - self.momentum) * self.running_var + self.momentum * unbiased,
                                                   self.running_var))
        else:
            mean, var = self.running_mean, self.running_var
        x = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        return x * self.weight.view(shape) + self.bias.view(shape)


class MatmulConv2d(nn.Module):
    """A 2-D convolution as unfold + matrix product: under vmap it becomes one batched matrix product
    over the folds, where vmap's rule for conv2d (a grouped convolution) is slow on CPU."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        if conv.groups != 1 or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError("MatmulConv2d: only plain zero-padded convolutions")
        self.weight, self.bias = conv.weight, conv.bias
        self.kernel_size, self.stride, self.padding, self.dilation = conv.kernel_size, conv.stride, conv.padding, conv.dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        cols = torch.nn.functional.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)
        out = self.weight.flatten(1) @ cols  # (out, c*k*k) @ (n, c*k*k, L) -> (n, out, L)
        if self.bias is not None:
            out = out + self.bias.view(1, -1, 1)
        side = [(size + 2 * p - d * (k - 1) - 1) // s + 1 for size, p, d, k, s in
                zip((h, w), self.padding, self.dilation, self.kernel_size, self.stride)]
        return out.view(n, -1, *side)


def _masked(model: nn.Module, holder: dict) -> nn.Module:
    """The same model with batch norm masked and convolutions as matrix products (same parameters)."""
    for name, child in model.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(model, name, MaskedBatchNorm(child, holder))
        elif type(child) is nn.Conv2d:
            setattr(model, name, MatmulConv2d(child))
        else:
            _masked(child, holder)
    return model


class StackedOptimizer:
    """Adam, AdamW or SGD with momentum over stacked parameters (fold first), stepping only the folds
    marked active, each with its own step count and learning rate, as torch.optim would per fold."""

    def __init__(self, params: dict[str, torch.Tensor], cfg: TrainConfig, decay: dict[str, float]):
        self.params, self.cfg, self.decay = params, cfg, decay
        self.m = {k: torch.zeros_like(p) for k, p in params.items()}
        self.v = {k: torch.zeros_like(p) for k, p in params.items()}
        folds = next(iter(params.values())).shape[0]
        self.steps = torch.zeros(folds, dtype=torch.float64)

    @torch.no_grad()
    def step(self, active: torch.Tensor, lr: torch.Tensor) -> None:
        cfg = self.cfg
        self.steps += active.double()
        b1, b2 = cfg.betas
        t = self.steps.clamp(min=1)
        for name, p in self.params.items():
            if p.grad is None:
                continue
            view = (-1,) + (1,) * (p.ndim - 1)
            on = active.view(view)
            lr_p = lr.to(p.dtype).view(view)
            g = p.grad
            wd = self.decay[name]
            if cfg.optimizer == "sgd":
                if wd:
                    g = g + wd * p
                new_m = torch.where(self.steps.view(view) > 1, cfg.momentum * self.m[name] + g, g)
                self.m[name] = torch.where(on, new_m, self.m[name])
                p.sub_(torch.where(on, lr_p * self.m[name], torch.zeros_like(p)))
                continue
            if cfg.optimizer == "adamw" and wd:
                p.mul_(torch.where(on, 1 - lr_p * wd, torch.ones_like(lr_p)))
            elif wd:
                g = g + wd * p
            self.m[name] = torch.where(on, b1 * self.m[name] + (1 - b1) * g, self.m[name])
            self.v[name] = torch.where(on, b2 * self.v[name] + (1 - b2) * g * g, self.v[name])
            c1 = (1 - b1 ** t).to(p.dtype).view(view)
            c2 = (1 - b2 ** t).to(p.dtype).view(view)
            update = (lr_p / c1) * self.m[name] / (self.v[name].sqrt() / c2.sqrt() + 1e-8)
            p.sub_(torch.where(on, update, torch.zeros_like(p)))


def fit_predict_folds(build, folds: list[FoldData], cfg: TrainConfig, n_classes: int, seeds: list[int],
                      progress=None) -> list[FoldOutcome]:
    """Train one model per fold, all together; the same contract as train.fit_predict per fold.
    Model selection is the fixed epoch budget (selection=last)."""
    from torch.func import functional_call, stack_module_state, vmap

    device = device_for(cfg)
    models = []
    for seed in seeds:  # each fold's initialisation from its own seed, as fit_predict does
        torch.manual_seed(seed)
        models.append(build())
    holder: dict = {}
    base = _masked(copy.deepcopy(models[0]), holder).to("meta")
    masked = [_masked(m, holder) for m in models]
    params, buffers = stack_module_state(masked)
    params = {k: v.to(device).detach().requires_grad_(True) for k, v in params.items()}
    buffers = {k: v.to(device) for k, v in buffers.items()}
    names = dict(masked[0].named_parameters())
    decay = {k: (0.0 if (names[k].ndim <= 1 or "token" in k) else cfg.weight_decay) for k in params}
    optimizer = StackedOptimizer(params, cfg, decay)
    F = len(folds)

    def forward(p, b, x, mask):
        holder["mask"] = mask
        return functional_call(base, (p, b), (x,))

    def fold_loss(p, b, x, y, mask):
        logits = forward(p, b, x, mask)
        losses = torch.nn.functional.cross_entropy(logits, y, reduction="none")
        return (losses * mask).sum() / mask.sum().clamp(min=1)

    batched_loss = vmap(fold_loss, in_dims=(0, 0, 0, 0, 0), randomness="different")
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    per_epoch = [len(batches(np.arange(len(f.train)), cfg.batch_size)) for f in folds]
    totals = [cfg.epochs * n for n in per_epoch]
    warmups = [cfg.warmup_epochs * n for n in per_epoch]
    steps = [0] * F
    labels = [torch.from_numpy(f.train_labels).long() for f in folds]
    base.train()
    for epoch in range(cfg.epochs):
        plans = [batches(epoch_order(f.train_labels, cfg.balanced, n_classes, g), cfg.batch_size)
                 for f, g in zip(folds, generators)]
        for i in range(max(len(p) for p in plans)):
            parts = [p[i] if i < len(p) else None for p in plans]
            width = max(len(q) for q in parts if q is not None)
            xs, ys, masks = [], [], []
            for fold, part, lab, gen in zip(folds, parts, labels, generators):
                n = 0 if part is None else len(part)
                rows = fold.train[part] if n else fold.train[:1]
                batch = fold.inputs.get(np.resize(rows, width), device)
                if cfg.augment and n:
                    batch = flip(batch, torch.cat([torch.rand(n, generator=gen) < 0.5, torch.zeros(width - n, dtype=torch.bool)]))
                xs.append(batch)
                ys.append(torch.from_numpy(np.resize(lab[part].numpy() if n else np.zeros(1, int), width)).long())
                masks.append(torch.arange(width) < n)
            x = {k: torch.stack([b[k] for b in xs]) for k in xs[0]}
            y = torch.stack(ys).to(device)
            mask = torch.stack(masks).to(device).float()
            active = torch.tensor([q is not None for q in parts])
            lr = torch.tensor([cfg.lr * lr_factor(steps[j], totals[j], warmups[j], cfg) for j in range(F)])
            for p in params.values():
                p.grad = None
            batched_loss(params, buffers, x, y, mask).sum().backward()
            optimizer.step(active.to(device), lr.to(device))
            for j in range(F):
                steps[j] += int(active[j])
        if progress is not None:
            progress(epoch + 1, cfg.epochs)
    base.eval()
    predict = vmap(lambda p, b, x: functional_call(base, (p, b), (x,)), in_dims=(0, 0, 0))
    width = max(len(f.test) for f in folds)
    with torch.no_grad():
        x = [f.inputs.get(np.resize(f.test, width), device) for f in folds]
        logits = predict(params, buffers, {k: torch.stack([b[k] for b in x]) for k in x[0]}).float().cpu().numpy()
    return [FoldOutcome(logits[j, : len(f.test)], cfg.epochs, cfg.epochs) for j, f in enumerate(folds)]
