"""A run from start to end: its folder, its plans, its trials dispatched, its fragments merged into the store.

    <output>/<run_id>/run.json       written first (status `planning`), then at each stage: the config, the
                                     (model, dataset) pairs, the trials, per evaluation recipe/seeds/timings
    <output>/<run_id>/fragments/     one parquet per trained fold (orchestrate/fragments.py); elsewhere when
                                     dispatch.storage is set (a cluster's shared storage)
    <output>/<run_id>/tune/          Ray Tune's experiment state and each trial's own log
    <output>/<run_id>/logs/          ray.log (Ray's driver-side log) and the traceback of every failed trial
    + predictions / splits / metrics / per_class / confusion (engine/results.py) and leaderboard.md

Because fragments are per fold and written whole, a run killed at any point is finished by `--resume`:
the plans are rebuilt from run.json, trials train only folds without a fragment, and the merge takes
every (model, dataset, fold) exactly once. The store is written from evaluations whose folds are all done,
so even a failed or interrupted run leaves what it finished.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl

from hsta_bench.engine import audit
from hsta_bench.engine import splits as splits_mod
from hsta_bench.engine import weights as weights_mod
from hsta_bench.engine.evaluate import evaluation_config, plan
from hsta_bench.engine.results import RunStore
from hsta_bench.errors import UserError
from hsta_bench.io import atomic_write, environment, git_commit
from hsta_bench.leaderboard import render_run
from hsta_bench.models import plugins
from hsta_bench.orchestrate import fragments
from hsta_bench.orchestrate import trials as trials_mod
from hsta_bench.orchestrate.inprocess import InProcess
from hsta_bench.orchestrate.ray_tune import Session
from hsta_bench.orchestrate.record import RunRecord
from hsta_bench.orchestrate.view import TrialView


class RunIncomplete(UserError):
    """Some trials failed (after their retries): the run can be finished with --resume."""

    exit_code = 1


class RunInterrupted(UserError):
    exit_code = 130


@dataclass
class Outcome:
    """What a run or a tune (tuning/driver.py) leaves: its folder, its record (run.json, tune.json) as
    written, the metrics of what finished (pooled, scope `all`; a tune's: its outer run's, or None), and the
    error to report (None when it is complete)."""

    path: Path
    info: dict
    metrics: object
    problem: UserError | None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def start(
    pairs: list,
    skipped: list,
    cfg: dict,
    preset: str,
    output: Path,
    address: str | None,
    in_process: bool,
    console,
    run_id: str | None = None,
    executor=None,
    extra: dict | None = None,
) -> Outcome:
    """A new run of (model, dataset) `pairs`; returns its Outcome.
    A caller that holds a Ray session already (hsta-bench tune) passes it as `executor`, and what the run
    is part of as `extra` (recorded in run.json)."""
    store = RunStore(output, run_id)
    models = plugins.record([m for m, _ in pairs])
    record = RunRecord(
        run_id=store.run_id,
        created=_now(),
        command=sys.argv,
        preset=preset,
        pairs=[list(p) for p in pairs],
        skipped=skipped,
        git_commit=git_commit(),
        environment=environment(),
        imports=models.get("imports"),
        model_origins=models.get("model_origins"),
        config=cfg,
        status="planning",
        extra=dict(extra or {}),
    )
    store.path.mkdir(parents=True, exist_ok=True)
    record.write(store.path)
    return _execute(store, record, address, in_process, console, executor)


def resume(run_id: str, output: Path, address: str | None, in_process: bool, console, executor=None) -> Outcome:
    """Finish run `run_id` in `output`: only what is not on disk yet is trained."""
    record = RunRecord.read(Path(output) / run_id, f"--resume {run_id}")
    plugins.add_imports(record.imports)  # the models it ran that came from --import
    if record.resumed is None:
        record.resumed = []
    record.resumed.append({"at": _now(), "command": sys.argv, "git_commit": git_commit()})
    return _execute(RunStore(output, run_id), record, address, in_process, console, executor)


def fragment_root(store, cfg: dict) -> Path:
    storage = trials_mod.dispatch_config(cfg).storage
    # absolute: trials run in other working directories (Ray Tune's trial folders, other nodes)
    return ((Path(storage) / store.run_id if storage else store.path) / "fragments").resolve()


def _evaluation(p) -> dict:
    return {
        "model": p.model,
        "dataset": p.dataset,
        "protocol": p.protocol,
        "classes": list(p.classes),
        "synthetic": p.synthetic,
        "samples": int(len(p.y)),
        "folds": len(p.folds),
        "evaluation": p.evaluation,
        "train": asdict(p.recipe.train),
        "overrides": p.recipe.overrides,
        "recipe": p.recipe.source,
        "config_key": p.key(),
        "settings": p.settings(),  # what the key hashes, complete (engine/provenance.py; the leaderboard keeps it)
        "seeds": {f.name: p.fold_seed(f.index) for f in p.folds},
        "encoding": p.encoding,
        **({"given_weights": p.weights} if p.weights else {}),
        **({"audit_every": p.audit_every} if p.audit_every else {}),
        **({"fold_recipes": _fold_differences(p)} if p.fold_recipes else {}),
    }


def _fold_differences(p) -> dict:
    """What each fold with its own recipe (configs/tuned.yaml) sets differently from the evaluation's recipe."""
    base = asdict(p.recipe.train)
    out = {}
    for index, r in sorted(p.fold_recipes.items()):
        train = {k: v for k, v in asdict(r.train).items() if base.get(k) != v}
        model = {k: v for k, v in r.overrides.items() if p.recipe.overrides.get(k, object()) != v}
        out[p.folds[index].name] = {"train": train, "model": model}
    return out


def _plans(record: RunRecord, console) -> dict:
    earlier = {(e["model"], e["dataset"]): e.get("config_key") for e in record.evaluations or []}
    plans = {}
    for model, dataset in record.pairs:
        p = plan(
            model, dataset, record.config, record.preset, announce=lambda text: console.print(f"[dim]{text}[/dim]")
        )
        if earlier.get((model, dataset)) not in (None, p.key()):
            raise UserError(
                f"--resume {record.run_id}: {model} on {dataset} no longer plans as it did when the run "
                "started (its recipe or evaluation settings changed); start a new run"
            )
        plans[trials_mod.pair_key(model, dataset)] = p
    return plans


def _execute(store, record: RunRecord, address: str | None, in_process: bool, console, executor=None):
    cfg = record.config
    d = trials_mod.dispatch_config(cfg)
    plans = _plans(record, console)
    console.print(f"run {store.run_id} -> {store.path}")
    for note in record.skipped:
        console.print(f"[dim]skipped: {note}[/dim]")
    evaluations = record.evaluations = [_evaluation(p) for p in plans.values()]
    root = fragment_root(store, cfg)
    address = address or d.address or os.environ.get("RAY_ADDRESS")
    owned = executor is None  # a session the caller holds is the caller's to close
    if owned and in_process:
        executor = InProcess()
    elif owned:
        executor = Session(address, d, store.path / "logs")
    try:
        cluster = executor.cluster()
        dispatch = record.dispatch = {**executor.describe(), "fragments": str(root)}
        if owned and executor.in_ray:  # a joined cluster's nodes, checked before any work is sent there
            dispatch["node_checks"] = executor.check_nodes(root, console)
        trials = trials_mod.make_trials(plans, d, cluster, executor.in_ray)
        record.trials = [t.as_config() for t in trials]
        record.status = "running"
        record.write(store.path)

        done_before = trials_mod.folds_done(trials, root)
        left = [t for t in trials if done_before[t.name] < len(t.folds)]
        if len(left) < len(trials):
            console.print(
                f"{len(trials) - len(left)} of {len(trials)} trials already finished; "
                f"{sum(len(t.folds) - done_before[t.name] for t in left)} folds to train"
            )
        view = TrialView(left, console, describe=lambda t: t.describe(plans[t.pair]), already=done_before)
        started = time.perf_counter()
        failures, interrupted = [], False
        try:
            with view.shown():
                failures = executor.dispatch(left, plans, root, view, d, store.path / "tune")
        except KeyboardInterrupt:  # Ctrl-C: what is on disk stays; the run says how to finish it
            interrupted = True
        record.seconds = round((record.seconds or 0) + time.perf_counter() - started, 2)
    finally:
        if owned:
            if record.dispatch is None:
                record.dispatch = {}
            record.dispatch["stop_seconds"] = round(executor.close(), 2)
    if record.resumed:
        record.resumed[-1]["dispatch"] = record.dispatch
    return _finish(store, record, evaluations, plans, root, failures, interrupted, console)


def _finish(
    store,
    record: RunRecord,
    evaluations: list[dict],
    plans: dict,
    root: Path,
    failures: list,
    interrupted: bool,
    console,
):
    logs = store.path / "logs"
    for trial, error in failures:
        logs.mkdir(parents=True, exist_ok=True)
        atomic_write(logs / f"failed-{trial.name.replace('/', '_')}.txt", lambda tmp, e=error: tmp.write_text(e))

    predictions, split_tables, classes_of, incomplete, audits = [], [], {}, [], []
    for entry, p in zip(evaluations, plans.values()):
        if not {f.index for f in p.folds} <= fragments.finished(root, p.model, p.dataset, p.protocol):
            incomplete.append(f"{p.model} on {p.dataset}")
            continue
        frame, per_fold = fragments.merge(root, p)
        predictions.append(frame)
        split_tables.append(splits_mod.table(p.folds, p.manifest, p.dataset, p.protocol))
        classes_of[p.protocol] = p.classes
        entry["chosen_epochs"] = {k: v["chosen_epoch"] for k, v in per_fold.items()}
        entry["seconds"] = round(sum(v["seconds"] for v in per_fold.values()), 2)
        entry["placement"] = fragments.placements(per_fold)
        entry["complete"] = True
        audited = _audit_of(root, p, entry)
        if audited is not None:
            audits.append(audited)
        if p.save_weights:
            entry["weights"] = str(weights_mod.folder(root, p.model, p.dataset, p.protocol))

    if not incomplete:
        record.status, record.finished = "finished", _now()
    else:
        record.status = "interrupted" if interrupted else "failed"
        record.incomplete = incomplete
    if failures:
        record.failed_trials = [
            {"trial": t.name, "error": e.strip().splitlines()[-1] if e.strip() else ""} for t, e in failures
        ]
    summary = None
    if predictions:
        ev = evaluation_config(record.config)
        table = store.write(  # run.json with the tables
            record.to_dict(),
            pl.concat(predictions),
            pl.concat(split_tables).unique(maintain_order=True),
            classes_of,
            ev.bootstrap,
            ev.level,
            ev.seed,
        )
        if audits:  # its own file: never part of the predictions, read by the leaderboard only
            frame = pl.concat(audits)
            atomic_write(store.path / "audit.parquet", lambda tmp: frame.write_parquet(tmp))
        page = render_run(store.path)
        atomic_write(store.path / "leaderboard.md", lambda tmp: tmp.write_text(page, encoding="utf-8"))
        summary = table.filter(pl.col("scope") == "all")
    else:
        record.write(store.path)

    again = f"hsta-bench run --resume {store.run_id} --output {store.output}"
    if interrupted and incomplete:
        return Outcome(
            store.path,
            record.to_dict(),
            summary,
            RunInterrupted(
                f"run {store.run_id} interrupted with {len(incomplete)} evaluation(s) unfinished; "
                f"finish it with: {again}"
            ),
        )
    if incomplete:
        what = (
            "; ".join(
                f"{t.describe(plans[t.pair])}: {e.strip().splitlines()[-1] if e.strip() else 'failed'}"
                for t, e in failures[:3]
            )
            or "trials finished without writing their folds to "
            + str(root)
            + " (on a cluster, set dispatch.storage to storage every node shares)"
        )
        return Outcome(
            store.path,
            record.to_dict(),
            summary,
            RunIncomplete(
                f"run {store.run_id}: {len(incomplete)} evaluation(s) unfinished ({what}); tracebacks in {logs}; "
                f"finish it with: {again}"
            ),
        )
    return Outcome(store.path, record.to_dict(), summary, None)


def _audit_of(root: Path, p, entry: dict):
    """The evaluation's audit (engine/audit.py) with its labels, and its summary in `entry`; None without one."""
    if not p.audit_every:
        return None
    ids = p.manifest["sample_id"].cast(pl.Utf8).to_numpy().astype(str)
    labels = dict(zip(ids.tolist(), np.array(p.classes)[p.y].tolist()))
    frame = audit.merge(root, p, labels)
    if frame is None:
        return None
    entry["audit"] = {"every": p.audit_every, "file": "audit.parquet", **audit.selected_scores(frame, list(p.classes))}
    return frame
