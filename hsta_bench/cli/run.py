"""`hsta-bench run`: train models on datasets under the leakage-free protocol and store the results.

Each (model, dataset) pair is one evaluation (hsta_bench/engine/evaluate.py), run in this process, its
folds optionally in worker processes (evaluation.workers). The results store (engine/results.py) is
rewritten after every evaluation, so a finished evaluation is on disk even if a later one fails.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from hsta_bench.cli.options import ConfigFile, DataRoots, Json, Sets, err, load_config, out
from hsta_bench.errors import UserError

DatasetNames = Annotated[Optional[list[str]], typer.Option("--dataset", metavar="NAME", help="A dataset (repeatable); see `hsta-bench datasets list`.")]
AllDatasets = Annotated[bool, typer.Option("--all-datasets", help="Every registered dataset.")]
ModelNames = Annotated[Optional[list[str]], typer.Option("--model", metavar="NAME", help="A model (repeatable); default: the preset's list.")]
Preset = Annotated[str, typer.Option("--preset", metavar="NAME", help="smoke (minutes, small inputs) or paper (the published recipes).")]
Output = Annotated[Path, typer.Option("--output", metavar="DIR", help="Where run folders go.")]


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
    preset: Preset = "paper",
    data_roots: DataRoots = None,
    sets: Sets = None,
    config: ConfigFile = None,
    output: Output = Path("results"),
    as_json: Json = False,
) -> None:
    """Train and score models on datasets (leave-one-subject-out by default) into OUTPUT/RUN_ID/."""
    from hsta_bench.data import get_source, list_sources
    from hsta_bench.models import list_models

    cfg = load_config(config, sets, data_roots)
    if preset not in cfg["presets"]:
        raise UserError(f"--preset {preset}: unknown preset (known: {', '.join(cfg['presets'])})")
    if all_datasets and dataset:
        raise UserError("give --dataset or --all-datasets, not both")
    if not all_datasets and not dataset:
        raise UserError("name a dataset with --dataset NAME (see `hsta-bench datasets list`) or use --all-datasets")
    datasets = list_sources() if all_datasets else list(dict.fromkeys(dataset))
    for name in datasets:
        get_source(name)
    known = set(list_models())
    models = list(dict.fromkeys(model or cfg["presets"][preset].get("models") or []))
    for name in models:
        if name not in known:
            raise UserError(f"--model {name}: unknown model (known: {', '.join(sorted(known))})")
    todo, skipped = pairs(models, datasets)
    from hsta_bench.engine.evaluate import evaluation_config, recipe

    evaluation_config(cfg)  # settings errors before any work starts
    for name in dict.fromkeys(m for m, _ in todo):
        recipe(name, cfg, preset)
    execute(todo, skipped, cfg, preset, output, as_json)


def execute(todo, skipped, cfg: dict, preset: str, output: Path, as_json: bool) -> Path:
    import polars as pl
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from hsta_bench.engine.evaluate import evaluate, evaluation_config
    from hsta_bench.engine.results import RunStore, environment, git_commit, write_json

    store = RunStore(output)
    ev = evaluation_config(cfg)
    run_info = {
        "run_id": store.run_id, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": sys.argv, "preset": preset, "pairs": [list(p) for p in todo], "skipped": skipped,
        "git_commit": git_commit(), "environment": environment(), "config": cfg, "evaluations": [],
        "status": "running",
    }
    predictions, split_tables, classes_of = [], [], {}
    for note in skipped:
        err.print(f"[dim]skipped: {note}[/dim]")
    err.print(f"run {store.run_id} -> {store.path}")
    started = time.perf_counter()

    def announce(text):
        err.print(f"[dim]{text}[/dim]")

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} folds"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=not err.is_terminal) as bar:
        for model, dataset in todo:
            task = bar.add_task(f"{model} on {dataset}", total=None)

            done = [0]

            def progress(n, task=task, label=f"{model} on {dataset}"):
                bar.advance(task, n)
                done[0] += n
                if not err.is_terminal:  # a log file gets a line per fold instead of a live bar
                    err.print(f"{label}: {done[0]} folds done ({time.perf_counter() - started:.0f} s)")

            result = evaluate(model, dataset, cfg, preset, progress=progress, announce=announce)
            bar.update(task, total=len(result.plan.folds), completed=len(result.plan.folds))
            p = result.plan
            classes_of[p.protocol] = p.classes
            predictions.append(result.predictions)
            split_tables.append(result.splits)
            run_info["evaluations"].append({
                "model": model, "dataset": dataset, "protocol": p.protocol, "classes": list(p.classes),
                "synthetic": p.synthetic, "samples": int(len(p.y)), "folds": len(p.folds),
                "evaluation": p.evaluation, "train": asdict(p.recipe.train), "overrides": p.recipe.overrides,
                "recipe": p.recipe.source, "config_key": p.key(),
                "seeds": {f.name: p.fold_seed(f.index) for f in p.folds},
                "chosen_epochs": result.chosen_epochs, "seconds": round(result.seconds, 2),
            })
            run_info["seconds"] = round(time.perf_counter() - started, 2)
            metric_table = store.write(run_info, pl.concat(predictions), pl.concat(split_tables).unique(maintain_order=True),
                                       classes_of, ev.bootstrap, ev.level, ev.seed)
    run_info["status"] = "finished"
    run_info["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_json(run_info, store.path / "run.json")
    summary = metric_table.filter(pl.col("scope") == "all")
    if as_json:
        print(json.dumps({"run_id": store.run_id, "path": str(store.path), "metrics": summary.to_dicts()}, indent=2))
    else:
        show(summary, store.run_id)
        out.print(f"results: {store.path}")
    return store.path


def show(summary, run_id: str) -> None:
    table = Table(title=f"run {run_id}: pooled over folds, (95% CI) by subject bootstrap", title_justify="left",
                  caption="* synthetic stand-in", caption_justify="left")
    for column in ("dataset", "protocol", "model", "UF1", "UAR", "acc", "n"):
        table.add_column(column, justify="right" if column in ("UF1", "UAR", "acc", "n") else "left", no_wrap=True)
    for r in summary.iter_rows(named=True):
        def ci(stat):
            low, high = r[f"{stat}_ci_low"], r[f"{stat}_ci_high"]
            interval = f" ({low:.2f}-{high:.2f})" if low is not None else ""
            return f"{r[stat]:.3f}{interval}"

        name = r["dataset"] + (" *" if r["synthetic"] else "")
        table.add_row(name, r["protocol"], r["model"], ci("uf1"), ci("uar"), f"{r['acc']:.3f}", str(r["n"]))
    out.print(table, width=None if out.is_terminal else 160)  # a log file gets the whole table
