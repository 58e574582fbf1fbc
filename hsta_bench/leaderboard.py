"""The leaderboard of a run as markdown: per dataset and protocol, models ranked by pooled UF1, with UAR,
accuracy, subject-bootstrap 95% intervals and sample counts; synthetic stand-ins are marked as such.
Written next to every run as `leaderboard.md`.
"""

from __future__ import annotations


def _ci(row: dict, stat: str) -> str:
    low, high = row[f"{stat}_ci_low"], row[f"{stat}_ci_high"]
    interval = f" ({low:.3f}-{high:.3f})" if low is not None else ""
    return f"{row[stat]:.3f}{interval}"


def render_run(metrics, run: dict) -> str:
    """Markdown for the `scope == all` rows of a run's metrics table; `run` is its run.json."""
    import polars as pl

    summary = metrics.filter(pl.col("scope") == "all")
    lines = [f"# Leaderboard of run {run['run_id']}", "",
             "Pooled over all folds (MEGC2019 UF1 and UAR), leave-one-subject-out unless the run says otherwise; "
             "95% intervals from resampling subjects. Rows marked *synthetic* come from the synthetic stand-ins: "
             "they check that the pipeline runs, they are not results.", ""]
    by_pair = {(e["model"], e["dataset"]): e for e in run.get("evaluations", [])}
    for (dataset, protocol), group in summary.group_by(["dataset", "protocol"], maintain_order=True):
        group = group.sort(["uf1", "uar"], descending=True)
        synthetic = bool(group["synthetic"].any())
        lines += [f"## {dataset} ({protocol}){' (synthetic)' if synthetic else ''}", "",
                  "| rank | model | UF1 (95% CI) | UAR (95% CI) | accuracy | n | scheme |",
                  "|---:|---|---|---|---:|---:|---|"]
        for rank, row in enumerate(group.iter_rows(named=True), 1):
            scheme = by_pair.get((row["model"], dataset), {}).get("evaluation", {}).get("scheme", "")
            lines.append(f"| {rank} | {row['model']} | {_ci(row, 'uf1')} | {_ci(row, 'uar')} | {row['acc']:.3f} | "
                         f"{row['n']} | {scheme} |")
        lines.append("")
    env = run.get("environment", {})
    lines += ["## Provenance", "",
              f"- run `{run['run_id']}`, preset `{run.get('preset')}`, commit `{run.get('git_commit')}`",
              f"- torch {env.get('torch')}, {env.get('processor')}, {env.get('cpus')} CPUs"
              + (f", {env['cuda']}" if env.get("cuda") else ""),
              "- fold i trains with seed `train.seed + i`; recipes, seeds per fold and config keys are in `run.json`",
              f"- command: `{' '.join(['hsta-bench', *run.get('command', [])[1:]])}`", ""]
    return "\n".join(lines)
