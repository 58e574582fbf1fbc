"""The leaderboard as markdown, CSV or JSON, from the tables of tables.py. The same tables give the same
bytes (no clock, no absolute paths), so a published page can be checked by regenerating it."""

from __future__ import annotations

import json
import re
from dataclasses import asdict

import numpy as np

from hsta_bench.leaderboard.store import csv_text as write_csv
from hsta_bench.leaderboard.tables import KINDS, Row, Table, by_source

INTRO = """\
Each benchmark (a dataset, a label protocol and a split scheme) has a ranked table of the models trained
here at their recipe, and beside it tables of rows that ran other settings (budgets, ablations, earlier
recipes) and of released weights scored here. Rows are ordered by UF1 and UAR computed MEGC2019-style on the
predictions of all folds pooled; the intervals are 95% percentile intervals from resampling whole subjects.
*vs #1* is the difference in UF1 to the ranked table's first row and the p-value of a paired permutation
test (whole subjects' predictions swapped between the two models); **n.s.** marks a difference that is not
significant at the level below, unadjusted for the number of rows. *recipe* says what the model's recipe is
(the release's only where it is) and what the row ran differently from that recipe as it stands today; each
row's resolved settings are in the store (`settings/KEY.yaml`), and its command runs them again. A row
marked **collapsed** predicts one class for 90% of its samples or more, whatever its UF1 says. *seeds*
gives a row's training seeds; a row of several pools them (its UF1, interval and paired test come from each
subject's confusion counts averaged over the seeds, so a subject weighs as one seed's samples) and gives the
range of the seeds' own UF1s. Model selection never looks at a test subject (the last epoch's model, or the
best on validation subjects drawn from the training side).

Tables of *synthetic* stand-ins come from generated data in the official layouts: they show that the whole
pipeline runs on every dataset, and say nothing about the models. Published rows are what papers report
on the same benchmark, with what is known to be wrong with them; they are shown beside ours, never ranked.
"""

SCHEMES = {"loso": "LOSO"}


def _f4(x) -> str:  # published numbers as papers give them
    return "-" if x is None else f"{x:.4f}"


SELECTION = {
    "last": "the last epoch's model",
    "best_val": "the best epoch on validation subjects",
    "best_val_loss": "the epoch of lowest loss on validation subjects",
    "given": "given weights scored untrained (`run --weights`)",
}


def _ci(row: Row, stat: str) -> str:
    ci = row.ci[stat]
    return f"{row.scores[stat]:.3f} ({ci[0]:.3f}-{ci[1]:.3f})" if ci else f"{row.scores[stat]:.3f}"


def recipe(entry: dict) -> str:
    """What the row's recipe is and what it ran differently from it today (recipe_diff.py), where the
    leaderboard described it; otherwise the preset and the run's changes, short: `paper + epochs=15, lr=1e-3`
    (a tune's outer run starts with `nested tune (N trials a study)`)."""
    if entry.get("described") is not None:
        return entry["described"].text()
    changes = []
    for option, value in re.findall(r"--(set|config|weights|tune|space) (\S+)", entry["settings"]):
        if option == "tune":
            changes.append(f"nested tune ({value} trials a study)")
        elif option in ("config", "weights", "space"):
            changes.append(f"{option} {value}")
        else:
            key, _, val = value.partition("=")
            changes.append(f"{key.split('.')[-1]}={val}")
    base = entry["preset"] or "defaults"
    return base + (f" + {', '.join(changes)}" if changes else "")


def _audit(row: Row) -> tuple[tuple[float, float], tuple[float, float], str]:
    """A row's honest and best-epoch-on-test (UF1, UAR), from the same runs: for a row of several seeds, the
    means over the seeds whose runs were audited (each seed's own scores against its own audit)."""
    runs = [(score, e) for _, e, score in row.seeds if e.get("audit_uf1") is not None]
    if not runs:
        e = row.entry
        return (row.scores["uf1"], row.scores["uar"]), (e["audit_uf1"], e["audit_uar"]), ""

    def mean(values) -> float:
        return float(np.mean(list(values)))

    honest = (mean(s["uf1"] for s, _ in runs), mean(s["uar"] for s, _ in runs))
    chosen = (mean(e["audit_uf1"] for _, e in runs), mean(e["audit_uar"] for _, e in runs))
    return honest, chosen, f" (mean of {len(runs)} seeds)"


def seeds(row: Row) -> str:
    """The training seeds of a row and, for several, each one's UF1 (lowest to highest): the spread the
    seeds alone make."""
    if not row.seeds:
        d = row.entry.get("described")
        return "-" if d is None or d.seed is None else str(d.seed)
    values = sorted(score["uf1"] for _, _, score in row.seeds)
    return f"{', '.join(str(s) for s, _, _ in row.seeds)}: {values[0]:.3f}-{values[-1]:.3f}"


def versus(row: Row) -> str:
    v = row.versus
    if v is None:
        return "-"
    if v["p_value"] is None:
        return f"{v['difference']:+.3f} ({v['why']})"
    p = f"p={v['p_value']:.3f}" if v["p_value"] >= 0.001 else "p<0.001"
    return f"{v['difference']:+.3f}, {p}" + ("" if v["significant"] else " **n.s.**")


def title(table: Table) -> str:
    scheme = SCHEMES.get(table.scheme, table.scheme)
    head = f"{table.dataset} · {table.protocol} · {scheme}"
    if table.kind != "recipe":
        head += f" · {KINDS[table.kind]}"
    return head + (" · synthetic stand-in (not a result)" if table.synthetic else "")


def _versus_head(t: Table) -> str:
    return "vs the ranked #1 (paired)" if t.against else "vs #1 (paired)"


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def plot_name(table: Table, row: Row) -> str:
    return f"confusion-{table.key.replace('/', '-')}-{row.rank}-{row.entry['model']}.png"


def forest_name(table: Table) -> str:
    return f"forest-{table.key.replace('/', '-')}.png"


def _model(table: Table, row: Row) -> str:
    collapsed = _collapsed(row)
    return (
        f"{row.entry['model']}"
        + (" *(synthetic)*" if table.synthetic else "")
        + (f" (**collapsed**: {collapsed})" if collapsed else "")
    )


def _collapsed(row: Row) -> str:
    c = row.collapsed
    return f"predicts {c[0]} for {c[1]:.0%} of samples" if c else ""


def markdown(
    tables: list[Table],
    settings,
    command: str,
    plots: dict | None = None,
    heading: str = "hsta-bench leaderboard",
    measured: str | None = None,
    findings: str | None = None,
    notes_link: str | None = None,
) -> str:
    """The whole page; `plots` maps (table key, rank) to the relative path of a written confusion plot. From a
    store: `measured` (its measured.md, a few lines on what its rows are) opens the page, `findings` (its
    findings.md, short points) follow the tables, and `notes_link` is where its notes.md (the detail) is."""
    plots = plots or {}
    lines = [f"# {heading}", "", f"Regenerate: `{command}`", ""]
    if measured:
        lines += [measured.strip(), ""]
    lines += [
        INTRO,
        f"Significance level {settings.alpha}, {settings.permutations} permutations (seed {settings.seed}).",
        "",
    ]
    if findings or notes_link:
        lines += [
            "Findings and notes: [below](#findings)"
            + (f"; the detail in [notes.md]({notes_link})." if notes_link else "."),
            "",
        ]
    if not tables:
        lines += ["No results yet.", ""]
    lines += ["Tables:", ""] + [f"- {title(t)}: {len(t.rows)} row(s)" for t in tables] + [""]
    for t in tables:
        lines += [
            f"## {title(t)}",
            "",
            "| # | model | recipe | UF1 (95% CI) | seeds: UF1 of each | UAR (95% CI) | accuracy | n | "
            f"{_versus_head(t)} |",
            "|---:|---|---|---|---|---|---:|---:|---|",
        ]
        for r in t.rows:
            lines.append(
                f"| {r.rank} | {_model(t, r)} | {recipe(r.entry)} | {_ci(r, 'uf1')} | {seeds(r)} | {_ci(r, 'uar')} | "
                f"{r.scores['acc']:.3f} | {r.scores['n']} | {versus(r)} |"
            )
        lines.append("")
        if t.published:
            lines += [
                "Published on the same benchmark (as reported; not ranked):",
                "",
                "| method | UF1 | UAR | source | caveat |",
                "|---|---:|---:|---|---|",
            ]
            lines += [
                f"| {p['method']} | {_f4(p['uf1'])} | {_f4(p['uar'])} | {p['source']} | {p['caveat'] or '-'} |"
                for p in t.published
            ]
            lines.append("")
        audited = [r for r in t.rows if r.entry.get("audit_uf1") is not None]
        if audited:
            lines += [
                "Selection audit (**not results**): what each row's run would have reported had it kept, for "
                "each test subject, the epoch that scored best on that subject (as HTNet's and CausalNet's "
                "releases do), from test predictions recorded every few epochs and never used by the run:",
                "",
                "| # | model | UF1 / UAR (honest) | UF1 / UAR (best epoch on test) | inflation UF1 / UAR | "
                "epochs audited |",
                "|---:|---|---|---|---|---|",
            ]
            for r in audited:
                e = r.entry
                honest, chosen, label = _audit(r)
                lines.append(
                    f"| {r.rank} | {r.entry['model']}{label} | {honest[0]:.3f} / {honest[1]:.3f} | "
                    f"*{chosen[0]:.3f} / {chosen[1]:.3f}* | "
                    f"{chosen[0] - honest[0]:+.3f} / {chosen[1] - honest[1]:+.3f} | "
                    f"every {e['audit_every']} of {e['epochs']} |"
                )
            lines.append("")
        if len(t.sources) > 1:
            lines += [
                "Per source (each scored on its own subjects, pooled):",
                "",
                "| # | model | source | UF1 (95% CI) | UAR (95% CI) | n |",
                "|---:|---|---|---|---|---:|",
            ]
            for r in t.rows:
                for source, part in by_source(r).items():
                    lines.append(
                        f"| {r.rank} | {r.entry['model']} | {source} | {_ci(part, 'uf1')} | "
                        f"{_ci(part, 'uar')} | {part.scores['n']} |"
                    )
            lines.append("")
        classes = t.rows[0].classes
        lines += [
            "Per class, F1 / recall:",
            "",
            "| # | model | " + " | ".join(classes) + " | support |",
            "|---:|---|" + "---|" * len(classes) + "---|",
        ]
        for r in t.rows:
            cells = [f"{f:.3f} / {rec:.3f}" for f, rec in zip(r.scores["f1"], r.scores["recall"])]
            support = "/".join(str(int(n)) for n in r.scores["support"])
            lines.append(f"| {r.rank} | {r.entry['model']} | " + " | ".join(cells) + f" | {support} |")
        lines.append("")
        if (t.key, "forest") in plots:
            lines += [f"![UF1 of every row, with its interval]({plots[(t.key, 'forest')]})", ""]
        shown = [(r, plots[(t.key, r.rank)]) for r in t.rows if (t.key, r.rank) in plots]
        if shown:
            lines += ["Confusion matrices (rows: true class, columns: predicted):", ""]
            lines += [f"![#{r.rank} {r.entry['model']}]({path})" for r, path in shown] + [""]
        lines += ["Provenance:", ""]
        for r, e in [(row, e) for row in t.rows for e in row.members]:
            origin = f" (from {e['origin']})" if e.get("origin") else ""  # a model from outside the repository
            seed = e["described"].seed if e.get("described") is not None and len(r.members) > 1 else None
            lines.append(
                f"- #{r.rank} {e['model']}{origin}{'' if seed is None else f' (seed {seed})'}: run `{e['run_id']}`, "
                f"commit `{e['commit'] or 'unknown'}`, "
                f"config key `{e['config_key']}`, seeds {e['seeds']} (fold i trains with seed + i), "
                f"{e['epochs']} epoch{'s' if e['epochs'] != 1 else ''}, "
                f"{SELECTION.get(e['selection'], e['selection'])}, torch {e['torch']} on {e['hardware']}, "
                f"{_duration(e['seconds'])} of training (summed over folds); reproduce: `{e['command']}`"
            )
        lines.append("")
    if findings or notes_link:
        lines += ["## Findings", ""]
        if findings:
            lines += [findings.strip(), ""]
        if notes_link:
            lines += [f"The detail behind these points: [notes.md]({notes_link}).", ""]
    return "\n".join(lines)


def _row_record(t: Table, r: Row) -> dict:
    v = r.versus or {}
    low, high = ({stat: (ci[k] if ci else None) for stat, ci in r.ci.items()} for k in (0, 1))
    return {
        "table": t.key,
        "kind": "measured",
        "rank": r.rank,
        "model": r.entry["model"],
        "recipe": recipe(r.entry),
        "uf1": r.scores["uf1"],
        "uf1_ci_low": low["uf1"],
        "uf1_ci_high": high["uf1"],
        "uar": r.scores["uar"],
        "uar_ci_low": low["uar"],
        "uar_ci_high": high["uar"],
        "acc": r.scores["acc"],
        "n": r.scores["n"],
        "uf1_vs_first": v.get("difference"),
        "p_value": v.get("p_value"),
        "significant": v.get("significant"),
        "synthetic": t.synthetic,
        "collapsed": _collapsed(r) or None,
        "training_seeds": seeds(r),
        "run_id": r.entry["run_id"],
        "commit": r.entry["commit"],
        "config_key": r.entry["config_key"],
        "seeds": r.entry["seeds"],
        "epochs": r.entry["epochs"],
        "command": r.entry["command"],
        "source": None,
        "caveat": None,
    }


def _published_record(t: Table, p: dict) -> dict:
    return {
        "table": t.key,
        "kind": "published",
        "rank": None,
        "model": p["method"],
        "recipe": None,
        "uf1": p["uf1"],
        "uar": p["uar"],
        "synthetic": False,
        "source": p["source"],
        "caveat": p["caveat"],
    }


CSV_COLUMNS = (
    "table",
    "kind",
    "rank",
    "model",
    "recipe",
    "uf1",
    "uf1_ci_low",
    "uf1_ci_high",
    "uar",
    "uar_ci_low",
    "uar_ci_high",
    "acc",
    "n",
    "uf1_vs_first",
    "p_value",
    "significant",
    "synthetic",
    "collapsed",
    "training_seeds",
    "run_id",
    "commit",
    "config_key",
    "seeds",
    "epochs",
    "command",
    "source",
    "caveat",
)


def csv_text(tables: list[Table]) -> str:
    """One line per measured row (ranked) and per published row (kind=published, no rank)."""
    records = [
        rec
        for t in tables
        for rec in [*(_row_record(t, r) for r in t.rows), *(_published_record(t, p) for p in t.published)]
    ]
    return write_csv(
        [{k: round(v, 6) if isinstance(v, float) else v for k, v in rec.items()} for rec in records], CSV_COLUMNS
    )


def json_text(tables: list[Table], settings) -> str:
    out = []
    for t in tables:
        rows = []
        for r in t.rows:
            record = _row_record(t, r)
            record["per_class"] = {
                c: {"f1": float(f), "recall": float(rec), "support": int(s)}
                for c, f, rec, s in zip(r.classes, r.scores["f1"], r.scores["recall"], r.scores["support"])
            }
            record["confusion"] = {"classes": r.classes, "counts": r.cm.tolist()}
            if len(t.sources) > 1:
                record["per_source"] = {
                    s: {
                        "uf1": part.scores["uf1"],
                        "uar": part.scores["uar"],
                        "n": part.scores["n"],
                        "uf1_ci": part.ci["uf1"],
                        "uar_ci": part.ci["uar"],
                    }
                    for s, part in by_source(r).items()
                }
            if r.entry.get("audit_uf1") is not None:  # engine/audit.py: measured beside the row, never a result
                record["selection_audit"] = {
                    "not_a_result": True,
                    "every": r.entry["audit_every"],
                    "uf1_best_epoch_on_test": r.entry["audit_uf1"],
                    "uar_best_epoch_on_test": r.entry["audit_uar"],
                    "uf1_inflation": r.entry["audit_uf1"] - r.scores["uf1"],
                    "uar_inflation": r.entry["audit_uar"] - r.scores["uar"],
                }
            record["provenance"] = {
                k: r.entry[k]
                for k in (
                    "run_id",
                    "commit",
                    "config_key",
                    "seeds",
                    "epochs",
                    "selection",
                    "torch",
                    "hardware",
                    "seconds",
                    "finished",
                )
            }
            rows.append(record)
        out.append(
            {
                "dataset": t.dataset,
                "protocol": t.protocol,
                "scheme": t.scheme,
                "synthetic": t.synthetic,
                "rows": rows,
                "published": [_published_record(t, p) for p in t.published],
            }
        )
    return json.dumps({"settings": asdict(settings), "tables": out}, indent=2) + "\n"
