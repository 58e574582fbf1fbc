"""What a tune shows: the trial table, parameter importances, the history plot and the markdown summary,
all read back from the Optuna storage (so a resumed or half-finished tune reports what it holds)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import optuna
import polars as pl
from optuna.importance import FanovaImportanceEvaluator, get_param_importances
from optuna.trial import TrialState

from hsta_bench.io import atomic_write
from hsta_bench.text import fmt, params_text
from hsta_bench.tuning.studies import study_name


def _studies(store, tune_id: str, plan_studies):
    """(study, optuna study) for those that exist in the storage yet."""
    names = set(optuna.get_all_study_names(store))
    return [
        (s, optuna.load_study(study_name=study_name(tune_id, s), storage=store))
        for s in plan_studies
        if study_name(tune_id, s) in names
    ]


def trials_table(store, tune_id: str, plan_studies):
    """study, number, state, value, epochs, seconds, then one column per searched setting (train.lr, ...)."""
    rows = []
    for s, study in _studies(store, tune_id, plan_studies):
        for t in study.get_trials(deepcopy=False):
            seconds = (
                (t.datetime_complete - t.datetime_start).total_seconds()
                if t.datetime_complete and t.datetime_start
                else None
            )
            row = {
                "study": s.name,
                "number": t.number,
                "state": t.state.name,
                "value": t.value,
                "epochs": t.user_attrs.get("epochs"),
                "seconds": seconds,
            }
            row.update({name.replace("/", "."): value for name, value in t.params.items()})
            rows.append(row)
    if not rows:
        return pl.DataFrame(
            schema={
                "study": pl.Utf8,
                "number": pl.Int64,
                "state": pl.Utf8,
                "value": pl.Float64,
                "epochs": pl.Int64,
                "seconds": pl.Float64,
            }
        )
    return pl.DataFrame(rows, infer_schema_length=None)


def importances(store, tune_id: str, plan_studies, seed: int) -> dict:
    """fANOVA importance of each searched setting per study (over its COMPLETE trials), or why not."""
    out: dict[str, dict[str, str | float]] = {}
    for s, study in _studies(store, tune_id, plan_studies):
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if len(complete) < 2:
            out[s.name] = {"note": f"{len(complete)} complete trial(s): too few to judge"}
            continue
        try:
            found = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=seed))
        except (RuntimeError, ValueError) as exc:
            out[s.name] = {"note": str(exc).splitlines()[0]}
            continue
        out[s.name] = {name.replace("/", "."): round(float(v), 4) for name, v in found.items()}
    return out


def history_plot(table, path: Path, metric: str) -> None:
    """history.png: each trial's validation score by trial number, a colour per study, the best so far as a
    line; trials ASHA stopped are crosses at the score they reached."""
    matplotlib.use("Agg")

    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=110)
    for i, (name,) in enumerate(table.select("study").unique(maintain_order=True).iter_rows()):
        rows = table.filter(pl.col("study") == name).sort("number")
        color = f"C{i % 10}"
        done = rows.filter(pl.col("state") == "COMPLETE")
        stopped = rows.filter(pl.col("state") == "PRUNED")
        ax.scatter(done["number"], done["value"], color=color, s=22, label=f"{name}")
        ax.scatter(stopped["number"], stopped["value"], color=color, marker="x", s=22)
        best, line_x, line_y = None, [], []
        for number, value, state in rows.select("number", "value", "state").iter_rows():
            if state == "COMPLETE" and value is not None:
                best = value if best is None else max(best, value)
            if best is not None:
                line_x.append(number)
                line_y.append(best)
        ax.step(line_x, line_y, where="post", color=color, linewidth=1.2, alpha=0.8)
    ax.set_xlabel("trial (per study)")
    ax.set_ylabel(f"{metric} (validation subjects)")
    ax.set_title("Tune history: dots complete, crosses stopped by ASHA, lines best so far", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(title="study", fontsize=7, title_fontsize=8, loc="best")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


def study_rows(info: dict, table) -> list[dict]:
    """One row per study: what it held out, its trial counts and its best trial."""
    rows = []
    for s in info.get("studies", []):
        mine = table.filter(pl.col("study") == s["name"]) if table.height else None
        count = {
            state: mine.filter(pl.col("state") == state).height if mine is not None else 0
            for state in ("COMPLETE", "PRUNED", "FAIL")
        }
        best = None
        if mine is not None:
            complete = mine.filter(pl.col("state") == "COMPLETE").sort(["value", "number"], descending=[True, False])
            best = complete.row(0, named=True) if complete.height else None
        params: dict[str, dict] = {}
        if best:
            for name, value in best.items():
                if "." in name and value is not None:
                    section, _, key = name.partition(".")
                    params.setdefault(section, {})[key] = value
        rows.append(
            {
                "study": s["name"],
                "held_out": s["held_out"],
                "subjects": len(s["subjects"]),
                "outer_folds": s["outer_folds"],
                **{k.lower(): v for k, v in count.items()},
                "best_value": best["value"] if best else None,
                "best_trial": best["number"] if best else None,
                "best_params": params,
            }
        )
    return rows


def markdown(info: dict, table) -> str:
    metric = f"val_{info['config']['tune']['metric']}"
    tc = info["config"]["tune"]
    lines = [
        f"# Tune {info['tune_id']}: {info['model']} on {info['dataset']}",
        "",
        f"- status: **{info['status']}**; protocol {info.get('protocol')}, preset {info['preset']}, "
        f"{info['trials']} trials per study, at most {info.get('budget_epochs')} epochs each (ASHA: grace "
        f"{info.get('grace_epochs')} epochs, reduction {tc['asha'].get('reduction_factor', 2)})",
        f"- objective: {metric}, pooled over the validation subjects of {tc['inner_k']}-fold inner splits; "
        f"TPE seeded {tc['seed']} ({info.get('startup_trials')} random trials first)",
        "- search space: " + ", ".join(f"`{k}={v}`" for k, v in info.get("space", {}).items()),
        f"- commit {info.get('git_commit')}, {info.get('environment', {}).get('platform')}, "
        f"{info.get('seconds', 0):.0f} s",
        "",
        "## Nested protocol",
        "",
        "Each study tunes on the subjects outside its group and never sees the others: its group's outer "
        "test folds are then trained with the configuration it chose. Study `all` tunes on every subject: "
        "its best configuration is `best.yaml` (for use elsewhere; it has no test score on this dataset).",
        "",
        "| study | held out | tuned on | complete | stopped (ASHA) | failed | best "
        + metric
        + " | best configuration |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in study_rows(info, table):
        held = ", ".join(r["held_out"]) or "none"
        lines.append(
            f"| {r['study']} | {held} | {r['subjects']} subjects | {r['complete']} | {r['pruned']} | "
            f"{r['fail']} | {fmt(r['best_value'])} | {params_text(r['best_params']) or '-'} |"
        )
    lines += ["", "## Test score: the outer run", ""]
    score = info.get("outer_score")
    if score:

        def ci(stat):
            low, high = score.get(f"{stat}_ci_low"), score.get(f"{stat}_ci_high")
            return f"{score[stat]:.3f}" + (f" ({low:.3f}-{high:.3f})" if low is not None else "")

        lines += [
            "| UF1 (95% CI) | UAR (95% CI) | accuracy | n | run |",
            "|---:|---:|---:|---:|---|",
            f"| {ci('uf1')} | {ci('uar')} | {score['acc']:.3f} | {score['n']} | `{info['outer']['run_id']}` |",
            "",
            "Every outer fold trained with its group's configuration (`outer.yaml`); scored like any run "
            "(pooled over folds, subject-bootstrap intervals).",
        ]
    else:
        lines.append("Not run yet (the studies are not all complete).")
    lines += ["", "## Best configuration", ""]
    best = info.get("best")
    if best:
        sets = " ".join(
            f"--set tuned.{info['model']}.{section}.{k}={v!r}"
            for section, values in best["params"].items()
            for k, v in values.items()
        )
        lines += [
            f"Study `all`, trial {best['trial']}: {metric} {best['value']:.3f}. In `best.yaml`:",
            "",
            f"    hsta-bench run --config {best['file']} --model {info['model']} --dataset DATASET "
            f"--preset {info['preset']}",
            "",
            "or as options:",
            "",
            f"    {sets}",
        ]
    else:
        lines.append("Not yet (study `all` is not complete, or the tune has no final study).")
    lines += ["", "## Parameter importances (fANOVA over complete trials)", ""]
    imps = info.get("importances") or {}
    names = sorted({k for v in imps.values() for k in v if k != "note"})
    if names:
        lines += ["| study | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
        for study, values in imps.items():
            if "note" in values:
                lines.append(f"| {study} | " + values["note"] + " |" + " |" * (len(names) - 1))
            else:
                lines.append(f"| {study} | " + " | ".join(fmt(values.get(n)) for n in names) + " |")
    else:
        lines.append("Too few complete trials to judge.")
    lines += ["", "## History", "", "![history](history.png)", "", "## Trials", ""]
    if table.height:
        params = [c for c in table.columns if "." in c]
        lines += [
            "| study | # | state | " + metric + " | epochs | s | " + " | ".join(params) + " |",
            "|---|---:|---|---:|---:|---:|" + "---:|" * len(params),
        ]
        for r in table.iter_rows(named=True):
            lines.append(
                f"| {r['study']} | {r['number']} | {r['state']} | {fmt(r['value'])} | {fmt(r['epochs'])} | "
                f"{fmt(r['seconds'], 1)} | " + " | ".join(fmt(r[c]) for c in params) + " |"
            )
    return "\n".join(lines) + "\n"
