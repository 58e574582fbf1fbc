"""The run's orchestration: trials over fold groups, fragments merged exactly once, retries, failure reports
and resume (in this process here; through Ray in test_ray_run.py)."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
import torch

from helpers import assert_one_line_error, run_cli, untrained_logits
from hsta_bench import config
from hsta_bench.engine import evaluate as ev
from hsta_bench.engine.device import torch_threads
from hsta_bench.errors import UserError
from hsta_bench.orchestrate import fragments
from hsta_bench.orchestrate.cluster import Cluster, Node
from hsta_bench.orchestrate.trials import dispatch_config, folds_done, make_trials, run_trial

# STSTNet at 20x its release's learning rate, so that its two smoke epochs move it (at 5e-5 its predictions
# barely leave the untrained model's): equal logits then mean equal training, not equal initialisation
MOVES = "models.ststnet.train.lr=1e-3"
SMOKE = ["--preset", "smoke", "--set", "evaluation.bootstrap=50", "--set", MOVES]


def dispatch(**changes):
    """configs/dispatch.yaml's settings with `changes`."""
    return dispatch_config({"dispatch": {**config.shipped()["dispatch"], **changes}})


def cpus(n: int, gpus: float = 0) -> Cluster:
    """A one-node cluster of `n` CPUs (n trials of one CPU at once)."""
    return Cluster((Node(n, gpus),))


@pytest.fixture(scope="module")
def plans():
    cfg = config.load(sets=[MOVES])
    return {f"{m}@casme2": ev.plan(m, "casme2", cfg, "smoke") for m in ("ststnet", "off_apexnet")}


@pytest.mark.parametrize("groups,slots", [("auto", 1), ("auto", 2), ("auto", 64), (3, 1), (64, 1)])
def test_trials_cover_every_fold_exactly_once(plans, groups, slots):
    trials = make_trials(plans, dispatch(fold_groups=groups), cpus(slots))
    for p in plans.values():
        mine = [t for t in trials if t.model == p.model]
        folds = [i for t in mine for i in t.folds]
        assert sorted(folds) == list(range(len(p.folds)))  # every fold, once
        wanted = slots if groups == "auto" else groups
        assert len(mine) == min(wanted, len(p.folds))
        assert len({t.name for t in mine}) == len(mine)


def test_fold_batched_models_take_all_their_folds_in_one_trial(cfg):
    from hsta_bench import config

    batched = config.load(sets=["models.ststnet.train.fold_batch=always"])
    p = ev.plan("ststnet", "casme2", batched, "smoke")
    assert ev.use_fold_batch(p, "cpu")
    trials = make_trials({"x": p}, dispatch(), cpus(4))
    assert len(trials) == 1 and trials[0].folds == tuple(range(len(p.folds)))


def test_a_models_own_resources_override_the_dispatch_defaults(cfg):
    from hsta_bench import config

    own = config.load(sets=["models.ststnet.resources.cpus_per_trial=2", "dispatch.gpus_per_trial=0.25"])
    p = ev.plan("ststnet", "casme2", own, "smoke")
    (t, *_) = make_trials({"x": p}, dispatch_config(own), cpus(2, gpus=1))
    assert (t.cpus, t.gpus) == (2.0, 0.25)  # cpus from the recipe, gpus from configs/dispatch.yaml via --set


def test_gpu_shares_come_from_the_recipes_where_the_cluster_has_gpus(cfg):
    """dispatch.gpus_per_trial auto: a recipe's gpu_share on a cluster with GPUs (HSTA half a GPU, STSTNet an
    eighth), none on one without or for a recipe that trains on the CPU; a number is every trial's."""
    from hsta_bench import config
    from hsta_bench.orchestrate.trials import resources

    plans = {m: ev.plan(m, "casme2", cfg, "smoke") for m in ("ststnet", "hsta_tiny")}
    d = dispatch_config(cfg)
    gpu = Cluster((Node(16, 1), Node(16, 1)))
    assert resources(plans["hsta_tiny"], d, gpu) == (1.0, 0.5) and resources(plans["ststnet"], d, gpu) == (1.0, 0.125)
    assert resources(plans["hsta_tiny"], d, cpus(16)) == (1.0, 0.0)
    assert gpu.slots(1, 0.5) == 4 and gpu.slots(1, 0.125) == 16 and Cluster((Node(4, 2),)).slots(1, 0.125) == 4
    assert Cluster((Node(16, 4),)).slots(1, 2) == 2  # whole GPUs come from one node
    on_cpu = config.load(sets=["models.ststnet.train.device=cpu"])
    assert resources(ev.plan("ststnet", "casme2", on_cpu, "smoke"), d, gpu) == (1.0, 0.0)
    fixed = dispatch_config(config.load(sets=["dispatch.gpus_per_trial=0.25"]))
    assert (
        resources(plans["hsta_tiny"], fixed, gpu)[1] == 0.25
        and resources(plans["hsta_tiny"], fixed, cpus(4))[1] == 0.25
    )
    # on a GPU cluster STSTNet's folds are one fold-batched trial (CUDA), on a CPU one many
    assert len(make_trials({"s": plans["ststnet"]}, d, gpu)) == 1
    assert len(make_trials({"s": plans["ststnet"]}, d, cpus(4))) == 4
    for bad in ("1.5", "-1", "true"):
        with pytest.raises(UserError, match="dispatch.gpus_per_trial"):
            dispatch_config(config.load(sets=[f"dispatch.gpus_per_trial={bad}"]))
    with pytest.raises(UserError, match="no node has that"):
        make_trials({"s": plans["ststnet"]}, fixed, cpus(4, gpus=0))


def test_a_node_that_cannot_run_trials_is_named_in_one_line(tmp_path):
    from hsta_bench.orchestrate.ray_tune import node_problems

    ok = {
        "node_id": "a" * 40,
        "host": "gpu-1",
        "missing": {},
        "wrote": str(tmp_path / "probe"),
        "cuda": 1,
        "ray_gpus": 1,
    }
    (tmp_path / "probe").write_text("gpu-1")
    assert node_problems([ok], tmp_path) == ([], [])
    no_torch = {
        **ok,
        "host": "gpu-2",
        "node_id": "b" * 40,
        "missing": {"torch": "ModuleNotFoundError: No module named 'torch'"},
    }
    (problem,), _ = node_problems([ok, no_torch], tmp_path)
    assert problem.startswith("node gpu-2 (bbbbbbbb): cannot import torch") and "Python environment" in problem
    elsewhere = {**ok, "host": "gpu-3", "wrote": str(tmp_path / "not-shared")}
    (problem,), _ = node_problems([elsewhere], tmp_path)
    assert "gpu-3" in problem and "dispatch.storage" in problem
    _, (warning,) = node_problems([{**ok, "cuda": 0}], tmp_path)
    assert "gpu-1" in warning and "sees no CUDA device" in warning


def test_a_trial_writes_one_fragment_per_fold_and_skips_finished_folds(plans, tmp_path):
    p = plans["ststnet@casme2"]
    (first, second) = make_trials({"x": p}, dispatch(), cpus(2))
    seen = []
    with torch_threads(3):  # neither the trial's count (1) nor a default, so a trial that keeps its own shows
        did = run_trial(first, p, tmp_path, report=lambda k, n: seen.append((k, n)))
        assert torch.get_num_threads() == 3  # the caller's count again: an in-process run leaves it as it was
    assert did["placement"]["name"].endswith(f"{int(first.cpus)} threads")  # trained at the trial's count
    assert did["trained"] == len(first.folds) and seen[-1] == (len(first.folds), len(first.folds))
    assert fragments.finished(tmp_path, p.model, p.dataset, p.protocol) == set(first.folds)
    assert folds_done([first, second], tmp_path) == {first.name: len(first.folds), second.name: 0}
    again = run_trial(first, p, tmp_path)
    assert again["trained"] == 0 and again["skipped"] == len(first.folds)  # nothing redone
    with pytest.raises(fragments.FragmentError, match="missing"):
        fragments.merge(tmp_path, p)
    run_trial(second, p, tmp_path)
    merged, info = fragments.merge(tmp_path, p)
    assert merged.height == len(p.y) and merged["sample_id"].n_unique() == len(p.y)
    assert set(info) == {f.name for f in p.folds}
    # the merge equals training every fold in one go, in the manifest's order, to the last bit of every logit
    # (at the trials' thread count: the rounding of a sum depends on how many threads share it)
    with torch_threads(first.cpus):
        whole = ev.predictions_frame(p, [ev.run_folds(p)])
    assert merged.equals(whole) and merged["logits"].null_count() == 0
    trained = np.array(merged.filter(pl.col("fold") == p.folds[0].name)["logits"].to_list())
    assert np.abs(trained - untrained_logits(p, 0)).mean() > 1.0  # trained, not as initialised (moved ~35)


def test_trials_at_once_lets_trials_that_run_together_through_and_fails_one_alone(tmp_path, monkeypatch):
    """The instrument test_ray_gpus.py shows that Ray runs trials together with (HSTA_BENCH_TRIALS_AT_ONCE):
    four trials arriving together go on; trials run one at a time fail, every one of them."""
    from concurrent.futures import ThreadPoolExecutor

    from hsta_bench.orchestrate.trials import Trial, _wait_for_company

    monkeypatch.setenv("HSTA_BENCH_TRIALS_AT_ONCE", "4:2")
    trials = [Trial("m", "d", "p", g, (g,), 1.0, 0.0) for g in range(4)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda t: _wait_for_company(t, tmp_path / "together"), trials))
    monkeypatch.setenv("HSTA_BENCH_TRIALS_AT_ONCE", "4:0.2")
    for trial in trials:  # one after another: each alone, as the one before gave up
        with pytest.raises(RuntimeError, match=f"{trial.name}: 1 of 4 trials running at once after 0.2 s"):
            _wait_for_company(trial, tmp_path / "alone")


def test_a_fragment_that_does_not_hold_its_folds_samples_is_refused(plans, tmp_path):
    p = plans["off_apexnet@casme2"]
    for t in make_trials({"x": p}, dispatch(), cpus(1)):
        run_trial(t, p, tmp_path)
    path = fragments.fragment_path(tmp_path, p.model, p.dataset, p.protocol, 0)
    frame = pl.read_parquet(path)
    frame.vstack(frame).write_parquet(path)  # a fold's samples twice
    with pytest.raises(fragments.FragmentError, match="does not hold the test samples of fold"):
        fragments.merge(tmp_path, p)


def _predictions(path):
    return pl.read_parquet(path / "predictions.parquet").sort(["model", "sample_id"])


def test_in_process_run_retries_a_failed_trial(tmp_path):
    proc = run_cli(
        "run",
        "--dataset",
        "casme2",
        "--model",
        "ststnet",
        *SMOKE,
        "--in-process",
        "--output",
        str(tmp_path),
        "--json",
        env={"HSTA_BENCH_FAULTS": "ststnet/*=1"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "retry  ststnet on casme2" in proc.stderr and "(attempt 2)" in proc.stderr
    path = tmp_path / json.loads(proc.stdout)["run_id"]
    assert json.loads((path / "run.json").read_text())["status"] == "finished"
    assert _predictions(path)["sample_id"].n_unique() == _predictions(path).height == 38


def test_a_trial_failing_every_attempt_is_reported_and_the_run_resumes(tmp_path):
    args = ["--dataset", "casme2", "--model", "ststnet", "--model", "off_apexnet", *SMOKE, "--in-process"]
    proc = run_cli(
        "run",
        *args,
        "--output",
        str(tmp_path),
        "--json",
        "--set",
        "dispatch.max_failures=1",
        env={"HSTA_BENCH_FAULTS": "ststnet/*=5"},
    )
    assert proc.returncode == 1
    error = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "Traceback" not in proc.stderr
    assert "1 evaluation(s) unfinished" in error[0] and "injected fault 2 of 5" in error[0]
    assert "--resume" in error[0]
    summary = json.loads(proc.stdout)
    path = tmp_path / summary["run_id"]
    assert [m["model"] for m in summary["metrics"]] == ["off_apexnet"]  # the finished evaluation is stored
    run = json.loads((path / "run.json").read_text())
    assert run["status"] == "failed" and run["incomplete"] == ["ststnet on casme2"]
    assert (path / "logs" / "failed-ststnet_casme2_casme2-5_g0.txt").read_text().count("RuntimeError") >= 1
    kept = {p.name: p.stat().st_mtime_ns for p in (path / "fragments").rglob("fold-*.parquet")}
    assert 0 < len(kept) < 10  # off_apexnet's 5 folds and the folds ststnet finished between its failures

    resumed = run_cli("run", "--resume", summary["run_id"], "--output", str(tmp_path), "--in-process", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert "trials already finished" in resumed.stderr
    after = {p: p.stat().st_mtime_ns for p in (path / "fragments").rglob("fold-*.parquet")}
    assert len(after) == 10
    unchanged = [p for p in after if p.name in kept and "off_apexnet" in str(p)]
    assert unchanged and all(after[p] == kept[p.name] for p in unchanged)  # finished folds were not redone
    predictions = _predictions(path)
    assert predictions.group_by("model").len()["len"].to_list() == [38, 38]
    assert predictions.select("model", "sample_id").is_unique().all()
    run = json.loads((path / "run.json").read_text())
    assert run["status"] == "finished" and len(run["resumed"]) == 1

    # resumed == uninterrupted, logits included (Ray == in-process is checked by test_ray_overhead_bench.py)
    fresh = run_cli("run", *args, "--output", str(tmp_path / "fresh"), "--json")
    fresh_path = tmp_path / "fresh" / json.loads(fresh.stdout)["run_id"]
    assert predictions.equals(_predictions(fresh_path))


@pytest.mark.parametrize(
    "args,fragments_",
    [
        (["--resume", "19990101-000000-0000"], ["--resume 19990101-000000-0000: no run.json at"]),
        (["--resume", "x", "--model", "ststnet"], ["keeps its own settings; drop --model"]),
        (["--dataset", "casme2", "--set", "dispatch.fold_groups=0"], ["dispatch.fold_groups:", "(got 0)"]),
        (
            ["--dataset", "casme2", "--set", "dispatch.cpus_per_trial=0"],
            ["dispatch.cpus_per_trial: Input should be greater than 0"],
        ),
    ],
)
def test_run_option_errors_are_one_line(args, fragments_, tmp_path):
    assert_one_line_error(run_cli("run", *args, "--output", str(tmp_path)), *fragments_)


def test_a_resumed_run_whose_recipe_changed_is_refused(tmp_path):
    proc = run_cli(
        "run",
        "--dataset",
        "casme2",
        "--model",
        "off_apexnet",
        *SMOKE[:4],  # MOVES sets ststnet's recipe, which this run does not read (refused)
        "--in-process",
        "--output",
        str(tmp_path),
        "--json",
    )
    path = tmp_path / json.loads(proc.stdout)["run_id"]
    run = json.loads((path / "run.json").read_text())
    run["config"]["presets"]["smoke"]["train"]["epochs"] = 3
    (path / "run.json").write_text(json.dumps(run))
    assert_one_line_error(
        run_cli("run", "--resume", path.name, "--output", str(tmp_path), "--in-process"), "no longer plans as it did"
    )


def test_the_eta_is_each_models_measured_fold_time_and_a_log_gets_about_ten_progress_lines():
    import io
    from types import SimpleNamespace

    from rich.console import Console

    from hsta_bench.orchestrate.view import TrialView

    def trial(name, model, folds):
        return SimpleNamespace(name=name, model=model, dataset="d", folds=list(range(folds)), describe=lambda: name)

    trials = [trial("slow/0", "slow", 34), trial("slow/1", "slow", 34), trial("fast/0", "fast", 10)]
    now = [0.0]
    log = io.StringIO()
    view = TrialView(trials, Console(file=log, force_terminal=False, width=200), clock=lambda: now[0])
    view.started("slow/0")
    view.started("slow/1")
    now[0] = 100.0
    view.progress("slow/0", 1, 34)
    assert view.eta() is None  # the fast model's folds: not measured yet, so no guess from the slow one's
    view.progress("slow/1", 1, 34)
    view.started("fast/0")
    now[0] = 110.0
    view.progress("fast/0", 1, 10)
    # left: 33 + 33 slow folds at 100 s and 9 fast at 10 s, less the 10 s the slow ones are into their folds,
    # over the three trials running
    assert view.eta() == pytest.approx((33 * 100 - 10 + 33 * 100 - 10 + 9 * 10) / 3)
    for fold in range(2, 35):
        now[0] += 100.0
        view.progress("slow/0", fold, 34)
        view.progress("slow/1", fold, 34)
    lines = [line for line in log.getvalue().splitlines() if "folds  [" in line]
    assert 8 <= len(lines) <= 12, lines  # a tenth of the folds a line, not 68


def test_the_live_view_counts_trials_and_folds_and_estimates_what_is_left(plans):
    import io

    from rich.console import Console

    from hsta_bench.orchestrate.view import TrialView

    trials = make_trials(plans, dispatch(), cpus(2))
    log = io.StringIO()
    view = TrialView(trials, Console(file=log, force_terminal=False, width=200), already={trials[0].name: 1})
    assert view.eta() is None  # nothing trained yet in this session
    view.started(trials[0].name)
    view.progress(trials[0].name, 2, len(trials[0].folds))
    view.started(trials[1].name)
    view.failed(trials[1].name, "RuntimeError: boom", final=False)
    view.started(trials[1].name)
    view.failed(trials[1].name, "RuntimeError: boom", final=True)
    view.finished(trials[0].name)
    counts = view.counts()
    assert (counts["done"], counts["failed"], counts["running"], counts["pending"]) == (1, 1, 0, len(trials) - 2)
    measured = {trials[0].model}  # a fold of each model left measured: an ETA, else none
    assert (view.eta() is not None) == all(t.model in measured for t in trials[2:])
    text = log.getvalue()
    assert "retry  ststnet on casme2" in text and "(attempt 2)" in text and "failed ststnet on casme2" in text
    assert f"trials 1/{len(trials)} done" in text
    screen = Console(file=io.StringIO(), force_terminal=True, width=200)
    view.started(trials[2].name)
    screen.print(view)  # the live display: totals and a row per running trial
    shown = screen.file.getvalue()
    assert "1 done" in shown and "1 running" in shown and "1 failed" in shown and trials[2].model in shown
