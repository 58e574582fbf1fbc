"""Training seeds: `run --seeds` makes a run per seed with that training seed, and the leaderboard pools the
rows of one setting's seeds into one row with each seed's UF1 (hsta_bench/leaderboard/tables.py _by_seed)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from helpers import assert_one_line_error, run_main
from hsta_bench import config
from hsta_bench.engine import provenance
from hsta_bench.leaderboard import recipe_diff, render, settings, tables
from hsta_bench.leaderboard import store as store_mod

DATA = Path(__file__).parent / "data" / "leaderboard"


def test_seeds_make_one_run_per_seed_with_that_training_seed(monkeypatch, capsys, tmp_path):
    from hsta_bench.cli import run as run_cmd
    from hsta_bench.orchestrate import runner

    started = []

    class Outcome:
        path, metrics, problem = tmp_path, None, None

    def start(todo, skipped, cfg, preset, *rest):
        from hsta_bench.engine.recipes import recipe

        started.append((sorted(m for m, _ in todo), recipe(todo[0][0], cfg, preset).train.seed, preset))
        return Outcome()

    monkeypatch.setattr(runner, "start", start)
    monkeypatch.setattr(run_cmd, "report", lambda *a: None)
    args = ("run", "--dataset", "casme2", "--model", "ststnet", "--preset", "smoke", "--in-process")
    proc = run_main(capsys, *args, "--seeds", "2,0", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert started == [(["ststnet"], 2, "smoke"), (["ststnet"], 0, "smoke")]
    assert "--seeds: seed 2 (1 of 2)" in proc.stderr and "seed 0 (2 of 2)" in proc.stderr


@pytest.mark.parametrize(
    "seeds,extra,fragment",
    [
        ("0,one", (), "--seeds 0,one: expected integers separated by commas"),
        ("1,1", (), "--seeds 1,1: expected distinct non-negative integers"),
        ("0,1", ("--weights", "w"), "--seeds 0,1: cannot go with --weights"),
    ],
)
def test_bad_seeds_are_one_line_before_anything_runs(capsys, tmp_path, seeds, extra, fragment):
    (tmp_path / "w").mkdir()
    proc = run_main(capsys, "run", "--dataset", "casme2", "--model", "ststnet", "--seeds", seeds, *extra, cwd=tmp_path)
    assert_one_line_error(proc, fragment)


def test_the_seeds_win_over_a_recipe_with_a_seed_of_its_own(monkeypatch, capsys, tmp_path):
    from hsta_bench.cli import run as run_cmd
    from hsta_bench.engine.recipes import recipe
    from hsta_bench.orchestrate import runner

    seeds = []

    class Outcome:
        path, metrics, problem = tmp_path, None, None

    def start(todo, skipped, cfg, preset, *rest):
        seeds.append(recipe("ststnet", cfg, preset).train.seed)
        return Outcome()

    monkeypatch.setattr(runner, "start", start)
    monkeypatch.setattr(run_cmd, "report", lambda *a: None)
    (tmp_path / "own.yaml").write_text("models:\n  ststnet:\n    train: {seed: 7}\n")
    proc = run_main(
        capsys, "run", "--dataset", "casme2", "--model", "ststnet", "--preset", "smoke", "--config", "own.yaml",
        "--seeds", "0,1", "--in-process", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert seeds == [0, 1]  # the command line wins over the recipe (README: "What the command line changes")


def test_the_leaderboard_pools_the_seeds_of_one_setting_into_one_row():
    """Two seeds of Off-ApexNet's recipe: one row, its counts each subject's average over the seeds (so it still
    pairs with a row of one seed), and each seed's UF1 shown; another setting stays a row of its own."""
    committed = store_mod.read(DATA / "store")
    (first,) = [e for e in committed.entries if e["model"] == "off_apexnet"]
    resolved = copy.deepcopy(committed.settings[first["config_key"]])
    resolved["train"]["seed"] = 1
    key = provenance.key(resolved)
    second = {**first, "entry": "r9/off_apexnet/megc2019-flow/megc2019-composite", "run_id": "r9", "config_key": key}
    counts = [c for c in committed.counts if c["entry"] == first["entry"]]
    moved = [{**c, "entry": second["entry"]} for c in counts]
    wrong = next(c for c in moved if c["label"] == c["pred"] and c["count"] > 1)  # one right answer made wrong
    wrong["count"] -= 1
    other = next(k for k in ("negative", "positive", "surprise") if k != wrong["label"])
    moved.append({**wrong, "pred": other, "count": 1})
    store = store_mod.Store(
        [*committed.entries, second], [*committed.counts, *moved], {**committed.settings, key: resolved}
    )
    cfg = config.shipped()
    built = tables.build(
        store, [], settings(cfg), lambda e: recipe_diff.describe(e, store.settings.get(e["config_key"]), cfg)
    )
    ranked = built[0]
    assert [r.entry["model"] for r in ranked.rows] == ["off_apexnet", "ststnet"]
    pooled = ranked.rows[0]
    assert [seed for seed, _, _ in pooled.seeds] == [0, 1] and [e["run_id"] for e in pooled.members] == ["r1", "r9"]
    alone = [tables.make_row(e, [c for c in store.counts if c["entry"] == e["entry"]]) for e in (first, second)]
    assert np.allclose(pooled.per_subject, (alone[0].per_subject + alone[1].per_subject) / 2)
    assert pooled.scores["n"] == alone[0].scores["n"] and ranked.rows[1].versus["p_value"] is not None
    low, high = sorted(r.scores["uf1"] for r in alone)
    assert low < high and render.seeds(pooled) == f"0, 1: {low:.3f}-{high:.3f}"
    assert render.seeds(ranked.rows[1]) == "0"


def test_a_seed_run_twice_pools_its_latest_run_and_shows_the_other_apart():
    committed = store_mod.read(DATA / "store")
    (first,) = [e for e in committed.entries if e["model"] == "off_apexnet"]
    again = {**first, "entry": "r8/off_apexnet/megc2019-flow/megc2019-composite", "run_id": "r8", "finished": "~"}
    counts = [{**c, "entry": again["entry"]} for c in committed.counts if c["entry"] == first["entry"]]
    store = store_mod.Store([*committed.entries, again], [*committed.counts, *counts], committed.settings)
    cfg = config.shipped()
    built = tables.build(
        store, [], settings(cfg), lambda e: recipe_diff.describe(e, store.settings.get(e["config_key"]), cfg)
    )
    rows = [r for r in built[0].rows if r.entry["model"] == "off_apexnet"]
    assert sorted(r.entry["run_id"] for r in rows) == ["r1", "r8"] and all(not r.seeds for r in rows)
