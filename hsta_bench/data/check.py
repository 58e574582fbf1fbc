"""What `hsta-bench datasets check` reports: counts, repairs and problems of one manifest, as data.

The verdict: a dataset passes when no problem is an error (every sample usable after the documented
repairs); with `strict`, when there is no problem at all.
"""

from __future__ import annotations

from collections import Counter

import polars as pl

from hsta_bench.data import protocols
from hsta_bench.data.manifest import ERROR, REPAIRED, WARNING, Manifest, label_column


def summarize(manifest: Manifest, protocol_names: tuple[str, ...]) -> dict:
    frame, usable = manifest.frame, manifest.usable
    classes = {}
    for name in protocol_names:
        proto = protocols.get(name)
        counts = dict(usable.group_by(label_column(name)).len().iter_rows())
        classes[name] = {c: int(counts.get(c, 0)) for c in proto.classes}
    emotions = dict(sorted(Counter(frame["emotion"].fill_null("(empty)").to_list()).items(), key=lambda kv: -kv[1]))
    per_subject = {s: int(n) for s, n in usable.group_by("subject").len().sort("subject").iter_rows()}
    per_source = {
        src: {"samples": int(n), "subjects": int(k)}
        for src, n, k in usable.group_by("source")
        .agg(pl.len(), pl.col("subject").n_unique())
        .sort("source")
        .iter_rows()
    }
    severities = Counter(p.severity for p in manifest.problems)
    return {
        "dataset": manifest.name,
        "root": manifest.root,
        "synthetic": manifest.synthetic,
        "samples": frame.height,
        "usable": usable.height,
        "unusable": frame.height - usable.height,
        "subjects": usable["subject"].n_unique(),
        "emotions": emotions,
        "classes": classes,
        "per_subject": per_subject,
        "per_source": per_source,
        "repairs": dict(Counter(p.kind for p in manifest.problems if p.severity == REPAIRED)),
        "problem_counts": {s: severities.get(s, 0) for s in (ERROR, REPAIRED, WARNING)},
        "problems": [p.as_dict() for p in manifest.problems],
    }


def passed(summary: dict, strict: bool = False) -> bool:
    counts = summary["problem_counts"]
    return counts[ERROR] == 0 and not (strict and sum(counts.values()))
