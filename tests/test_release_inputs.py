"""Baselines fed as their releases feed them (hsta_bench/models/inputs.py), fold weights saved and scored
(`run --save-weights`, `run --weights`), and the selection audit kept away from training (engine/audit.py)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import cv2
import numpy as np
import polars as pl
import pytest
import torch

from helpers import REPO, assert_one_line_error, run_main
from hsta_bench import config
from hsta_bench.errors import UserError
from hsta_bench.models import create_model, list_models
from hsta_bench.models.inputs import encoding_of, mirror, preprocess_settings, to_tensor

RELEASED_SIZE = 28  # the composite's flow images are 28 x 28: a model reading them at that size reads them unresized


def _built(name: str):
    with torch.device("meta"):  # inputs and encoding only: no weights allocated
        return create_model(name, 3)


FLOW_MODELS = [n for n in list_models() if _built(n).inputs.get("flow", (0,))[-1] == RELEASED_SIZE]


def release_decoding(path: str, encoding: str) -> torch.Tensor:
    """What a release's script makes of a flow image: cv2.imread, then a tensor of its values (bgr255), or
    this suite's default reading of the same file (RGB, scaled to 0..1)."""
    image = cv2.imread(path)
    if encoding == "default":
        image = image[..., ::-1] / 255.0
    return torch.from_numpy(np.ascontiguousarray(image)).float().permute(2, 0, 1)


def test_ststnet_reads_flow_as_its_release():
    """STSTNet's main.py feeds cv2.imread's arrays unscaled: BGR, 0..255."""
    assert encoding_of(_built("ststnet")) == {"flow": "bgr255"}


@pytest.mark.parametrize("name", FLOW_MODELS)
def test_flow_encoding_equals_the_decoding_it_declares(name, cfg):
    """The tensor a model gets from the cache equals cv2's decoding of the flow file the way its encoding
    says (bgr255: exactly the release's `torch.Tensor(cv2.imread(path))`), for every registered model that
    reads the composite's flow images at their own size."""
    from hsta_bench.preprocess import load_prepared

    model = _built(name)
    encoding = encoding_of(model)["flow"]
    prepared = load_prepared("megc2019-flow", config.load(sets=preprocess_settings(model.inputs)))
    paths = prepared.manifest["flow_path"].to_list()[:4]
    ours = to_tensor("flow", prepared.inputs("flow")[:4], encoding)
    theirs = torch.stack([release_decoding(p, encoding) for p in paths])
    assert ours.shape == theirs.shape == (4, 3, RELEASED_SIZE, RELEASED_SIZE)
    assert torch.allclose(ours, theirs, atol=1e-6), f"{name}: its flow input differs from the {encoding} decoding"
    if encoding == "bgr255":
        assert ours.max() > 1.5  # the raw byte values, not a 0..1 scale


@pytest.mark.parametrize("encoding,u,full", [("default", 0, 1.0), ("bgr255", 2, 255.0)])
def test_mirroring_negates_u_in_either_encoding(encoding, u, full):
    raw = torch.randint(0, 256, (2, 6, 6, 3), dtype=torch.uint8)
    x = to_tensor("flow", raw.numpy(), encoding)
    flipped = mirror("flow", x, encoding)
    assert torch.allclose(flipped[:, u], full - x[:, u].flip(-1))
    others = [c for c in range(3) if c != u]
    assert torch.equal(flipped[:, others], x[:, others].flip(-1))
    # mirroring the raw image, u as its byte complement, then encoding: the same tensor
    raw_mirror = raw.flip(2).clone()
    raw_mirror[..., 0] = 255 - raw_mirror[..., 0]  # the cache's u is its first (R) channel
    assert torch.allclose(to_tensor("flow", raw_mirror.numpy(), encoding), flipped, atol=1e-5)


def test_an_unknown_encoding_is_one_line():
    model = _built("off_apexnet")
    model.encoding = {"flow": "yuv"}
    with pytest.raises(UserError, match="unknown encoding 'yuv' for input 'flow'"):
        encoding_of(model)


# ------------------------------------------------------------------------------------ weights and audit


def _run(capsys, out: Path, *extra: str):
    proc = run_main(
        capsys,
        "run",
        "--dataset",
        "megc2019-flow",
        "--model",
        "ststnet",
        "--preset",
        "smoke",
        "--in-process",
        "--output",
        str(out),
        "--set",
        "presets.smoke.train.epochs=3",
        "--set",
        "models.ststnet.train.lr=1e-3",  # 20x the release's: its three epochs move it
        *extra,
    )
    runs = sorted(p for p in out.iterdir() if (p / "run.json").is_file())
    return proc, runs[-1] if runs else None


def test_saved_weights_scored_give_the_runs_own_predictions_and_the_audit_is_recorded(capsys, tmp_path):
    proc, run = _run(capsys, tmp_path / "a", "--save-weights", "--audit")
    assert proc.returncode == 0, proc.stderr
    info = json.loads((run / "run.json").read_text())
    (evaluation,) = info["evaluations"]
    folder = Path(evaluation["weights"])
    folds = evaluation["seeds"]  # fold name -> seed
    assert sorted(p.stem for p in folder.glob("*.pth")) == sorted(folds)
    blob = torch.load(next(folder.glob("*.pth")), weights_only=True)
    assert blob["model"] == "ststnet" and blob["config_key"] == evaluation["config_key"]

    # the audit: every epoch of every fold's test samples, in its own file, the last epoch = the run's predictions
    audit = pl.read_parquet(run / "audit.parquet")
    predictions = pl.read_parquet(run / "predictions.parquet")
    assert sorted(audit["epoch"].unique().to_list()) == [1, 2, 3]
    assert audit.filter(pl.col("epoch") == 3).height == predictions.height
    last = audit.filter(pl.col("epoch") == 3).select("sample_id", "pred").sort("sample_id")
    assert last["pred"].to_list() == predictions.sort("sample_id")["pred"].to_list()
    assert "audit" not in predictions.columns and "epoch" not in predictions.columns
    assert evaluation["audit"]["every"] == 1 and evaluation["audit"]["epochs"] == 3
    from hsta_bench.engine.audit import selected_scores

    assert selected_scores(audit, evaluation["classes"])["uf1"] == pytest.approx(evaluation["audit"]["uf1"])
    assert "Selection audit (**not results**)" in (run / "leaderboard.md").read_text()

    # scored without training: exactly the run's own predictions, to the last bit of every logit
    proc, scored = _run(capsys, tmp_path / "b", "--weights", str(folder))
    assert proc.returncode == 0, proc.stderr
    again = pl.read_parquet(scored / "predictions.parquet").sort("sample_id")
    assert again.equals(predictions.sort("sample_id"))
    (given,) = json.loads((scored / "run.json").read_text())["evaluations"]
    assert given["given_weights"] == str(folder) and set(given["chosen_epochs"].values()) == {0}

    # a missing fold file, and a file that does not fit the model: one line each, before anything is scored
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for path in folder.glob("*.pth"):
        (damaged / path.name).write_bytes(path.read_bytes())
    victim = sorted(damaged.glob("*.pth"))[0]
    victim.unlink()
    proc, _ = _run(capsys, tmp_path / "c", "--weights", str(damaged))
    assert_one_line_error(proc, "evaluation.weights", f"no weights for fold(s) {victim.stem}")
    torch.save({"conv1.weight": torch.zeros(1)}, victim)
    proc, _ = _run(capsys, tmp_path / "d", "--weights", str(damaged))
    assert_one_line_error(proc, str(victim), "does not fit ststnet")


def test_audited_training_is_the_same_training():
    """Recording test predictions every epoch changes nothing the fold learns (plain and fold-batched)."""
    from hsta_bench.engine.batched import fit_predict_folds
    from hsta_bench.engine.train import FoldData, Inputs, fit_predict, train_config

    rng = np.random.default_rng(0)
    inputs = Inputs({"flow": rng.integers(0, 256, (40, 28, 28, 3), dtype=np.uint8)}, encoding={"flow": "bgr255"})
    labels = rng.integers(0, 3, 40)
    folds = [
        FoldData(inputs, np.arange(0, 30), labels[:30], np.zeros(0, int), np.zeros(0, int), np.arange(30, 40)),
        FoldData(inputs, np.arange(10, 40), labels[10:], np.zeros(0, int), np.zeros(0, int), np.arange(0, 10)),
    ]
    cfg = train_config(optimizer="adam", lr=1e-3, batch_size=8, epochs=3, schedule="constant", augment=True)

    def build():
        return create_model("ststnet", 3)

    plain = fit_predict(build, folds[0], cfg, 3, 7)
    audited = fit_predict(build, folds[0], cfg, 3, 7, audit_every=2, keep_state=True)
    assert np.array_equal(plain.logits, audited.logits)
    assert sorted(audited.audit) == [2, 3] and plain.audit is None
    assert np.array_equal(audited.audit[3], audited.logits.argmax(1))
    stacked = fit_predict_folds(build, folds, cfg, 3, [7, 8])
    stacked_audited = fit_predict_folds(build, folds, cfg, 3, [7, 8], audit_every=1, keep_state=True)
    for a, b in zip(stacked, stacked_audited):
        assert np.array_equal(a.logits, b.logits)
        assert sorted(b.audit) == [1, 2, 3]
    # a fold-batched fold's saved weights load into the plain model and predict as the stack did
    model = build()
    model.load_state_dict(stacked_audited[1].state)
    model.eval()
    with torch.no_grad():
        alone = model(inputs.get(folds[1].test)).numpy()
    assert np.allclose(alone, stacked_audited[1].logits, atol=1e-4)


def test_best_epoch_on_test_follows_the_release_rule():
    """Per fold, the epoch with the best accuracy on its own test samples, ties to the later (HTNet's `<=`)."""
    from hsta_bench.engine.audit import best_epoch_on_test, selected_scores

    rows = []
    for epoch, preds in ((1, ["a", "a", "b"]), (2, ["a", "b", "b"]), (3, ["a", "b", "a"])):  # fold x: truth a, b, b
        rows += [("x", f"x{i}", epoch, p, t) for i, (p, t) in enumerate(zip(preds, ["a", "b", "b"]))]
    for epoch, preds in ((1, ["b"]), (2, ["b"])):  # fold y: truth b; tie -> epoch 2
        rows += [("y", "y0", epoch, preds[0], "b")]
    frame = pl.DataFrame(rows, schema=["fold", "sample_id", "epoch", "pred", "label"], orient="row")
    chosen = best_epoch_on_test(frame)
    assert dict(chosen.select("fold", "epoch").unique().iter_rows()) == {"x": 2, "y": 2}
    assert selected_scores(frame, ["a", "b"])["uf1"] == pytest.approx(1.0)


TRAINING_MODULES = [
    "hsta_bench/engine/train.py",
    "hsta_bench/engine/batched.py",
    "hsta_bench/engine/evaluate.py",
    *sorted(str(p.relative_to(REPO)) for p in (REPO / "hsta_bench" / "tuning").glob("*.py")),
]


@pytest.mark.parametrize("module", TRAINING_MODULES)
def test_the_audit_never_reaches_training_selection_or_tuning(module):
    """What trains, selects or tunes neither imports the audit nor opens its files: the audit is written after
    a fold's model is chosen (orchestrate/trials.py) and read by the run's merge and the leaderboard only."""
    source = (REPO / module).read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            imported |= {f"{node.module}.{a.name}" for a in node.names} | {node.module or ""}
        elif isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
    assert not {m for m in imported if m.startswith("hsta_bench.engine.audit")}, module
    assert "audit.parquet" not in source and "audit.merge" not in source, module
