"""`hsta-bench tune`: search a model's hyperparameters on a dataset without ever seeing a test subject.

Optuna's TPE proposes configurations, Ray Tune runs them as trials (ASHA stops the weak ones early), and
the protocol is nested (hsta_bench/tuning/nested.py): each study tunes on validation subjects inside the
training side of the outer folds it serves, and the outer run trains every test fold with its study's choice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from hsta_bench.cli.options import (
    ConfigFile,
    DataRoots,
    Imports,
    Json,
    Sets,
    chosen_datasets,
    err,
    import_models,
    load_config,
    out,
    print_table,
    refuse_with_resume,
)
from hsta_bench.cli.run import Address, ClusterSpec, DryRun, Output, Preset, show
from hsta_bench.errors import UserError

Model = Annotated[str | None, typer.Option("--model", metavar="NAME", help="The model to tune.")]
Dataset = Annotated[str | None, typer.Option("--dataset", metavar="NAME", help="The dataset to tune it on.")]
Trials = Annotated[
    int | None, typer.Option("--trials", metavar="N", help="Finished trials per study (default: configs/tune.yaml).")
]
Space = Annotated[
    list[str] | None,
    typer.Option(
        "--space",
        metavar="KEY=SPEC",
        help="Change the search space, e.g. 'train.lr=loguniform(1e-5,1e-2)' or model.drop_path=off (repeatable).",
    ),
]
Resume = Annotated[
    str | None,
    typer.Option(
        "--resume", metavar="TUNE_ID", help="Finish an interrupted tune in OUTPUT (to --trials per study when given)."
    ),
]


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
    dry_run: DryRun = False,
    cluster: ClusterSpec = None,
    imports: Imports = None,
    as_json: Json = False,
) -> None:
    """Tune MODEL on DATASET (nested: test subjects never seen), then score the tuned model in an outer run."""
    from hsta_bench.cli.run import check_dry_run

    import_models(imports, resume)
    if trials is not None and trials < 1:
        raise UserError(f"--trials {trials}: at least one trial per study")
    check_dry_run(dry_run, cluster, resume, address, {})
    if dry_run:
        from hsta_bench.orchestrate import estimate

        with estimate.weightless():  # the models are built only to read their inputs
            cfg, preset = _prepare(model, dataset, preset or "paper", space_items, data_roots, sets, config, trials)
        assert model is not None and dataset is not None  # _prepare refuses them missing
        _dry_run(model, dataset, cfg, preset, trials, address, cluster, as_json)
        return
    if resume is not None:
        refuse_with_resume(
            resume,
            {
                "--model": model,
                "--dataset": dataset,
                "--preset": preset,
                "--space": space_items,
                "--data-root": data_roots,
                "--set": sets,
                "--config": config,
            },
        )
        from hsta_bench.io import read_record

        read_record(output / resume, "tune.json", f"--resume {resume}")  # a missing tune: one line, at once
        from hsta_bench.tuning import driver  # Ray, Optuna and the engine: after the options are checked

        outcome = driver.resume(resume, output, address, trials, err)
    else:
        cfg, preset = _prepare(model, dataset, preset or "paper", space_items, data_roots, sets, config, trials)
        assert model is not None and dataset is not None  # _prepare refuses them missing
        from hsta_bench.tuning import driver

        outcome = driver.start(model, dataset, cfg, preset, trials or cfg["tune"]["trials"], output, address, err)
    report(outcome, as_json)
    if outcome.problem is not None:
        raise outcome.problem


def _prepare(model, dataset, preset, space_items, data_roots, sets, config, trials):
    """The checked configuration of a new tune (every mistake is one line before anything starts)."""
    from hsta_bench import config as config_mod
    from hsta_bench.cli.run import check_names, pairs
    from hsta_bench.cli.unread import refuse_unread

    if not model:
        raise UserError("name the model to tune with --model NAME")
    if not dataset:
        raise UserError("name the dataset to tune on with --dataset NAME (see `hsta-bench datasets list`)")
    from hsta_bench.engine.evaluate import evaluation_config, recipe
    from hsta_bench.orchestrate.trials import dispatch_config
    from hsta_bench.tuning import nested, space

    cfg = load_config(config, sets, data_roots)
    check_names(cfg, preset, [model])
    chosen_datasets([dataset], False, named="--dataset NAME", every="--all-datasets")
    pairs([model], [dataset], cfg, preset)  # the dataset must give the model's inputs (and suit its val rule)
    config_mod.apply_sets(cfg, space.space_sets(model, cfg, space_items or []))
    evaluation_config(cfg)
    dispatch_config(cfg)
    nested.tune_config(cfg, trials)
    recipe(model, cfg, preset)
    searched = [d.name for d in space.dimensions(model, cfg)]
    refuse_unread("tune", sets or [], data_roots or [], cfg, preset, [model], [dataset], searched)
    return cfg, preset


def _dry_run(
    model: str,
    dataset: str,
    cfg: dict,
    preset: str,
    trials: int | None,
    address: str | None,
    spec: str | None,
    as_json: bool,
) -> None:
    """`tune --dry-run`: the studies, their trials and the outer run, estimated (nothing preprocessed,
    trained or written)."""
    from hsta_bench.cli.run import announce, dry_run_cluster
    from hsta_bench.orchestrate import estimate
    from hsta_bench.orchestrate.trials import pair_key
    from hsta_bench.tuning import nested, space

    cluster, source = dry_run_cluster(cfg, address, spec)
    tc = nested.tune_config(cfg, trials)
    p = estimate.plans([(model, dataset)], cfg, preset, announce=announce)[pair_key(model, dataset)]
    with estimate.weightless():  # as the tune checks them before its first trial
        space.check_model_settings(model, len(p.classes), space.dimensions(model, cfg), p.recipe.overrides)
    result = estimate.estimate_tune(p, cfg, tc, cluster, source)
    if as_json:
        print(json.dumps({"dry_run": True, "command": "tune", "preset": preset, **result.as_dict()}, indent=2))
        return
    show_tune_estimate(result, preset, tc)


def show_tune_estimate(result, preset: str, tc) -> None:
    """A tune's estimate: its studies (every trial to the whole budget), then its outer run, then the total."""
    from hsta_bench.cli.run import caption, show_estimate
    from hsta_bench.orchestrate.estimate import duration, si

    outer, c = result.outer, result.outer.cluster
    inner = "loso" if tc.inner_k == "loso" else f"{tc.inner_k}-fold"
    title = (
        f"tune dry run ({preset}): {result.model} on {result.dataset} ({result.protocol}), {len(result.studies)} "
        f"studies, inner {inner} validation, {result.epochs} epochs at most (ASHA may stop a trial from epoch "
        f"{result.grace}), on {c.describe()} ({outer.source})"
    )
    table = Table(
        title=title, title_justify="left", caption=caption(outer.assumptions, outer.notes), caption_justify="left"
    )
    numbers = (
        "subjects",
        "inner folds",
        "trials",
        "samples/trial",
        "CPUs",
        "GPUs",
        "at once",
        "FLOPs/sample",
        "PFLOP <=",
        "wall/trial <=",
    )
    for column in ("study", *numbers[:7], "device", *numbers[7:]):
        table.add_column(column, justify="right" if column in numbers else "left", no_wrap=True)
    for s in result.studies:
        table.add_row(
            s.name,
            str(s.subjects),
            str(s.inner_folds),
            str(s.trials),
            str(s.train_samples),
            f"{result.cpus:g}",
            f"{result.gpus:g}",
            str(result.at_once),
            result.device.describe(),
            si(result.flops.train),
            f"{s.flops * s.trials / 1e15:.3g}",
            duration(s.seconds),
        )
    print_table(table)
    out.print(
        f"tune: {sum(s.trials for s in result.studies)} trials, at most {result.compute / 1e15:.3g} PFLOP, "
        f"{result.gpu_hours:.3g} GPU-hours, wall time {duration(result.seconds)} (every trial to the whole "
        "budget: upper bounds)",
        soft_wrap=True,
    )
    show_estimate(outer, "then the outer run", total=False, captioned=False)
    out.print(
        f"outer run: {outer.compute / 1e15:.3g} PFLOP, {outer.gpu_hours:.3g} GPU-hours, wall time "
        f"{duration(outer.seconds)}",
        soft_wrap=True,
    )
    out.print(
        f"total: at most {(result.compute + outer.compute) / 1e15:.3g} PFLOP, "
        f"{result.gpu_hours + outer.gpu_hours:.3g} GPU-hours, wall time "
        f"{duration(result.seconds + outer.seconds)} on {c.describe()}; nothing trained, no tune folder written",
        soft_wrap=True,
    )


def report(outcome, as_json: bool) -> None:
    from hsta_bench.text import fmt, params_text
    from hsta_bench.tuning import report as report_mod

    info = outcome.info
    if as_json:
        print(
            json.dumps(
                {
                    "tune_id": info["tune_id"],
                    "path": str(outcome.path),
                    "status": info["status"],
                    "studies": report_mod.study_rows(info, _table(outcome.path)),
                    "importances": info.get("importances"),
                    "outer": info.get("outer"),
                    "outer_score": info.get("outer_score"),
                    "best": info.get("best"),
                },
                indent=2,
                default=str,
            )
        )
        return
    table = _table(outcome.path)
    metric = f"val {info['config']['tune']['metric']}"
    studies = Table(title=f"tune {info['tune_id']}: {info['model']} on {info['dataset']}", title_justify="left")
    for column in ("study", "held out", "complete", "stopped", "failed", f"best {metric}", "best configuration"):
        studies.add_column(
            column, justify="right" if column in ("complete", "stopped", "failed") or "best val" in column else "left"
        )
    for r in report_mod.study_rows(info, table):
        held = ", ".join(r["held_out"]) or "none"
        best = "-" if r["best_value"] is None else f"{r['best_value']:.3f}"
        studies.add_row(
            r["study"],
            held if len(held) < 40 else held[:37] + "...",
            str(r["complete"]),
            str(r["pruned"]),
            str(r["fail"]),
            best,
            params_text(r["best_params"]) or "-",
        )
    print_table(studies)
    final = table.filter(table["study"] == "all") if table.height else table
    if final.height:  # every study's trials are in report.md and trials.parquet
        params = [c for c in final.columns if "." in c]
        trials = Table(title="trials of study all (best.yaml is its best)", title_justify="left")
        for column in ("#", "state", metric, "epochs", "s", *params):
            trials.add_column(column, justify="left" if column == "state" else "right")
        for r in final.iter_rows(named=True):
            trials.add_row(
                str(r["number"]),
                r["state"],
                fmt(r["value"]),
                fmt(r["epochs"]),
                fmt(r["seconds"], 1),
                *(fmt(r[c]) for c in params),
            )
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
    metrics = outcome.metrics
    if metrics is not None and metrics.height:
        show(metrics, f"{info['outer']['run_id']} (the outer run: the tuned model's test score)")
    for name in ("best.yaml", "report.md", "history.png", "study.db"):
        if (outcome.path / name).is_file():
            out.print(f"{name}: {outcome.path / name}")


def _table(path: Path):
    import polars as pl

    trials = path / "trials.parquet"
    return pl.read_parquet(trials) if trials.is_file() else pl.DataFrame()
