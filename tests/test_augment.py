"""Training augmentations (hsta_bench/engine/augment.py): RandAugment, random erasing, repeated augmentation,
as HSTA's release defines them, on the tensors a model reads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hsta_bench.engine import augment
from hsta_bench.errors import UserError
from hsta_bench.models.inputs import from_unit, to_tensor, to_unit

RELEASE = "rand-m7-n4-mstd0.5-inc1"  # HSTA_MER's K_folds_finetuning.py default for --aa


def batch_of(n: int = 12, size: int = 16, frames: int = 3, seed: int = 0, encoding: str = "default") -> dict:
    """An apex image, a clip whose every frame is that image, and a flow image that is that image too."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    clip = np.repeat(image[:, None], frames, axis=1)
    return {
        "apex": to_tensor("apex", image, encoding),
        "frames": to_tensor("frames", clip, encoding),
        "flow": to_tensor("flow", image, encoding),
    }


def test_the_release_spec_parses_and_bad_specs_name_the_setting():
    spec = augment.parse_randaugment(RELEASE)
    assert (spec.ops, spec.magnitude, spec.std) == (4, 7.0, 0.5)
    assert augment.parse_randaugment("none") is None and augment.parse_randaugment("") is None
    for bad in ("autoaugment", "rand-m7-x3", "rand-m11-n2-inc1", "rand-m7-n0-inc1", "rand-m7-n2-inc0"):
        with pytest.raises(UserError, match="train.randaugment"):
            augment.parse_randaugment(bad)


@pytest.mark.parametrize(
    "values,message",
    [({"erase": 1.5}, "erase"), ({"repeat": 0}, "repeat"), ({"randaugment": "rand-n2"}, "randaugment")],
)
def test_train_config_check_refuses_bad_augmentation_settings(values, message):
    from hsta_bench import config
    from hsta_bench.engine.train import TrainConfig

    with pytest.raises(UserError, match=f"models.hsta.train.{message}"):
        values = {**config.shipped()["train"], **values}
        config.typed(TrainConfig, values, "models.hsta.train").check("models.hsta.train")


@pytest.mark.parametrize("op", augment.OPS)
def test_each_op_keeps_shape_and_range_and_changes_the_image(op):
    x = torch.rand(6, 3, 16, 16)
    y = augment.apply_op(op, x, torch.full((6,), 0.7), torch.ones(6))
    assert y.shape == x.shape and y.min() >= -1e-6 and y.max() <= 1 + 1e-6
    assert (y - x).abs().mean() > 1e-3, f"{op} at magnitude 7 left the images as they were"


@pytest.mark.parametrize(
    "op", ["rotate", "shear_x", "shear_y", "translate_x", "translate_y", "color", "contrast", "brightness", "sharpness"]
)
def test_ops_at_magnitude_zero_are_the_identity(op):
    x = torch.rand(4, 3, 16, 16)
    y = augment.apply_op(op, x, torch.zeros(4), torch.ones(4))
    assert torch.allclose(y, x, atol=1e-5)


def test_a_sample_gets_the_same_ops_in_every_input_and_frame_and_flow_skips_colour_ops():
    """The apex image, each frame of its clip and (for geometric ops) its flow image come out the same; a flow
    image never gets a colour op (its bytes are motion)."""
    batch = batch_of()
    out = augment.randaugment(batch, augment.parse_randaugment(RELEASE), torch.Generator().manual_seed(1))
    assert not torch.allclose(out["apex"], batch["apex"])
    for t in range(batch["frames"].shape[2]):
        assert torch.allclose(out["frames"][:, :, t], out["apex"], atol=1e-5)
    # geometric ops only: flow and apex (unit space) agree exactly
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(augment, "OPS", augment.GEOMETRIC)
        out = augment.randaugment(batch, augment.parse_randaugment(RELEASE), torch.Generator().manual_seed(2))
    apex = to_unit("apex", out["apex"], "default")
    assert torch.allclose(apex, out["flow"], atol=1e-5)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(augment, "OPS", ("invert",))
        mp.setattr(augment, "OP_PROB", 1.0)
        out = augment.randaugment(batch, augment.parse_randaugment("rand-m5-n1-inc1"), torch.Generator().manual_seed(3))
    assert torch.equal(out["flow"], batch["flow"])
    assert torch.allclose(to_unit("apex", out["apex"], "default"), 1 - batch["flow"], atol=1e-5)


def test_equalize_spreads_a_narrow_histogram_and_leaves_a_flat_image():
    narrow = 0.4 + 0.1 * torch.rand(2, 3, 16, 16)
    out = augment.apply_op("equalize", narrow, torch.zeros(2), torch.ones(2))
    assert out.amin() <= 0.01 and out.amax() >= 0.99
    flat = torch.full((1, 3, 8, 8), 0.5)
    assert torch.allclose(augment.apply_op("equalize", flat, torch.zeros(1), torch.ones(1)), flat, atol=1 / 255)


@pytest.mark.parametrize("encoding", ["default", "bgr255"])
def test_unit_space_round_trips_each_encoding(encoding):
    batch = batch_of(encoding=encoding)
    for kind, x in batch.items():
        unit = to_unit(kind, x, encoding)
        assert unit.min() >= -1e-6 and unit.max() <= 1 + 1e-6
        assert torch.allclose(from_unit(kind, unit, encoding), x, atol=1e-4)


def test_the_same_generator_gives_the_same_augmentation():
    batch, spec = batch_of(), augment.parse_randaugment(RELEASE)
    a = augment.randaugment(batch, spec, torch.Generator().manual_seed(5))
    b = augment.randaugment(batch, spec, torch.Generator().manual_seed(5))
    c = augment.randaugment(batch, spec, torch.Generator().manual_seed(6))
    assert all(torch.equal(a[k], b[k]) for k in a) and not torch.equal(a["apex"], c["apex"])


def test_erasing_cuts_the_same_relative_box_from_every_input_and_frame():
    batch = batch_of(n=20)
    assert augment.erase(batch, 0.0, torch.Generator().manual_seed(0)) is batch
    out = augment.erase(batch, 1.0, torch.Generator().manual_seed(0))
    changed = {k: (out[k] != batch[k]).any(1) for k in out}  # (N, [T,] S, S): pixels erased
    for i in range(20):
        assert changed["apex"][i].any(), "with probability 1 every sample loses a box"
        assert torch.equal(changed["apex"][i], changed["flow"][i])
        assert all(torch.equal(changed["apex"][i], changed["frames"][i, t]) for t in range(3))
    area = changed["apex"].float().mean((1, 2))
    assert area.min() >= 0.01 and area.max() <= 0.45  # 2% to a third of the image, rounded to pixels


def test_repeated_augmentation_doubles_the_batch_and_its_labels():
    batch, labels = batch_of(n=4), torch.tensor([0, 1, 2, 1])
    out, y = augment.repeat(batch, labels, 2)
    assert y.tolist() == [0, 0, 1, 1, 2, 2, 1, 1]
    assert all(v.shape[0] == 8 and torch.equal(v[::2], batch[k]) for k, v in out.items())


def test_a_fold_trains_with_every_augmentation_and_repeat_doubles_the_rows_a_step_sees():
    """The trainer applies them to its batches (engine/train.py): a step with repeat 2 runs on twice the rows."""
    from hsta_bench.engine.train import FoldData, FoldTrainer, Inputs, train_config
    from hsta_bench.models import create_model

    rng = np.random.default_rng(0)
    inputs = Inputs(
        {
            "flow": rng.integers(0, 256, (24, 28, 28, 3), dtype=np.uint8),
            "apex": rng.integers(0, 256, (24, 32, 32, 3), dtype=np.uint8),
        }
    )
    labels = np.arange(24) % 3
    data = FoldData(inputs, np.arange(16), labels[:16], np.zeros(0, int), np.zeros(0, int), np.arange(16, 24))
    cfg = train_config(batch_size=8, epochs=1, augment=True, randaugment=RELEASE, erase=0.2, repeat=2).check("t")
    seen = []
    build = lambda: create_model("hsta_flow", 3, img_size=32, width=16, heads=[2, 2], layers=1)  # noqa: E731
    trainer = FoldTrainer(build, data, cfg, 3, seed=0)
    trainer.model.register_forward_hook(lambda m, args, out: seen.append(out.shape[0]))
    trainer.train_epoch()
    assert seen == [16, 16]
    assert np.isfinite(trainer.predict(data.test)).all()
