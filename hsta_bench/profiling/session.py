"""One profile: the settings it runs with, the environment it ran in, and every measurement, in order:

    ceilings   the matrix-product ceiling of each dtype and the memory bandwidth, measured first (the ceiling
               again before each compute-bound case and each model: fractions compare neighbours in time)
    attention  for each model, its attention cases (cases.py) x kernels x dtypes x passes (measure.py)
    models     each model's inference and training step x kernels x dtypes (steps.py)

The settings come from configs/profile.yaml, the preset's `profile:` section, then the command's options.
"""

from __future__ import annotations

import platform
import statistics
import typing
from dataclasses import asdict, dataclass, field
from typing import Annotated, Literal

import torch
import torch._dynamo
from pydantic import Field

from hsta_bench import config as config_mod
from hsta_bench.config import Bool, Float, Int
from hsta_bench.errors import UserError
from hsta_bench.io import environment as run_environment
from hsta_bench.io import git_commit
from hsta_bench.models import create_model, small_overrides
from hsta_bench.profiling.cases import AttentionCase, capture
from hsta_bench.profiling.ceiling import matmul_ceiling, memory_bandwidth, products_rate
from hsta_bench.profiling.kernels import KERNELS
from hsta_bench.profiling.measure import time_case
from hsta_bench.profiling.steps import MODES, model_flops, time_model

Dtype = Literal["fp32", "bf16", "fp16"]
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}  # each Dtype's name in torch
Pass = Literal["forward", "forward+backward"]
PASSES: tuple[str, ...] = typing.get_args(Pass)


@dataclass(frozen=True)
class ProfileConfig:
    """configs/profile.yaml with the preset's `profile:` over it (every setting's default, and what each means)"""

    models: list[str] | None  # checked by the command against the registry (cli/run.py check_names)
    backends: dict[str, list[str]]  # device -> kernels (checked against profiling/kernels.py's below)
    dtypes: list[Dtype]
    device: Literal["cpu", "cuda"]
    batch: Annotated[Int, Field(ge=1)]
    repeats: Annotated[Int, Field(ge=1)]
    warmup: Annotated[Int, Field(ge=0)]
    min_seconds: Annotated[Float, Field(ge=0)]
    passes: list[Pass]
    steps: Bool
    memory: Bool
    goal_fraction: Annotated[Float, Field(gt=0, le=1)]
    ceiling_size: Annotated[Int, Field(ge=1)]


@dataclass
class Settings:
    preset: str
    models: list[str]
    kernels: list[str]
    dtypes: list[str]  # fp32 | bf16 | fp16
    device: str
    batch: int
    repeats: int
    warmup: int
    passes: list[str]
    steps: bool
    memory: bool
    min_seconds: float
    goal_fraction: float
    ceiling_size: int
    small_inputs: bool


def settings(
    cfg: dict, preset: str, models=None, backends=None, dtypes=None, device=None, batch=None, repeats=None
) -> Settings:
    """The checked settings: every mistake is one line naming the option or config key (the preset and the
    model names are checked by the command, cli/run.py's check_names, as for run and tune)."""
    spec = dict(cfg["profile"])
    own = cfg["presets"][preset].get("profile") or {}
    for key, value in own.items():
        if key not in spec:
            raise UserError(f"presets.{preset}.profile.{key}: unknown profile setting (known: {', '.join(spec)})")
        spec[key] = value
    p = config_mod.typed(ProfileConfig, spec, f"profile (with presets.{preset}.profile)" if own else "profile")
    device = device or p.device
    if device not in ("cpu", "cuda"):
        raise UserError(f"--device {device}: not cpu or cuda")
    if device == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device cuda: torch {torch.__version__} sees no CUDA device here")
    chosen = list(dict.fromkeys(models or p.models or cfg["presets"][preset].get("models") or []))
    if not chosen:
        raise UserError(f"--preset {preset} names no models: give --model NAME")
    kernels = list(dict.fromkeys(backends or p.backends.get(device) or []))
    for name in kernels:
        if name not in KERNELS:
            raise UserError(f"--backend {name}: not one of {', '.join(KERNELS)}")
    chosen_dtypes = list(dict.fromkeys(dtypes or p.dtypes))
    for name in chosen_dtypes:
        if name not in DTYPES:
            raise UserError(f"--dtype {name}: not one of {', '.join(DTYPES)}")
    batch = p.batch if batch is None else batch
    repeats = p.repeats if repeats is None else repeats
    for option, value in (("--batch", batch), ("--repeats", repeats)):
        if not isinstance(value, int) or value < 1:
            raise UserError(f"{option} {value}: must be a whole number of at least 1")
    return Settings(
        preset,
        chosen,
        kernels,
        chosen_dtypes,
        device,
        batch,
        repeats,
        p.warmup,
        list(p.passes),
        p.steps,
        p.memory,
        p.min_seconds,
        p.goal_fraction,
        p.ceiling_size,
        bool(cfg["presets"][preset].get("small_inputs")),
    )


def environment(device: str) -> dict:
    """What the numbers depend on: library versions, the processor or GPU, and the threads torch uses."""
    env = run_environment()
    env.update(
        commit=git_commit(),
        threads=torch.get_num_threads(),
        device=device,
        device_name=torch.cuda.get_device_name(0) if device == "cuda" else _cpu_name(),
        cuda_version=torch.version.cuda if device == "cuda" else None,
    )
    return env


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def slug(env: dict, dtypes: list[str]) -> str:
    """The environment in a file name, like timm's benchmark CSVs: pt2.13.0-cpu-2threads-fp32."""
    torch_version = env["torch"].split("+")[0]
    if env["device"] == "cuda":
        gpu = "".join(c if c.isalnum() else "-" for c in env["device_name"].lower()).strip("-")
        where = f"cu{env['cuda_version']}-{gpu}"
    else:
        where = "cpu"
    return f"pt{torch_version}-{where}-{env['threads']}threads-{'-'.join(dtypes)}"


@dataclass
class Profile:
    settings: Settings
    environment: dict
    ceilings: dict[str, float] = field(default_factory=dict)  # dtype -> GFLOP/s, the median of the samples
    ceiling_samples: dict[str, list] = field(default_factory=dict)  # dtype -> every measurement, in order
    bandwidth: float = 0.0  # GB/s
    floors: dict[str, float] = field(default_factory=dict)  # pass -> seconds of a one-token sdpa call
    product_rates: dict[tuple, float] = field(default_factory=dict)  # (case, dtype) -> GFLOP/s, compute-bound cases
    cases: list = field(default_factory=list)  # AttentionCase
    attention: list = field(default_factory=list)  # measure.Timing
    models: list = field(default_factory=list)  # steps.ModelTiming

    @property
    def balance(self) -> dict[str, float]:
        """FLOPs per byte at which each dtype's ceiling meets the memory bandwidth."""
        return {dtype: gflops / self.bandwidth for dtype, gflops in self.ceilings.items()}

    def bound(self, case, dtype: str, passes: str = "forward") -> str:
        """What limits a case's speed here: 'overhead' where even at the ceiling it would take less than ten
        one-token calls (the cost of a call, not of its FLOPs, dominates), 'memory' where its FLOPs per byte
        are below the machine's balance, else 'compute' (the cases the ceiling speaks about)."""
        ideal = case.flops(passes == "forward+backward") / (self.ceilings[dtype] * 1e9)
        if ideal < 10 * self.floors.get(passes, 0.0):
            return "overhead"
        size = torch.empty((), dtype=getattr(torch, DTYPES[dtype])).element_size()
        return "compute" if case.intensity(size) >= self.balance[dtype] else "memory"

    def as_dict(self) -> dict:
        return {
            "settings": asdict(self.settings),
            "environment": self.environment,
            "ceilings_gflops": self.ceilings,
            "ceiling_samples_gflops": self.ceiling_samples,
            "bandwidth_gbs": self.bandwidth,
            "balance_flop_per_byte": self.balance,
            "call_floor_s": self.floors,
            "cases": [
                {
                    "name": c.name,
                    "model": c.model,
                    "kind": c.kind,
                    "batch": c.batch,
                    "heads": c.heads,
                    "q_len": c.q_len,
                    "kv_len": c.kv_len,
                    "head_dim": c.head_dim,
                    "count": c.count,
                    "mask_density": c.density(),
                    "intensity": c.intensity(),
                    "bound": {
                        f"{d} {p}": self.bound(c, d, p) for d in self.settings.dtypes for p in self.settings.passes
                    },
                    "products_gflops": {d: self.product_rates.get((c.name, d)) for d in self.settings.dtypes},
                }
                for c in self.cases
            ],
            "attention": [asdict(t) for t in self.attention],
            "models": [asdict(t) for t in self.models],
        }


def _allow_recompiles() -> None:
    """flex compiles once per token shape; a profile visits more shapes than torch's default limit allows
    before it silently falls back to the unfused path."""
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, 256)


def work(s: Settings, case_counts: dict[str, int]) -> int:
    """How many measurements the profile will make (for the progress bar), given each model's number of cases."""
    # a model without attention has its steps timed once, not once per kernel
    per_dtype = sum(
        n * len(s.kernels) * len(s.passes) + (len(MODES) * (len(s.kernels) if n else 1) if s.steps else 0)
        for n in case_counts.values()
    )
    return 1 + len(s.dtypes) * per_dtype


def _built(name: str, s: Settings):
    """The model (seeded: the same weights every time it is built), its example batch and attention cases."""
    torch.manual_seed(0)
    model = create_model(name, 3, **(small_overrides(name) if s.small_inputs else {})).to(s.device)
    inputs = model.example_input(s.batch, device=s.device, generator=torch.Generator().manual_seed(0))
    return model, inputs, capture(model, name, inputs)


def run(s: Settings, step=lambda description: None, total=lambda n: None) -> Profile:
    """Measure everything in `s`; `total(n)` is called once the number of measurements is known (each model's
    cases read), `step(description)` before each measurement."""
    _allow_recompiles()
    profile = Profile(s, environment(s.device))
    built = {name: _built(name, s) for name in s.models}  # all first: the progress total needs their cases
    total(work(s, {name: len(cases) for name, (_, _, cases) in built.items()}))

    def ceiling_now(dtype: str) -> float:
        # measured again before each case the ceiling speaks about and before each model's steps: on a shared
        # machine the rate drifts by 20% over minutes, and a fraction should compare things measured together
        gflops = matmul_ceiling(getattr(torch, DTYPES[dtype]), _ceiling_n(s, dtype), s.device)
        profile.ceiling_samples.setdefault(dtype, []).append(gflops)
        profile.ceilings[dtype] = statistics.median(profile.ceiling_samples[dtype])
        return gflops

    step("the matrix-product ceiling and the memory bandwidth")
    for dtype in s.dtypes:
        ceiling_now(dtype)
    profile.bandwidth = memory_bandwidth(s.device)
    one_token = AttentionCase("floor", "joint", 1, 1, 1, 1, 16)
    for passes in s.passes:
        # None when sdpa fails on the one-token case (seconds of an unsupported kernel): not refused here, so
        # Profile's floor comparison and the report's floor line would then fail on None
        profile.floors[passes] = time_case(  # type: ignore[assignment]
            one_token,
            "sdpa",
            passes == "forward+backward",
            device=s.device,
            repeats=max(s.repeats, 5),
            memory=False,
            min_seconds=s.min_seconds,
        ).seconds
    for name, (model, inputs, cases) in built.items():
        profile.cases += cases
        for dtype in s.dtypes:
            torch_dtype = getattr(torch, DTYPES[dtype])
            for case in cases:
                ceiling = profile.ceilings[dtype]
                if any(profile.bound(case, dtype, p) == "compute" for p in s.passes):
                    ceiling = ceiling_now(dtype)
                    profile.product_rates[(case.name, dtype)] = products_rate(
                        case, torch_dtype, s.device, s.min_seconds
                    )
                for kernel in s.kernels:
                    for passes in s.passes:
                        step(f"{case.name} {kernel} {dtype} {passes}")
                        profile.attention.append(
                            time_case(
                                case,
                                kernel,
                                passes == "forward+backward",
                                torch_dtype,
                                s.device,
                                s.repeats,
                                s.warmup,
                                ceiling,
                                s.memory,
                                s.min_seconds,
                            )
                        )
            if not s.steps:
                continue
            ceiling = ceiling_now(dtype)
            for mode in MODES:
                flops = model_flops(model, inputs, mode, s.device)
                for kernel in s.kernels if cases else ["-"]:
                    step(f"{name} {mode} {kernel} {dtype}")
                    profile.models.append(
                        time_model(
                            name,
                            model,
                            inputs,
                            mode,
                            kernel,
                            torch_dtype,
                            s.device,
                            s.repeats,
                            s.warmup,
                            flops,
                            ceiling,
                            s.memory,
                            s.min_seconds,
                        )
                    )
    return profile


def _ceiling_n(s: Settings, dtype: str) -> int:
    # a dtype the processor emulates (bf16 on most CPUs) runs ~100x slower: a smaller product says the same
    return s.ceiling_size if dtype == "fp32" or s.device == "cuda" else min(s.ceiling_size, 512)
