"""MTCNN face detection with five landmarks, offline: facenet-pytorch's weights, our own three-stage cascade.

Why not facenet-pytorch's own code: its package imports torchvision (whose C ops do not load against this
torch) and its metadata pins torch<2.3 and numpy<2, so the Makefile installs it with --no-deps and only its
three weight files (data/pnet.pt, rnet.pt, onet.pt) are read here, located without importing the package.
Nothing is downloaded, ever.

The cascade below computes what facenet-pytorch 2.6.0's `MTCNN(select_largest=True).detect(img,
landmarks=True)` computes, so that boxes and landmarks match it to float noise: the same pyramid (faces
from 20 px, factor 0.709), "area" resampling, input scaling, thresholds 0.6/0.7/0.7, box arithmetic
(including its mix of `+1` and plain widths), and the NMS of torchvision on the CPU (IoU 0.5 per scale,
then 0.7) and its own "Min" NMS at the end, with the same sorts, so that tied scores resolve alike,
and even the same memory layouts (which pick the kernels, so the rounding). Checked against
facenet-pytorch itself outside this repository (it needs torchvision; a pure-torch stand-in of the two
functions it uses): identical boxes, probabilities and landmarks, bit for bit, on the MEGC2019
composite's 442 apex crops (224 px RGB and BGR, 28 px BGR) and on larger images of up to ~12,000 proposals.
One deliberate difference: a candidate box lying wholly outside the image is dropped, where
facenet-pytorch would misalign its crops and fail.

torch is imported inside the functions: looking for the weights (every `prepare` does) costs no torch import.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from hsta_bench.errors import UserError

PACKAGE = "facenet-pytorch==2.6.0"
WEIGHTS = ("pnet.pt", "rnet.pt", "onet.pt")
MIN_FACE = 20  # px
FACTOR = 0.709  # between pyramid levels
THRESHOLDS = (0.6, 0.7, 0.7)  # face probability kept by PNet, RNet, ONet
BATCH = 512  # crops per RNet/ONet call, as facenet-pytorch batches them (batch size can change conv rounding)


@dataclass(frozen=True)
class Detection:
    """Faces in one image, largest first (select_largest) or most probable first."""

    boxes: np.ndarray  # (n, 4) float32 x0, y0, x1, y1 in pixels; may reach past the image's edges
    probs: np.ndarray  # (n,) float32 face probability from the last stage
    landmarks: np.ndarray  # (n, 5, 2) float32 x, y: left eye, right eye, nose, left and right mouth corners


def find_weights() -> Path | None:
    """The folder holding facenet-pytorch's three weight files, or None; the package is not imported."""
    spec = importlib.util.find_spec("facenet_pytorch")  # a top-level name: found on sys.path, not executed
    for location in (spec.submodule_search_locations or []) if spec else []:
        folder = Path(location) / "data"
        if all((folder / name).is_file() for name in WEIGHTS):
            return folder
    return None


def require_weights(what: str = "MTCNN face detector") -> Path:
    folder = find_weights()
    if folder is None:
        raise UserError(
            f"{what}: facenet-pytorch's MTCNN weights are not installed; install them with "
            f"`pip install --no-deps {PACKAGE}` (`make setup` does)"
        )
    return folder


@functools.cache
def networks(device: str = "cpu"):
    """(pnet, rnet, onet), loaded once per process and device; layer names are those of the weight files."""

    def net(weights: str, *layers: tuple[str, nn.Module]) -> nn.Module:
        module = nn.Module()
        for name, layer in layers:
            module.add_module(name, layer)
        try:
            module.load_state_dict(torch.load(folder / weights, map_location="cpu", weights_only=True))
        except Exception as exc:  # a damaged or foreign file: one line, not a traceback
            raise UserError(
                f"{folder / weights}: cannot be loaded as MTCNN weights ({type(exc).__name__}); "
                f"reinstall them with `pip install --no-deps --force-reinstall {PACKAGE}`"
            ) from None
        return module.to(device).eval().requires_grad_(False)

    def conv(n: int, cin: int, cout: int, k: int):  # each convolution and hidden dense layer has its PReLU
        return (f"conv{n}", nn.Conv2d(cin, cout, k)), (f"prelu{n}", nn.PReLU(cout))

    def dense(n: int, fin: int, fout: int):
        return (f"dense{n}", nn.Linear(fin, fout)), (f"prelu{n}", nn.PReLU(fout))

    folder = require_weights()
    pnet = net(
        "pnet.pt",
        *conv(1, 3, 10, 3),
        *conv(2, 10, 16, 3),
        *conv(3, 16, 32, 3),
        ("conv4_1", nn.Conv2d(32, 2, 1)),
        ("conv4_2", nn.Conv2d(32, 4, 1)),
    )
    rnet = net(
        "rnet.pt",
        *conv(1, 3, 28, 3),
        *conv(2, 28, 48, 3),
        *conv(3, 48, 64, 2),
        *dense(4, 576, 128),
        ("dense5_1", nn.Linear(128, 2)),
        ("dense5_2", nn.Linear(128, 4)),
    )
    onet = net(
        "onet.pt",
        *conv(1, 3, 32, 3),
        *conv(2, 32, 64, 3),
        *conv(3, 64, 64, 3),
        *conv(4, 64, 128, 2),
        *dense(5, 1152, 256),
        ("dense6_1", nn.Linear(256, 2)),
        ("dense6_2", nn.Linear(256, 4)),
        ("dense6_3", nn.Linear(256, 10)),
    )
    return pnet, rnet, onet


def _pnet(net, x):
    """Per 12 px window, every 2 px: box offsets (4 maps) and the face probability (2 maps)."""
    x = F.max_pool2d(net.prelu1(net.conv1(x)), 2, 2, ceil_mode=True)
    x = net.prelu3(net.conv3(net.prelu2(net.conv2(x))))
    return net.conv4_2(x), F.softmax(net.conv4_1(x), dim=1)


def _flat(x):
    # the weights were trained on (N, W, H, C) flattened, not torch's (N, C, H, W)
    return x.permute(0, 3, 2, 1).flatten(1)


def _rnet(net, x):
    """24 px crops: box offsets and face probability."""
    x = F.max_pool2d(net.prelu1(net.conv1(x)), 3, 2, ceil_mode=True)
    x = F.max_pool2d(net.prelu2(net.conv2(x)), 3, 2, ceil_mode=True)
    x = net.prelu4(net.dense4(_flat(net.prelu3(net.conv3(x)))))
    return net.dense5_2(x), F.softmax(net.dense5_1(x), dim=1)


def _onet(net, x):
    """48 px crops: box offsets, landmarks (5 x then 5 y, as fractions of the crop) and face probability."""
    x = F.max_pool2d(net.prelu1(net.conv1(x)), 3, 2, ceil_mode=True)
    x = F.max_pool2d(net.prelu2(net.conv2(x)), 3, 2, ceil_mode=True)
    x = F.max_pool2d(net.prelu3(net.conv3(x)), 2, 2, ceil_mode=True)
    x = net.prelu5(net.dense5(_flat(net.prelu4(net.conv4(x)))))
    return net.dense6_2(x), net.dense6_3(x), F.softmax(net.dense6_1(x), dim=1)


def _resample(image, size: tuple[int, int]):
    return F.interpolate(image, size=size, mode="area")


def _normalise(x):
    return (x - 127.5) * 0.0078125


def _scales(height: int, width: int) -> list[float]:
    """Pyramid scales: from MIN_FACE px faces (mapped onto PNet's 12 px window) to faces the size of the short side."""
    scale, side, out = 12.0 / MIN_FACE, min(height, width) * (12.0 / MIN_FACE), []
    while side >= 12:
        out.append(scale)
        scale, side = scale * FACTOR, side * FACTOR
    return out


def _nms(boxes, scores, threshold: float) -> np.ndarray:
    """torchvision's CPU batched_nms for one image: greedy by score, IoU of plain widths, drops IoU > threshold."""
    n = len(scores)
    if n == 0:
        return np.zeros(0, np.int64)
    b = boxes.cpu().numpy()
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    order = torch.sort(scores.cpu(), 0, descending=True)[1].numpy()  # the same (unstable) sort: ties alike
    alive = np.ones(n, bool)
    kept = []
    for pos, i in enumerate(order):
        if not alive[i]:
            continue
        kept.append(i)
        rest = order[pos + 1 :]
        w = np.maximum(np.float32(0), np.minimum(b[i, 2], b[rest, 2]) - np.maximum(b[i, 0], b[rest, 0]))
        h = np.maximum(np.float32(0), np.minimum(b[i, 3], b[rest, 3]) - np.maximum(b[i, 1], b[rest, 1]))
        inter = w * h
        alive[rest[inter / (area[i] + area[rest] - inter) > threshold]] = False
    keep = np.array(kept, np.int64)
    if 4 * n > 4000:  # above this size torchvision runs NMS per image and re-sorts what it kept
        keep = np.sort(keep)
        keep = keep[torch.sort(scores.cpu()[keep], descending=True)[1].numpy()]
    return keep


def _nms_min(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """facenet-pytorch's last NMS: `+1` widths, overlap over the smaller box, drops overlap > threshold."""
    x0, y0, x1, y1 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    area = (x1 - x0 + 1) * (y1 - y0 + 1)
    order = np.argsort(scores)  # ascending, numpy's default sort as there: the best is last
    keep = []
    while order.size:
        i, rest = order[-1], order[:-1]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(x1[i], x1[rest]) - np.maximum(x0[i], x0[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y1[i], y1[rest]) - np.maximum(y0[i], y0[rest]) + 1)
        order = rest[w * h / np.minimum(area[i], area[rest]) <= threshold]
    return np.array(keep, np.int64)


def _square(boxes):
    """Each box grown to a square on its longer side, about the same centre (in place, as used there)."""
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = torch.max(w, h)
    boxes[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    boxes[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    boxes[:, 2] = boxes[:, 0] + side
    boxes[:, 3] = boxes[:, 1] + side
    return boxes


def _regress(boxes, offsets):
    """Boxes moved by the offsets of RNet/ONet, which are fractions of `+1` widths."""
    w, h = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1
    for c, size in ((0, w), (1, h), (2, w), (3, h)):
        boxes[:, c] = boxes[:, c] + offsets[:, c] * size
    return boxes


def _crops(image, boxes, size: int):
    """The image inside each box (clipped to the image, not padded), resampled to size x size and scaled.

    Returns the crops (None when no box has pixels inside the image) and the boxes that have some."""
    height, width = image.shape[2:4]
    corners = boxes[:, :4].trunc().int().cpu().numpy()  # 1-based, inclusive ends, as in the original MTCNN
    x0, y0 = np.maximum(corners[:, 0], 1), np.maximum(corners[:, 1], 1)
    x1, y1 = np.minimum(corners[:, 2], width), np.minimum(corners[:, 3], height)
    inside = (y1 > y0 - 1) & (x1 > x0 - 1)
    if not inside.any():
        return None, boxes[:0]
    # image[0] then unsqueeze, as there: its strides make these crops (and the nets after) NCHW, not channels-last
    crops = [
        _resample(image[0, :, y0[k] - 1 : y1[k], x0[k] - 1 : x1[k]].unsqueeze(0), (size, size))
        for k in np.flatnonzero(inside)
    ]
    return _normalise(torch.cat(crops, dim=0)), boxes[torch.from_numpy(inside).to(boxes.device)]


def _batched(net, forward, crops):
    outs = [forward(net, crops[i : i + BATCH]) for i in range(0, len(crops), BATCH)]
    return tuple(torch.cat(parts, dim=0) for parts in zip(*outs))


def _propose(pnet, image):
    """Stage 1: PNet over the pyramid -> candidate boxes (x0, y0, x1, y1, score), squared."""
    height, width = image.shape[2:4]
    found = []
    for scale in _scales(height, width):
        level = _normalise(_resample(image, (int(height * scale + 1), int(width * scale + 1))))
        offsets, probs = _pnet(pnet, level)
        ys, xs = torch.nonzero(probs[0, 1] >= THRESHOLDS[0], as_tuple=True)
        cell = torch.stack([xs, ys], dim=1).to(offsets.dtype)  # top-left of a window on the level, stride 2
        boxes = torch.cat(
            [
                ((2 * cell + 1) / scale).floor(),
                ((2 * cell + 12) / scale).floor(),
                probs[0, 1, ys, xs].unsqueeze(1),
                offsets[0][:, ys, xs].T,
            ],
            dim=1,
        )
        found.append(boxes[torch.from_numpy(_nms(boxes[:, :4], boxes[:, 4], 0.5)).to(boxes.device)])
    boxes = torch.cat(found, dim=0) if found else image.new_zeros((0, 9))
    boxes = boxes[torch.from_numpy(_nms(boxes[:, :4], boxes[:, 4], 0.7)).to(boxes.device)]
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]  # PNet's offsets are fractions of plain widths
    moved = [
        boxes[:, 0] + boxes[:, 5] * w,
        boxes[:, 1] + boxes[:, 6] * h,
        boxes[:, 2] + boxes[:, 7] * w,
        boxes[:, 3] + boxes[:, 8] * h,
        boxes[:, 4],
    ]
    return _square(torch.stack(moved, dim=1))


def _refine(rnet, image, boxes):
    """Stage 2: RNet on 24 px crops -> the boxes it keeps, moved and squared."""
    crops, boxes = _crops(image, boxes, 24)
    if crops is None:
        return boxes
    offsets, probs = _batched(rnet, _rnet, crops)
    keep = probs[:, 1] > THRESHOLDS[1]
    boxes = torch.cat([boxes[keep, :4], probs[keep, 1:2]], dim=1)
    pick = torch.from_numpy(_nms(boxes[:, :4], boxes[:, 4], 0.7)).to(boxes.device)
    return _square(_regress(boxes[pick], offsets[keep][pick]))


def _output(onet, image, boxes):
    """Stage 3: ONet on 48 px crops -> final boxes with scores (n, 5) and landmarks (n, 5, 2), as numpy."""
    crops, boxes = _crops(image, boxes, 48)
    if crops is None:
        return boxes.cpu().numpy(), np.zeros((0, 5, 2), np.float32)
    offsets, marks, probs = _batched(onet, _onet, crops)
    keep = probs[:, 1] > THRESHOLDS[2]
    boxes, marks = torch.cat([boxes[keep, :4], probs[keep, 1:2]], dim=1), marks[keep]
    w, h = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1  # landmarks: on the box before its move
    xs = w[:, None] * marks[:, :5] + boxes[:, 0:1] - 1
    ys = h[:, None] * marks[:, 5:] + boxes[:, 1:2] - 1
    points = torch.stack([xs, ys], dim=2)
    boxes = _regress(boxes, offsets[keep]).cpu().numpy()
    pick = _nms_min(boxes[:, :4], boxes[:, 4], 0.7)
    return boxes[pick], points.cpu().numpy()[pick]


def detect(image: np.ndarray, select_largest: bool = True, *, device: str = "cpu") -> Detection | None:
    """Faces in an H x W x 3 uint8 image (channels passed as given: facenet-pytorch assumes RGB), or None.

    select_largest orders them by box area, largest first, else by probability, as facenet-pytorch does."""
    if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8):
        got = f"{getattr(image, 'shape', None)} {getattr(image, 'dtype', type(image).__name__)}"
        raise ValueError(f"mtcnn.detect: expected an H x W x 3 uint8 image, got {got}")

    pnet, rnet, onet = networks(str(device))
    with torch.inference_mode():
        # permuted, then made float: channels-last in memory, as there, so the same kernels run
        tensor = torch.as_tensor(image.copy(), device=device).unsqueeze(0).permute(0, 3, 1, 2).float()
        boxes = _propose(pnet, tensor)
        boxes = _refine(rnet, tensor, boxes) if len(boxes) else boxes
        if not len(boxes):
            return None
        boxes, points = _output(onet, tensor, boxes)
    if not len(boxes):
        return None
    if select_largest:
        order = np.argsort((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))[::-1]
        boxes, points = boxes[order], points[order]
    return Detection(
        np.ascontiguousarray(boxes[:, :4]), np.ascontiguousarray(boxes[:, 4]), np.ascontiguousarray(points)
    )
