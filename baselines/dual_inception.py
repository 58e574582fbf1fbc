"""Dual-Inception (Zhou, Mao, Xue, "Dual-Inception Network for Cross-Database Micro-Expression Recognition",
FG 2019; the MEGC2019 recognition winner's composite entry): two small inception streams, one on the horizontal
and one on the vertical optical flow, each a 28x28 image of its own, joined by a dense layer.

Layer for layer as released (xly135846/MEGC2019, Keras 2.2.4; its files are deleted at HEAD, read at commit
0637394, dual_inception.py:103-185, `create_inception_model`):
- each stream (`inputs_x` on the horizontal flow, `inputs_y` on the vertical; the two have the same layers and
  their own weights): an inception block of four branches with 6 filters each, concatenated to 24 channels,
  (a) 1x1; (b) 1x1 then 3x3; (c) 1x1 then 5x5; (d) 3x3 max-pooling (stride 1, 'same') then 1x1; every
  convolution 'same'-padded with a bias and a ReLU (with stride 1 and odd kernels Keras pads symmetrically,
  as ours does; its 'same' max-pooling ignores the padding, as torch's -inf padding does); then 2x2
  max-pooling (28 -> 14); a second block of the same shape with 16 filters a branch (64 channels), 2x2
  max-pooling (14 -> 7);
- the two streams flattened (7 x 7 x 64 = 3,136 each, in Keras's channels-last order: height, width, channel),
  concatenated (6,272), a dense layer of 1,024 with a ReLU, a dense layer to the classes (the release's softmax
  is the cross-entropy's: these are logits).
- Keras's initialisation (2.2.4 defaults): every kernel Glorot-uniform, every bias zero.
6,449,963 parameters for 3 classes (layer by layer in tests/test_dual_inception.py).

Fed as released (image_process.py:54-123, `read_file_directly`, :87-90): each flow image is read with
cv2.imread, resized to 28x28 (ours already are) and divided by 255: values 0..1, three channels. The release's images
(3class_flow_data.zip, `*_x_*` and `*_y_*` files) are not in the repository's history any more, so how their
three channels were made is not known; we read a grey image of each component, the composite's u (or v)
channel repeated three times, which is what cv2.imread gives of a grey image. Ours are the composite's flow
images (min-max scaled u and v), not the authors' own.

The recipe (configs/models/dual_inception.yaml): Adam lr 1e-4 (betas 0.9, 0.999, eps 1e-8), batch 3, 40 epochs,
cross-entropy, samples shuffled, the epoch with the lowest validation loss kept (ModelCheckpoint's
save_best_only on val_loss), where the validation subjects are the other subjects of the test subject's own
database and training takes only the other two databases (image_process.py:38-50): the engine's
`evaluation.val_rule: own-database`.

Where ours differs:
- The release's `class_weight='auto'` is not a mapping, and Keras 2.2.4 weighs classes only when given one:
  it weighs nothing, and neither do we.
- Its script repeats the whole LOSO 100 times (dual_inception.py:193) and reports each round; one round (one
  seed) is a row here.
- Each fold seeded (seed + fold index); Keras's initialisation draws from TensorFlow's own generator.
- Adam: Keras 2.2.4 adds its epsilon to sqrt(v) before the bias correction, torch after it; with eps 1e-8 the
  two differ only where a gradient's running size is near 1e-8.
- The samples of the validation side are scored in eval mode after each epoch, as Keras's fit does; a tie
  in validation loss keeps the earlier epoch, as ModelCheckpoint does.
"""

from __future__ import annotations

import torch
from torch import nn

from hsta_bench.models.blocked_linear import BlockedLinear
from hsta_bench.models.registry import MERModel, register_model


class InceptionBlock(nn.Module):
    """Four branches of `width` filters each (1x1; 1x1-3x3; 1x1-5x5; 3x3 max-pool-1x1), concatenated."""

    def __init__(self, in_channels: int, width: int):
        super().__init__()

        def conv(c_in: int, k: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(c_in, width, k, padding=k // 2), nn.ReLU())

        self.branch1 = conv(in_channels, 1)
        self.branch3 = nn.Sequential(conv(in_channels, 1), conv(width, 3))
        self.branch5 = nn.Sequential(conv(in_channels, 1), conv(width, 5))
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), conv(in_channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)], dim=1)


class Stream(nn.Module):
    """One flow component: two inception blocks (6, then 16 filters a branch), each followed by 2x2 pooling."""

    def __init__(self, in_channels: int = 3, widths: tuple[int, int] = (6, 16)):
        super().__init__()
        self.block1 = InceptionBlock(in_channels, widths[0])
        self.block2 = InceptionBlock(4 * widths[0], widths[1])
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.block2(self.pool(self.block1(x))))
        return x.permute(0, 2, 3, 1).flatten(1)  # Keras's Flatten: height, width, channel


class DualInception(MERModel):
    # the flow image in RGB order (u, v, strain), 0..1; each stream reads one component as a grey image
    encoding = {"flow": "default"}
    fold_batchable = True  # no batch norm, no data-dependent code: folds can train stacked

    def __init__(self, num_classes: int = 3, size: int = 28, hidden: int = 1024, widths: tuple[int, int] = (6, 16)):
        super().__init__()
        if size % 4:
            raise ValueError(f"dual_inception: flow size {size} must be divisible by 4 (two 2x2 poolings)")
        self.num_classes = num_classes
        self.inputs = {"flow": (3, size, size)}
        self.stream_x = Stream(3, widths)
        self.stream_y = Stream(3, widths)
        features = 2 * (size // 4) ** 2 * 4 * widths[1]
        # the 6,272 x 1,024 layer holds 99% of the weights; at batch 3 on a CPU it is computed in blocks (the
        # same products, a step 1.2-1.3x faster: hsta_bench/models/blocked_linear.py)
        self.classifier = nn.Sequential(BlockedLinear(features, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
        for m in self.modules():  # Keras 2.2.4's defaults
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        flow = batch["flow"]
        x = flow[:, 0:1].expand(-1, 3, -1, -1)  # u as a grey image: three equal channels
        y = flow[:, 1:2].expand(-1, 3, -1, -1)  # v
        return self.classifier(torch.cat([self.stream_x(x), self.stream_y(y)], dim=1))


@register_model
def dual_inception(num_classes: int = 3, **overrides) -> DualInception:
    return DualInception(num_classes=num_classes, **overrides)
