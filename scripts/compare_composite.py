"""Compare an exported MEGC2019 composite with the released one, flow image by flow image.

    python scripts/compare_composite.py EXPORT RELEASE
      EXPORT   a folder written by `hsta-bench datasets export megc2019-composite`
      RELEASE  the precomputed composite (e.g. ../shared/data/megc2019-composite)

Prints, per sample of the export that the release also holds, the Pearson correlation of u, v and strain
between the two images, then the medians (what tests/test_export.py holds to a floor on the real clips).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from hsta_bench import config
from hsta_bench.preprocess.export import compare


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    rows = compare(Path(argv[0]), Path(argv[1]), config.load())
    if not rows:
        print(f"error: no flow image of {argv[0]} is in {argv[1]}", file=sys.stderr)
        return 1
    print(f"{'sample':28s} {'u':>6s} {'v':>6s} {'strain':>6s}")
    for r in rows:
        print(f"{r['name']:28s} {r['u']:6.2f} {r['v']:6.2f} {r['strain']:6.2f}")
    medians = [float(np.median([r[k] for r in rows])) for k in ("u", "v", "strain")]
    print(f"{'median of ' + str(len(rows)):28s} {medians[0]:6.2f} {medians[1]:6.2f} {medians[2]:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
