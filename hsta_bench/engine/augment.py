"""Training augmentations beyond flips: RandAugment, random erasing and repeated augmentation.

HSTA's release defines these (hsta_model_core/K_folds_finetuning.py: `--aa rand-m7-n4-mstd0.5-inc1`,
`--reprob 0.2 --remode pixel --recount 1`, `--num_sample 2`, through timm's RandAugment and RandomErasing)
but never runs them: they apply only under `--enable_Augmentation`, which defaults to False and which its
training scripts do not pass, so its clips are only resized and normalised (casme3.py). Here they are
options of a recipe, off unless set (configs/train.yaml: randaugment, erase, repeat), so a run or a tune
can ask whether they help.

The ops are written in unit space (RGB order, 0..1; models/inputs.to_unit and from_unit convert from and
to the encoding the model reads). Everything works on a batch of tensors where the fold trains, drawing its random
choices from the fold's
own generator (so a fold is reproducible, and folds stepped in turn stay independent). One sample gets one
choice for all its inputs and frames, as the release transforms a sample's frames as one clip: the same
ops and magnitudes, the same erased box (in relative coordinates, so a 28 px flow image and a 32 px apex
lose the same part of the face).

Where this differs from timm's on PIL images (and why):
- colour ops (autocontrast, equalize, invert, posterize, solarize, colour, contrast, brightness,
  sharpness) skip flow kinds: a flow image's bytes are motion, not light. Geometric ops (rotate, shear,
  translate) move a flow image's pixels but do not turn its vectors, as the release would do to its flow
  images (it treats them as pictures);
- interpolation is bilinear, the fill grey (timm: 128 of 255), equalize maps each channel's cumulative
  histogram linearly (PIL's rounding differs by a level at most);
- erasing fills with normal noise in the normalised space of an RGB input (as timm's `pixel` mode on a
  normalised tensor) and with uniform 0..1 noise on a flow image's byte scale.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from hsta_bench.errors import UserError
from hsta_bench.models.inputs import FLOW_KINDS, from_unit, to_unit

# RandAugment's op set with `inc1`, the release's: timm's "increasing" transforms, whose every magnitude
# strengthens the op (timm's other set, where some ops weaken as the magnitude grows, is not written)
OPS = (
    "autocontrast",
    "equalize",
    "invert",
    "rotate",
    "posterize",
    "solarize",
    "solarize_add",
    "color",
    "contrast",
    "brightness",
    "sharpness",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
)
GEOMETRIC = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")  # they move pixels; the rest recolour
COLOUR = set(OPS) - set(GEOMETRIC)
MAX_MAGNITUDE = 10.0
OP_PROB = 0.5  # each chosen op applies with this probability (timm's default for RandAugment)


@dataclass(frozen=True)
class RandAugmentSpec:
    ops: int  # n: ops drawn (with replacement) per sample
    magnitude: float  # m, of 10
    std: float  # mstd: each op's magnitude is m plus normal noise of this std, clipped to 0..10


def parse_randaugment(spec: str, where: str = "train.randaugment") -> RandAugmentSpec | None:
    """timm's spec string (`rand-m7-n4-mstd0.5-inc1`: magnitude 7, 4 ops, magnitude noise 0.5, increasing
    ops); `none` (or empty) is off. One line naming the setting when it does not parse."""
    text = str(spec or "none").strip().lower()
    if text in ("none", "off", "false", ""):
        return None
    parts = text.split("-")
    values = {"m": 9.0, "n": 2, "mstd": 0.0, "inc": 0}
    if parts[0] != "rand":
        raise UserError(f"{where}={spec!r}: expected timm's RandAugment spec, e.g. rand-m7-n4-mstd0.5-inc1, or none")
    for part in parts[1:]:
        match = re.fullmatch(r"(mstd|inc|m|n)(\d+(?:\.\d+)?)", part)
        if not match:
            raise UserError(f"{where}={spec!r}: '{part}' is not one of m<magnitude>, n<ops>, mstd<std>, inc<0|1>")
        key, value = match.groups()
        values[key] = float(value)
    if not (0 <= values["m"] <= MAX_MAGNITUDE) or values["n"] < 1 or values["n"] != int(values["n"]):
        raise UserError(f"{where}={spec!r}: the magnitude is 0..10 and the number of ops a whole number >= 1")
    if values["inc"] != 1:
        raise UserError(f"{where}={spec!r}: only the increasing op set is written (inc1, the release's spec)")
    return RandAugmentSpec(int(values["n"]), values["m"], values["mstd"])


def check(randaugment: str, erase: float, repeat: int, where: str) -> None:
    parse_randaugment(randaugment, f"{where}.randaugment")
    if not 0.0 <= float(erase) <= 1.0:
        raise UserError(f"{where}.erase={erase}: a probability, 0..1")
    if int(repeat) != repeat or repeat < 1:
        raise UserError(f"{where}.repeat={repeat}: a whole number >= 1 (copies of each sample in a batch)")


def active(cfg) -> bool:
    """Whether a TrainConfig asks for any augmentation of this module."""
    return parse_randaugment(cfg.randaugment) is not None or cfg.erase > 0 or cfg.repeat > 1


# --- clips as images ------------------------------------------------------------------------------------------


def _images(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(N, 3, S, S) as is; a clip (N, 3, T, S, S) as N*T images, sample-major; and T."""
    if x.ndim == 5:
        n, c, t, h, w = x.shape
        return x.permute(0, 2, 1, 3, 4).reshape(n * t, c, h, w), t
    return x, 1


def _clips(images: torch.Tensor, t: int, like: torch.Tensor) -> torch.Tensor:
    if like.ndim == 5:
        n, c, _, h, w = like.shape
        return images.view(n, t, c, h, w).permute(0, 2, 1, 3, 4)
    return images


# --- the ops, on unit-space images (M, 3, H, W) with one magnitude per image ---------------------------------


def _blend(a: torch.Tensor, b: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """PIL's ImageEnhance: b + factor * (a - b), factor per image."""
    return (b + factor.view(-1, 1, 1, 1) * (a - b)).clamp(0, 1)


def _grey(x: torch.Tensor) -> torch.Tensor:
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).expand_as(x)


def _equalize(x: torch.Tensor) -> torch.Tensor:
    m, c, h, w = x.shape
    levels = (x * 255).round().long().clamp(0, 255).view(m * c, h * w)
    hist = torch.zeros(m * c, 256, device=x.device).scatter_add_(1, levels, torch.ones_like(levels, dtype=torch.float))
    cdf = hist.cumsum(1)
    first = torch.where(hist > 0, cdf, torch.full_like(cdf, float(h * w))).min(1, keepdim=True).values
    span = h * w - first  # 0 for a single-level channel, which equalizing leaves as it is (as PIL does)
    lut = ((cdf - first) / span.clamp(min=1)).clamp(0, 1)
    flat = torch.where(span > 0, lut.gather(1, levels), levels.float() / 255)
    return flat.view(m, c, h, w)


def _sharpen_base(x: torch.Tensor) -> torch.Tensor:
    """PIL's SMOOTH filter (1 1 1 / 1 5 1 / 1 1 1, over 13), the border left as it is."""
    kernel = torch.ones(3, 3, device=x.device, dtype=x.dtype)
    kernel[1, 1] = 5
    kernel = (kernel / 13).expand(x.shape[1], 1, 3, 3)
    out = x.clone()
    out[:, :, 1:-1, 1:-1] = F.conv2d(x, kernel, groups=x.shape[1])
    return out


def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x - 0.5, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + 0.5


def _geometric(op: str, level: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """The 2x3 matrix (normalised coordinates, output -> input) of a geometric op per image."""
    m = level.shape[0]
    theta = torch.zeros(m, 2, 3, device=level.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    if op == "rotate":
        angle = sign * level * math.radians(30.0)
        theta[:, 0, 0], theta[:, 0, 1] = torch.cos(angle), -torch.sin(angle)
        theta[:, 1, 0], theta[:, 1, 1] = torch.sin(angle), torch.cos(angle)
    elif op == "shear_x":
        theta[:, 0, 1] = sign * level * 0.3
    elif op == "shear_y":
        theta[:, 1, 0] = sign * level * 0.3
    elif op == "translate_x":
        theta[:, 0, 2] = sign * level * 0.45 * 2  # normalised coordinates span 2
    elif op == "translate_y":
        theta[:, 1, 2] = sign * level * 0.45 * 2
    return theta


def apply_op(op: str, x: torch.Tensor, level: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """One op on unit-space images (M, 3, H, W); `level` is magnitude / 10 per image, `sign` +-1 per image
    (the direction of signed ops)."""
    if op in GEOMETRIC:
        return _affine(x, _geometric(op, level, sign).to(x.dtype))
    if op == "autocontrast":
        low = x.amin(dim=(2, 3), keepdim=True)
        high = x.amax(dim=(2, 3), keepdim=True)
        return torch.where(high > low, (x - low) / (high - low).clamp(min=1e-6), x)
    if op == "equalize":
        return _equalize(x)
    if op == "invert":
        return 1 - x
    view = level.view(-1, 1, 1, 1)
    if op == "posterize":  # bits kept: 4 at magnitude 0, down to none at 10
        bits = 4 - (view * 4).floor()
        step = 2.0 ** (8 - bits)
        return (torch.floor(x * 255 / step) * step / 255).clamp(0, 1)
    if op == "solarize":  # pixels at or above the threshold are inverted
        threshold = (256 - view * 256) / 255
        return torch.where(x >= threshold, 1 - x, x)
    if op == "solarize_add":
        return torch.where(x < 128 / 255, (x + (view * 110).floor() / 255).clamp(0, 1), x)
    factor = 1 + sign * level * 0.9  # the enhancers' factor: 1 (unchanged) +- 0.9 at magnitude 10
    if op == "color":
        return _blend(x, _grey(x), factor)
    if op == "contrast":
        mean = _grey(x)[:, :1].mean(dim=(1, 2, 3), keepdim=True).expand_as(x)
        return _blend(x, mean, factor)
    if op == "brightness":
        return _blend(x, torch.zeros_like(x), factor)
    if op == "sharpness":
        return _blend(x, _sharpen_base(x), factor)
    raise ValueError(f"unknown op {op}")


# --- a batch -----------------------------------------------------------------------------------------------


def randaugment(
    batch: dict[str, torch.Tensor],
    spec: RandAugmentSpec,
    generator: torch.Generator,
    encoding: dict[str, str] | None = None,
) -> dict[str, torch.Tensor]:
    """RandAugment on a model-ready batch (kind -> (N, 3, ...) in the model's encoding): `spec.ops` draws per
    sample, each applied with probability 0.5, the same for every input and frame of the sample."""
    n = len(next(iter(batch.values())))
    device = next(iter(batch.values())).device
    ops = torch.randint(len(OPS), (spec.ops, n), generator=generator)
    applies = torch.rand(spec.ops, n, generator=generator) < OP_PROB
    magnitude = (
        spec.magnitude + spec.std * torch.randn(spec.ops, n, generator=generator)
        if spec.std > 0
        else torch.full((spec.ops, n), spec.magnitude)
    )
    level = (magnitude.clamp(0, MAX_MAGNITUDE) / MAX_MAGNITUDE).to(device)
    sign = torch.where(torch.rand(spec.ops, n, generator=generator) < 0.5, -1.0, 1.0).to(device)
    out = {}
    for kind, x in batch.items():
        enc = (encoding or {}).get(kind, "default")
        images, t = _images(to_unit(kind, x, enc))
        images = images.clone()
        for slot in range(spec.ops):
            for index, op in enumerate(OPS):
                if op in COLOUR and kind in FLOW_KINDS:
                    continue
                chosen = torch.nonzero((ops[slot] == index) & applies[slot]).flatten()
                if len(chosen) == 0:
                    continue
                rows = (chosen.view(-1, 1) * t + torch.arange(t)).flatten().to(device)  # every frame of a sample
                images[rows] = apply_op(
                    op,
                    images[rows],
                    level[slot, chosen.to(device)].repeat_interleave(t),
                    sign[slot, chosen.to(device)].repeat_interleave(t),
                )
        out[kind] = from_unit(kind, _clips(images, t, x), enc)
    return out


def erase(
    batch: dict[str, torch.Tensor], prob: float, generator: torch.Generator, encoding: dict[str, str] | None = None
) -> dict[str, torch.Tensor]:
    """Random erasing (timm's `pixel` mode, one box): with probability `prob` a sample loses one box of 2% to a
    third of its area, aspect 0.3..3.3, the same relative box in every input and frame, filled with noise."""
    n = len(next(iter(batch.values())))
    boxes = []  # (sample, top, left, height, width) as fractions
    for i in range(n):
        if torch.rand(1, generator=generator).item() >= prob:
            continue
        for _ in range(10):  # as timm: a few tries for a box that fits
            area = 0.02 + (1 / 3 - 0.02) * torch.rand(1, generator=generator).item()
            ratio = math.exp(
                math.log(0.3) + (math.log(1 / 0.3) - math.log(0.3)) * torch.rand(1, generator=generator).item()
            )
            h, w = math.sqrt(area * ratio), math.sqrt(area / ratio)
            if h < 1 and w < 1:
                top = (1 - h) * torch.rand(1, generator=generator).item()
                left = (1 - w) * torch.rand(1, generator=generator).item()
                boxes.append((i, top, left, h, w))
                break
    if not boxes:
        return batch
    out = {}
    for kind, x in batch.items():
        x = x.clone()
        size_h, size_w = x.shape[-2], x.shape[-1]
        enc = (encoding or {}).get(kind, "default")
        for i, top, left, h, w in boxes:
            r0, c0 = int(round(top * size_h)), int(round(left * size_w))
            r1, c1 = max(r0 + 1, int(round((top + h) * size_h))), max(c0 + 1, int(round((left + w) * size_w)))
            region = x[i, ..., r0:r1, c0:c1]
            if kind in FLOW_KINDS:
                noise = torch.rand(region.shape, generator=generator)
                noise = noise * 255.0 if enc == "bgr255" else noise
            else:
                noise = torch.randn(region.shape, generator=generator)
                if enc == "bgr255":
                    noise = noise.clamp(-2, 2) * 64 + 128  # normal noise on the byte scale the model reads
            x[i, ..., r0:r1, c0:c1] = noise.to(x.device, x.dtype)
        out[kind] = x
    return out


def repeat(batch: dict[str, torch.Tensor], labels: torch.Tensor, copies: int):
    """Repeated augmentation: each sample `copies` times in the batch (each copy augmented on its own)."""
    if copies <= 1:
        return batch, labels
    return {k: v.repeat_interleave(copies, 0) for k, v in batch.items()}, labels.repeat_interleave(copies, 0)
