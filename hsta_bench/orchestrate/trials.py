"""Trials: the unit of work of a run, (model, dataset, protocol, fold group), and the code one trial runs.

The same `run_trial` runs in this process (`--in-process`), in a Ray Tune trial on the local machine, or on a
cluster node: it gets the evaluation's plan (through Ray's object store when dispatched) and the folds to
train, trains those without a fragment yet, and writes a fragment per fold as soon as it is trained.

How folds are grouped (`dispatch.fold_groups`): a model whose folds train fold-batched takes all of them in
one trial (one stacked computation); otherwise an evaluation is split into as many trials as can run at
once, so a single evaluation still fills the machine, and a lost trial costs only its unfinished folds.
"""

from __future__ import annotations

import fnmatch
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Literal

import torch
from pydantic import Field

from hsta_bench import config as config_mod
from hsta_bench.config import Bool, Float, Int
from hsta_bench.engine import audit, weights
from hsta_bench.engine.device import resolve_device, torch_threads
from hsta_bench.engine.evaluate import run_folds, use_fold_batch
from hsta_bench.engine.train import placement_for
from hsta_bench.errors import UserError
from hsta_bench.orchestrate import fragments


@dataclass(frozen=True)
class DispatchConfig:
    """configs/dispatch.yaml (every setting's default, and what each means)"""

    address: str | None
    num_cpus: Annotated[Int, Field(ge=1)] | None
    num_gpus: Annotated[Int, Field(ge=0)] | None
    storage: str | None
    cpus_per_trial: Annotated[Float, Field(gt=0)]
    gpus_per_trial: Float | Literal["auto"]  # a number: check_gpu_share
    fold_groups: Annotated[Int, Field(ge=1)] | Literal["auto"]
    max_failures: Annotated[Int, Field(ge=0)]
    reuse_workers: Bool
    ship_code: Bool


def dispatch_config(cfg: dict) -> DispatchConfig:
    d = config_mod.typed(DispatchConfig, cfg["dispatch"], "dispatch")
    if d.gpus_per_trial != "auto":
        check_gpu_share(d.gpus_per_trial, "dispatch.gpus_per_trial", zero=True, auto=True)
    return d


def pair_key(model: str, dataset: str) -> str:
    return f"{model}@{dataset}"


@dataclass(frozen=True)
class Trial:
    model: str
    dataset: str
    protocol: str
    group: int
    folds: tuple[int, ...]  # fold indices of the evaluation's plan
    cpus: float
    gpus: float

    @property
    def pair(self) -> str:
        return pair_key(self.model, self.dataset)

    @property
    def name(self) -> str:
        return f"{self.model}/{self.dataset}/{self.protocol}/g{self.group}"

    def describe(self, plan=None) -> str:
        names = [plan.folds[i].name for i in self.folds] if plan is not None else [str(i) for i in self.folds]
        span = names[0] if len(names) == 1 else f"{names[0]}..{names[-1]}"
        return f"{self.model} on {self.dataset}, folds {span} ({len(names)})"

    def as_config(self) -> dict:
        return {**asdict(self), "folds": list(self.folds)}

    @classmethod
    def from_config(cls, data: dict) -> Trial:
        return cls(**{**data, "folds": tuple(data["folds"])})


def check_gpu_share(value, where: str, zero: bool = False, auto: bool = False) -> float:
    """A number of GPUs a trial may ask Ray for: a fraction of one (trials share it), or whole GPUs."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or value < 0
        or (value == 0 and not zero)
        or (value > 1 and value != int(value))
    ):
        allowed = ("auto, " if auto else "") + ("0, " if zero else "")
        raise UserError(
            f"{where}={value!r}: expected {allowed}a fraction of one GPU (0.25: four trials share it) or "
            "a whole number of GPUs"
        )
    return float(value)


def resources(plan, d: DispatchConfig, cluster) -> tuple[float, float]:
    """(cpus, gpus) of one trial of `plan` on `cluster` (orchestrate/cluster.py). CPUs: the recipe's
    `resources.cpus_per_trial`, else dispatch's. GPUs: a number in dispatch.gpus_per_trial is every trial's;
    `auto` is the recipe's `resources.gpu_share` (a whole GPU where it gives none; 0: none) on a cluster with
    GPUs, and none on one without or for a recipe that trains on the CPU."""
    own = plan.recipe.resources
    unknown = set(own) - {"cpus_per_trial", "gpu_share"}
    if unknown:
        raise UserError(
            f"{plan.recipe.source}: unknown resources key(s) {', '.join(sorted(unknown))} "
            "(known: cpus_per_trial, gpu_share)"
        )
    cpus = float(own.get("cpus_per_trial", d.cpus_per_trial))
    if d.gpus_per_trial != "auto":
        return cpus, float(d.gpus_per_trial)
    if cluster.gpus <= 0 or plan.recipe.train.device == "cpu":
        return cpus, 0.0
    # a share of 0: this model's trials keep off the GPUs (they train on the CPU)
    return cpus, check_gpu_share(own.get("gpu_share", 1.0), f"{plan.recipe.source}: resources.gpu_share", zero=True)


def trial_device(plan, gpus: float, in_ray: bool) -> str:
    """Where a trial of `plan` with `gpus` will train, as the driver can foresee it: engine/device.py's own
    rule (which decides again in the trial, and records it) given the grant the trial will have in Ray, or
    this process's view outside Ray. A recipe that needs a GPU its trials will not get stops here, in one line."""
    if in_ray:
        return resolve_device(plan.recipe.train.device, ("0",) if gpus > 0 else (), cuda_available=True, visible="0")
    return resolve_device(plan.recipe.train.device)


def make_trials(plans: dict, d: DispatchConfig, cluster, in_ray: bool = True) -> list[Trial]:
    """The trials of a run on `cluster`: each plan's folds in `dispatch.fold_groups` contiguous groups (auto:
    as many as can run at once in Ray, one in this process; one when the folds train fold-batched where
    the trial will run)."""
    trials = []
    for plan in plans.values():
        n = len(plan.folds)
        cpus, gpus = resources(plan, d, cluster)
        slots = cluster.require(cpus, gpus, plan.model) if in_ray else 1
        if use_fold_batch(plan, trial_device(plan, gpus, in_ray)):
            groups = 1
        elif d.fold_groups == "auto":
            groups = max(1, slots)
        else:
            assert isinstance(d.fold_groups, int)  # dispatch_config refuses anything but auto or a whole number
            groups = d.fold_groups
        groups = min(groups, n)
        for g in range(groups):
            indices = tuple(range(g * n // groups, (g + 1) * n // groups))
            trials.append(Trial(plan.model, plan.dataset, plan.protocol, g, indices, cpus, gpus))
    return trials


def folds_done(trials: list[Trial], root: Path) -> dict[str, int]:
    """How many of each trial's folds have their fragment on disk (each evaluation's folder listed once)."""
    finished = {}
    for t in trials:
        key = (t.model, t.dataset, t.protocol)
        if key not in finished:
            finished[key] = fragments.finished(root, *key)
    return {t.name: len(set(t.folds) & finished[(t.model, t.dataset, t.protocol)]) for t in trials}


def run_trial(trial: Trial, plan, root: Path, report=None, granted: tuple[str, ...] | None = None) -> dict:
    """Train the folds of `trial` that have no fragment in `root`, writing each fragment as soon as its
    fold is trained; `report(folds_done, folds_total)` after each. `granted`: the GPU ids Ray gave this
    trial (None outside Ray): the folds train where those put them (engine/device.py). Returns what it did.
    Torch uses the trial's CPUs as threads while it trains, and the caller's count again after: an in-process
    run leaves its process as it found it."""
    with torch_threads(trial.cpus):
        return _train_trial(trial, plan, root, report, granted)


def _train_trial(trial: Trial, plan, root: Path, report, granted: tuple[str, ...] | None) -> dict:
    started = time.perf_counter()
    placement = placement_for(plan.recipe.train, granted, trial.gpus)
    done = fragments.finished(root, trial.model, trial.dataset, trial.protocol)
    todo = [i for i in trial.folds if i not in done]
    total, finished = len(trial.folds), len(trial.folds) - len(todo)
    if report:
        report(finished, total)
    if todo:
        _wait_for_company(trial, root)
    try:
        if todo and use_fold_batch(plan, placement.device):
            whole = run_folds(plan, todo, placement=placement)
            for index, part in zip(todo, whole.per_fold([plan.folds[i] for i in todo])):
                _keep(root, plan, index, part)
            finished = total
            if report:
                report(finished, total)
        else:
            for n, index in enumerate(todo):
                if n == min(1, len(todo) - 1):
                    _injected_fault(trial, root)
                _keep(root, plan, index, run_folds(plan, [index], placement=placement))
                finished += 1
                if report:
                    report(finished, total)
    except torch.OutOfMemoryError as exc:  # one line naming what to change, not the allocator's dump
        raise RuntimeError(
            f"{trial.name}: out of memory on {placement.describe()} with {trial.gpus:g} GPU per trial "
            f"(batch {plan.recipe.train.batch_size}): raise the recipe's resources.gpu_share "
            f"({plan.recipe.source}) or lower train.batch_size"
        ) from exc
    return {
        "trained": len(todo),
        "skipped": total - len(todo),
        "seconds": time.perf_counter() - started,
        "placement": placement.record(),
    }


def _keep(root: Path, plan, index: int, part) -> None:
    """A trained fold on disk: its audit and weights first, its fragment last, since a fragment on disk is
    what marks the fold done (a resumed run retrains a fold whose fragment is missing, never one with it)."""
    fold = plan.folds[index].name
    if fold in part.audit:
        audit.write(root, plan, index, part.audit[fold])
    if fold in part.states:
        meta = {
            "model": plan.model,
            "dataset": plan.dataset,
            "protocol": plan.protocol,
            "fold": fold,
            "classes": list(plan.classes),
            "config_key": plan.key(),
        }
        weights.save(
            weights.folder(root, plan.model, plan.dataset, plan.protocol) / f"{fold}.pth", part.states[fold], meta
        )
    fragments.write(root, plan, index, part)


def _wait_for_company(trial: Trial, root: Path) -> None:
    """Test instrumentation, as HSTA_BENCH_FAULTS: with HSTA_BENCH_TRIALS_AT_ONCE="N" (or "N:SECONDS"), a trial
    about to train waits until N trials of the run are there together (a file each in <root>/.at-once/), and
    fails after SECONDS (default 120) if they are not, taking its file away (a trial that gave up is not
    there for those after it). Trials that wait hold what Ray granted them, so a run that finishes under it
    ran N trials at once: what a placement test needs to show beside "never more than the capacity", which
    trials run one at a time would also satisfy."""
    spec = os.environ.get("HSTA_BENCH_TRIALS_AT_ONCE")
    if not spec:
        return
    wanted, _, seconds = spec.partition(":")
    folder = Path(root) / ".at-once"
    folder.mkdir(parents=True, exist_ok=True)
    mine = folder / trial.name.replace("/", "_")
    mine.touch()
    deadline = time.monotonic() + float(seconds or 120)
    while (here := len(list(folder.iterdir()))) < int(wanted):
        if time.monotonic() > deadline:
            mine.unlink(missing_ok=True)
            raise RuntimeError(
                f"{trial.name}: {here} of {wanted} trials running at once after {seconds or 120} s "
                "(HSTA_BENCH_TRIALS_AT_ONCE)"
            )
        time.sleep(0.05)


def _injected_fault(trial: Trial, root: Path) -> None:
    """Fault injection, to test retries, failure reports and resume end to end: with
    HSTA_BENCH_FAULTS="GLOB=N", a trial whose name (model/dataset/protocol/gN) matches GLOB fails its first
    N attempts, each after training one fold when it has more than one left (counted in <root>/.faults/)."""
    spec = os.environ.get("HSTA_BENCH_FAULTS")
    if not spec:
        return
    pattern, _, times = spec.rpartition("=")
    if not fnmatch.fnmatch(trial.name, pattern):
        return
    counter = Path(root) / ".faults" / trial.name.replace("/", "_")
    counter.parent.mkdir(parents=True, exist_ok=True)
    seen = int(counter.read_text()) if counter.is_file() else 0
    if seen < int(times):
        counter.write_text(str(seen + 1))
        raise RuntimeError(f"injected fault {seen + 1} of {times} in {trial.name} (HSTA_BENCH_FAULTS)")
