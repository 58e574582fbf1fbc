"""What a run or a tune will ask of a cluster, without training: `hsta-bench run --dry-run`, `tune --dry-run`.

    compute    FLOPs of the model's own training step per sample (torch's FLOP counter over one forward +
               cross-entropy + backward at the recipe's input size, counted on the meta device, so the
               paper-size HSTA costs nothing; an AdamW update adds no counted FLOPs), x the training
               samples of every fold x epochs, plus the test predictions (and the validation predictions a
               best_val or best_val_loss recipe makes each epoch)
    trials     the trials `hsta-bench run` would make on the cluster (orchestrate/trials.py), their resources
               and how many of each shape the cluster runs at once
    wall time  per trial: compute / (the device's peak x an assumed utilisation x the trial's share of a GPU),
               never less than its steps x a per-step overhead; the whole run: every trial packed onto the
               cluster's nodes, longest first (greedy list scheduling)

The hardware numbers are data, with where each comes from: configs/estimate.yaml. The estimates are what
the settings and those numbers imply, not a measurement: `hsta-bench profile` measures.
"""

from __future__ import annotations

import heapq
import json
import math
import os
import re
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
from pydantic import Field
from torch.utils.flop_counter import FlopCounterMode

from hsta_bench import config as config_mod
from hsta_bench.config import Bool, Float
from hsta_bench.engine.device import choose_precision
from hsta_bench.engine.evaluate import plan, use_fold_batch
from hsta_bench.engine.train import Inputs
from hsta_bench.errors import UserError
from hsta_bench.models import count_parameters, create_model
from hsta_bench.models.attention import set_backend
from hsta_bench.orchestrate import calibrate
from hsta_bench.orchestrate.cluster import Cluster
from hsta_bench.orchestrate.trials import dispatch_config, make_trials, pair_key, resources, trial_device
from hsta_bench.tuning import nested

PREDICT_BATCH = 256  # engine/train.predict's batch: the steps test and validation predictions take
THIS_MACHINE = "this machine"  # a dry run planning for the machine it runs on times its CPU trials (calibrate.py)


@dataclass(frozen=True)
class MeasureConfig:
    """configs/estimate.yaml `measure`: CPU trials' steps timed on this machine (orchestrate/calibrate.py)."""

    cpu: Bool  # time them (false: the FLOP estimate for every trial)
    max_step_s: Annotated[Float, Field(gt=0)]  # not a model whose FLOP-estimated step is longer than this
    contention: Annotated[Float, Field(ge=1)]  # a measured step's slow-down with the machine's cores all busy


@dataclass(frozen=True)
class EstimateConfig:
    """configs/estimate.yaml"""

    gpus: dict[str, dict[str, Annotated[Float, Field(gt=0)]]]  # name -> bf16, tf32, fp32 peak TFLOP/s
    default_gpu: str
    utilisation: dict[str, Annotated[Float, Field(gt=0, le=1)]]  # gpu, cpu
    step_overhead_s: dict[str, Annotated[Float, Field(ge=0)]]  # gpu, cpu
    cpu_gflops_per_core: Annotated[Float, Field(gt=0)]
    measure: MeasureConfig


def estimate_config(cfg: dict) -> EstimateConfig:
    """The estimate section, typed and checked (one line naming the setting that is wrong)."""
    e = config_mod.typed(EstimateConfig, cfg["estimate"], "estimate")
    for name, peaks in e.gpus.items():
        if set(peaks) != {"bf16", "tf32", "fp32"}:
            raise UserError(f"estimate.gpus.{name}: expected bf16, tf32 and fp32 peak TFLOP/s (got {peaks!r})")
    if e.default_gpu not in e.gpus:
        raise UserError(f"estimate.default_gpu: not one of estimate.gpus ({', '.join(e.gpus)}) (got {e.default_gpu!r})")
    for key, values in (("utilisation", e.utilisation), ("step_overhead_s", e.step_overhead_s)):
        if set(values) != {"gpu", "cpu"}:
            raise UserError(f"estimate.{key}: expected gpu and cpu (got {values!r})")
    return e


# ---- FLOPs -------------------------------------------------------------------------------------------------


def weightless():
    """Models built in this block are made on the meta device (shapes, no data), so neither memory nor
    initialisation is spent on them (hsta_base_224: 82 M parameters, seconds of random init). What is built
    here can be measured on meta, not trained."""
    return torch.device("meta")


@dataclass(frozen=True)
class ModelFlops:
    model: str
    classes: int
    train: float  # FLOPs of one training sample: forward + backward (the optimiser's element-wise work: none counted)
    inference: float  # FLOPs of one prediction: forward in eval mode
    parameters: int


_FLOPS: dict[tuple, ModelFlops] = {}


def model_flops(model: str, classes: int, overrides: dict, batch: int) -> ModelFlops:
    """Per-sample FLOPs of `model` built with `overrides` (the recipe's input size), counted at `batch` on the
    meta device with the written-out attention in fp32, as `hsta-bench profile` counts them: the dense work
    (matrix products, convolutions), the same whichever attention kernel or precision runs it (torch's
    counter sees no fused CPU attention kernel, the written-out one it sees whole). Cached per process."""
    key = (model, classes, json.dumps(overrides, sort_keys=True, default=str), batch)
    if key not in _FLOPS:
        with weightless():
            net = create_model(model, classes, **overrides)
        net = net.to("meta")  # the buffers too
        set_backend(net, "naive")
        inputs = {kind: torch.empty(batch, *shape, device="meta") for kind, shape in net.inputs.items()}
        _FLOPS[key] = ModelFlops(
            model,
            classes,
            _step_flops(net, inputs, True) / batch,
            _step_flops(net, inputs, False) / batch,
            count_parameters(net),
        )
    return _FLOPS[key]


def _step_flops(net, inputs: dict, train: bool) -> int:
    """torch's FLOP count of one training step (forward, cross-entropy, backward; train mode) or one
    prediction (forward without gradients, eval mode) on `inputs`. The optimiser's update is element-wise
    work, which the counter does not count (a step with AdamW counts the same, tested): left out, as it
    would add nothing but time."""
    batch = next(iter(inputs.values())).shape[0]
    with FlopCounterMode(display=False) as counter:
        if train:
            net.train()
            target = torch.arange(batch, device="meta") % net.num_classes
            torch.nn.functional.cross_entropy(net(inputs), target).backward()
        else:
            net.eval()
            with torch.no_grad():
                net(inputs)
    return counter.get_total_flops()


def plans(pairs: list[tuple[str, str]], cfg: dict, preset: str, announce=None) -> dict:
    """The plans of a dry run: labels and checked folds from the data layer, nothing preprocessed
    (evaluate.plan with prepare=False), by pair key as `hsta-bench run` keys them."""
    out = {}
    with weightless():  # plan() builds each model once to read its inputs
        for model, dataset in pairs:
            out[pair_key(model, dataset)] = plan(model, dataset, cfg, preset, announce, prepare=False)
    return out


# ---- devices and the cluster -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Device:
    """What a trial computes on, as the estimate sees it."""

    kind: str  # gpu | cpu
    name: str  # H200, ... or CPU
    precision: str  # bf16 | tf32 | fp32
    flops_per_s: float  # the trial's effective throughput: peak x utilisation x its share
    step_seconds: float  # a step's overhead floor
    # a training step, a prediction batch and a fold's start, timed here (seconds)
    measured: tuple[float, float, float] | None = None

    def describe(self) -> str:
        return f"{self.name} {self.precision}" + (", steps timed here" if self.measured else "")


def _tokens(name: str) -> list[str]:
    return re.findall(r"[A-Z0-9]+", name.upper())


def gpu_model(name: str | None, e: EstimateConfig) -> str | None:
    """The entry of estimate.gpus that `name` (--cluster gpu=, Ray's accelerator_type, torch's device name)
    names: its words appear in the name in order ("NVIDIA A100-SXM4-80GB" is A100; "L40" is not "L4")."""
    if not name:
        return None
    words = _tokens(name)
    for key in sorted(e.gpus, key=lambda k: -len(_tokens(k))):
        want = _tokens(key)
        if any(words[i : i + len(want)] == want for i in range(len(words))):
            return key
    return None


def cluster_gpu(cluster, e: EstimateConfig) -> tuple[str, list[str]]:
    """The GPU the estimate assumes for the cluster's GPU trials, and notes on what it had to assume: the
    slowest (bf16) of the nodes' GPUs, estimate.default_gpu for a node whose GPU it does not know."""
    notes, found = [], set()
    for node in cluster.nodes:
        if node.gpus <= 0:
            continue
        known = gpu_model(node.gpu_type, e)
        if known is None:
            note = (
                f"GPU {node.gpu_type!r} is not in estimate.gpus (configs/estimate.yaml): estimated as "
                f"estimate.default_gpu, {e.default_gpu}"
                if node.gpu_type
                else f"GPUs of unknown type: estimated as estimate.default_gpu, {e.default_gpu} (name them with "
                "--cluster ...,gpu=NAME)"
            )
            if note not in notes:
                notes.append(note)
        found.add(known or e.default_gpu)
    if not found:
        return e.default_gpu, notes
    slowest = min(found, key=lambda g: e.gpus[g]["bf16"])
    if len(found) > 1:
        notes.append(
            f"GPUs of several kinds ({', '.join(sorted(found))}): every GPU trial estimated on the slowest, {slowest}"
        )
    return slowest, notes


def device(train, cpus: float, gpus: float, on_gpu: bool, gpu: str, e: EstimateConfig) -> Device:
    """The device of a trial with (cpus, gpus) whose recipe trains with `train` (engine/train.TrainConfig).
    Precision as engine/device.py resolves it: auto is bf16 on a GPU (every GPU of estimate.gpus has it),
    fp32 on a CPU. A trial holding a fraction of a GPU shares it with other trials, so it gets that fraction
    of the throughput; one holding several trains on the first (engine/device.py), so it gets one GPU's."""
    if on_gpu:
        precision = choose_precision(train.precision, "cuda")
        rate = e.gpus[gpu][precision] * 1e12 * e.utilisation["gpu"] * min(gpus, 1.0)
        return Device("gpu", gpu, precision, rate, e.step_overhead_s["gpu"])
    precision = choose_precision(train.precision, "cpu")  # bf16 on a CPU is autocast: no faster
    rate = e.cpu_gflops_per_core * 1e9 * max(1, int(cpus)) * e.utilisation["cpu"]
    return Device("cpu", "CPU", precision, rate, e.step_overhead_s["cpu"])


def dry_run_cluster(spec: str | None, address: str | None, d) -> tuple[object, str]:
    """The cluster a dry run plans for, and what it is: `spec` (--cluster, per node); else the Ray cluster
    at `address` (--address, RAY_ADDRESS, dispatch.address), joined only to read its nodes; else this
    machine as a run's local Ray instance would see it (dispatch.num_cpus, dispatch.num_gpus)."""
    if spec is not None:
        return Cluster.parse(spec), "--cluster"
    address = address or d.address or os.environ.get("RAY_ADDRESS")
    if address:
        return _ray_cluster(address, d), f"the Ray cluster at {address}"
    cluster = Cluster.local(d.num_cpus)
    if d.num_gpus is not None:
        cluster = Cluster(tuple(replace(n, gpus=float(d.num_gpus)) for n in cluster.nodes))
    return cluster, THIS_MACHINE


def _ray_cluster(address: str, d):
    """The nodes of the Ray cluster at `address`: joined as a run joins it (token authentication, one line
    when it cannot), without shipping code, its log in a temporary folder, and left at once."""
    # Ray only here: a dry run joins Ray only where it is given a cluster's address
    from hsta_bench.orchestrate.ray_tune import Session  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="hsta-bench-dry-run-") as logs:
        session = Session(address, replace(d, ship_code=False), Path(logs))
        try:
            return session.cluster()
        finally:
            session.close()


# ---- work and time -----------------------------------------------------------------------------------------


@dataclass
class Work:
    """What a trial (or a fold) computes: FLOPs worth counting, FLOPs executed (padded batches of
    fold-batched training included), and steps (each at least a step's overhead)."""

    flops: float = 0.0
    executed: float = 0.0
    steps: int = 0
    predict_steps: int = 0  # of `steps`, the prediction batches
    folds: int = 0  # folds started (each builds its model: a timed start, where steps are timed)

    def __iadd__(self, other: Work) -> Work:
        self.folds += other.folds
        self.flops += other.flops
        self.executed += other.executed
        self.steps += other.steps
        self.predict_steps += other.predict_steps
        return self

    def seconds(self, dev: Device) -> float:
        if dev.measured is not None:
            train, predict, start = dev.measured
            return (self.steps - self.predict_steps) * train + self.predict_steps * predict + self.folds * start
        return max(self.executed / dev.flops_per_s, self.steps * dev.step_seconds)


def _steps(n: int, batch: int) -> int:
    """Batches of an epoch of `n` samples (engine/train.batches: a last batch of one joins the one before)."""
    steps = math.ceil(n / batch)
    return steps - 1 if steps > 1 and n - (steps - 1) * batch == 1 else steps


def fold_work(
    n_train: int, n_val: int, n_test: int, train, flops: ModelFlops, val_each_epoch: bool, audits: int = 0
) -> Work:
    """One fold trained for its whole epoch budget (an upper bound where `patience` may stop it early), with
    its validation predictions each epoch when its recipe selects on them, then its test predictions (and
    `audits` more of them: a --audit run's, engine/audit.py)."""
    epochs = train.epochs
    w = Work(n_train * epochs * flops.train, 0.0, epochs * _steps(n_train, train.batch_size), folds=1)
    if val_each_epoch and n_val:
        w.flops += n_val * epochs * flops.inference
        w.predict_steps += epochs * math.ceil(n_val / PREDICT_BATCH)
    w.flops += (1 + audits) * n_test * flops.inference
    w.predict_steps += (1 + audits) * math.ceil(n_test / PREDICT_BATCH)
    w.steps += w.predict_steps
    w.executed = w.flops
    return w


def stacked_work(folds: list, train, flops: ModelFlops) -> Work:
    """The folds of a fold-batched trial (engine/batched.py): one stacked step per batch index, every fold's
    batch padded to the widest, so it executes (folds x the largest fold) samples per epoch, and as many
    steps as the largest fold has batches; then one stacked prediction."""
    sizes = [len(f.train) for f in folds]
    tests = [len(f.test) for f in folds]
    epochs = train.epochs
    useful = sum(sizes) * epochs * flops.train + sum(tests) * flops.inference
    executed = len(folds) * (max(sizes) * epochs * flops.train + max(tests) * flops.inference)
    return Work(useful, executed, epochs * max(_steps(n, train.batch_size) for n in sizes) + 1)


def _flops_of(plan, recipe) -> ModelFlops:
    return model_flops(plan.model, len(plan.classes), recipe.overrides, recipe.train.batch_size)


def trial_work(plan, trial, stacked: bool) -> Work:
    """What one trial of `plan` computes: its folds one after another, or stacked."""
    folds = [plan.folds[i] for i in trial.folds]
    if stacked:
        return stacked_work(folds, plan.recipe.train, _flops_of(plan, plan.recipe))
    total = Work()
    for f in folds:
        r = plan.recipe_of(f.index)
        audits = r.train.epochs // plan.audit_every if plan.audit_every else 0
        total += fold_work(
            len(f.train), len(f.val), len(f.test), r.train, _flops_of(plan, r), r.train.selection != "last", audits
        )
    return total


def schedule(jobs: list[tuple[float, float, float]], cluster) -> float:
    """Seconds until every job (seconds, cpus, gpus) is done on `cluster`: longest first, each started on
    the first node with the CPUs and GPU capacity free (a fraction of a GPU packs onto one GPU, as Ray packs
    it), as soon as one is (greedy list scheduling: within 4/3 of the best packing for identical slots).
    Ray Tune starts trials in the order it makes them, so a real run may take longer."""
    free = [[n.cpus, [1.0] * math.floor(n.gpus + 1e-9)] for n in cluster.nodes]
    pending = sorted(jobs, key=lambda j: -j[0])
    running: list = []  # (end, order, node, cpus, [(gpu, share), ...])
    now, order = 0.0, 0
    while pending:
        waiting, blocked = [], set()
        for job in pending:
            # a shape that did not fit will not fit again before something ends: many trials share a shape
            taken = None if job[1:] in blocked else _place(free, job[1], job[2])
            if taken is None:
                blocked.add(job[1:])
                waiting.append(job)
                continue
            node, gpus = taken
            heapq.heappush(running, (now + job[0], order, node, job[1], gpus))
            order += 1
        pending = waiting
        if pending:
            if not running:
                seconds, cpus, gpus = pending[0]
                raise UserError(f"dry run: a trial of {cpus:g} CPU(s) and {gpus:g} GPU(s) fits no node of the cluster")
            now = _release(free, running)
    end = now
    while running:
        end = _release(free, running)
    return end


def _place(free: list, cpus: float, gpus: float):
    """Take (cpus, gpus) on the first node that has them free: (node, [(gpu index, share), ...]), or None."""
    for index, (cpu_free, gpu_free) in enumerate(free):
        if cpu_free + 1e-9 < cpus:
            continue
        if gpus <= 0:
            taken = []
        elif gpus < 1:
            first = next((g for g, left in enumerate(gpu_free) if left + 1e-9 >= gpus), None)
            if first is None:
                continue
            taken = [(first, gpus)]
        else:
            whole = [g for g, left in enumerate(gpu_free) if left >= 1 - 1e-9][: int(gpus)]
            if len(whole) < int(gpus):
                continue
            taken = [(g, 1.0) for g in whole]
        free[index][0] -= cpus
        for g, share in taken:
            gpu_free[g] -= share
        return index, taken
    return None


def _release(free: list, running: list) -> float:
    """Finish the job that ends first (and every other ending then); returns that time."""
    end = running[0][0]
    while running and running[0][0] <= end + 1e-9:
        _, _, node, cpus, gpus = heapq.heappop(running)
        free[node][0] += cpus
        for g, share in gpus:
            free[node][1][g] += share
    return end


# ---- estimates ---------------------------------------------------------------------------------------------


@dataclass
class TrialEstimate:
    name: str
    folds: int
    cpus: float
    gpus: float
    flops: float
    seconds: float

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "folds": self.folds,
            "cpus": self.cpus,
            "gpus": self.gpus,
            "flops": self.flops,
            "seconds": round(self.seconds, 3),
            "gpu_hours": self.gpus * self.seconds / 3600,
        }


@dataclass
class EvaluationEstimate:
    model: str
    dataset: str
    protocol: str
    classes: int
    samples: int
    folds: int
    epochs: int
    fold_batched: bool
    cpus: float
    gpus: float
    at_once: int  # trials of this shape the cluster runs at once (Cluster.slots)
    device: Device
    flops: ModelFlops
    synthetic: bool
    trials: list[TrialEstimate] = field(default_factory=list)

    @property
    def compute(self) -> float:
        return sum(t.flops for t in self.trials)

    @property
    def gpu_hours(self) -> float:
        return sum(t.gpus * t.seconds for t in self.trials) / 3600

    def seconds(self, cluster) -> float:
        """Its trials alone on the cluster."""
        return schedule([(t.seconds, t.cpus, t.gpus) for t in self.trials], cluster)

    def as_dict(self, cluster) -> dict:
        return {
            "model": self.model,
            "dataset": self.dataset,
            "protocol": self.protocol,
            "classes": self.classes,
            "samples": self.samples,
            "synthetic": self.synthetic,
            "folds": self.folds,
            "epochs": self.epochs,
            "fold_batched": self.fold_batched,
            "trials": len(self.trials),
            "cpus_per_trial": self.cpus,
            "gpus_per_trial": self.gpus,
            "at_once": self.at_once,
            "device": self.device.describe(),
            "device_tflops_per_s": self.device.flops_per_s / 1e12,
            # a training step, a prediction batch and a fold's start timed on this machine (calibrate.py), contention
            # included
            "timed_step_s": (
                dict(zip(("train", "predict", "fold_start"), self.device.measured)) if self.device.measured else None
            ),
            "parameters": self.flops.parameters,
            "train_flops_per_sample": self.flops.train,
            "inference_flops_per_sample": self.flops.inference,
            "flops": self.compute,
            "pflops": self.compute / 1e15,
            "gpu_hours": self.gpu_hours,
            "seconds": round(self.seconds(cluster), 3),
            "trial_list": [t.as_dict() for t in self.trials],
        }


def evaluation(plan, trials: list, cluster, d, e: EstimateConfig, gpu: str, here: bool = False) -> EvaluationEstimate:
    """The estimate of one evaluation (`plan`) dispatched as `trials` (orchestrate/trials.make_trials)."""
    cpus, gpus = resources(plan, d, cluster)
    where = trial_device(plan, gpus, in_ray=True)
    stacked = use_fold_batch(plan, where)
    dev = device(plan.recipe.train, cpus, gpus, where.startswith("cuda"), gpu, e)
    if here and not stacked:
        dev = _measured(plan, dev, cpus, e)
    out = EvaluationEstimate(
        plan.model,
        plan.dataset,
        plan.protocol,
        len(plan.classes),
        len(plan.y),
        len(plan.folds),
        plan.recipe.train.epochs,
        stacked,
        cpus,
        gpus,
        cluster.slots(cpus, gpus),
        dev,
        _flops_of(plan, plan.recipe),
        plan.synthetic,
    )
    for t in trials:
        w = trial_work(plan, t, stacked)
        out.trials.append(TrialEstimate(t.name, len(t.folds), t.cpus, t.gpus, w.flops, w.seconds(dev)))
    return out


def _measured(plan, dev: Device, cpus: float, e: EstimateConfig) -> Device:
    """`dev` with the plan's training step, prediction batch and fold start timed on this machine
    (orchestrate/calibrate.py), times the contention of a busy machine; as it was on a GPU, with
    estimate.measure.cpu off, or where the FLOP estimate puts a step over max_step_s. Only where the dry run plans
    for this machine: another's CPUs are not here to time."""
    if dev.kind != "cpu" or not e.measure.cpu:
        return dev
    train = plan.recipe.train
    flops = _flops_of(plan, plan.recipe)
    if train.batch_size * flops.train / dev.flops_per_s > e.measure.max_step_s:
        return dev
    m = calibrate.measure(
        plan.model, len(plan.classes), plan.recipe.overrides, train, plan.encoding, int(cpus), PREDICT_BATCH
    )
    slow = e.measure.contention
    return replace(dev, measured=(m.train_step_s * slow, m.predict_step_s * slow, m.fold_setup_s * slow))


@dataclass
class RunEstimate:
    cluster: object  # orchestrate.cluster.Cluster
    source: str  # where the cluster's description came from
    evaluations: list[EvaluationEstimate]
    notes: list[str]
    assumptions: dict

    @property
    def trials(self) -> list[TrialEstimate]:
        return [t for ev in self.evaluations for t in ev.trials]

    @property
    def compute(self) -> float:
        return sum(ev.compute for ev in self.evaluations)

    @property
    def gpu_hours(self) -> float:
        return sum(ev.gpu_hours for ev in self.evaluations)

    @property
    def seconds(self) -> float:
        return schedule([(t.seconds, t.cpus, t.gpus) for t in self.trials], self.cluster)

    def as_dict(self) -> dict:
        return {
            "cluster": cluster_dict(self.cluster, self.source),
            "assumptions": self.assumptions,
            "evaluations": [ev.as_dict(self.cluster) for ev in self.evaluations],
            "total": {
                "evaluations": len(self.evaluations),
                "trials": len(self.trials),
                "flops": self.compute,
                "pflops": self.compute / 1e15,
                "gpu_hours": self.gpu_hours,
                "seconds": round(self.seconds, 3),
            },
            "notes": self.notes,
        }


def cluster_dict(cluster, source: str) -> dict:
    return {
        "source": source,
        "describe": cluster.describe(),
        "cpus": cluster.cpus,
        "gpus": cluster.gpus,
        "nodes": [
            {"cpus": n.cpus, "gpus": n.gpus, "gpu_type": n.gpu_type, "gpu_memory_gb": n.gpu_memory_gb}
            for n in cluster.nodes
        ],
    }


def assumptions(e: EstimateConfig, gpu: str, cluster) -> dict:
    """The hardware numbers an estimate used (configs/estimate.yaml), for its output."""
    out = {
        "utilisation": e.utilisation,
        "step_overhead_s": e.step_overhead_s,
        "cpu_gflops_per_core": e.cpu_gflops_per_core,
    }
    if cluster.gpus > 0:
        out["gpu"] = {"name": gpu, "peak_tflops_per_s": e.gpus[gpu]}
    return out


def estimate_run(plans: dict, cfg: dict, cluster, source: str) -> RunEstimate:
    """The estimate of `hsta-bench run` over `plans` (by pair key) on `cluster`."""
    d = dispatch_config(cfg)
    e = estimate_config(cfg)
    gpu, notes = cluster_gpu(cluster, e)
    trials = make_trials(plans, d, cluster)
    here = source == THIS_MACHINE
    evaluations = [
        evaluation(p, [t for t in trials if t.pair == key], cluster, d, e, gpu, here) for key, p in plans.items()
    ]
    if any(ev.device.measured for ev in evaluations):
        notes.append(
            "steps timed here: each such model's training step, prediction batch and fold start timed on this "
            f"machine through the engine's trainer (orchestrate/calibrate.py), x {e.measure.contention:g} for the "
            "cores all busy; the FLOP rate above is for the rest"
        )
    if any(p.synthetic for p in plans.values()):
        notes.append(
            "synthetic stand-ins: their sample counts (`--size full` ones: the real datasets' numbers), not your data's"
        )
    if any(
        p.recipe_of(i).train.selection != "last" and p.recipe_of(i).train.patience
        for p in plans.values()
        for i in range(len(p.folds))
    ):
        notes.append("recipes with patience may stop early: their figures are upper bounds")
    return RunEstimate(cluster, source, evaluations, notes, assumptions(e, gpu, cluster))


@dataclass
class StudyEstimate:
    name: str
    subjects: int
    inner_folds: int
    trials: int
    train_samples: int  # of one trial, summed over its inner folds
    flops: float  # of one trial, to the whole budget
    seconds: float  # of one trial, to the whole budget

    def as_dict(self) -> dict:
        return {
            "study": self.name,
            "subjects": self.subjects,
            "inner_folds": self.inner_folds,
            "trials": self.trials,
            "train_samples_per_trial": self.train_samples,
            "flops_per_trial": self.flops,
            "seconds_per_trial": round(self.seconds, 3),
            "flops": self.flops * self.trials,
            "pflops": self.flops * self.trials / 1e15,
        }


@dataclass
class TuneEstimate:
    model: str
    dataset: str
    protocol: str
    epochs: int
    grace: int
    cpus: float
    gpus: float
    at_once: int
    device: Device
    flops: ModelFlops
    studies: list[StudyEstimate]
    outer: RunEstimate  # the outer run: one ordinary evaluation

    @property
    def compute(self) -> float:
        """Every trial of every study to the whole epoch budget: an upper bound (ASHA stops trials early)."""
        return sum(s.flops * s.trials for s in self.studies)

    @property
    def gpu_hours(self) -> float:
        return sum(s.seconds * s.trials for s in self.studies) * self.gpus / 3600

    @property
    def seconds(self) -> float:
        jobs = [(s.seconds, self.cpus, self.gpus) for s in self.studies for _ in range(s.trials)]
        return schedule(jobs, self.outer.cluster)

    def as_dict(self) -> dict:
        outer = self.outer.as_dict()
        return {
            "model": self.model,
            "dataset": self.dataset,
            "protocol": self.protocol,
            "cluster": outer["cluster"],
            "assumptions": outer["assumptions"],
            "epochs_at_most": self.epochs,
            "asha_grace_epochs": self.grace,
            "cpus_per_trial": self.cpus,
            "gpus_per_trial": self.gpus,
            "at_once": self.at_once,
            "device": self.device.describe(),
            "train_flops_per_sample": self.flops.train,
            "inference_flops_per_sample": self.flops.inference,
            "studies": [s.as_dict() for s in self.studies],
            "tune": {
                "trials": sum(s.trials for s in self.studies),
                "flops_upper_bound": self.compute,
                "pflops_upper_bound": self.compute / 1e15,
                "gpu_hours_upper_bound": self.gpu_hours,
                "seconds_upper_bound": round(self.seconds, 3),
            },
            "outer": {**outer["total"], "evaluations": outer["evaluations"]},
            "total": {
                "pflops_upper_bound": (self.compute + self.outer.compute) / 1e15,
                "gpu_hours_upper_bound": self.gpu_hours + self.outer.gpu_hours,
                "seconds_upper_bound": round(self.seconds + self.outer.seconds, 3),
            },
            "notes": self.outer.notes,
        }


def estimate_tune(plan, cfg: dict, tc, cluster, source: str) -> TuneEstimate:
    """The estimate of `hsta-bench tune` over `plan` (made with prepare=False): each study's trials train its
    inner folds in lockstep, validating every epoch (tuning/objective.py), all to the whole budget; then the
    outer run, whose folds each have their own recipe (so none is fold-batched), estimated with the base
    recipe (the tuned values are not known before the tune)."""
    d = dispatch_config(cfg)
    e = estimate_config(cfg)
    gpu, _ = cluster_gpu(cluster, e)
    cpus, gpus = resources(plan, d, cluster)
    at_once = cluster.require(cpus, gpus, plan.model)
    train = plan.recipe.train
    dev = device(train, cpus, gpus, trial_device(plan, gpus, in_ray=True).startswith("cuda"), gpu, e)
    if source == THIS_MACHINE:
        dev = _measured(plan, dev, cpus, e)
    flops = _flops_of(plan, plan.recipe)
    # study_data selects inputs by row: zero-width arrays stand in for the ones a dry run does not prepare
    empty = replace(plan, inputs=Inputs({"none": np.zeros((len(plan.y), 0), np.uint8)}))
    studies = []
    for s in nested.studies(plan, tc):
        data = nested.study_data(empty, s, tc, cpus)
        work = Work()
        for f in data.folds:  # a study's inner folds have a validation side and no test side
            work += fold_work(len(f.train), len(f.val), 0, train, flops, True)
        studies.append(
            StudyEstimate(
                s.name,
                len(s.subjects),
                len(data.folds),
                tc.trials,
                sum(len(f.train) for f in data.folds),
                work.flops,
                work.seconds(dev),
            )
        )
    own = {f.index: plan.recipe for f in plan.folds}  # as the outer run's per-fold configurations make it
    outer = estimate_run({pair_key(plan.model, plan.dataset): replace(plan, fold_recipes=own)}, cfg, cluster, source)
    outer.notes.append(
        "tune: every trial to the whole epoch budget (ASHA stops some early: upper bounds); "
        "the outer run with the recipe's settings (the tuned ones are not known yet)"
    )
    return TuneEstimate(
        plan.model,
        plan.dataset,
        plan.protocol,
        train.epochs,
        tc.grace(train.epochs, train.warmup_epochs),
        cpus,
        gpus,
        at_once,
        dev,
        flops,
        studies,
        outer,
    )


# ---- words -------------------------------------------------------------------------------------------------


def si(value: float, unit: str = "") -> str:
    """1.56e6 -> '1.56 M' (FLOPs per sample as people read them)."""
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}".rstrip()


def duration(seconds: float) -> str:
    """Seconds as the unit that reads best: 0.42 s, 42 s, 3.5 min, 7.2 h, 2.1 d."""
    if seconds < 10:
        return f"{seconds:.2g} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.3g} min"
    if seconds < 172800:
        return f"{seconds / 3600:.3g} h"
    return f"{seconds / 86400:.3g} d"
