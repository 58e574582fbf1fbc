#!/usr/bin/env python3
"""The GPU checks of scripts/gpu_check.sh that are Python, one subcommand each; every one prints a small
markdown table and writes OUT/<subcommand>.json (everything) and OUT/<subcommand>.md (the table).

    env          torch, CUDA, the device, its memory, bf16 support, which optional libraries import
    fold-batch   fold-batched training == one fold at a time (fp32, TF32 off) for STSTNet and Off-ApexNet,
                 then the fold-batched speed-up over the plain loop at 68 folds of the composite's shape
    hsta-step    hsta_base_224 at batch 32 with its recipe: step time and peak memory in fp32 and bf16,
                 with the inputs staged on the device and gathered on the host (samples/s)
    small-steps  the other models' training steps at their paper input sizes and recipe batches, bf16 and fp32

Steps are timed through the trainer a run uses (engine/train.py FoldTrainer, engine/batched.py), on
synthetic uint8 inputs of the real shapes. `--device cuda` (the default) fails with one line where torch
sees no CUDA device; `--device cpu --quick` runs everything at tiny sizes (how tests/test_gpu_checks.py
runs it). Needs torch, numpy, pyyaml and pydantic only (not Ray, not polars; pydantic checks the settings
sections, hsta_bench/config.py); the package is imported from this checkout.

    python scripts/gpu_checks.py fold-batch --out results/gpu-check
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # the package as it is in this checkout, installed or not
    sys.path.insert(0, str(REPO))

OPTIONAL = {
    "numpy": "numpy",
    "yaml": "PyYAML",
    "pydantic": "pydantic",
    "ray": "ray",
    "polars": "polars",
    "typer": "typer",
    "rich": "rich",
    "matplotlib": "matplotlib",
    "pytest": "pytest",
    "pytest_benchmark": "pytest-benchmark",
}
FOLD_BATCH_MODELS = ("ststnet", "off_apexnet")
SMALL_MODELS = ("ststnet", "off_apexnet", "htnet", "htnet_small", "c3d", "timesformer", "hsta_flow")
COMPOSITE = (442, 68)  # samples, subjects: the MEGC2019 composite, LOSO


class CheckError(Exception):
    """A check that cannot start (one line, exit 2)."""


# ----------------------------------------------------------------------------------------------- helpers


def table(rows: list[dict], columns: list[str]) -> str:
    def cell(v):
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def write(out: Path, name: str, doc: dict, markdown: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    (out / f"{name}.md").write_text(f"### {name}\n\n{markdown}\n", encoding="utf-8")
    print(markdown)
    print(f"\nwritten: {out / (name + '.json')}")


def device_of(args) -> str:
    """The torch device the check runs on; one line (CheckError) where CUDA was asked for and is absent."""
    import torch

    if args.device == "cuda":
        if not torch.cuda.is_available():
            raise CheckError(
                f"--device cuda: torch {torch.__version__} sees no CUDA device here "
                f"(CUDA build: {torch.version.cuda or 'none'}); use --device cpu --quick for a dry run"
            )
        return "cuda:0"
    return "cpu"


def header(args, device: str) -> dict:
    import torch

    from hsta_bench.engine.device import device_name

    return {
        "device": device,
        "device_name": device_name(device),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "quick": args.quick,
        "threads": torch.get_num_threads(),
        "host": platform.node(),
    }


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def recipe(model: str):
    """The model's paper recipe (configs/models/*.yaml): TrainConfig, create_model overrides, resources."""
    from hsta_bench import config
    from hsta_bench.engine import evaluate

    return evaluate.recipe(model, config.load(), "paper")


def uint8_inputs(model, n: int, seed: int = 0) -> dict:
    """Random uint8 arrays in the cache's layout for the inputs `model` takes: (n, T, S, S, 3) or (n, S, S, 3)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    arrays = {}
    for kind, shape in model.inputs.items():
        size = (n, *shape[1:], 3)  # (3, T, S, S) -> (T, S, S, 3); (3, S, S) -> (S, S, 3)
        arrays[kind] = rng.integers(0, 256, size, dtype=np.uint8)
    return arrays


def timed_training(
    name: str,
    overrides: dict,
    arrays: dict,
    cfg,
    n_classes: int,
    steps: int,
    device: str,
    warm_epochs: int = 1,
    timed_epochs: int = 1,
) -> dict:
    """Train `name` for whole epochs of `steps` batches through FoldTrainer (the trainer runs use) and time
    the last `timed_epochs`; peak memory covers the trainer's whole life (inputs staged, model, optimiser,
    activations)."""
    import numpy as np
    import torch

    from hsta_bench.engine.train import FoldData, FoldTrainer, Inputs, placement_for
    from hsta_bench.models import create_model

    n = cfg.batch_size * steps
    arrays = {k: v[:n] for k, v in arrays.items()}
    labels = np.arange(n) % n_classes
    empty = np.zeros(0, np.int64)
    data = FoldData(Inputs(arrays), np.arange(n), labels, empty, empty, np.arange(min(n, cfg.batch_size)))
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    placement = placement_for(cfg)
    trainer = FoldTrainer(lambda: create_model(name, n_classes, **overrides), data, cfg, n_classes, 0, placement)
    for _ in range(warm_epochs):  # allocator, cuDNN's autotuner, first kernels
        trainer.train_epoch()
    sync(device)
    start = time.perf_counter()
    for _ in range(timed_epochs):
        trainer.train_epoch()
    sync(device)
    seconds = time.perf_counter() - start
    logits = trainer.predict(data.test)
    row = {
        "model": name,
        "precision": placement.precision,
        "staging": cfg.staging,
        "staging_used": trainer.feed.staging,
        "batch": cfg.batch_size,
        "steps": steps * timed_epochs,
        "step_ms": seconds / (steps * timed_epochs) * 1e3,
        "samples_per_s": cfg.batch_size * steps * timed_epochs / seconds,
        "finite": bool(np.isfinite(logits).all()),
        "inputs_mb": sum(a.nbytes for a in arrays.values()) / 2**20,
        "peak_mb": None,
        "peak_fraction": None,
        "status": "ok",
    }
    if cuda:
        index = torch.device(device).index or 0
        row["peak_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        row["reserved_mb"] = torch.cuda.max_memory_reserved(device) / 2**20
        row["peak_fraction"] = row["peak_mb"] * 2**20 / torch.cuda.get_device_properties(index).total_memory
    if not row["finite"]:
        row["status"] = "failed: non-finite logits"
    del trainer, data
    if cuda:
        torch.cuda.empty_cache()
    return row


def guarded(fn, **row) -> dict:
    """fn()'s row, or `row` with the failure (out of memory, an unsupported kernel) as its status."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - one configuration failing is reported; the others still run
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return {**row, "status": f"failed: {type(exc).__name__}: {message[:200]}"}


# ----------------------------------------------------------------------------------------------- env


def check_env(args) -> int:
    import importlib.metadata
    import importlib.util

    doc: dict = {
        "python": platform.python_version(),
        "executable": sys.executable,
        "host": platform.node(),
        "modules": {},
        "devices": [],
    }
    for module, dist in OPTIONAL.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        try:
            ver = importlib.metadata.version(dist) if found else None
        except importlib.metadata.PackageNotFoundError:
            ver = "?"
        doc["modules"][module] = ver if found else None
    if shutil.which("nvidia-smi"):  # the driver's view: version, memory in use by anything else
        try:
            smi = subprocess.run(
                [
                    "nvidia-smi",
                    "--query-gpu=index,name,driver_version,memory.total,memory.used,utilization.gpu",
                    "--format=csv",
                ],
                capture_output=True,
                text=True,
                timeout=20,
            )
            doc["nvidia_smi"] = (smi.stdout or smi.stderr).strip()
        except (OSError, subprocess.TimeoutExpired) as exc:
            doc["nvidia_smi"] = f"failed: {exc}"
        print(doc["nvidia_smi"] + "\n")
    try:
        import torch
    except ImportError as exc:
        doc["torch"] = None
        write(Path(args.out), "env", doc, f"torch: not importable ({exc})")
        print(f"gpu_checks env: torch is not importable with {sys.executable}", file=sys.stderr)
        return 1
    doc.update(
        torch=torch.__version__,
        cuda_build=torch.version.cuda,
        cudnn=torch.backends.cudnn.version(),
        cuda_available=torch.cuda.is_available(),
        threads=torch.get_num_threads(),
    )
    rows = [
        {"what": "python", "value": f"{doc['python']} ({sys.executable})"},
        {
            "what": "torch",
            "value": f"{torch.__version__} (CUDA build {torch.version.cuda or 'none'}, cuDNN {doc['cudnn'] or 'none'})",
        },
        {"what": "CUDA devices", "value": torch.cuda.device_count() if torch.cuda.is_available() else 0},
    ]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            free, total = torch.cuda.mem_get_info(i)
            dev = {
                "index": i,
                "name": p.name,
                "capability": f"{p.major}.{p.minor}",
                "memory_gb": total / 1e9,
                "free_gb": free / 1e9,
                "multiprocessors": p.multi_processor_count,
                "bf16": torch.cuda.is_bf16_supported(including_emulation=False),
                "tf32": p.major >= 8,
            }
            doc["devices"].append(dev)
            yes = {True: "yes", False: "no"}
            rows.append(
                {
                    "what": f"cuda:{i}",
                    "value": f"{p.name}, sm {dev['capability']}, {total / 2**30:.1f} GiB "
                    f"({free / 2**30:.1f} free), bf16 {yes[dev['bf16']]}, "
                    f"TF32 {yes[dev['tf32']]}",
                }
            )
        doc["flash_sdp"] = torch.backends.cuda.is_flash_attention_available()
        rows.append({"what": "flash attention built", "value": "yes" if doc["flash_sdp"] else "no"})
    for module, ver in doc["modules"].items():
        rows.append({"what": module, "value": ver or "not importable"})
    try:
        import hsta_bench

        where = Path(hsta_bench.__file__).parent
        rows.append({"what": "hsta_bench", "value": f"{hsta_bench.__version__} from {where}"})
    except Exception as exc:  # noqa: BLE001 - reported; the other checks will say what they miss
        rows.append({"what": "hsta_bench", "value": f"not importable: {exc}"})
    missing = [m for m in ("ray", "polars") if not doc["modules"][m]]
    if missing:
        rows.append({"what": "note", "value": f"{' and '.join(missing)} missing: the real-data runs will be skipped"})
    write(Path(args.out), "env", doc, table(rows, ["what", "value"]))
    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"gpu_checks env: --device cuda: torch {torch.__version__} sees no CUDA device here", file=sys.stderr)
        return 1
    return 0


# ----------------------------------------------------------------------------------------------- fold-batch


def comparison_problem(n: int = 90, sizes=(50, 43, 37), seed: int = 0):
    """tests/test_engine.py's problem: a learnable flow signal, folds of different sizes (padding, sat-out
    steps), each fold testing its own rows."""
    import numpy as np

    from hsta_bench.engine.train import FoldData, Inputs

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    arr = rng.integers(0, 120, (n, 28, 28, 3)).astype(np.uint8)
    for i, c in enumerate(y):
        arr[i, 10:18, 10:18, c] += 120
    inputs = Inputs({"flow": arr})
    empty = np.zeros(0, np.int64)
    folds = []
    for k, size in enumerate(sizes):
        rows = np.arange(size)
        folds.append(FoldData(inputs, rows, y[rows], empty, empty, np.arange(n - 10 * (k + 1), n - 10 * k)))
    return folds


def composite_folds(samples: int, subjects: int, seed: int = 0):
    """LOSO folds of the composite's shape: `samples` flow images (28x28x3) from `subjects` subjects."""
    import numpy as np

    from hsta_bench.engine.train import FoldData, Inputs

    rng = np.random.default_rng(seed)
    inputs = Inputs({"flow": rng.integers(0, 256, (samples, 28, 28, 3), dtype=np.uint8)})
    y = rng.integers(0, 3, samples)
    subject = rng.permutation(np.arange(samples) % subjects)
    empty = np.zeros(0, np.int64)
    return [
        FoldData(inputs, np.flatnonzero(subject != s), y[subject != s], empty, empty, np.flatnonzero(subject == s))
        for s in range(subjects)
    ]


def check_fold_batch(args) -> int:
    device = device_of(args)
    import numpy as np

    from hsta_bench.engine.batched import fit_predict_folds
    from hsta_bench.engine.train import fit_predict, placement_for, train_config
    from hsta_bench.models import create_model

    atol = args.atol if args.atol is not None else (1e-3 if device.startswith("cuda") else 1e-4)
    samples, subjects = (24, 2) if args.quick else COMPOSITE
    subjects = args.folds or subjects
    epochs = args.epochs or (1 if args.quick else 10)
    doc = {**header(args, device), "atol": atol, "equality": [], "speed": []}

    # 1. the same maths: SGD, no dropout, fp32 with TF32 off (test_engine.py's comparison, on this device)
    same = train_config(
        optimizer="sgd",
        lr=3e-2,
        weight_decay=0.01,
        batch_size=8 if args.quick else 16,
        epochs=1 if args.quick else 3,
        warmup_epochs=1,
        balanced=True,
        augment=True,
        device=args.device,
        precision="fp32",
    )

    def equality(name: str) -> dict:
        placement = placement_for(same)
        folds = comparison_problem(**({"n": 40, "sizes": (12, 10)} if args.quick else {}))
        build = lambda: create_model(name, 3, dropout=0.0)  # noqa: E731
        seeds = [20 + i for i in range(len(folds))]
        plain = [fit_predict(build, f, same, 3, seed=seed, placement=placement) for f, seed in zip(folds, seeds)]
        batched = fit_predict_folds(build, folds, same, 3, seeds=seeds, placement=placement)
        diff = max(float(np.abs(a.logits - b.logits).max()) for a, b in zip(plain, batched))
        same_class = all((a.logits.argmax(1) == b.logits.argmax(1)).all() for a, b in zip(plain, batched))
        agree = bool(diff <= atol and same_class)
        return {
            "model": name,
            "folds": len(folds),
            "epochs": same.epochs,
            "precision": placement.precision,
            "max_abs_diff": diff,
            "atol": atol,
            "same_predictions": bool(same_class),
            "agree": agree,
            "status": "ok" if agree else "failed: logits differ beyond the tolerance",
        }

    # 2. the speed-up at the composite's shape, each model's recipe (its optimiser, batch and precision)
    def speed(name: str) -> dict:
        r = recipe(name)
        cfg = replace(r.train, epochs=epochs, device=args.device, fold_batch="always", compile=False)
        placement = placement_for(cfg)
        folds = composite_folds(samples, subjects)
        build = lambda: create_model(name, 3, **r.overrides)  # noqa: E731
        if not args.quick:  # CUDA context, cuDNN's autotuner and vmap's first trace, outside the clock
            warm = replace(cfg, epochs=1)
            fit_predict(build, folds[0], warm, 3, seed=0, placement=placement)
            fit_predict_folds(build, folds[:2], warm, 3, seeds=[0, 1], placement=placement)
        sync(device)
        start = time.perf_counter()
        for i, fold in enumerate(folds):
            fit_predict(build, fold, cfg, 3, seed=i, placement=placement)
        sync(device)
        sequential = time.perf_counter() - start
        start = time.perf_counter()
        out = fit_predict_folds(build, folds, cfg, 3, seeds=list(range(len(folds))), placement=placement)
        sync(device)
        batched = time.perf_counter() - start
        finite = all(np.isfinite(o.logits).all() for o in out)
        return {
            "model": name,
            "folds": len(folds),
            "epochs": epochs,
            "batch": cfg.batch_size,
            "optimizer": cfg.optimizer,
            "precision": placement.precision,
            "sequential_s": sequential,
            "fold_batched_s": batched,
            "speedup": sequential / batched,
            "recipe_epochs": r.train.epochs,
            "recipe_sequential_h": sequential / epochs * r.train.epochs / 3600,
            "recipe_fold_batched_h": batched / epochs * r.train.epochs / 3600,
            "finite": bool(finite),
            "status": "ok" if finite else "failed: non-finite logits",
        }

    for name in FOLD_BATCH_MODELS:
        doc["equality"].append(guarded(lambda name=name: equality(name), model=name, agree=False))
    for name in FOLD_BATCH_MODELS:
        doc["speed"].append(guarded(lambda name=name: speed(name), model=name, finite=False))
    doc["ok"] = all(row["status"] == "ok" for row in doc["equality"] + doc["speed"])
    markdown = (
        f"fold-batched == sequential on {doc['device_name']} ({device}), fp32 without TF32:\n\n"
        + table(
            doc["equality"],
            ["model", "folds", "epochs", "precision", "max_abs_diff", "atol", "same_predictions", "status"],
        )
        + f"\n\nspeed at {subjects} folds x {epochs} epochs (the recipe's optimiser, batch and precision; "
        "hours projected to the recipe's epochs):\n\n"
        + table(
            doc["speed"],
            [
                "model",
                "folds",
                "epochs",
                "batch",
                "precision",
                "sequential_s",
                "fold_batched_s",
                "speedup",
                "recipe_epochs",
                "recipe_sequential_h",
                "recipe_fold_batched_h",
                "status",
            ],
        )
    )
    write(Path(args.out), "fold-batch", doc, markdown)
    if not doc["ok"]:
        print(
            "gpu_checks fold-batch: "
            + "; ".join(
                f"{row['model']}: {row['status']}" for row in doc["equality"] + doc["speed"] if row["status"] != "ok"
            ),
            file=sys.stderr,
        )
        return 1
    return 0


# ----------------------------------------------------------------------------------------------- hsta-step


def check_hsta_step(args) -> int:
    device = device_of(args)
    from hsta_bench.models import create_model, small_overrides

    name = args.model or ("hsta_tiny" if args.quick else "hsta_base_224")
    r = recipe(name)
    overrides = {**small_overrides(name), **r.overrides} if args.quick else dict(r.overrides)
    batch = args.batch or (2 if args.quick else r.train.batch_size)
    steps = args.steps or (1 if args.quick else 4)
    n_classes = 3
    model = create_model(name, n_classes, **overrides)
    arrays = uint8_inputs(model, batch * steps)
    shapes = {k: list(v) for k, v in model.inputs.items()}
    del model
    doc = {
        **header(args, device),
        "model": name,
        "recipe": r.source,
        "overrides": overrides,
        "inputs": shapes,
        "gpu_share": r.resources.get("gpu_share"),
        "rows": [],
    }
    for precision in ("fp32", "bf16"):
        for staging in ("device", "host"):
            cfg = replace(
                r.train, batch_size=batch, device=args.device, precision=precision, staging=staging, compile=False
            )
            doc["rows"].append(
                guarded(
                    lambda cfg=cfg: timed_training(
                        name, overrides, arrays, cfg, n_classes, steps, device, warm_epochs=int(not args.quick)
                    ),
                    model=name,
                    precision=precision,
                    staging=staging,
                    batch=batch,
                )
            )
    doc["ok"] = all(row["status"] == "ok" for row in doc["rows"])
    share = doc["gpu_share"]
    note = ""
    if device.startswith("cuda") and share:
        peak = max((row.get("reserved_mb") or 0) for row in doc["rows"]) * 2**20
        import torch

        total = torch.cuda.get_device_properties(0).total_memory
        doc["fits_gpu_share"] = peak <= share * total
        note = (
            f"\n\nthe recipe's resources.gpu_share {share}: {share * total / 2**30:.1f} GiB of this GPU; the "
            f"largest reserved peak {peak / 2**30:.1f} GiB: {'fits' if doc['fits_gpu_share'] else 'does NOT fit'}"
        )
    markdown = (
        f"{name} training step on {doc['device_name']} ({device}), {r.source}, batch {batch}, "
        f"inputs {shapes}:\n\n"
        + table(
            doc["rows"],
            [
                "precision",
                "staging",
                "staging_used",
                "batch",
                "steps",
                "step_ms",
                "samples_per_s",
                "peak_mb",
                "peak_fraction",
                "status",
            ],
        )
        + note
    )
    write(Path(args.out), "hsta-step", doc, markdown)
    return 0 if doc["ok"] else 1


# ----------------------------------------------------------------------------------------------- small-steps


def check_small_steps(args) -> int:
    device = device_of(args)
    from hsta_bench.models import create_model, small_overrides

    models = args.model_list or list(SMALL_MODELS)
    steps = args.steps or (1 if args.quick else 5)
    doc = {**header(args, device), "rows": []}
    for name in models:
        r = recipe(name)
        overrides = {**small_overrides(name), **r.overrides} if args.quick else dict(r.overrides)
        batch = args.batch or (4 if args.quick else r.train.batch_size)
        model = create_model(name, 3, **overrides)
        arrays = uint8_inputs(model, batch * steps)
        shapes = "; ".join(f"{k} {'x'.join(map(str, v[1:]))}" for k, v in model.inputs.items())
        del model
        for precision in ("bf16", "fp32"):
            cfg = replace(r.train, batch_size=batch, device=args.device, precision=precision, compile=False)
            row = guarded(
                lambda cfg=cfg, name=name, overrides=overrides, arrays=arrays: timed_training(
                    name, overrides, arrays, cfg, 3, steps, device, warm_epochs=int(not args.quick)
                ),
                model=name,
                precision=precision,
                batch=batch,
            )
            doc["rows"].append({**row, "inputs": shapes})
    doc["ok"] = all(row["status"] == "ok" for row in doc["rows"])
    markdown = (
        f"training steps on {doc['device_name']} ({device}), each recipe's batch, paper input sizes"
        f"{' (quick: small inputs)' if args.quick else ''}:\n\n"
        + table(doc["rows"], ["model", "inputs", "precision", "batch", "step_ms", "samples_per_s", "peak_mb", "status"])
    )
    write(Path(args.out), "small-steps", doc, markdown)
    return 0 if doc["ok"] else 1


# ----------------------------------------------------------------------------------------------- main


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gpu_checks.py", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="where to run (default cuda)")
    common.add_argument("--quick", action="store_true", help="tiny sizes, to run anywhere in seconds (tests)")
    common.add_argument("--out", default="results/gpu-check", help="folder for <check>.json and <check>.md")
    sub = p.add_subparsers(dest="check", required=True)
    sub.add_parser("env", parents=[common], help="torch, CUDA, the device, optional libraries")
    fb = sub.add_parser("fold-batch", parents=[common], help="fold-batched == sequential, and its speed-up")
    fb.add_argument("--atol", type=float, help="logits tolerance (default 1e-3 on CUDA, 1e-4 on a CPU)")
    fb.add_argument("--folds", type=int, help="folds (subjects) of the speed problem (default 68)")
    fb.add_argument("--epochs", type=int, help="epochs timed both ways (default 10)")
    hs = sub.add_parser("hsta-step", parents=[common], help="hsta_base_224: step time, memory, staging")
    hs.add_argument("--model", help="an HSTA model (default hsta_base_224; hsta_tiny with --quick)")
    hs.add_argument("--batch", type=int, help="default: the recipe's (32)")
    hs.add_argument("--steps", type=int, help="steps per timed epoch (default 4)")
    ss = sub.add_parser("small-steps", parents=[common], help="the small models' step times, bf16 and fp32")
    ss.add_argument(
        "--model",
        dest="model_list",
        action="append",
        help="a model (repeatable; default: " + ", ".join(SMALL_MODELS) + ")",
    )
    ss.add_argument("--batch", type=int, help="default: each recipe's")
    ss.add_argument("--steps", type=int, help="steps per timed epoch (default 5)")
    return p


CHECKS = {
    "env": check_env,
    "fold-batch": check_fold_batch,
    "hsta-step": check_hsta_step,
    "small-steps": check_small_steps,
}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return CHECKS[args.check](args)
    except CheckError as exc:
        print(f"gpu_checks {args.check}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
