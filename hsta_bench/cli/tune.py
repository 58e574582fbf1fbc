"""`hsta-bench tune`: search a model's hyperparameters on a dataset without ever seeing a test subject.

Optuna's TPE proposes configurations, Ray Tune runs them as trials (ASHA stops the weak ones early), and
the protocol is nested (hsta_bench/tuning/nested.py): each study tunes on validation subjects inside the
training side of the outer folds it serves, and the outer run trains every test fold with its study's choice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from hsta_bench.cli.options import (ConfigFile, DataRoots, Json, Sets, chosen_datasets, err, load_config, out,
                                    print_table, refuse_with_resume)
from hsta_bench.cli.run import Address, Output, Preset, show
from hsta_bench.errors import UserError

Model = Annotated[Optional[str], typer.Option("--model", metavar="NAME", help="The model to tune.")]
Dataset = Annotated[Optional[str], typer.Option("--dataset", metavar="NAME", help="The dataset to tune it on.")]
Trials = Annotated[Optional[int], typer.Option("--trials", metavar="N", help="Finished trials per study (default: configs/tune.yaml).")]
Space = Annotated[Optional[list[str]], typer.Option("--space", metavar="KEY=SPEC", help="Change the search space, e.g. 'train.lr=loguniform(1e-5,1e-2)' or model.drop_path=off (repeatable).")]
Resume = Annotated[Optional[str], typer.Option("--resume", metavar="TUNE_ID", help="Finish an interrupted tune in OUTPUT (to --trials per study when given).")]


def tune(
    model: Model = None,
    dataset: Dataset = None,
    trials: Trials = None,
    preset: Preset = None,
    space_items: Space = None,
    data_roots: DataRoots = None,
    sets: Sets = None,
    config: ConfigFile = None,
    output: Output = Path("results"),
    address: Address = None,
    resume: Resume = None,
    as_json: Json = False,
) -> None:
    """Tune MODEL on DATASET (nested: test subjects never seen), then score the tuned model in an outer run."""
    from hsta_bench.tuning import driver

    if trials is not None and trials < 1:
        raise UserError(f"--trials {trials}: at least one trial per study")
    if resume is not None:
        refuse_with_resume(resume, {"--model": model, "--dataset": dataset, "--preset": preset, "--space": space_items,
                                    "--data-root": data_roots, "--set": sets, "--config": config})
        outcome = driver.resume(resume, output, address, trials, err)
    else:
        cfg, preset = _prepare(model, dataset, preset or "paper", space_items, data_roots, sets, config, trials)
        outcome = driver.start(model, dataset, cfg, preset, trials or cfg["tune"]["trials"], output, address, err)
    report(outcome, as_json)
    if outcome.problem is not None:
        raise outcome.problem


def _prepare(model, dataset, preset, space_items, data_roots, sets, config, trials):
    """The checked configuration of a new tune (every mistake is one line before anything starts)."""
    from hsta_bench import config as config_mod
    from hsta_bench.cli.run import check_names, pairs
    from hsta_bench.engine.evaluate import evaluation_config, recipe
    from hsta_bench.orchestrate.trials import dispatch_config
    from hsta_bench.tuning import nested, space

    if not model:
        raise UserError("name the model to tune with --model NAME")
    if not dataset:
        raise UserError("name the dataset to tune on with --dataset NAME (see `hsta-bench datasets list`)")
    cfg = load_config(config, sets, data_roots)
    check_names(cfg, preset, [model])
    chosen_datasets([dataset], False, named="--dataset NAME", every="--all-datasets")
    pairs([model], [dataset])  # the dataset must give the model's inputs
    config_mod.apply_sets(cfg, space.space_sets(model, cfg, space_items or []))
    evaluation_config(cfg)
    dispatch_config(cfg)
    nested.tune_config(cfg, trials)
    recipe(model, cfg, preset)
    space.dimensions(model, cfg)
    return cfg, preset


def report(outcome, as_json: bool) -> None:
    from hsta_bench.tuning import report as report_mod

    info = outcome.info
    if as_json:
        print(json.dumps({"tune_id": info["tune_id"], "path": str(outcome.path), "status": info["status"],
                          "studies": report_mod.study_rows(info, _table(outcome.path)),
                          "importances": info.get("importances"), "outer": info.get("outer"),
                          "outer_score": info.get("outer_score"), "best": info.get("best")}, indent=2, default=str))
        return
    table = _table(outcome.path)
    metric = f"val {info['config']['tune']['metric']}"
    studies = Table(title=f"tune {info['tune_id']}: {info['model']} on {info['dataset']}", title_justify="left")
    for column in ("study", "held out", "complete", "stopped", "failed", f"best {metric}", "best configuration"):
        studies.add_column(column, justify="right" if column in ("complete", "stopped", "failed") or "best val" in column else "left")
    for r in report_mod.study_rows(info, table):
        held = ", ".join(r["held_out"]) or "none"
        best = "-" if r["best_value"] is None else f"{r['best_value']:.3f}"
        studies.add_row(r["study"], held if len(held) < 40 else held[:37] + "...", str(r["complete"]), str(r["pruned"]),
                        str(r["fail"]), best, report_mod.params_text(r["best_params"]) or "-")
    print_table(studies)
    final = table.filter(table["study"] == "all") if table.height else table
    if final.height:  # every study's trials are in report.md and trials.parquet
        params = [c for c in final.columns if "." in c]
        trials = Table(title="trials of study all (best.yaml is its best)", title_justify="left")
        for column in ("#", "state", metric, "epochs", "s", *params):
            trials.add_column(column, justify="left" if column == "state" else "right")
        for r in final.iter_rows(named=True):
            trials.add_row(str(r["number"]), r["state"], report_mod.fmt(r["value"]), report_mod.fmt(r["epochs"]),
                           report_mod.fmt(r["seconds"], 1), *(report_mod.fmt(r[c]) for c in params))
        print_table(trials)
    imps = {k: v for k, v in (info.get("importances") or {}).items() if "note" not in v}
    if imps:
        names = sorted({n for v in imps.values() for n in v})
        importance = Table(title="parameter importances (fANOVA)", title_justify="left")
        importance.add_column("study")
        for n in names:
            importance.add_column(n, justify="right")
        for study, values in imps.items():
            importance.add_row(study, *(f"{values.get(n, 0):.2f}" for n in names))
        print_table(importance)
    metrics = outcome.outer
    if metrics is not None and metrics.height:
        show(metrics, f"{info['outer']['run_id']} (the outer run: the tuned model's test score)")
    for name in ("best.yaml", "report.md", "history.png", "study.db"):
        if (outcome.path / name).is_file():
            out.print(f"{name}: {outcome.path / name}")


def _table(path: Path):
    import polars as pl

    trials = path / "trials.parquet"
    return pl.read_parquet(trials) if trials.is_file() else pl.DataFrame()

