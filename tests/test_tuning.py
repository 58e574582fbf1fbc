"""The parts of `hsta-bench tune` that need no Ray: search spaces, the nested studies (no study holds its own
test subjects, no trial's data contains them), lockstep trainers, the objective learning a known signal, and
the `tuned` settings a tune hands to `hsta-bench run`."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from hsta_bench import config
from hsta_bench.data import list_sources
from hsta_bench.engine import evaluate as ev
from hsta_bench.engine.splits import Fold, make_folds
from hsta_bench.engine.train import FoldData, FoldTrainer, Inputs, fit_predict, train_config
from hsta_bench.errors import UserError
from hsta_bench.models import create_model, list_models, model_inputs, small_overrides
from hsta_bench.models.registry import is_builtin
from hsta_bench.tuning import nested, objective, space


@pytest.mark.parametrize(
    "spec,kind,low,high,log",
    [
        ("loguniform(1e-5, 1e-3)", "FloatDistribution", 1e-5, 1e-3, True),
        ("uniform(0, 0.3)", "FloatDistribution", 0.0, 0.3, False),
        ("int(1, 4)", "IntDistribution", 1, 4, False),
        ("logint(16, 256)", "IntDistribution", 16, 256, True),
    ],
)
def test_range_specs_become_optuna_distributions(spec, kind, low, high, log):
    d = space.parse("train.lr", spec, "here").distribution()
    assert (type(d).__name__, d.low, d.high, d.log) == (kind, low, high, log)


def test_choices_and_off():
    d = space.parse("train.optimizer", "choice(adam, adamw)", "here")
    assert d.distribution().choices == ("adam", "adamw")
    assert space.parse("train.augment", "choice(true, false)", "here").args == (True, False)
    assert space.parse("train.lr", "off", "here") is None and space.parse("train.lr", False, "here") is None


@pytest.mark.parametrize(
    "name,spec,message",
    [
        ("train.lr", "gaussian(0, 1)", "expected one of uniform"),
        ("train.lr", "loguniform(0, 1)", "log scale needs low > 0"),
        ("train.lr", "uniform(1, 0)", "low < high"),
        ("train.batch_size", "int(8, 32.5)", "whole numbers"),
        ("train.optimizer", "choice(adam)", "at least two"),
        ("train.lr_typo", "uniform(0, 1)", "not a training setting"),
        ("train.epochs", "int(1, 9)", "ASHA"),
        ("lr", "uniform(0, 1)", "expected train.KEY or model.KEY"),
    ],
)
def test_bad_specs_name_themselves(name, spec, message):
    with pytest.raises(UserError, match=message):
        space.parse(name, spec, "--space")


@pytest.mark.parametrize("model", [m for m in list_models() if is_builtin(m)])
def test_every_model_has_a_search_space_it_can_be_built_with(model, cfg):
    """Every built-in model has a recipe with a space, and every model.* range builds a model that reads
    the same inputs (what a tune checks before its first trial). A model from outside brings its recipe
    (the example's: tests/test_plugins.py)."""
    dims = space.dimensions(model, cfg)
    assert dims and {d.section for d in dims} <= {"train", "model"}
    space.check_model_settings(model, 3, dims, small_overrides(model))


def test_space_options_edit_the_models_recipe(cfg):
    sets = space.space_sets("hsta_tiny", cfg, ["train.lr=loguniform(1e-4, 1e-2)", "model.drop_path=off"])
    assert sets == ["models.hsta.space.train.lr=loguniform(1e-4, 1e-2)", "models.hsta.space.model.drop_path=off"]
    edited = config.apply_sets(config.load(), sets + ["models.hsta.space.train.warmup_epochs=int(0, 3)"])
    names = {d.name: d for d in space.dimensions("hsta_tiny", edited)}
    assert names["train.lr"].args == (1e-4, 1e-2) and "model.drop_path" not in names
    assert names["train.warmup_epochs"].kind == "int"
    with pytest.raises(UserError, match="changes the inputs"):
        space.check_model_settings("ststnet", 3, [space.parse("model.size", "choice(14, 28)", "x")], {})
    with pytest.raises(UserError, match="cannot be built with"):
        space.check_model_settings("ststnet", 3, [space.parse("model.nonsense", "uniform(0, 1)", "x")], {})


def test_a_sampled_point_is_applied_over_the_recipe_and_checked(cfg):
    base = ev.recipe("hsta_tiny", cfg, "smoke")
    tuned = space.apply(base, {"train": {"lr": 3e-4}, "model": {"drop_path": 0.05}})
    assert tuned.train.lr == 3e-4 and tuned.train.epochs == base.train.epochs == 2
    assert tuned.overrides == {**base.overrides, "drop_path": 0.05}
    with pytest.raises(UserError, match="optimizer"):
        space.apply(base, {"train": {"optimizer": "rmsprop"}})


def test_tuned_settings_take_precedence_over_recipe_and_preset_and_fold_recipes_apply(cfg):
    tuned = config.load(
        sets=[
            "tuned.ststnet.train.epochs=5",
            "tuned.ststnet.train.lr=0.01",
            "tuned.ststnet.folds.casme2.sub02.train.lr=0.002",
            "tuned.ststnet.folds.casme2.sub02.model.dropout=0.1",
        ]
    )
    r = ev.recipe("ststnet", tuned, "smoke")  # smoke sets epochs 2; tuned wins
    assert (r.train.epochs, r.train.lr) == (5, 0.01) and r.source.endswith("+ tuned.ststnet")
    p = ev.plan("ststnet", "casme2", tuned, "smoke")
    (index,) = p.fold_recipes
    assert p.folds[index].name == "sub02"
    assert (p.recipe_of(index).train.lr, p.recipe_of(index).train.epochs) == (0.002, 5)
    assert p.recipe_of(index).overrides["dropout"] == 0.1 and p.recipe_of(0).train.lr == 0.01
    assert (
        p.key()
        != ev.plan(
            "ststnet",
            "casme2",
            config.load(sets=["tuned.ststnet.train.epochs=5", "tuned.ststnet.train.lr=0.01"]),
            "smoke",
        ).key()
    )
    assert not ev.use_fold_batch(
        dataclasses.replace(
            p, recipe=dataclasses.replace(p.recipe, train=dataclasses.replace(p.recipe.train, fold_batch="always"))
        ),
        "cpu",
    )
    with pytest.raises(UserError, match="casme2 has no fold sub99"):
        ev.plan("ststnet", "casme2", config.load(sets=["tuned.ststnet.folds.casme2.sub99.train.lr=1"]), "smoke")
    with pytest.raises(UserError, match="tuned.ststnet: expected a mapping of train, model, folds and tuned_on"):
        ev.recipe("ststnet", config.load(sets=["tuned.ststnet.epochs=3"]), "smoke")


def test_settings_are_refused_on_the_subjects_that_chose_them(cfg):
    from hsta_bench.engine.splits import LeakageError

    chosen = [
        "tuned.ststnet.train.lr=0.01",
        "tuned.ststnet.tuned_on.tune=t1",
        "tuned.ststnet.tuned_on.synthetic=true",
        "tuned.ststnet.tuned_on.subjects=[casme2/sub02, samm/006]",
    ]
    with pytest.raises(LeakageError, match=r"tuned.ststnet was chosen .* \(casme2/sub02; tune t1\)"):
        ev.plan("ststnet", "casme2", config.load(sets=chosen), "smoke")
    with pytest.raises(LeakageError, match="casme2/sub02"):  # a composite holds CASME II's subjects
        ev.plan("ststnet", "megc2019-flow", config.load(sets=chosen), "smoke")
    ev.plan("ststnet", "smic", config.load(sets=chosen), "smoke")  # other subjects: fine
    # stand-ins and real data share subject names, not subjects
    ev.plan(
        "ststnet",
        "casme2",
        config.load(sets=chosen[:-2] + ["tuned.ststnet.tuned_on.synthetic=false", chosen[-1]]),
        "smoke",
    )
    fold = "tuned.ststnet.folds.casme2.sub03"
    ok = [f"{fold}.train.lr=0.01", f"{fold}.tuned_on.synthetic=true", f"{fold}.tuned_on.subjects=[casme2/sub01]"]
    assert ev.plan("ststnet", "casme2", config.load(sets=ok), "smoke").fold_recipes
    with pytest.raises(LeakageError, match=f"{fold} was chosen"):
        ev.plan("ststnet", "casme2", config.load(sets=ok[:-1] + [f"{fold}.tuned_on.subjects=[casme2/sub03]"]), "smoke")


def _tc(**changes) -> nested.TuneConfig:
    return dataclasses.replace(nested.tune_config(config.load()), **changes)


@pytest.mark.parametrize("dataset", list_sources())
def test_no_study_sees_the_subjects_of_the_outer_folds_it_serves(dataset, cfg):
    # ststnet where the dataset gives flow; else the first model it can feed (causalnet-composite: causalnet)
    model = next(m for m in ["ststnet", *list_models()] if ev.compatible(model_inputs(m, 3), dataset))
    p = ev.plan(model, dataset, cfg, "smoke")
    subjects = p.manifest["subject"].cast(str).to_numpy().astype(str)
    for tc in (_tc(outer_groups=3, inner_k=2), _tc(outer_groups="per_fold", inner_k="loso")):
        studies = nested.studies(p, tc)
        served = [name for s in studies for name in s.outer_folds]
        assert sorted(served) == sorted(f.name for f in p.folds)  # each outer fold in exactly one study
        assert studies[-1].name == "all" and set(studies[-1].subjects) == set(subjects)
        for s in studies[:-1]:
            tests = {str(x) for f in p.folds if f.name in s.outer_folds for x in subjects[f.test]}
            assert set(s.held_out) == tests and not set(s.subjects) & tests
            data = nested.study_data(p, s, tc, 1)
            assert not set(data.subjects) & tests  # the held-out subjects' samples are not in the trial's data
            assert data.inputs.count == len(data.y) == int(np.isin(subjects, s.subjects).sum())
            for f in data.folds:
                assert len(f.test) == 0 and not set(data.subjects[f.train]) & set(data.subjects[f.val])
            assert sorted(np.concatenate([f.val for f in data.folds]).tolist()) == list(range(len(data.y)))
        table = nested.splits_table(p, [nested.study_data(p, s, tc, 1) for s in studies])
        for s in studies:
            mine = table.filter(table["study"] == s.name)
            seen = set(mine.filter(mine["role"] != "held_out")["subject"].to_list())
            assert seen == set(s.subjects) and set(mine.filter(mine["role"] == "held_out")["subject"]) == set(
                s.held_out
            )


def test_study_settings_that_cannot_work_are_one_line(cfg):
    p = ev.plan("ststnet", "casme2", cfg, "smoke")  # 5 subjects
    with pytest.raises(UserError, match="study g0 has 2 subject"):
        nested.studies(p, _tc(outer_groups=2, inner_k=3))
    tc = _tc()
    assert (tc.grace(2), tc.grace(800), _tc(asha=nested.AshaConfig(grace_period=5, reduction_factor=2)).grace(3)) == (
        1,
        100,
        3,
    )
    # auto waits out the warm-up: a trial is first judged one epoch after its lr peaks (never past the budget)
    assert (tc.grace(30, warmup=3), tc.grace(800, warmup=5), tc.grace(4, warmup=5)) == (4, 100, 4)
    assert (tc.startup(6), tc.startup(60), _tc(startup_trials=4).startup(6)) == (2, 10, 4)
    for key, value in (
        ("outer_groups", 1),
        ("inner_k", "all"),
        ("metric", "f2"),
        ("startup_trials", 0),
        ("asha.grace_period", 0),
        ("asha.patience", 3),
    ):
        with pytest.raises(UserError, match=f"tune.{key.split('.')[0]}"):
            nested.tune_config(config.load(sets=[f"tune.{key}={value}"]))


def signal_problem(n=90, seed=0):
    """A flow dataset whose class brightens one channel in the middle, over 6 subjects."""
    rng = np.random.default_rng(seed)
    y = np.tile(np.arange(3), n // 3)
    arr = rng.integers(0, 120, (n, 28, 28, 3)).astype(np.uint8)
    for i, c in enumerate(y):
        arr[i, 10:18, 10:18, c] += 110
    return Inputs({"flow": arr}), y, np.array([f"s{i % 6}" for i in range(n)])


def test_lockstep_trainers_give_the_models_of_one_by_one_training():
    """Trainers stepped in turn (as a trial steps its inner folds) give the same logits as each trained
    alone: dropout's random stream is per trainer."""
    inputs, y, _ = signal_problem()
    rows = np.arange(len(y))
    cfg = train_config(optimizer="adam", lr=1e-3, epochs=3, batch_size=16, augment=True, weight_decay=0.0)
    folds = [
        FoldData(inputs, rows[:60], y[:60], rows[:0], y[:0], rows[60:]),
        FoldData(inputs, rows[30:], y[30:], rows[:0], y[:0], rows[:30]),
    ]
    build = lambda: create_model("ststnet", 3)  # noqa: E731 (dropout 0.5: the random stream matters)
    alone = [fit_predict(build, f, cfg, 3, seed=i).logits for i, f in enumerate(folds)]
    trainers = [FoldTrainer(build, f, cfg, 3, seed=i) for i, f in enumerate(folds)]
    torch.manual_seed(123)  # whatever the caller's stream, it is neither used nor disturbed
    for _ in range(cfg.epochs):
        for t in trainers:
            t.train_epoch()
    state = torch.get_rng_state()
    assert torch.equal(state, torch.manual_seed(123).get_state())
    for t, f, expected in zip(trainers, folds, alone):
        np.testing.assert_array_equal(t.predict(f.test), expected)


def test_the_objective_learns_a_known_signal_on_validation_subjects(cfg):
    """A trial scores each epoch on its inner folds' validation subjects; with a learnable signal the last
    epoch's UF1 is well above chance (1/3), and the trial reports the subjects it saw."""
    inputs, y, subjects = signal_problem()
    study = nested.Study(0, "g0", ("k0",), ("s9",), tuple(sorted(set(subjects))))
    tc = _tc(inner_k=3)
    inner = make_folds(subjects, "kfold", 3, 0, 0)
    folds = [Fold(f.index, f.name, f.train, f.test, np.zeros(0, int)) for f in inner]
    recipe = ev.recipe(
        "ststnet", config.load(sets=["tuned.ststnet.train.epochs=12", "tuned.ststnet.train.batch_size=16"]), "smoke"
    )
    data = nested.StudyData(
        study,
        "ststnet",
        "synthetic",
        "p",
        ("a", "b", "c"),
        recipe,
        inputs,
        y,
        subjects,
        np.array([str(i) for i in range(len(y))]),
        folds,
        tc.metric,
        1,
    )
    reports = list(objective.epochs(data, {"train": {"lr": 3e-3}, "model": {"dropout": 0.2}}))
    assert [r["epoch"] for r in reports] == list(range(1, 13))
    assert reports[-1]["val_n"] == len(y) and reports[-1]["subjects_seen"] == sorted(set(subjects))
    assert reports[-1]["val_uf1"] >= 0.7, reports[-1]


def test_the_study_searcher_finds_the_optuna_search_internals_it_reads():
    """StudySearch (tuning/searchers.py) records pruned trials through OptunaSearch's private `_ot_trials`,
    `_completed_trials` and `_ot_study`: Ray's public searcher API has no way to tell Optuna a trial was
    pruned. This pins the Ray it was written against; on another Ray, check those three, then move the pin."""
    import optuna
    import ray

    from hsta_bench.tuning import searchers

    search = searchers.StudySearch(
        space={"x": optuna.distributions.FloatDistribution(0.0, 1.0)}, metric="val_uf1", mode="max", budget=3
    )
    search.suggest("t0")
    assert isinstance(search._ot_study, optuna.Study)
    assert isinstance(search._ot_trials.get("t0"), optuna.Trial) and isinstance(search._completed_trials, set)
    assert ray.__version__ == "2.60.0", f"written for Ray 2.60.0, running {ray.__version__}: see the docstring"
