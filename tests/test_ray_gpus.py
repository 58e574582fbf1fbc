"""GPU placement through Ray, proven without a GPU: Ray started with fake GPUs (`dispatch.num_gpus`, which a
local instance declares as it is told) and a two-node cluster simulated on this machine
(`ray start` twice). Trials record in each fold's fragment the GPUs Ray granted them, the device
they trained on and when, so what Ray did can be checked after the run."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from helpers import ray_cluster, run_cli

pytestmark = pytest.mark.slow

BASE = [
    "--dataset",
    "casme2",
    "--preset",
    "smoke",
    "--set",
    "presets.smoke.train.epochs=1",
    "--set",
    "evaluation.bootstrap=50",
    "--json",
]
# One worker per trial: with workers reused, short trials all go to whichever worker is up first, and where
# trials land would say only which worker won that race
SPREAD = ["--set", "dispatch.reuse_workers=false"]
NVIDIA = Path("/dev/nvidia0").exists()  # a real GPU: a trial granted one would train on it (CUDA is hidden only here)


def _run(
    tmp_path: Path, *args: str, code: int = 0, gpus: int = 0, env: dict | None = None
) -> tuple[dict, pl.DataFrame, str]:
    """A run through Ray: its run.json, its fragments (one row per test sample) and its stderr. `gpus`: how
    many fake GPUs the run declares (Ray refuses more than CUDA_VISIBLE_DEVICES lists, which conftest empties)."""
    env = {**({"CUDA_VISIBLE_DEVICES": ",".join(map(str, range(gpus)))} if gpus else {}), **(env or {})}
    proc = run_cli("run", *BASE, *args, "--output", str(tmp_path / "runs"), timeout=600, env=env)
    assert proc.returncode == code, proc.stderr[-3000:]
    run_id = json.loads(proc.stdout)["run_id"]
    run = json.loads((tmp_path / "runs" / run_id / "run.json").read_text())
    frames = [pl.read_parquet(p) for p in sorted(Path(run["dispatch"]["fragments"]).rglob("fold-*.parquet"))]
    return run, (pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()), proc.stderr


def _most_at_once(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def test_trials_share_fake_gpus_as_configured_and_never_beyond_their_capacity(tmp_path):
    """Two fake GPUs, four CPUs, half a GPU per trial: four trials at once (each waits to train until all four
    are running: HSTA_BENCH_TRIALS_AT_ONCE, trials.py), each holding one GPU id, two per GPU at most at any
    moment, both GPUs used. (The model trains on the CPU, asked for explicitly: this machine has no CUDA
    behind the fake GPUs.)"""
    run, folds, _ = _run(
        tmp_path,
        "--model",
        "ststnet",
        "--set",
        "dispatch.num_gpus=2",
        "--set",
        "dispatch.num_cpus=4",
        "--set",
        "dispatch.gpus_per_trial=0.5",
        "--set",
        "models.ststnet.train.device=cpu",
        *SPREAD,
        gpus=2,
        env={"HSTA_BENCH_TRIALS_AT_ONCE": "4:120"},
    )
    assert run["status"] == "finished" and run["dispatch"]["gpus"] == 2
    assert len(list((Path(run["dispatch"]["fragments"]) / ".at-once").iterdir())) == 4  # all four met there
    assert len(run["trials"]) == 4 and {t["gpus"] for t in run["trials"]} == {0.5}
    assert folds.height and set(folds["gpu_ids"]) == {"0", "1"}  # every fold on one granted GPU; both used
    assert set(folds["gpu_share"]) == {0.5} and set(folds["device"]) == {"cpu"}
    per_fold = folds.group_by("fold").agg(
        pl.col("gpu_ids").first(), pl.col("started_at").first(), pl.col("seconds").first()
    )
    for gpu, group in per_fold.group_by("gpu_ids"):
        spans = [(r["started_at"], r["started_at"] + r["seconds"]) for r in group.iter_rows(named=True)]
        assert _most_at_once(spans) <= 2, f"GPU {gpu[0]}: more than two trials of 0.5 at once"
    (placed,) = run["evaluations"][0]["placement"]
    assert placed["device"] == "cpu" and placed["folds"] == per_fold.height


@pytest.mark.skipif(NVIDIA, reason="a real GPU is here: the granted trial would train on it")
def test_a_trial_granted_no_gpu_trains_on_the_cpu_and_one_granted_a_gpu_torch_cannot_see_fails(tmp_path):
    """One fake GPU. STSTNet's trials ask for none (gpu_share 0): with `device: auto` they train on the CPU (Ray
    2.60 no longer hides the GPUs from such a trial; it must not take cuda:0), so not fold-batched. Off-ApexNet's
    are granted the GPU, which torch here cannot see: they fail with one line, and the run says so; STSTNet's
    evaluation still ends."""
    run, folds, stderr = _run(
        tmp_path,
        "--model",
        "ststnet",
        "--model",
        "off_apexnet",
        "--set",
        "dispatch.num_gpus=1",
        "--set",
        "models.ststnet.resources.gpu_share=0",
        "--set",
        "dispatch.max_failures=0",
        code=1,
        gpus=1,
    )
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "granted GPU 0" in errors[0] and "sees no CUDA device" in errors[0], stderr[-2000:]
    assert "Traceback" not in stderr
    assert {t["model"]: t["gpus"] for t in run["trials"]} == {"ststnet": 0, "off_apexnet": 0.125}
    assert (
        len([t for t in run["trials"] if t["model"] == "ststnet"]) > 1
    )  # on the CPU: fold groups, not one stacked trial
    assert (
        set(folds["model"]) == {"ststnet"}
        and not folds["fold_batched"].any()
        and set(folds["device"]) == {"cpu"}
        and set(folds["gpu_ids"]) == {""}
    )
    assert [e["model"] for e in run["evaluations"] if e.get("complete")] == ["ststnet"]


@pytest.fixture
def two_nodes(tmp_path):
    """A Ray cluster of two nodes on this machine (one CPU and one fake GPU each), started as on two hosts."""
    one = ["--num-cpus=1", "--num-gpus=1"]
    # Ray declares no more GPUs than CUDA_VISIBLE_DEVICES lists (conftest empties it)
    with ray_cluster(tmp_path, one, [one], env={"CUDA_VISIBLE_DEVICES": "0"}) as address:
        yield address


def test_trials_run_on_both_nodes_and_every_fold_lands_once_on_shared_storage(two_nodes, tmp_path):
    shared = tmp_path / "shared"
    run, folds, _ = _run(
        tmp_path,
        "--model",
        "ststnet",
        "--model",
        "off_apexnet",
        "--address",
        two_nodes,
        "--set",
        f"dispatch.storage={shared}",
        "--set",
        "models.ststnet.train.device=cpu",
        "--set",
        "models.off_apexnet.train.device=cpu",
        *SPREAD,
    )
    assert run["status"] == "finished" and run["dispatch"]["nodes"] == 2
    checks = run["dispatch"]["node_checks"]  # every node checked before any work was sent
    assert len({c["node_id"] for c in checks}) == 2 and all(not c["missing"] for c in checks)
    # this checkout's code reached every node (dispatch.ship_code: Ray's runtime_env), hsta_bench and baselines
    assert all(len(c["shipped"]) == 2 for c in checks), checks
    assert Path(run["dispatch"]["fragments"]).is_relative_to(shared)
    assert set(folds["ray_node"]) == {c["node_id"] for c in checks}  # trials ran on both nodes
    for model in ("ststnet", "off_apexnet"):
        mine = folds.filter(pl.col("model") == model)
        evaluation = next(e for e in run["evaluations"] if e["model"] == model)
        assert mine["fold"].n_unique() == evaluation["folds"] and mine["sample_id"].is_unique().all()
        assert mine.height == evaluation["samples"]  # every fold once, every test sample once
