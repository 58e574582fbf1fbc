"""`causalnet` as released (tony19980810/CausalNet) and its input, the `causal` kind of the causalnet-composite.

The expectations are written here from the release's source (Models.py, main_train.py; line numbers in the
comments), not from our code: the parameter count from its layer shapes, the arranged images from a transcription
of its indexing, and (where a checkout of the release and einops are at hand) its own model's logits."""

from __future__ import annotations

import importlib.util
import sys

import cv2
import numpy as np
import pytest
import torch

from helpers import REPO, assert_one_line_error, run_main
from hsta_bench import config
from hsta_bench.engine.device import torch_threads
from hsta_bench.models import count_parameters, create_model
from hsta_bench.models.inputs import encoding_of, to_tensor
from hsta_bench.preprocess import causal

SHARED_CAUSAL = (REPO / ".." / "shared" / "data" / "causalnet-composite").resolve()
RELEASE = (REPO / ".." / "CausalNet").resolve()  # a checkout of tony19980810/CausalNet beside the repository


def _released_parameter_count(
    image=28, patch=7, dim=256, heads=3, hierarchies=3, repeats=(3, 3, 9), classes=3, mlp=4, channels=3
) -> int:
    """Models.py's CausalNet with main_train.py's arguments (main_train.py:257-267), counted from its layer shapes."""
    seq_len = (image // patch // 2 ** (hierarchies - 1)) ** 2  # Models.py:478-481
    widths = [dim * 2**i for i in range(hierarchies)]  # Models.py:482-486
    backbone = channels * patch * patch * widths[0] + widths[0]  # 1x1 conv of the patches (Models.py:491-494)
    for level, (d, repeat) in enumerate(zip(widths, repeats)):
        inner = (d // (heads * 2**level)) * (heads * 2**level)  # Models.py:63-64: dim_head = dim // heads
        block = (
            2 * d  # PreNorm's LayerNorm g, b (Models.py:19-20, 30)
            + d * 3 * inner  # to_qkv, a 1x1 conv without bias (Models.py:70)
            + inner * d
            + d  # to_out (Models.py:72-73)
            + 2 * d  # PreNorm's LayerNorm
            + d * mlp * d
            + mlp * d  # FeedForward's first 1x1 conv (Models.py:51)
            + mlp * d * d
            + d  # and its second (Models.py:54)
        )
        backbone += seq_len + repeat * block  # pos_emb (Models.py:103)
        if level < hierarchies - 1:  # Aggregate: 3x3 conv, LayerNorm (Models.py:92-97); the last level: Identity
            backbone += d * widths[level + 1] * 9 + widths[level + 1] + 2 * widths[level + 1]
    total = 2 * backbone  # to_patch_embedding + layers, to_patch_embedding1 + layers1 (Models.py:491-517)
    cross = 256  # the width written into Models.py:523, 526
    linear = cross * cross + cross  # one nn.Linear(256, 256)
    attention = linear + (cross * 2 * cross + 2 * cross) + linear  # to_q, to_kv, to_out (Models.py:159-164)
    ffn = (cross * mlp * cross + mlp * cross) + (mlp * cross * cross + cross)  # Models.py:205-211, 410-416
    norm = 2 * cross  # nn.LayerNorm(256) (Models.py:203, 408)
    total += repeats[-1] * (norm + attention + ffn)  # CrossTransformer, depth = the loop's last (Models.py:506, 523)
    stca = 2 * attention  # spatial and temporal projections (Models.py:268-281)
    crm = 4 * linear  # to_q, to_k, to_v, to_out (Models.py:365-371)
    total += norm + stca + ffn + crm  # the CAB, one layer (Models.py:407-418, 525-532)
    return total + (1536 * 2 * 2048 + 2048) + (2048 * classes + classes)  # mlp_head (Models.py:535-539)


def test_causalnet_has_the_released_parameter_count_and_names():
    expected = _released_parameter_count()
    assert expected == 276_590_089
    with torch.device("meta"):  # the count needs shapes only
        model = create_model("causalnet", 3)
    assert count_parameters(model) == expected
    assert model.inputs == {"causal": (3, 4, 28, 28)}
    assert encoding_of(model) == {"causal": "bgr255"}  # main_train.py:112, 280: cv2.imread's bytes as floats
    names = set(model.state_dict())
    for name in (  # the release's state-dict names (Models.py:491-539), buffers included
        "to_patch_embedding.1.weight",
        "to_patch_embedding1.1.bias",
        "layers.0.0.pos_emb",
        "layers.2.0.layers.8.0.fn.to_qkv.weight",
        "layers1.1.1.1.g",
        "CrossAttention.layers.8.1.P_matrix",
        "cab.layers.0.1.temp_to_kv.weight",
        "cab.layers.0.3.to_out.0.bias",
        "mlp_head.1.weight",
    ):
        assert name in names, name
    assert len(names) == 514  # every parameter and buffer of the release's state dict


# the same code at a reduced width: every kind of layer, the narrower-than-width attention heads (32 // 3 = 10 per
# head) and the 2x2 map after the backbones (128 // 4 = 32 wide, 8 cross heads of 4), in 1.3 M parameters
REDUCED = {"dim": 32, "heads": 3, "depths": (2, 2, 2), "cross_depth": 2, "head_hidden": 64}


def test_reduced_causalnet_passes_what_every_model_must(monkeypatch):
    """tests/test_models.py's checks of every model (forward and backward reaching every parameter, bf16 autocast,
    the attention kernels agreeing), run by those tests' own code on causalnet at a reduced width: at its released
    size they skip it (REDUCED_ELSEWHERE there), one CPU forward of 277 M parameters taking seconds."""
    import test_models

    def reduced(name: str, num_classes: int = 3, **extra):
        torch.manual_seed(0)
        return create_model(name, num_classes, **REDUCED, **extra)

    assert "causalnet" in test_models.REDUCED_ELSEWHERE
    monkeypatch.setattr(test_models, "small", reduced)
    test_models.test_forward_backward_every_parameter("causalnet", lambda *_: None)
    test_models.test_bf16_autocast_forward("causalnet")
    test_models.test_attention_backends_agree("causalnet")


def test_neighbour_mask_is_the_releases():
    """Models.py:141-156 with gamma 0.5 (main_train.py:266): the two diagonals masked, P by the key's index."""
    model = create_model("causalnet", 3, **REDUCED)  # the same buffers
    m = model.CrossAttention.layers[0][1].M_mask
    p = model.cab.layers[0][1].P_matrix
    assert m.tolist() == [[1, 1, 1, 0], [1, 1, 0, 1], [1, 0, 1, 1], [0, 1, 1, 1]]
    assert p.tolist() == [[0, 0, 0, -2.0], [0, 0, -1.5, 0], [0, -1.0, 0, 0], [-0.5, 0, 0, 0]]


def _release_tile(image: np.ndarray) -> np.ndarray:
    """main_train.py's arrangement of one image, transcribed: its fixed points (:73-77), clamped to 7..21 and
    truncated (:79-89), five 14x14 crops with the point's first coordinate on rows (:114-123), then eyes and
    lips tiled with cv2 (:184-186)."""
    batch_landmarks = np.array(
        [
            [
                [9.528073, 11.062551],
                [21.396168, 10.919773],
                [15.380184, 17.380562],
                [10.255435, 22.121233],
                [20.583706, 22.25584],
            ]
        ]
    )
    for i in range(5):
        for j in range(2):
            if batch_landmarks[0][i][j] < 7:
                batch_landmarks[0][i][j] = 7
            if batch_landmarks[0][i][j] > 21:
                batch_landmarks[0][i][j] = 21
    c = batch_landmarks.astype(int)[0]
    parts = [image[c[k][0] - 7 : c[k][0] + 7, c[k][1] - 7 : c[k][1] + 7] for k in range(5)]
    return cv2.vconcat([cv2.hconcat([parts[0], parts[1]]), cv2.hconcat([parts[3], parts[4]])])


def test_arrangement_equals_main_trains_on_a_coordinate_coded_image():
    rows, cols = np.mgrid[0:28, 0:28]
    image = np.stack([rows, cols, rows * 28 + cols], axis=-1).astype(np.uint16)  # each pixel says where it is
    image = np.ascontiguousarray((image % 256).astype(np.uint8))
    ours = causal.arrange(image)
    assert ours.shape == (28, 28, 3) and np.array_equal(ours, _release_tile(image))
    # spelled out: the top-left tile is rows 2..15, columns 4..17 (point (9, 11)); the bottom-right rows 13..26,
    # columns 14..27 (point (20, 21), clamped from 22.26)
    assert (ours[0, 0, 0], ours[0, 0, 1], ours[27, 27, 0], ours[27, 27, 1]) == (2, 4, 26, 27)


def _released_batch(paths: list[str]) -> torch.Tensor:
    """main_train.py's input of the samples whose first images are `paths`: four arranged images each (:184-210),
    `torch.Tensor(np.array(...)).permute(0, 1, 4, 2, 3)` (:280-282), as ours is ordered (N, C, 4, H, W)."""
    samples = []
    for first in paths:
        stem = first.rsplit("/", 1)[1].split(" ")[0]
        folder = first.rsplit("/", 1)[0]
        names = [f"{folder}/{stem}{suffix} .png" for suffix in ("", "_1", "_2", "_3")]  # :188, 194, 202
        samples.append([_release_tile(cv2.imread(n)) for n in names])
    return torch.Tensor(np.array(samples)).permute(0, 1, 4, 2, 3).transpose(1, 2)


@pytest.mark.parametrize("real", [False, True], ids=["stand-in", "real"])
def test_prepared_input_is_the_releases_batch(real):
    """The cached `causal` arrays, read as the model reads them (bgr255), equal the release's tensors built
    from the same files with cv2: on the stand-in, and on CausalNet's real images where ../shared has them."""
    from hsta_bench.preprocess import load_prepared

    roots = []
    if real:
        if not (SHARED_CAUSAL / "combined_3_class2_for_optical_flow.csv").is_file():
            pytest.skip(f"CausalNet's composite not found at {SHARED_CAUSAL}")
        roots = [f"causalnet-composite={SHARED_CAUSAL}"]
    prepared = load_prepared("causalnet-composite", config.load(data_roots=roots, sets=["preprocess.workers=1"]))
    assert prepared.manifest.height == (442 if real else 48)
    pick = np.arange(prepared.manifest.height)[:: 7 if real else 5]
    ours = to_tensor("causal", prepared.inputs("causal", pick), "bgr255")
    theirs = _released_batch([prepared.manifest["flow_path"][int(i)] for i in pick])
    assert ours.shape == theirs.shape == (len(pick), 3, 4, 28, 28)
    assert torch.equal(ours, theirs) and ours.max() > 1.5  # raw bytes, as released


def test_a_video_dataset_says_which_dataset_gives_the_input(capsys):
    prepare = run_main(capsys, "datasets", "prepare", "casme2", "--set", "preprocess.inputs=[causal]")
    assert_one_line_error(prepare, "casme2", "'causal'", "causalnet-composite")
    run = run_main(capsys, "run", "--dry-run", "--model", "causalnet", "--dataset", "smic")
    assert_one_line_error(run, "causalnet on smic", "causal: given by causalnet-composite only")


def test_release_logits_on_the_same_weights():
    """scripts/compare_causalnet.py: the release's Models.py and ours on the same state dict, < 1e-5 apart."""
    if not (RELEASE / "Models.py").is_file():
        pytest.skip(f"no checkout of tony19980810/CausalNet at {RELEASE}")
    if importlib.util.find_spec("einops") is None:
        pytest.skip("einops (which the release's Models.py imports) is not installed here")
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from compare_causalnet import compare
    finally:
        sys.path.remove(str(REPO / "scripts"))
    result = compare(RELEASE, batch=2)
    assert result["parameters"] == 276_590_089 and result["logit_scale"] > 0.1
    assert result["naive"] < 1e-5 and result["sdpa"] < 1e-5, result


@pytest.mark.slow
def test_reduced_causalnet_learns_the_standin():
    """Learning tested by learning (as tests/test_learning.py does for the other models, whose table reads the
    video composite, which cannot give this input): CausalNet's code at the reduced width, trained on two subject
    folds of the causalnet-composite stand-in, beats chance on the subjects it never saw (0.75 here; ~5 s)."""
    from test_learning import balanced_accuracy, subject_folds

    from hsta_bench.preprocess import load_prepared

    prepared = load_prepared("causalnet-composite", config.load(sets=["preprocess.workers=1"]))
    data = prepared.manifest
    y = data["label_megc2019_composite"].replace_strict(["negative", "positive", "surprise"], [0, 1, 2]).to_numpy()
    x = to_tensor("causal", prepared.inputs("causal"), "bgr255")
    predictions = np.empty_like(y)
    with torch_threads(1):  # steps of 16 samples gain nothing from two threads; on a busy machine they lose ~5x
        for side in subject_folds(data["subject"].to_numpy()):
            predictions[~side] = _train_and_predict(x, y, side)
    uar = balanced_accuracy(y, predictions)
    assert uar >= 0.55, f"reduced causalnet: UAR {uar:.2f} on unseen subjects (chance 0.33)"


def _train_and_predict(x: torch.Tensor, y: np.ndarray, side: np.ndarray) -> np.ndarray:
    """test_learning.py's loop (AdamW, class-balanced loss, batches of 16): train on `side`, predict the rest."""
    targets = torch.from_numpy(np.array(y))
    torch.manual_seed(0)
    model = create_model("causalnet", 3, **REDUCED)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.01)
    train = np.flatnonzero(side)
    counts = np.bincount(y[train], minlength=3)
    weight = torch.tensor(len(train) / (3 * np.maximum(counts, 1)), dtype=torch.float32)  # class-balanced
    generator = torch.Generator().manual_seed(0)
    for _ in range(15):
        model.train()
        order = train[torch.randperm(len(train), generator=generator).numpy()]
        for start in range(0, len(order), 16):
            rows = order[start : start + 16]
            loss = torch.nn.functional.cross_entropy(model({"causal": x[rows]}), targets[rows], weight=weight)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        return model({"causal": x[~side]}).argmax(-1).numpy()
