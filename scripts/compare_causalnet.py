"""CausalNet's release and ours on the same weights and inputs: the largest difference between their logits.

    python scripts/compare_causalnet.py [RELEASE] [--batch N] [--seed S]

RELEASE is a checkout of tony19980810/CausalNet (default: ../CausalNet beside this repository). Its Models.py is
loaded as it is and builds the model with main_train.py's configuration (main_train.py:257-267) and torch's
initialisation (seeded); every norm's gain and bias is then moved off 1 and 0 (so that one read in the wrong place
shows; moving every weight makes the 277 M-parameter network chaotic, its logits then differing between batch sizes
of the release itself), and ours
(baselines/causalnet.py, the release's attribute names) loads that state dict, buffers included, strictly. Both
run in eval mode on the same batch of raw 0..255 values, the release's (N, 4, C, H, W) and ours (N, C, 4, H, W),
ours with each of the suite's attention kernels. The release imports einops, which hsta-bench does not need:
run this where einops is installed, e.g. a separate environment,

    python3 -m venv /tmp/causalnet_env && /tmp/causalnet_env/bin/pip install torch==2.13.0 einops numpy
    /tmp/causalnet_env/bin/python scripts/compare_causalnet.py ../CausalNet

(tests/test_causalnet.py runs it when ../CausalNet and einops are there.) Prints one line per kernel and exits 1
when a difference exceeds --tolerance (1e-5).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RELEASE = REPO.parent / "CausalNet"
# main_train.py:257-267, the configuration the release trains and evaluates (eval.py:20-21, 49-58)
RELEASE_CONFIG = {
    "image_size": 28,
    "patch_size": 7,
    "dim": 256,
    "heads": 3,
    "num_hierarchies": 3,
    "block_repeats": (3, 3, 9),
    "num_classes": 3,
    "gamma": 0.5,
}


def load_release(release: Path):
    """The release's Models.py as a module (its own imports, einops among them, must resolve)."""
    path = Path(release) / "Models.py"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (a checkout of tony19980810/CausalNet?)")
    spec = importlib.util.spec_from_file_location("causalnet_release_models", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compare(release: Path = DEFAULT_RELEASE, batch: int = 4, seed: int = 0) -> dict[str, float]:
    """Max |logit difference| between the release's model and ours per attention kernel, and the sizes."""
    sys.path.insert(0, str(REPO))
    from baselines.causalnet import CausalNet  # noqa: PLC0415 - after the repository is on the path
    from hsta_bench.models.attention import set_backend  # noqa: PLC0415

    models = load_release(release)
    torch.manual_seed(seed)
    theirs = models.CausalNet(**RELEASE_CONFIG).eval()
    with torch.no_grad():  # torch's initialisation leaves every norm at gain 1, bias 0: move them
        for module in theirs.modules():
            if isinstance(module, models.LayerNorm | torch.nn.LayerNorm):
                for p in module.parameters(recurse=False):  # g and b, or weight and bias
                    p.add_(0.1 * torch.randn_like(p))
    ours = CausalNet(num_classes=RELEASE_CONFIG["num_classes"], gamma=RELEASE_CONFIG["gamma"]).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randint(0, 256, (batch, 4, 3, 28, 28), generator=torch.Generator().manual_seed(seed)).float()
    out: dict[str, float] = {"parameters": float(sum(p.numel() for p in theirs.parameters()))}
    with torch.no_grad():
        reference = theirs(x)
        out["logit_scale"] = float(reference.abs().max())
        for kernel in ("naive", "sdpa"):
            logits = set_backend(ours, kernel)({"causal": x.transpose(1, 2)})
            out[kernel] = float((logits - reference).abs().max())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("release", nargs="?", type=Path, default=DEFAULT_RELEASE)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tolerance", type=float, default=1e-5)
    args = parser.parse_args(argv)
    try:
        result = compare(args.release, args.batch, args.seed)
    except (FileNotFoundError, ImportError) as exc:
        print(f"compare_causalnet: {exc}", file=sys.stderr)
        return 2
    print(f"parameters {int(result['parameters']):,}; largest |logit| {result['logit_scale']:.4g}")
    worst = 0.0
    for kernel in ("naive", "sdpa"):
        print(f"{kernel}: max |logit difference| {result[kernel]:.3g}")
        worst = max(worst, result[kernel])
    return 0 if worst <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
