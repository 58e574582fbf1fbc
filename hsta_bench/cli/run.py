"""`hsta-bench run`: train models on datasets under the leakage-free protocol and store the results.

Each (model, dataset) pair is one evaluation (hsta_bench/engine/evaluate.py: its plan of folds); its folds
are dispatched as Ray Tune trials on a local Ray instance or a cluster (hsta_bench/orchestrate/), or run in
this process with --in-process. A run is resumable: --resume RUN_ID trains only what is not on disk.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from hsta_bench.cli.options import (ConfigFile, DataRoots, Json, Sets, chosen_datasets, err, load_config, out,
                                    print_table, refuse_with_resume)
from hsta_bench.errors import UserError

DatasetNames = Annotated[Optional[list[str]], typer.Option("--dataset", metavar="NAME", help="A dataset (repeatable); see `hsta-bench datasets list`.")]
AllDatasets = Annotated[bool, typer.Option("--all-datasets", help="Every registered dataset.")]
ModelNames = Annotated[Optional[list[str]], typer.Option("--model", metavar="NAME", help="A model (repeatable); default: the preset's list.")]
Preset = Annotated[Optional[str], typer.Option("--preset", metavar="NAME", help="smoke (minutes, small inputs) or paper (the published recipes; the default).")]
Output = Annotated[Path, typer.Option("--output", metavar="DIR", help="Where run folders go.")]
Address = Annotated[Optional[str], typer.Option("--address", metavar="ADDR", help="Join this Ray cluster (also RAY_ADDRESS); default: a local Ray instance for the run.")]
Resume = Annotated[Optional[str], typer.Option("--resume", metavar="RUN_ID", help="Finish an interrupted or failed run in OUTPUT (its own settings; nothing finished is redone).")]
InProcess = Annotated[bool, typer.Option("--in-process", help="Run the trials one after another in this process, without Ray.")]


def pairs(models: list[str], datasets: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """(model, dataset) pairs to evaluate, and notes on pairs left out because the dataset cannot give
    the model's inputs."""
    from hsta_bench.engine.evaluate import compatible
    from hsta_bench.models import create_model

    todo, skipped = [], []
    for model in models:
        inputs = create_model(model, 3).inputs
        for dataset in datasets:
            if compatible(inputs, dataset):
                todo.append((model, dataset))
            else:
                skipped.append(f"{model} on {dataset}: needs {', '.join(inputs)}")
    if not todo:
        raise UserError("no model can run on the chosen datasets: " + "; ".join(skipped))
    return todo, skipped


def run(
    dataset: DatasetNames = None,
    all_datasets: AllDatasets = False,
    model: ModelNames = None,
    preset: Preset = None,
    data_roots: DataRoots = None,
    sets: Sets = None,
    config: ConfigFile = None,
    output: Output = Path("results"),
    address: Address = None,
    resume: Resume = None,
    in_process: InProcess = False,
    as_json: Json = False,
) -> None:
    """Train and score models on datasets (leave-one-subject-out by default) into OUTPUT/RUN_ID/."""
    from hsta_bench.orchestrate import runner

    if resume is not None:
        refuse_with_resume(resume, {"--dataset": dataset, "--all-datasets": all_datasets, "--model": model,
                                    "--preset": preset, "--data-root": data_roots, "--set": sets, "--config": config})
        path, summary, problem = runner.resume(resume, output, address, in_process, err)
    else:
        todo, skipped, cfg, preset = _prepare(dataset, all_datasets, model, preset or "paper", data_roots, sets, config)
        path, summary, problem = runner.start(todo, skipped, cfg, preset, output, address, in_process, err)
    report(path, summary, as_json)
    if problem is not None:
        raise problem


def check_names(cfg: dict, preset: str, models: list[str]) -> None:
    """--preset and --model name things that exist (one line naming the option otherwise)."""
    from hsta_bench.models import list_models

    if preset not in cfg["presets"]:
        raise UserError(f"--preset {preset}: unknown preset (known: {', '.join(cfg['presets'])})")
    known = list_models()
    for name in models:
        if name not in known:
            raise UserError(f"--model {name}: unknown model (known: {', '.join(known)})")


def _prepare(dataset, all_datasets, model, preset, data_roots, sets, config):
    """The checked settings of a new run: (model, dataset) pairs, pairs left out, config, preset."""
    from hsta_bench.engine.evaluate import evaluation_config, recipe
    from hsta_bench.orchestrate.trials import dispatch_config

    cfg = load_config(config, sets, data_roots)
    check_names(cfg, preset, model or [])
    datasets = chosen_datasets(dataset, all_datasets, named="--dataset NAME", every="--all-datasets")
    models = list(dict.fromkeys(model or cfg["presets"][preset].get("models") or []))
    todo, skipped = pairs(models, datasets)
    evaluation_config(cfg)  # settings errors before any work starts
    dispatch_config(cfg)
    for name in dict.fromkeys(m for m, _ in todo):
        recipe(name, cfg, preset)
    return todo, skipped, cfg, preset


def report(path: Path, summary, as_json: bool) -> None:
    run_id = path.name
    if as_json:
        metrics = summary.to_dicts() if summary is not None else []
        print(json.dumps({"run_id": run_id, "path": str(path), "metrics": metrics}, indent=2))
    elif summary is not None:
        show(summary, run_id)
        out.print(f"results: {path}  (leaderboard: {path / 'leaderboard.md'})")


def show(summary, run_id: str) -> None:
    table = Table(title=f"run {run_id}: pooled over folds, (95% CI) by subject bootstrap", title_justify="left",
                  caption="* synthetic stand-in" if summary["synthetic"].any() else None, caption_justify="left")
    for column in ("dataset", "protocol", "model", "UF1", "UAR", "acc", "n"):
        table.add_column(column, justify="right" if column in ("UF1", "UAR", "acc", "n") else "left", no_wrap=True)
    for r in summary.iter_rows(named=True):
        def ci(stat):
            low, high = r[f"{stat}_ci_low"], r[f"{stat}_ci_high"]
            interval = f" ({low:.2f}-{high:.2f})" if low is not None else ""
            return f"{r[stat]:.3f}{interval}"

        name = r["dataset"] + (" *" if r["synthetic"] else "")
        table.add_row(name, r["protocol"], r["model"], ci("uf1"), ci("uar"), f"{r['acc']:.3f}", str(r["n"]))
    print_table(table)
