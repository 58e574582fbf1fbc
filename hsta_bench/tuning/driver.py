"""A tune from start to end: its folder, its studies (one Ray Tune experiment), the outer run, what it leaves.

    <output>/<tune_id>/tune.json        written first (status planning -> running -> finished / failed /
                                        interrupted): settings, config, the studies and what each holds out
    <output>/<tune_id>/study.db         the Optuna studies (SQLite; studies.py), run by searchers.py
    <output>/<tune_id>/splits.parquet   study, fold, subject, sample_id, role (train | val | held_out)
    <output>/<tune_id>/trials.parquet   every trial of every study: state, value, epochs, parameters
    <output>/<tune_id>/outer-<key>/     the outer run (a run folder like any other: predictions, metrics, ...),
                                        each outer fold trained with its group's best configuration (outer.yaml)
    <output>/<tune_id>/best.yaml        the best configuration of the study over every subject, as a config
                                        file `hsta-bench run --config` takes
    <output>/<tune_id>/report.md, history.png, logs/, ray/

`--resume TUNE_ID` reopens the studies, tops each up to its trial count and finishes the outer run; nothing
finished is redone.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import polars as pl
import yaml
from optuna.trial import TrialState

from hsta_bench.engine.evaluate import plan, subject_keys, subject_names
from hsta_bench.errors import UserError
from hsta_bench.io import atomic_write, environment, git_commit, new_run_id, read_record, write_json, write_parquet
from hsta_bench.models import plugins
from hsta_bench.orchestrate import runner
from hsta_bench.orchestrate.ray_tune import Session
from hsta_bench.orchestrate.record import RunRecord
from hsta_bench.orchestrate.runner import Outcome  # a tune's outcome has a run's shape: metrics are the outer run's
from hsta_bench.orchestrate.trials import dispatch_config, resources
from hsta_bench.tuning import nested, report, searchers, space, studies


class TuneIncomplete(UserError):
    exit_code = 1


class TuneInterrupted(UserError):
    exit_code = 130


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_tune_id() -> str:
    return "tune-" + new_run_id()


def start(
    model: str, dataset: str, cfg: dict, preset: str, trials: int, output: Path, address: str | None, console
) -> Outcome:
    tune_id = new_tune_id()
    path = Path(output) / tune_id
    info = {
        "tune_id": tune_id,
        "created": _now(),
        "command": sys.argv,
        "model": model,
        "dataset": dataset,
        "preset": preset,
        "trials": trials,
        "git_commit": git_commit(),
        "environment": environment(),
        **plugins.record([model]),
        "config": cfg,
        "status": "planning",
    }
    path.mkdir(parents=True, exist_ok=True)
    write_json(info, path / "tune.json")
    return _execute(path, info, Path(output), address, console)


def resume(tune_id: str, output: Path, address: str | None, trials: int | None, console) -> Outcome:
    """Finish tune `tune_id` (to `trials` per study when given, else its own count)."""
    path = Path(output) / tune_id
    info = read_record(path, "tune.json", f"--resume {tune_id}")
    plugins.add_imports(info.get("imports"))  # the model it tunes, when it came from --import
    if trials is not None:
        info["trials"] = trials
    info.setdefault("resumed", []).append(
        {"at": _now(), "command": sys.argv, "git_commit": git_commit(), "trials": info["trials"]}
    )
    return _execute(path, info, Path(output), address, console)


def _execute(path: Path, info: dict, output: Path, address: str | None, console) -> Outcome:
    cfg, model, dataset = info["config"], info["model"], info["dataset"]
    tc = nested.tune_config(cfg, info["trials"])
    d = dispatch_config(cfg)
    p = plan(model, dataset, cfg, info["preset"], announce=lambda text: console.print(f"[dim]{text}[/dim]"))
    dims = space.dimensions(model, cfg)
    space.check_model_settings(model, len(p.classes), dims, p.recipe.overrides)
    plan_studies = nested.studies(p, tc)
    described = [s.describe() for s in plan_studies]
    if info.get("studies") not in (None, described):
        raise UserError(
            f"--resume {info['tune_id']}: {model} on {dataset} no longer divides into the studies it had "
            "(the data or the tune settings changed); start a new tune"
        )
    store = studies.storage(path / "study.db", tc.storage)
    session = Session(address or d.address or os.environ.get("RAY_ADDRESS"), d, path / "logs")
    try:
        cluster = session.cluster()
        cpus, gpus = resources(p, d, cluster)  # a trial's GPU share depends on the cluster having GPUs
        node_checks = session.check_nodes(None, console)  # a joined cluster: every node can run a trial
    except BaseException:
        session.close()
        raise
    datas = [nested.study_data(p, s, tc, cpus, gpus) for s in plan_studies]
    write_parquet(nested.splits_table(p, datas), path / "splits.parquet")
    info.update(
        studies=described,
        protocol=p.protocol,
        space={dim.name: dim.spec() for dim in dims},
        budget_epochs=p.recipe.train.epochs,
        grace_epochs=tc.grace(p.recipe.train.epochs, p.recipe.train.warmup_epochs),
        startup_trials=tc.startup(tc.trials),
        recipe=p.recipe.source,
        status="running",
    )
    write_json(info, path / "tune.json")
    console.print(f"tune {info['tune_id']} -> {path}")
    console.print(
        f"{model} on {dataset} ({p.protocol}): {len(plan_studies)} studies of {tc.trials} trials, "
        f"{len(p.folds)} outer folds in {sum(1 for s in plan_studies if s.outer_folds)} groups, "
        f"inner {tc.inner_k}-fold validation, {p.recipe.train.epochs} epochs at most"
    )

    problem: UserError | None  # a TuneIncomplete, or the TuneInterrupted below
    problem, interrupted, outer = None, False, None
    started = time.perf_counter()
    try:
        info["dispatch"] = {**session.describe(), "node_checks": node_checks}
        for s in plan_studies:
            what = f"holds out {', '.join(s.held_out)}" if s.held_out else "every subject"
            console.print(f"study {s.name}: {what}; tunes on {len(s.subjects)} subjects")
        errors = searchers.run(
            datas,
            dims,
            store,
            info["tune_id"],
            tc,
            tc.trials,
            d,
            cpus,
            gpus,
            path / "ray",
            report=console.print,
            cluster=cluster,
        )
        short = {
            s.name: n
            for s in plan_studies
            if (n := studies.finished(studies.load(store, info["tune_id"], s))) < tc.trials
        }
        if short:
            counts = ", ".join(f"{name} {n}/{tc.trials}" for name, n in short.items())
            problem = TuneIncomplete(
                f"tune {info['tune_id']}: studies short of their trials "
                f"({counts}: {'; '.join(errors[:2]) or 'failed'}); "
                f"tracebacks under {path / 'ray'}; finish it with: hsta-bench tune --resume {info['tune_id']} "
                f"--output {output}"
            )
        if problem is None:
            outer, problem = _outer(path, info, p, plan_studies, store, output, session, console)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        info["seconds"] = round(info.get("seconds", 0) + time.perf_counter() - started, 2)
        session.close()

    if interrupted:
        info["status"] = "interrupted"
        problem = TuneInterrupted(
            f"tune {info['tune_id']} interrupted; finish it with: "
            f"hsta-bench tune --resume {info['tune_id']} --output {output}"
        )
    elif problem is not None:
        info["status"] = "failed"
    else:
        info["status"], info["finished"] = "finished", _now()
    if outer is not None and outer.height:
        row = outer.row(0, named=True)
        info["outer_score"] = {
            k: row[k] for k in ("uf1", "uar", "acc", "n", "uf1_ci_low", "uf1_ci_high", "uar_ci_low", "uar_ci_high")
        }
    _write_best(path, info, p, plan_studies, store)
    _write_reports(path, info, plan_studies, store)
    write_json(info, path / "tune.json")
    return Outcome(path, info, outer, problem)


def best_trial(s):
    """The COMPLETE trial with the highest value (the lowest number among equals), or None."""
    done = s.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return max(done, key=lambda t: (t.value, -t.number)) if done else None


def _outer(path: Path, info: dict, p, plan_studies, store, output: Path, session, console):
    """The outer run: every outer fold trained with the best configuration of its group's study."""
    folds, chosen = {}, {}
    for s in plan_studies:
        if not s.outer_folds:
            continue
        best = best_trial(studies.load(store, info["tune_id"], s))
        if best is None:  # every trial stopped early: no configuration trained the whole budget
            return None, TuneIncomplete(
                f"tune {info['tune_id']}: study {s.name} has no trial that trained every epoch; "
                f"add trials with: hsta-bench tune --resume {info['tune_id']} --trials N "
                f"--output {output}"
            )
        params = space.nested(best.params)
        chosen[s.name] = {"trial": best.number, "value": best.value, "params": params}
        for name in s.outer_folds:  # with the subjects that chose it, which `run` checks against the fold's
            folds[name] = {**copy.deepcopy(params), "tuned_on": _tuned_on(info, p, s.subjects)}
    info["chosen"] = chosen
    model, dataset = info["model"], info["dataset"]
    tuned = {"tuned": {model: {"folds": {dataset: folds}}}}
    key = hashlib.sha256(json.dumps(tuned, sort_keys=True).encode()).hexdigest()[:8]
    run_id = f"{info['tune_id']}/outer-{key}"
    header = (
        f"# The outer run of tune {info['tune_id']}: each test fold of {model} on {dataset} trained with the\n"
        f"# configuration its group's study chose without that fold's subjects. Reproduce it with the tune's\n"
        f"# own settings (tune.json) plus:\n"
        f"#   hsta-bench run --config outer.yaml --model {model} --dataset {dataset} --preset {info['preset']}\n"
    )
    atomic_write(path / "outer.yaml", lambda tmp: tmp.write_text(header + _yaml(tuned), encoding="utf-8"))
    info["outer"] = {"run_id": run_id, "path": str(output / run_id)}

    cfg = copy.deepcopy(info["config"])
    entry = cfg.setdefault("tuned", {}).setdefault(model, {})
    entry.setdefault("folds", {})[dataset] = folds
    run_json = output / run_id / RunRecord.FILE
    console.print(f"outer run {run_id}: {len(p.folds)} folds, each with its group's configuration")
    if run_json.is_file() and RunRecord.read(output / run_id, f"--resume {info['tune_id']}").status == "finished":
        metrics = pl.read_parquet(output / run_id / "metrics.parquet")
        return metrics.filter(pl.col("scope") == "all"), None
    if run_json.is_file():
        run = runner.resume(run_id, output, None, False, console, executor=session)
    else:
        extra = {"tune": {"tune_id": info["tune_id"], "chosen": chosen}}
        run = runner.start(
            [(model, dataset)],
            [],
            cfg,
            info["preset"],
            output,
            None,
            False,
            console,
            run_id=run_id,
            executor=session,
            extra=extra,
        )
    summary, problem = run.metrics, run.problem
    if isinstance(problem, runner.RunInterrupted):
        raise KeyboardInterrupt  # the tune's own handler records it and says how to resume
    if problem is not None:
        problem = TuneIncomplete(
            f"tune {info['tune_id']}: the outer run did not finish ({problem}); finish it with: "
            f"hsta-bench tune --resume {info['tune_id']} --output {output}"
        )
    return summary, problem


def _tuned_on(info: dict, p, subjects) -> dict:
    """What `run` needs to refuse settings on the subjects that chose them (evaluate.check_tuned_on)."""
    keys = dict(zip(subject_names(p.manifest).tolist(), subject_keys(p.manifest).tolist()))
    return {"tune": info["tune_id"], "synthetic": p.synthetic, "subjects": sorted(keys[s] for s in subjects)}


def _yaml(data) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def _write_best(path: Path, info: dict, p, plan_studies, store) -> None:
    """best.yaml: the final study's best configuration as a config file (only once that study is complete)."""
    final = [s for s in plan_studies if not s.outer_folds]
    if not final:
        return
    s = studies.load(store, info["tune_id"], final[0])
    best = best_trial(s) if s is not None else None
    if best is None or studies.finished(s) < info["trials"]:
        return
    model, dataset = info["model"], info["dataset"]
    params = space.nested(best.params)
    earlier = copy.deepcopy((info["config"].get("tuned") or {}).get(model) or {})
    earlier.pop("folds", None)
    for section, values in params.items():
        earlier.setdefault(section, {}).update(values)
    mine, before = _tuned_on(info, p, final[0].subjects), earlier.get("tuned_on") or {}
    if before and bool(before.get("synthetic")) == mine["synthetic"]:  # settings it started from were chosen too
        mine["subjects"] = sorted(set(mine["subjects"]) | set(before.get("subjects") or ()))
    earlier["tuned_on"] = mine
    outer = info.get("outer_score")
    honest = (
        f"# The nested estimate of this procedure on {dataset} is the tune's outer score"
        + (f": UF1 {outer['uf1']:.3f}" if outer else "")
        + ".\n"
    )
    header = (
        f"# Tuned by `hsta-bench tune` ({info['tune_id']}, commit {info.get('git_commit')}): {model} on "
        f"{dataset}\n# ({info.get('protocol')}, preset {info['preset']}); trial {best.number} of study `all`, "
        f"the best of {studies.finished(s)} by validation {info['config']['tune']['metric']} "
        f"{best.value:.3f} (inner folds over every subject).\n"
        f"# Use: hsta-bench run --config best.yaml --model {model} --dataset DATASET --preset {info['preset']}\n"
        f"# Every subject of {dataset} helped choose it (tuned_on), so `run` refuses to test it on them.\n" + honest
    )
    atomic_write(
        path / "best.yaml", lambda tmp: tmp.write_text(header + _yaml({"tuned": {model: earlier}}), encoding="utf-8")
    )
    info["best"] = {"trial": best.number, "value": best.value, "params": params, "file": str(path / "best.yaml")}


def _write_reports(path: Path, info: dict, plan_studies, store) -> None:
    table = report.trials_table(store, info["tune_id"], plan_studies)
    write_parquet(table, path / "trials.parquet")
    info["importances"] = report.importances(store, info["tune_id"], plan_studies, info["config"]["tune"]["seed"])
    if table.height:
        report.history_plot(table, path / "history.png", f"val_{info['config']['tune']['metric']}")
    atomic_write(path / "report.md", lambda tmp: tmp.write_text(report.markdown(info, table), encoding="utf-8"))
