"""`hsta-bench run`: train models on datasets under the leakage-free protocol and store the results.

Each (model, dataset) pair is one evaluation (hsta_bench/engine/evaluate.py: its plan of folds); its folds
are dispatched as Ray Tune trials on a local Ray instance or a cluster (hsta_bench/orchestrate/), or run in
this process with --in-process. A run is resumable: --resume RUN_ID trains only what is not on disk.
"""

from __future__ import annotations

import fnmatch
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
from hsta_bench.errors import UserError

DatasetNames = Annotated[
    list[str] | None,
    typer.Option("--dataset", metavar="NAME", help="A dataset (repeatable); see `hsta-bench datasets list`."),
]
AllDatasets = Annotated[bool, typer.Option("--all-datasets", help="Every registered dataset.")]
ModelNames = Annotated[
    list[str] | None,
    typer.Option("--model", metavar="NAME", help="A model (repeatable); default: the preset's list."),
]
Preset = Annotated[
    str | None,
    typer.Option(
        "--preset", metavar="NAME", help="smoke (minutes, small inputs) or paper (the published recipes; the default)."
    ),
]
Output = Annotated[Path, typer.Option("--output", metavar="DIR", help="Where run folders go.")]
Address = Annotated[
    str | None,
    typer.Option(
        "--address",
        metavar="ADDR",
        help="Join this Ray cluster (also RAY_ADDRESS); default: a local Ray instance for the run.",
    ),
]
Resume = Annotated[
    str | None,
    typer.Option(
        "--resume",
        metavar="RUN_ID",
        help="Finish an interrupted or failed run in OUTPUT (its own settings; nothing finished is redone).",
    ),
]
InProcess = Annotated[
    bool, typer.Option("--in-process", help="Run the trials one after another in this process, without Ray.")
]
DryRun = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help=(
            "Plan only: the trials, their resources, how many run at once, the compute (FLOPs) and the wall time they "
            "would take on the cluster. Nothing is trained and no run folder is written (synthetic stand-ins it "
            "counts are cached, as every command caches them)."
        ),
    ),
]
SaveWeights = Annotated[
    bool,
    typer.Option(
        "--save-weights",
        help="Keep each fold's final weights in the run folder (weights/MODEL/DATASET/PROTOCOL/FOLD.pth).",
    ),
]
GivenWeights = Annotated[
    Path | None,
    typer.Option(
        "--weights",
        metavar="DIR",
        help=(
            "Score these weights instead of training: a file per fold named by its test subject (FOLD.pth, as "
            "--save-weights writes and STSTNet's release ships), through the same folds, metrics and store."
        ),
    ),
]
Audit = Annotated[
    bool,
    typer.Option(
        "--audit",
        help=(
            "Record test predictions every evaluation.audit_every epochs, in a file of their own, to measure what "
            "choosing each test subject's best epoch would have reported (never a result, never seen by training)."
        ),
    ),
]
Seeds = Annotated[
    str | None,
    typer.Option(
        "--seeds",
        metavar="LIST",
        help=(
            "Training seeds, e.g. 0,1,2: the run is made once per seed (a run folder each, train.seed set; fold i "
            "trains with seed + i), and the leaderboard pools a model's seeds into one row with their spread."
        ),
    ),
]
ClusterSpec = Annotated[
    str | None,
    typer.Option(
        "--cluster",
        metavar="SPEC",
        help=(
            "With --dry-run: the cluster to plan for, per node, e.g. nodes=2,cpus=16,gpus=4,gpu=H200 (default: the "
            "cluster at --address, else this machine)."
        ),
    ),
]


def pairs(
    models: list[str], datasets: list[str], cfg: dict | None = None, preset: str | None = None
) -> tuple[list[tuple[str, str]], list[str]]:
    """(model, dataset) pairs to evaluate, and notes on pairs left out because the dataset cannot give
    the model's inputs, or (with `cfg`) its recipe validates on the test subject's own database and the
    dataset holds one database."""
    from hsta_bench.data.registry import get_source
    from hsta_bench.engine.evaluate import compatible
    from hsta_bench.models import model_inputs

    todo, skipped = [], []
    for model in models:
        inputs = model_inputs(model, 3)  # on the meta device: nothing is allocated or initialised
        own_database = cfg is not None and _val_rule(model, cfg, preset) == "own-database"
        for dataset in datasets:
            if not compatible(inputs, dataset):
                skipped.append(f"{model} on {dataset}: needs {', '.join(inputs)}{_given_by(inputs, dataset)}")
            elif own_database and not get_source(dataset).composite:
                skipped.append(
                    f"{model} on {dataset}: its recipe validates on the test subject's own database and trains on "
                    "the others (evaluation.val_rule own-database), which needs a composite of several databases"
                )
            else:
                todo.append((model, dataset))
    if not todo:
        raise UserError("no model can run on the chosen datasets: " + "; ".join(skipped))
    return todo, skipped


def _val_rule(model: str, cfg: dict, preset: str | None) -> str:
    from hsta_bench.engine.recipes import evaluation_of, recipe

    return str(evaluation_of(recipe(model, cfg, preset), cfg)["val_rule"])


def _given_by(inputs, dataset: str) -> str:
    """For each input `dataset` cannot give, the datasets that can: ' (causal: given by causalnet-composite only)'."""
    from hsta_bench.engine.evaluate import compatible
    from hsta_bench.preprocess.kinds import givers

    notes = []
    for kind in inputs:
        if not compatible([kind], dataset):
            names = givers(kind)
            notes.append(f"{kind}: given by {', '.join(names)}" + (" only" if len(names) == 1 else ""))
    return f" ({'; '.join(notes)})" if notes else ""


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
    dry_run: DryRun = False,
    cluster: ClusterSpec = None,
    save_weights: SaveWeights = False,
    weights: GivenWeights = None,
    audit: Audit = False,
    imports: Imports = None,
    seeds: Seeds = None,
    as_json: Json = False,
) -> None:
    """Train and score models on datasets (leave-one-subject-out by default) into OUTPUT/RUN_ID/."""
    import_models(imports, resume)
    sets = list(sets or []) + evaluation_sets(save_weights, weights, audit, resume)
    drawn = training_seeds(seeds, {"--resume": resume, "--weights": weights})

    check_dry_run(dry_run, cluster, resume, address, {"--in-process": in_process})
    if dry_run:
        from hsta_bench.orchestrate import estimate

        with estimate.weightless():  # the models are built only to read their inputs
            todo, skipped, cfg, preset = _prepare(
                dataset,
                all_datasets,
                model,
                preset or "paper",
                data_roots,
                sets + _seed_sets(drawn[0] if drawn else None),
                config,
            )
        _dry_run(todo, skipped, cfg, preset, address, cluster, as_json)
        if len(drawn) > 1:
            err.print(
                f"--seeds: {len(drawn)} runs like this one, one after another (about {len(drawn)}x the wall time)"
            )
        return
    if resume is not None:
        refuse_with_resume(
            resume,
            {
                "--dataset": dataset,
                "--all-datasets": all_datasets,
                "--model": model,
                "--preset": preset,
                "--data-root": data_roots,
                "--set": sets,
                "--config": config,
            },
        )
        from hsta_bench.orchestrate.record import RunRecord

        RunRecord.read(output / resume, f"--resume {resume}")  # a missing or damaged record: one line, at once
        from hsta_bench.orchestrate import runner  # Ray and the engine: after the options are checked

        _finish(runner.resume(resume, output, address, in_process, err), as_json)
        return
    for n, seed in enumerate(drawn or [None]):  # one run, or one per --seeds seed
        todo, skipped, cfg, preset = _prepare(
            dataset, all_datasets, model, preset or "paper", data_roots, sets + _seed_sets(seed), config
        )
        if seed is not None:
            err.print(f"--seeds: seed {seed} ({n + 1} of {len(drawn)})")
        from hsta_bench.orchestrate import runner

        _finish(runner.start(todo, skipped, cfg, preset, output, address, in_process, err), as_json)


def _finish(outcome, as_json: bool) -> None:
    """A run's summary, then its problem, if it had one, as the command's error."""
    report(outcome.path, outcome.metrics, as_json)
    if outcome.problem is not None:
        raise outcome.problem


def training_seeds(text: str | None, refused: dict) -> list[int]:
    """--seeds LIST as distinct integers, in the order given; refused where a run has no training to seed."""
    if text is None:
        return []
    for option, value in refused.items():
        if value:
            raise UserError(f"--seeds {text}: cannot go with {option} (it trains nothing with a seed of its own)")
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise UserError(f"--seeds {text}: expected integers separated by commas, e.g. 0,1,2") from None
    if len(set(values)) != len(values) or any(v < 0 for v in values):
        raise UserError(f"--seeds {text}: expected distinct non-negative integers")
    return values


def _seed_sets(seed: int | None) -> list[str]:
    return [] if seed is None else [f"train.seed={seed}"]


def evaluation_sets(save_weights: bool, weights: Path | None, audit: bool, resume: str | None) -> list[str]:
    """The evaluation settings that --save-weights, --weights and --audit stand for."""
    if resume is not None and (save_weights or weights or audit):
        raise UserError(
            "--resume: finishes a run with its own settings; --save-weights, --weights and --audit belong to a new run"
        )
    if weights is not None and (save_weights or audit):
        raise UserError("--weights: scores given weights without training; it cannot go with --save-weights or --audit")
    sets = ["evaluation.save_weights=true"] if save_weights else []
    if audit:
        sets.append("evaluation.audit=true")
    if weights is not None:
        sets.append(f"evaluation.weights={Path(weights).expanduser().resolve()}")
    return sets


def check_dry_run(dry_run: bool, cluster: str | None, resume: str | None, address: str | None, refused: dict) -> None:
    """--cluster only describes what a dry run plans for; a dry run plans a new, dispatched run or tune
    (`refused`: options, spelling -> value, that make no sense in one)."""
    if cluster is not None and not dry_run:
        raise UserError(
            f"--cluster {cluster}: describes the cluster a --dry-run plans for; a run or tune uses the "
            "nodes it is given (--address)"
        )
    if not dry_run:
        return
    given = [name for name, value in {"--resume": resume, **refused}.items() if value]
    if given:
        raise UserError(f"--dry-run: plans a new run or tune, dispatched through Ray; drop {', '.join(given)}")
    if cluster is not None and address:
        raise UserError(f"--dry-run: give --cluster {cluster} or --address {address}, not both")


def dry_run_cluster(cfg: dict, address: str | None, spec: str | None):
    """The cluster a dry run plans for and where its description came from (orchestrate/estimate.py)."""
    from hsta_bench.orchestrate import estimate
    from hsta_bench.orchestrate.trials import dispatch_config

    return estimate.dry_run_cluster(spec, address, dispatch_config(cfg))


def announce(text: str) -> None:
    """What the data layer says while it works (a stand-in being written), dimmed on stderr."""
    err.print(f"[dim]{text}[/dim]")


def _dry_run(todo, skipped, cfg, preset, address, spec, as_json: bool) -> None:
    """`run --dry-run`: the plans without preprocessing, the trials the run would make, and their estimate."""
    from hsta_bench.orchestrate import estimate

    cluster, source = dry_run_cluster(cfg, address, spec)
    plans = estimate.plans(todo, cfg, preset, announce=announce)
    result = estimate.estimate_run(plans, cfg, cluster, source)
    if as_json:
        print(
            json.dumps(
                {"dry_run": True, "command": "run", "preset": preset, **result.as_dict(), "skipped": skipped}, indent=2
            )
        )
        return
    show_estimate(result, f"dry run ({preset})", skipped)


def show_estimate(result, title: str, skipped=(), total: bool = True, captioned: bool = True) -> None:
    """A run's estimate as a table (an evaluation a row), what it assumed (`captioned`), and its total."""
    from hsta_bench.orchestrate.estimate import duration, si

    c = result.cluster
    table = Table(
        title=f"{title}: {len(result.evaluations)} evaluation(s), {len(result.trials)} trial(s) on "
        f"{c.describe()} ({result.source})",
        title_justify="left",
        caption=caption(result.assumptions, result.notes) if captioned else None,
        caption_justify="left",
    )
    numbers = ("samples", "folds", "epochs", "trials", "CPUs", "GPUs", "at once", "FLOPs/sample", "PFLOP", "wall")
    for column in ("model", "dataset", *numbers[:7], "device", *numbers[7:]):
        table.add_column(column, justify="right" if column in numbers else "left", no_wrap=True)
    for ev in result.evaluations:
        synthetic = " *" if ev.synthetic else ""
        trials = f"{len(ev.trials)}" + (" (fold-batched)" if ev.fold_batched else "")
        table.add_row(
            ev.model,
            ev.dataset + synthetic,
            str(ev.samples),
            str(ev.folds),
            str(ev.epochs),
            trials,
            f"{ev.cpus:g}",
            f"{ev.gpus:g}",
            str(ev.at_once),
            ev.device.describe(),
            si(ev.flops.train),
            f"{ev.compute / 1e15:.3g}",
            duration(ev.seconds(c)),
        )
    print_table(table)
    for note in skipped:
        out.print(f"[dim]skipped: {note}[/dim]")
    if total:
        out.print(
            f"total: {result.compute / 1e15:.3g} PFLOP, {result.gpu_hours:.3g} GPU-hours, wall time "
            f"{duration(result.seconds)} on {c.describe()} (trials packed longest first); nothing trained, "
            "no run folder written",
            soft_wrap=True,
        )


def caption(assumed: dict, notes) -> str:
    """What an estimate assumed (configs/estimate.yaml), in a line or two under its table."""
    u, step = assumed["utilisation"], assumed["step_overhead_s"]
    lines = []
    if "gpu" in assumed:
        g = assumed["gpu"]
        peaks = ", ".join(f"{k} {v:g}" for k, v in g["peak_tflops_per_s"].items())
        lines.append(
            f"{g['name']}: dense peak TFLOP/s {peaks}, at {u['gpu']:.0%} utilisation, a step >= "
            f"{step['gpu'] * 1e3:g} ms; a trial with a share of a GPU gets that share of it"
        )
    lines.append(
        f"CPU: {assumed['cpu_gflops_per_core']:g} GFLOP/s per core at {u['cpu']:.0%}, a step >= "
        f"{step['cpu'] * 1e3:g} ms; FLOPs/sample: one training step (torch's counter); at once: trials of "
        "that shape the cluster runs together (configs/estimate.yaml)"
    )
    lines += [("* " if "synthetic" in n else "") + n for n in notes]
    return "\n".join(lines)


def check_names(cfg: dict, preset: str, models: list[str]) -> None:
    """--preset and --model name things that exist (one line naming the option otherwise)."""
    from hsta_bench.models import list_models

    if preset not in cfg["presets"]:
        raise UserError(f"--preset {preset}: unknown preset (known: {', '.join(cfg['presets'])})")
    known = list_models()
    for name in models:
        if name not in known:
            raise UserError(f"--model {name}: unknown model (known: {', '.join(known)})")
    for name, spec in cfg["models"].items():  # a recipe (a user's --config may add one) names a model there is
        patterns = spec.get("applies_to", [name]) if isinstance(spec, dict) else None
        if not isinstance(patterns, list) or not any(fnmatch.filter(known, str(p)) for p in patterns):
            raise UserError(
                f"models.{name}: a recipe for no registered model (applies_to {patterns}; known models: "
                f"{', '.join(known)})"
            )


def _prepare(dataset, all_datasets, model, preset, data_roots, sets, config):
    """The checked settings of a new run: (model, dataset) pairs, pairs left out, config, preset."""
    cfg = load_config(config, sets, data_roots)
    check_names(cfg, preset, model or [])
    datasets = chosen_datasets(dataset, all_datasets, named="--dataset NAME", every="--all-datasets")
    models = list(dict.fromkeys(model or cfg["presets"][preset].get("models") or []))
    todo, skipped = pairs(models, datasets, cfg, preset)
    from hsta_bench.cli.unread import refuse_unread
    from hsta_bench.engine.evaluate import evaluation_config, recipe  # the engine: once the names are right
    from hsta_bench.orchestrate.trials import dispatch_config

    trained = list(dict.fromkeys(m for m, _ in todo))
    refuse_unread("run", sets, data_roots or [], cfg, preset, trained, [d for _, d in todo])

    evaluation_config(cfg)  # settings errors before any work starts
    dispatch_config(cfg)
    for name in trained:
        check_builds(name, recipe(name, cfg, preset))
    return todo, skipped, cfg, preset


def check_builds(model: str, rec) -> None:
    """A model builds with the overrides the command line gave its recipe `rec` (on the meta device); one line
    naming the `--set` where it does not."""
    from hsta_bench.models import meta_model

    given = [option for key, option in rec.options.items() if key.startswith("model.")]
    if given:
        try:
            meta_model(model, 3, rec.overrides)
        except UserError as exc:
            raise UserError(f"{'; '.join(given)}: {exc}") from None


def report(path: Path, summary, as_json: bool) -> None:
    run_id = path.name
    if as_json:
        metrics = summary.to_dicts() if summary is not None else []
        print(json.dumps({"run_id": run_id, "path": str(path), "metrics": metrics}, indent=2))
    elif summary is not None:
        show(summary, run_id)
        out.print(f"results: {path}  (leaderboard: {path / 'leaderboard.md'})")


def show(summary, run_id: str) -> None:
    table = Table(
        title=f"run {run_id}: pooled over folds, (95% CI) by subject bootstrap",
        title_justify="left",
        caption="* synthetic stand-in" if summary["synthetic"].any() else None,
        caption_justify="left",
    )
    for column in ("dataset", "protocol", "model", "UF1", "UAR", "acc", "n"):
        table.add_column(column, justify="right" if column in ("UF1", "UAR", "acc", "n") else "left", no_wrap=True)
    for r in summary.iter_rows(named=True):

        def ci(stat, r=r):
            low, high = r[f"{stat}_ci_low"], r[f"{stat}_ci_high"]
            interval = f" ({low:.2f}-{high:.2f})" if low is not None else ""
            return f"{r[stat]:.3f}{interval}"

        name = r["dataset"] + (" *" if r["synthetic"] else "")
        table.add_row(name, r["protocol"], r["model"], ci("uf1"), ci("uar"), f"{r['acc']:.3f}", str(r["n"]))
    print_table(table)
