"""`hsta-bench run --dry-run` and `tune --dry-run`: the trials, their resources and the estimated compute and
wall time of a run on a cluster, without preprocessing, training or writing anything (orchestrate/estimate.py).
The stand-ins are used (no --data-root), so the sample counts are theirs."""

from __future__ import annotations

import functools
import io
import json
import math
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout

import pytest
import yaml

from helpers import REPO, assert_one_line_error, run_main

PAPER = yaml.safe_load((REPO / "configs" / "presets" / "paper.yaml").read_text())["models"]
ONE_GPU = "nodes=1,cpus=16,gpus=1,gpu=H200"
EIGHT_GPUS = "nodes=2,cpus=16,gpus=4,gpu=H200"


def invoke(*args: str) -> subprocess.CompletedProcess:
    """The command's entry point in this process, its output captured (for a module-scoped fixture, where
    pytest's capsys is not available)."""
    from hsta_bench.cli import main

    out, err, code = io.StringIO(), io.StringIO(), 0
    old, sys.argv = sys.argv, ["hsta-bench", *args]
    try:
        with redirect_stdout(out), redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = old
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def paper(tmp_path_factory) -> dict:
    """`run --all-datasets --preset paper --dry-run --json` on one H200 and on two nodes of four: the parsed
    output of each, and whether anything appeared in --output."""
    results = {}
    for spec in (ONE_GPU, EIGHT_GPUS):
        output = tmp_path_factory.mktemp("dry") / "results"
        proc = invoke(
            "run",
            "--all-datasets",
            "--preset",
            "paper",
            "--dry-run",
            "--cluster",
            spec,
            "--output",
            str(output),
            "--json",
        )
        assert proc.returncode == 0, proc.stderr
        results[spec] = {"data": json.loads(proc.stdout), "written": output.exists()}
    return results


def _counted_train_step(model: str, classes: int) -> float:
    """torch's FLOP counter over one training step (forward, cross-entropy, backward, AdamW update) of the
    paper recipe's model on CPU tensors at batch 2, per sample; the written-out attention, which the counter
    sees (a fused CPU attention kernel it would not count)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from hsta_bench import config
    from hsta_bench.engine.evaluate import recipe
    from hsta_bench.models import create_model
    from hsta_bench.models.attention import set_backend

    torch.manual_seed(0)
    net = create_model(model, classes, **recipe(model, config.load(), "paper").overrides)
    set_backend(net, "naive")
    inputs = net.example_input(2)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-5)
    net.train()
    with FlopCounterMode(display=False) as counter:
        loss = torch.nn.functional.cross_entropy(net(inputs), torch.tensor([0, 1]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return counter.get_total_flops() / 2


@pytest.mark.parametrize("model", PAPER)
def test_flops_per_sample_are_torch_counts_of_a_training_step(paper, model):
    # counted on the meta device by the dry run; here on real CPU tensors (hsta_base_224: a few seconds)
    rows = [e for e in paper[ONE_GPU]["data"]["evaluations"] if e["model"] == model]
    assert rows, f"{model} has no evaluation in the paper dry run"
    row = rows[0]
    assert row["train_flops_per_sample"] == _counted_train_step(model, row["classes"]) > 0
    assert 0 < row["inference_flops_per_sample"] < row["train_flops_per_sample"]


@functools.cache
def _gpu_share(model: str) -> float:
    """The share of a GPU the model's recipe asks for (configs/models/*.yaml, resources.gpu_share)."""
    from hsta_bench import config
    from hsta_bench.engine.evaluate import recipe

    return recipe(model, config.load(), "paper").resources.get("gpu_share", 1.0)


def test_paper_dry_run_follows_gpu_shares_and_fold_batching(paper):
    for spec, nodes, cpus, gpus in ((ONE_GPU, 1, 16, 1), (EIGHT_GPUS, 2, 16, 4)):
        data = paper[spec]["data"]
        assert not paper[spec]["written"]  # nothing in --output, not even the run folder
        assert data["dry_run"] and data["cluster"]["gpus"] == nodes * gpus
        assert data["total"]["trials"] == sum(e["trials"] for e in data["evaluations"])
        for e in data["evaluations"]:
            share = _gpu_share(e["model"])
            assert e["gpus_per_trial"] == share and e["cpus_per_trial"] == 1 and e["device"] == "H200 bf16"
            assert e["at_once"] == nodes * min(cpus, math.floor(1 / share) * gpus)
            assert e["pflops"] > 0 and e["seconds"] > 0
            if e["model"] in ("ststnet", "off_apexnet"):  # on CUDA their folds train stacked, in one trial
                assert e["fold_batched"] and e["trials"] == 1
            else:  # as many trials as run at once, at most one per fold
                assert not e["fold_batched"] and e["trials"] == min(e["folds"], e["at_once"])
        hsta = [e for e in data["evaluations"] if e["model"] == "hsta_base_224"]
        assert {e["at_once"] for e in hsta} == {2 if gpus == 1 else 16}
    one, eight = (paper[s]["data"]["total"] for s in (ONE_GPU, EIGHT_GPUS))
    assert eight["seconds"] < one["seconds"] / 4
    assert eight["flops"] == pytest.approx(one["flops"], rel=1e-9)  # the same work, spread wider


def test_compute_is_flops_per_sample_x_training_samples_x_epochs(paper):
    data = paper[ONE_GPU]["data"]
    e = next(e for e in data["evaluations"] if (e["model"], e["dataset"]) == ("hsta_base_224", "casme2"))
    train = e["train_flops_per_sample"] * e["samples"] * (e["folds"] - 1)  # LOSO: a sample trains in all folds but one
    tested = e["inference_flops_per_sample"] * e["samples"]  # every sample tested once
    assert e["flops"] == pytest.approx(train * e["epochs"] + tested, rel=1e-9)
    # a trial holding half an H200 at the assumed utilisation is compute-bound here
    rate = 989.5e12 * data["assumptions"]["utilisation"]["gpu"] * 0.5
    longest = max(t["seconds"] for t in e["trial_list"])
    assert longest == pytest.approx(max(t["flops"] for t in e["trial_list"]) / rate, rel=1e-3)  # JSON: ms
    gpu_hours = sum(t["gpus"] * t["seconds"] for ev in data["evaluations"] for t in ev["trial_list"]) / 3600
    assert data["total"]["gpu_hours"] == pytest.approx(gpu_hours, rel=1e-3)


def test_small_models_are_bound_by_step_overhead(paper):
    data = paper[ONE_GPU]["data"]
    e = next(e for e in data["evaluations"] if (e["model"], e["dataset"]) == ("ststnet", "samm"))
    steps = e["epochs"] * 1 + 1  # one stacked step per epoch (each fold's side is under a batch), one prediction
    assert e["seconds"] == pytest.approx(steps * data["assumptions"]["step_overhead_s"]["gpu"], rel=1e-3)


def test_text_output_shows_the_table_and_the_total(capsys, tmp_path):
    proc = run_main(
        capsys,
        "run",
        "--dataset",
        "samm",
        "--model",
        "ststnet",
        "--model",
        "hsta_tiny",
        "--preset",
        "smoke",
        "--dry-run",
        "--output",
        str(tmp_path / "out"),
    )
    assert proc.returncode == 0, proc.stderr
    assert "dry run (smoke)" in proc.stdout and "this machine" in proc.stdout and "FLOPs/sample" in proc.stdout
    assert "total:" in proc.stdout and "GPU-hours" in proc.stdout and "no run folder written" in proc.stdout
    assert "steps timed here" in proc.stdout  # this machine's CPU trials are timed, not guessed from FLOPs
    assert not (tmp_path / "out").exists()


def test_a_cpu_trial_on_this_machine_is_its_steps_timed_through_the_trainer(capsys):
    args = ("run", "--dataset", "samm", "--model", "ststnet", "--preset", "smoke", "--dry-run", "--json")
    (timed,) = json.loads(run_main(capsys, *args).stdout)["evaluations"]
    step = timed["timed_step_s"]
    assert timed["device"] == "CPU fp32, steps timed here" and step["train"] > 0 and step["predict"] > 0
    # every trial: its training steps and prediction batches at the timed seconds (a smoke epoch of a fold's
    # training side at batch 16, two epochs, one prediction batch each: samm has 29 folds)
    for t in timed["trial_list"]:
        assert t["seconds"] >= t["folds"] * (2 * step["train"] + step["predict"])
    for off in ("estimate.measure.cpu=false", "estimate.measure.max_step_s=1e-12"):
        (flops,) = json.loads(run_main(capsys, *args, "--set", off).stdout)["evaluations"]
        assert flops["device"] == "CPU fp32" and flops["timed_step_s"] is None


def test_unknown_gpu_is_estimated_as_the_default_and_said(capsys):
    proc = run_main(
        capsys,
        "run",
        "--dataset",
        "smic",
        "--model",
        "hsta_tiny",
        "--preset",
        "smoke",
        "--dry-run",
        "--cluster",
        "nodes=1,cpus=4,gpus=2,gpu=B300",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["evaluations"][0]["device"] == "A100 bf16" and data["assumptions"]["gpu"]["name"] == "A100"
    assert any("'B300'" in note for note in data["notes"])


def test_cluster_options_are_one_line_errors(capsys):
    assert_one_line_error(run_main(capsys, "run", "--dataset", "samm", "--cluster", ONE_GPU), "--cluster", "--dry-run")
    assert_one_line_error(
        run_main(capsys, "tune", "--model", "ststnet", "--dataset", "samm", "--cluster", ONE_GPU),
        "--cluster",
        "--dry-run",
    )
    assert_one_line_error(
        run_main(capsys, "run", "--dataset", "samm", "--dry-run", "--cluster", "nodes=two"),
        "--cluster nodes=two",
        "numbers",
    )
    assert_one_line_error(
        run_main(capsys, "run", "--dataset", "samm", "--dry-run", "--cluster", "gpus=4,gpu_type=H200"),
        "--cluster",
        "gpu_type=H200",
    )
    assert_one_line_error(
        run_main(capsys, "run", "--dry-run", "--resume", "20260101-000000-abcd"), "--dry-run", "--resume"
    )


def test_tune_dry_run_prints_studies_and_an_upper_bound(capsys, tmp_path):
    tune = ("tune", "--model", "ststnet", "--dataset", "samm", "--trials", "3", "--dry-run", "--cluster", ONE_GPU)
    tune += ("--output", str(tmp_path / "out"))
    proc = run_main(capsys, *tune, "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    studies = data["studies"]
    assert [s["study"] for s in studies] == ["g0", "g1", "g2", "g3", "g4", "all"]  # tune.outer_groups 5, and `all`
    assert all(s["trials"] == 3 and s["inner_folds"] == 3 for s in studies)
    for s in studies:  # every trial trains the whole budget on its inner folds, and validates each epoch
        train = s["train_samples_per_trial"] * data["epochs_at_most"] * data["train_flops_per_sample"]
        assert s["flops_per_trial"] > train
    assert data["tune"]["flops_upper_bound"] == pytest.approx(sum(s["flops"] for s in studies))
    assert data["at_once"] == 8 and data["gpus_per_trial"] == 0.125
    outer = data["outer"]["evaluations"][0]
    assert not outer["fold_batched"]  # each outer fold has its own configuration
    assert data["total"]["pflops_upper_bound"] == pytest.approx(data["tune"]["pflops_upper_bound"] + outer["pflops"])
    assert not (tmp_path / "out").exists()

    text = run_main(capsys, *tune)
    assert text.returncode == 0, text.stderr
    assert "tune dry run" in text.stdout and "PFLOP <=" in text.stdout and "at most" in text.stdout
    assert "outer run" in text.stdout and "g4" in text.stdout


@pytest.mark.parametrize("batch", [1, 2, 32, 256])
def test_steps_per_epoch_are_the_trainers_batches(batch):
    import numpy as np

    from hsta_bench.engine.train import batches
    from hsta_bench.orchestrate.estimate import _steps

    for n in range(1, 600, 7):
        assert _steps(n, batch) == len(batches(np.arange(n), batch)), (n, batch)


def test_trials_are_packed_onto_the_nodes_longest_first():
    from hsta_bench.orchestrate.cluster import Cluster
    from hsta_bench.orchestrate.estimate import schedule

    one = Cluster.parse("nodes=1,cpus=8,gpus=1")
    assert schedule([(10, 1, 0.5)] * 4, one) == 20  # two halves of the GPU at a time
    assert schedule([(10, 1, 0.5), (6, 1, 0.5), (4, 1, 0.5)], one) == 10  # 6 then 4 beside the 10
    assert schedule([(10, 1, 1), (5, 1, 0.25)], one) == 15  # a whole GPU shares it with nothing
    assert schedule([(3, 4, 0)] * 4, one) == 6  # CPU trials: 8 CPUs, 4 each
    two = Cluster.parse("nodes=2,cpus=4,gpus=2")
    assert schedule([(10, 1, 2)] * 2 + [(1, 4, 0)], two) == 11  # a whole node each, then the CPUs free up
    with pytest.raises(Exception, match="fits no node"):
        schedule([(1, 1, 3)], two)
