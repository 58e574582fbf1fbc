"""Score STSTNet's published fold weights through this suite and compare them with the authors' own log.

    python scripts/check_ststnet_release.py RELEASE RUN
      RELEASE  a checkout of christy1206/STSTNet (STSTNet_Weights/*.pth, STSTNet_python_logfile.txt)
      RUN      a run folder of `hsta-bench run --model ststnet --dataset megc2019-flow --weights
               RELEASE/STSTNet_Weights` (its predictions.parquet)

The log prints, per test subject, the predicted and true classes (0 negative, 1 positive, 2 surprise) in
the order the script listed the files; the order is the file system's, so the comparison is per subject
as a multiset of (truth, prediction) pairs, which fixes every subject's confusion counts and hence UF1/UAR.
Prints one line per subject that differs and a summary; exits 1 if any differs. The weights are the
authors': read them from their repository, never commit them here.
"""

from __future__ import annotations

import ast
import re
import sys
from collections import Counter
from pathlib import Path

CLASSES = ("negative", "positive", "surprise")


def from_log(text: str) -> dict[str, Counter]:
    out, subject, predicted = {}, None, None
    for line in text.splitlines():
        if m := re.match(r"Subject:\s*(\S+)", line):
            subject = m.group(1)
        elif m := re.match(r"Predicted\s*:\s*(\[.*\])", line):
            predicted = ast.literal_eval(m.group(1))
        elif (m := re.match(r"Ground Truth\s*:\s*(\[.*\])", line)) and subject is not None:
            truth = ast.literal_eval(m.group(1))
            out[subject] = Counter(zip(truth, predicted))
            subject = None
    return out


def from_run(run: Path) -> dict[str, Counter]:
    import polars as pl

    frame = pl.read_parquet(run / "predictions.parquet").filter(pl.col("model") == "ststnet")
    out: dict[str, Counter] = {}
    for subject, label, pred in frame.select("subject", "label", "pred").iter_rows():
        out.setdefault(str(subject), Counter())[(CLASSES.index(label), CLASSES.index(pred))] += 1
    return out


def main(release: Path, run: Path) -> int:
    logged = from_log((release / "STSTNet_python_logfile.txt").read_text())
    ours = from_run(run)
    differ = [s for s in sorted(set(logged) | set(ours)) if logged.get(s) != ours.get(s)]
    for s in differ:
        theirs, mine = sorted(logged.get(s, Counter()).elements()), sorted(ours.get(s, Counter()).elements())
        print(f"{s}: log {theirs} vs ours {mine}")
    same = len(set(logged) & set(ours)) - len([s for s in differ if s in logged and s in ours])
    print(
        f"{same} of {len(logged)} logged subjects identical ({sum(sum(c.values()) for c in logged.values())} samples "
        f"in the log, {sum(sum(c.values()) for c in ours.values())} scored here); {len(differ)} differ"
    )
    return 1 if differ else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
