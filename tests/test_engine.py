"""The engine: recipes, schedules, the trainer never seeing test labels, determinism, fold batching."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest
import torch

from helpers import untrained_logits
from hsta_bench import config
from hsta_bench.engine import evaluate as ev
from hsta_bench.engine import train
from hsta_bench.engine.batched import fit_predict_folds
from hsta_bench.engine.device import torch_threads
from hsta_bench.engine.metrics import scores
from hsta_bench.engine.train import FoldData, Inputs, train_config
from hsta_bench.errors import UserError
from hsta_bench.models import create_model, list_models, model_class

FOLD_BATCHABLE = [m for m in list_models() if model_class(m).fold_batchable]
# the same layers, narrower, where the release's width only costs time here (Dual-Inception's 6.4 M-weight
# dense layer: 72 s to train three folds both ways, measured on a busy machine; 10 s at width 32)
NARROW = {"dual_inception": {"hidden": 32}}


def without_dropout(name: str):
    """A builder of `name` with its dropout off (where it has one) and narrowed as NARROW says."""
    off = {"dropout": 0.0} if "dropout" in inspect.signature(model_class(name)).parameters else {}
    return lambda: create_model(name, 3, **off, **NARROW.get(name, {}))


def test_recipes_come_from_configs_and_presets_override_them(cfg):
    paper = ev.recipe("ststnet", cfg, "paper")
    assert (paper.train.optimizer, paper.train.lr, paper.train.batch_size, paper.train.epochs) == (
        "adam",
        5e-5,
        256,
        800,
    )
    assert paper.train.selection == "last" and paper.source == "configs/models/ststnet.yaml"
    smoke = ev.recipe("ststnet", cfg, "smoke")
    assert smoke.train.epochs == 2 and smoke.train.lr == 5e-5  # the preset changes the budget, not the recipe
    hsta = ev.recipe("hsta_tiny", cfg, "paper")
    assert hsta.train.layer_decay == 0.9 and hsta.train.balanced and hsta.source == "configs/models/hsta.yaml"
    assert ev.recipe("hsta_tiny", cfg, "smoke").overrides == {"img_size": 48}
    c3d = ev.recipe("c3d", cfg, None)  # a recipe that keeps configs/train.yaml's defaults
    assert c3d.source == "configs/models/c3d.yaml" and c3d.train == ev.recipe("c3d", {**cfg, "models": {}}, None).train
    tuned = config.load(sets=["models.ststnet.train.epochs=3", "presets.paper.train.seed=7"])
    assert (ev.recipe("ststnet", tuned, "paper").train.epochs, ev.recipe("ststnet", tuned, "paper").train.seed) == (
        3,
        7,
    )


def test_a_bad_training_setting_names_itself(tmp_path):
    from hsta_bench.errors import UserError

    # in a file: the recipe and the setting; on the command line: the --set (tests/test_command_line.py)
    (tmp_path / "bad.yaml").write_text("models:\n  ststnet:\n    train: {optimizer: rmsprop}\n")
    with pytest.raises(UserError, match=r"train \(ststnet, .*\)\.optimizer: .*'sgd' \(got 'rmsprop'\)"):
        ev.recipe("ststnet", config.load(tmp_path / "bad.yaml"), "paper")
    with pytest.raises(UserError, match=r"^--set models.ststnet.train.optimizer=rmsprop: .*'sgd' \(got 'rmsprop'\)"):
        ev.recipe("ststnet", config.load(sets=["models.ststnet.train.optimizer=rmsprop"]), "paper")
    (tmp_path / "typo.yaml").write_text("models:\n  ststnet:\n    train: {lr_typo: 1}\n")
    with pytest.raises(UserError, match="unknown setting\\(s\\) lr_typo"):
        ev.recipe("ststnet", config.load(tmp_path / "typo.yaml"), "paper")
    with pytest.raises(UserError, match="^--set models.ststnet.train.lr_typo=1: unknown setting 'lr_typo'"):
        ev.recipe("ststnet", config.load(sets=["models.ststnet.train.lr_typo=1"]), "paper")


def test_schedule_warms_up_then_follows_a_cosine_to_min_lr():
    cfg = train_config(lr=1.0, min_lr=0.1, warmup_epochs=1, schedule="cosine")
    factors = [train.lr_factor(s, 100, 10, cfg) for s in range(100)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))
    assert factors[-1] == pytest.approx(0.1, abs=0.01)
    assert train.lr_factor(50, 100, 0, train_config(schedule="constant")) == 1.0


def test_layer_decay_scales_hsta_layers_and_spares_norms_from_weight_decay():
    model = create_model("hsta_tiny", 3, img_size=32)
    groups = train.param_groups(model, train_config(layer_decay=0.5, weight_decay=0.05))
    scales = sorted({g["lr_scale"] for g in groups})
    assert scales == [0.125, 0.25, 0.5, 1.0]  # embeddings, 2 HSTA layers, head (tiny has 2 layers)
    by_param = {id(p): g for g in groups for p in g["params"]}
    assert (
        by_param[id(model.head.weight)]["lr_scale"] == 1.0 and by_param[id(model.head.weight)]["weight_decay"] == 0.05
    )
    assert by_param[id(model.branches["0"].cls_token)]["lr_scale"] == 0.125
    assert by_param[id(model.norms["0"].weight)]["weight_decay"] == 0.0


@pytest.mark.parametrize("n", [1, 2, 5, 9, 17, 33, 40])
def test_an_epoch_takes_every_sample_once_and_no_batch_of_one(n):
    """A last batch of one joins the batch before it (batch norm needs two). It used to overwrite the batch
    before that one when an epoch had three batches or more (a batch lost, another trained twice)."""
    parts = train.batches(np.arange(n), 4)
    assert sorted(np.concatenate(parts).tolist()) == list(range(n))
    assert all(len(p) > 1 for p in parts) or n == 1


def test_flip_mirrors_frames_and_negates_flow_u():
    x = torch.rand(2, 3, 4, 4)
    out = train.flip({"flow": x, "apex": x}, torch.tensor([True, False]))
    assert torch.equal(out["apex"][0], x[0].flip(-1)) and torch.equal(out["apex"][1], x[1])
    assert torch.allclose(out["flow"][0, 0], 1 - x[0, 0].flip(-1)) and torch.equal(
        out["flow"][0, 1:], x[0, 1:].flip(-1)
    )


def fold_problem(n=60, seed=0):
    """A small flow dataset with a learnable signal: class c brightens channel c in the middle."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    arr = rng.integers(0, 120, (n, 28, 28, 3)).astype(np.uint8)
    for i, c in enumerate(y):
        arr[i, 10:18, 10:18, c] += 120
    return Inputs({"flow": arr}), y


@pytest.mark.parametrize("selection", ["last", "best_val"])
def test_the_trainer_never_sees_test_labels(selection):
    inputs, y = fold_problem()
    rows = np.arange(len(y))
    cfg = train_config(epochs=3, batch_size=8, selection=selection, lr=1e-2)
    data = FoldData(inputs, rows[:40], y[:40], rows[40:50], y[40:50], rows[50:])
    assert "test_labels" not in {f.name for f in dataclasses.fields(FoldData)}
    seen = []
    original = train.predict

    def spy(model, inputs_, rows_, device, batch_size=256):
        seen.append(np.asarray(rows_).copy())
        return original(model, inputs_, rows_, device, batch_size)

    train.predict = spy
    try:
        out = train.fit_predict(lambda: create_model("ststnet", 3), data, cfg, 3, seed=1)
    finally:
        train.predict = original
    # selection scored validation rows only; the test rows were predicted once, at the end
    assert all(set(r) <= set(data.val) for r in seen[:-1]) and (seen[-1] == data.test).all()
    assert len(seen) == (cfg.epochs + 1 if selection == "best_val" else 1)
    assert out.logits.shape == (10, 3)


def ragged_folds(**settings):
    """Three folds of different sizes on fold_problem, and the training settings the fold-batching tests use
    (SGD, warm-up, balanced sampling, flips), with `settings` on top."""
    inputs, y = fold_problem(90)
    folds = []
    for k, size in enumerate((50, 43, 37)):
        test = np.arange(60 + 10 * k, 70 + 10 * k)
        train_rows = np.arange(size)
        folds.append(FoldData(inputs, train_rows, y[train_rows], np.zeros(0, int), np.zeros(0, int), test))
    cfg = train_config(
        optimizer="sgd",
        lr=3e-2,
        weight_decay=0.01,
        batch_size=16,
        epochs=3,
        warmup_epochs=1,
        balanced=True,
        augment=True,
        **settings,
    )
    return folds, cfg


# STSTNet at a learning rate that moves it (20x the release's) for 10 epochs: it learns the megc2019-flow
# stand-in, UF1 ~0.93 on subjects it never saw against 0.33 by chance (measured; asserted below)
LEARNS = ["models.ststnet.train.lr=1e-3", "presets.smoke.train.epochs=10"]


@pytest.fixture(scope="module")
def learner():
    return ev.plan("ststnet", "megc2019-flow", config.load(sets=LEARNS), "smoke")


def _with_labels(p: ev.Plan, rows: np.ndarray) -> ev.Plan:
    """`p` with the labels of `rows` shifted to the next class."""
    y = p.y.copy()
    y[rows] = (y[rows] + 1) % len(p.classes)
    return dataclasses.replace(p, y=y)


def _test_labels_reach_training(p: ev.Plan) -> bool:
    """Whether scrambling fold 0's test labels changes what fold 0 predicts (its logits, exactly)."""
    return not np.array_equal(ev.run_folds(p, [0]).logits, ev.run_folds(_with_labels(p, p.folds[0].test), [0]).logits)


def test_scrambled_test_labels_change_nothing_and_scrambled_training_labels_do(learner):
    """Fold 0's test labels scrambled: fold 0's logits are bit for bit the same (those labels reach only the
    scoring). Only fold 0's: under LOSO its test rows are other folds' training rows. The control: its
    training labels scrambled, the same model predicts differently, so the recipe does learn from labels."""
    whole = ev.run_folds(learner)
    assert scores(learner.y[whole.rows], whole.pred, 3)["uf1"] > 0.7  # it learns (chance: 0.33)
    assert not _test_labels_reach_training(learner)
    trained = ev.run_folds(learner, [0]).logits
    misled = ev.run_folds(_with_labels(learner, learner.folds[0].train), [0]).logits
    assert (misled.argmax(1) != trained.argmax(1)).mean() >= 0.5


def test_the_scramble_check_catches_a_trainer_that_reads_test_labels(learner, monkeypatch):
    """A mutant of the engine whose fold trains on its test rows too, with their labels: the check above fails."""
    honest = ev._fold_data

    def leaky(p, fold):
        data = honest(p, fold)
        rows = np.concatenate([data.train, fold.test])
        return dataclasses.replace(data, train=rows, train_labels=p.y[rows])

    monkeypatch.setattr(ev, "_fold_data", leaky)
    assert _test_labels_reach_training(learner)


def _twice_the_same(p: ev.Plan) -> bool:
    """Two folds trained twice: the same logits, bit for bit, and the same predictions table."""
    a, b = ev.run_folds(p, [0, 1]), ev.run_folds(p, [0, 1])
    return np.array_equal(a.logits, b.logits) and ev.predictions_frame(p, [a]).equals(ev.predictions_frame(p, [b]))


@pytest.fixture(scope="module")
def hsta_flow_plan(cfg):
    return ev.plan("hsta_flow", "megc2019-flow", cfg, "smoke")


def test_same_seed_same_logits_on_cpu(hsta_flow_plan):
    """hsta_flow at smoke (stochastic depth 0.1, balanced sampling, flips) trained twice gives the same logits;
    dropout and stochastic depth draw from each fold's own seeded stream. Its logits move well away from the
    untrained model's (by more than the untrained logits' own size), so this is training reproduced, not
    initialisation."""
    p = hsta_flow_plan
    assert _twice_the_same(p)
    trained = ev.run_folds(p, [0]).logits
    untrained = untrained_logits(p, 0)
    assert np.abs(trained - untrained).mean() > np.abs(untrained).max()


def test_the_determinism_check_catches_an_unseeded_dropout_stream(hsta_flow_plan, monkeypatch):
    """A mutant trainer whose random stream (dropout, stochastic depth) is seeded from the OS every epoch."""

    def unseeded(self):
        stream = torch.Generator()
        stream.seed()
        return stream.get_state(), []

    monkeypatch.setattr(train.FoldTrainer, "_read_streams", unseeded)
    assert not _twice_the_same(hsta_flow_plan)


@pytest.mark.parametrize("name", FOLD_BATCHABLE)
def test_fold_batched_training_equals_one_fold_at_a_time(name):
    """Folds of different sizes (batches padded and masked, extra steps sat out), warm-up, balanced
    sampling, flips, momentum and weight decay: the fold-batched models are the one-by-one models to float
    rounding. Dropout is off here: it is the one random stream the two ways draw differently. SGD, because
    Adam divides each gradient by its own running size, so a gradient that is zero up to rounding
    (STSTNet's conv biases before ReLU and batch norm: ~1e-8) becomes a full step whose sign is the
    rounding's; Adam's arithmetic is checked on its own below."""
    folds, cfg = ragged_folds()
    build = without_dropout(name)
    # Both ways at two threads, whatever earlier tests left: the one-by-one path's own rounding depends on the
    # thread count (Dual-Inception's first fold, one by one: logits 3.2e-4 apart at one thread and at two, while
    # the batched path at either count is within 2.2e-7 of the one-by-one at two), and this compares the paths.
    with torch_threads(2):
        plain = [train.fit_predict(build, f, cfg, 3, seed=20 + i) for i, f in enumerate(folds)]
        batched = fit_predict_folds(build, folds, cfg, 3, seeds=[20, 21, 22])
    for i, (a, b) in enumerate(zip(plain, batched)):
        assert np.allclose(a.logits, b.logits, atol=1e-4), np.abs(a.logits - b.logits).max()
        assert (a.logits.argmax(1) == b.logits.argmax(1)).all()
        torch.manual_seed(20 + i)  # training moved the logits far beyond that tolerance (measured: 0.06-1.8 on average)
        untrained = train.predict(build(), folds[i].inputs, folds[i].test, "cpu")
        assert np.abs(a.logits - untrained).mean() > 100 * 1e-4


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_stacked_optimizer_is_torch_optimizer_per_fold(optimizer):
    """Given the same gradients, the stacked optimiser moves each fold's parameters as torch.optim would,
    with per-fold learning rates and folds that sit out some steps."""
    from hsta_bench.engine.batched import StackedOptimizer

    g = torch.Generator().manual_seed(0)
    folds = 3
    start = torch.randn(folds, 4, 5, generator=g)
    cfg = train_config(optimizer=optimizer, weight_decay=0.1, momentum=0.9)
    stacked = {"w": start.clone().requires_grad_(True)}
    opt = StackedOptimizer(stacked, cfg, {"w": 0.1})
    singles = [start[f].clone().requires_grad_(True) for f in range(folds)]
    make = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[optimizer]
    extra = {"momentum": 0.9} if optimizer == "sgd" else {}
    torch_opts = [make([p], lr=1.0, weight_decay=0.1, **extra) for p in singles]
    for step in range(6):
        grads = torch.randn(folds, 4, 5, generator=g)
        active = torch.tensor([True, step % 2 == 0, step < 4])
        lrs = torch.tensor([0.01, 0.02, 0.005]) * (step + 1)
        stacked["w"].grad = grads.clone()
        opt.step(active, lrs)
        for f in range(folds):
            if active[f]:
                torch_opts[f].param_groups[0]["lr"] = float(lrs[f])
                singles[f].grad = grads[f].clone()
                torch_opts[f].step()
    for f in range(folds):
        assert torch.allclose(stacked["w"][f], singles[f], atol=1e-6)


def test_ststnet_is_fold_batched():
    assert "ststnet" in FOLD_BATCHABLE


def test_validation_subjects_select_the_epoch_without_the_test_subject():
    cfg = config.load(
        sets=["evaluation.val_subjects=1", "models.ststnet.train.selection=best_val", "presets.smoke.train.epochs=4"]
    )
    result = ev.evaluate("ststnet", "megc2019-flow", cfg, "smoke")
    roles = result.splits
    for _fold, group in roles.group_by("fold"):
        val = set(group.filter(group["role"] == "val")["subject"])
        test = set(group.filter(group["role"] == "test")["subject"])
        assert len(val) == 1 and not val & test
    assert set(result.chosen_epochs) == {f.name for f in result.plan.folds}
    assert all(1 <= e <= 4 for e in result.chosen_epochs.values())


def test_dual_inceptions_recipe_validates_on_the_test_subjects_own_database():
    """configs/models/dual_inception.yaml sets evaluation.val_rule own-database: the plan's folds validate on
    the other subjects of the test subject's source and train on the other sources; the run records the rule."""
    p = ev.plan("dual_inception", "megc2019-flow", config.load(), "paper", prepare=False)
    assert p.evaluation["val_rule"] == "own-database" and p.recipe.train.selection == "best_val_loss"
    source = p.manifest["source"].to_numpy()
    for fold in p.folds:
        (own,) = set(source[fold.test])
        assert set(source[fold.val]) == {own} and own not in set(source[fold.train])
        subjects = p.manifest["subject"].cast(str).to_numpy()
        assert not set(subjects[fold.val]) & set(subjects[fold.test])
    # any other model keeps the configured rule, and a recipe may set fold settings only
    assert ev.plan("ststnet", "megc2019-flow", config.load(), "paper", prepare=False).evaluation["val_rule"] == "draw"
    cfg = config.load()
    cfg["models"]["dual_inception"]["evaluation"]["scheme"] = "kfold"  # as a user's own recipe file could
    with pytest.raises(UserError, match=r"evaluation.scheme: a recipe may set only val_rule, val_subjects"):
        ev.recipe("dual_inception", cfg, "paper")


@pytest.mark.parametrize(
    "selection,losses,uf1s,chosen",
    [
        ("best_val_loss", [0.9, 0.5, 0.7, 0.5], [0.1, 0.2, 0.3, 0.4], 2),  # lowest loss; a tie keeps the earlier
        ("best_val", [0.9, 0.5, 0.7, 0.5], [0.1, 0.4, 0.6, 0.6], 3),  # highest UF1; a tie keeps the earlier
    ],
)
def test_selection_keeps_the_epoch_its_rule_names(monkeypatch, selection, losses, uf1s, chosen):
    rng = np.random.default_rng(0)
    inputs = Inputs({"flow": rng.integers(0, 256, (40, 28, 28, 3), dtype=np.uint8)})
    y = rng.integers(0, 3, 40)
    data = FoldData(inputs, np.arange(24), y[:24], np.arange(24, 34), y[24:34], np.arange(34, 40))
    scripted_loss, scripted_uf1 = iter(losses), iter(uf1s)
    monkeypatch.setattr(train, "val_loss", lambda *a, **k: next(scripted_loss))
    monkeypatch.setattr(train, "val_uf1", lambda *a, **k: next(scripted_uf1))
    cfg = train_config(epochs=4, batch_size=8, selection=selection, optimizer="adam", lr=1e-3)
    out = train.fit_predict(lambda: create_model("ststnet", 3), data, cfg, 3, seed=0)
    assert (out.epochs, out.chosen_epoch) == (4, chosen)


def test_validation_loss_is_the_mean_cross_entropy_of_the_validation_rows():
    rng = np.random.default_rng(1)
    inputs = Inputs({"flow": rng.integers(0, 256, (30, 28, 28, 3), dtype=np.uint8)})
    y = rng.integers(0, 3, 30)
    data = FoldData(inputs, np.arange(10), y[:10], np.arange(10, 30), y[10:30], np.arange(0))
    torch.manual_seed(0)
    model = create_model("dual_inception", 3)
    logits = train.predict(model, inputs, data.val, "cpu")
    expected = -np.mean(np.log(np.exp(logits) / np.exp(logits).sum(1, keepdims=True))[np.arange(20), y[10:30]])
    assert train.val_loss(model, data, "cpu") == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("faster", [True, False])
def test_fold_batch_auto_trains_the_way_measured_faster(monkeypatch, faster):
    """auto: batched.probe times both ways once (per model, batch and device in a process); the folds train
    stacked exactly when it measured stacking faster, and the run records what it measured."""
    from hsta_bench.engine import batched

    calls = []

    def measured(build, data, cfg, n_classes, placement, **kw):
        calls.append((cfg.batch_size, placement.device, len(data)))
        return {"plain_ms_per_fold_step": 2.0, "stacked_ms_per_fold_step": 1.0 if faster else 3.0, "stacked": faster}

    monkeypatch.setattr(batched, "probe", measured)
    monkeypatch.setattr(batched, "_PROBES", {})
    p = ev.plan("ststnet", "megc2019-flow", config.load(sets=["presets.smoke.train.epochs=1"]), "smoke")
    assert p.recipe.train.fold_batch == "auto"
    out = ev.run_folds(p, [0, 1])
    assert out.placement["fold_batched"] is faster and out.placement["fold_batch_probe"]["stacked"] is faster
    assert calls == [(p.recipe.train.batch_size, "cpu", 4)]
    again = ev.plan("ststnet", "megc2019-flow", config.load(sets=["presets.smoke.train.epochs=1"]), "smoke")
    assert ev.use_fold_batch(again, "cpu") is faster and len(calls) == 1  # once a process
    never = ev.plan("ststnet", "megc2019-flow", config.load(sets=["models.ststnet.train.fold_batch=never"]), "smoke")
    assert not ev.use_fold_batch(never, "cpu") and "cpu" not in never.fold_batch_probe


def test_the_probe_times_both_ways_on_real_batches():
    from hsta_bench.engine.batched import probe
    from hsta_bench.engine.train import placement_for

    folds, _ = ragged_folds()
    cfg = train_config(optimizer="adam", lr=1e-3, batch_size=4, epochs=3)
    out = probe(without_dropout("ststnet"), folds, cfg, 3, placement_for(cfg), steps=2, group=2)
    assert out["plain_ms_per_fold_step"] > 0 and out["stacked_ms_per_fold_step"] > 0
    assert out["stacked"] == (out["stacked_ms_per_fold_step"] * 1.25 < out["plain_ms_per_fold_step"])
    assert (out["folds_stacked"], out["batch_size"]) == (2, 4)


def test_a_model_validating_on_its_own_database_pairs_with_composites_only():
    from hsta_bench.cli.run import pairs

    todo, skipped = pairs(["dual_inception", "ststnet"], ["casme2", "megc2019-flow"], config.load(), "paper")
    assert todo == [("dual_inception", "megc2019-flow"), ("ststnet", "casme2"), ("ststnet", "megc2019-flow")]
    assert skipped == [
        "dual_inception on casme2: its recipe validates on the test subject's own database and trains on the "
        "others (evaluation.val_rule own-database), which needs a composite of several databases"
    ]
    with pytest.raises(UserError, match=r"^no model can run on the chosen datasets: dual_inception on samm: its"):
        pairs(["dual_inception"], ["samm"], config.load(), "paper")
