"""What a profile shows: tables (terminal, CSV, markdown), findings in words, a plot, and the files.

Files, in `<output>/profile-<id>/`, named with the environment (torch version, device, threads, dtypes), like
timm's benchmark CSVs: report-<env>.md, profile-<env>.json, attention-<env>.csv, models-<env>.csv,
plot-<env>.png.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

from rich.table import Table

from hsta_bench.io import atomic_write, write_json
from hsta_bench.profiling.measure import STABLE_SPREAD
from hsta_bench.profiling.session import DTYPES, slug
from hsta_bench.text import fmt

UNFUSED = ("naive", "sdpa-math")  # written out, or sdpa's own written-out fallback: not "the fused path"


def _mb(mb):
    return "-" if mb is None else f"{mb:.3g}"


def _pct(fraction):
    return "-" if fraction is None else f"{fraction:.0%}"


def _pm(row) -> str:
    """A median's spread: ` ±8%`, half the interquartile range over the median ("" where none was measured)."""
    return f" ±{row['spread'] / 2:.0%}" if row.get("spread") and row["ms"] is not None else ""


def _ms(row) -> str:
    return f"{row['ms']:.3g} ms{_pm(row)}"


def withheld_shares(profile) -> int:
    """How many attention shares model_rows leaves out because they came to more than the whole step."""
    return sum(r["attention_over"] for r in model_rows(profile))


def attention_rows(profile) -> list[dict]:
    """One row per (case, kernel, dtype, pass), with what bounds the case."""
    by_name = {c.name: c for c in profile.cases}
    rows = []
    for t in profile.attention:
        case = by_name[t.case]
        dtype = _short(t.dtype)
        rows.append(
            {
                "model": case.model,
                "case": t.case,
                "kind": t.kind,
                "calls_per_forward": case.count,
                "pass": t.passes,
                "dtype": dtype,
                "bound": profile.bound(case, dtype, t.passes),
                "kernel": t.backend,
                "status": t.status,
                "ms": None if t.seconds is None else t.seconds * 1e3,
                "spread": t.spread,
                "gflop": t.flops / 1e9,
                "flops_source": t.flops_source,
                "gflops_per_s": t.gflops_per_s,
                "ceiling_fraction": t.ceiling_fraction,
                "ceiling_gflops": t.ceiling_gflops,
                "peak_mb": None if t.peak_bytes is None else t.peak_bytes / 2**20,
                "max_error": t.max_error,
                "mask_density": case.density(),
            }
        )
    return rows


def model_rows(profile) -> list[dict]:
    """One row per (model, mode, kernel, dtype); `attention_share` is the time its attention calls take with the
    same kernel (the measured cases times their calls per forward) as a fraction of the whole."""
    attention: defaultdict[tuple[str, str, str, str], float] = defaultdict(float)
    complete = defaultdict(lambda: True)
    counts = {c.name: c.count for c in profile.cases}
    for t in profile.attention:
        key = (t.case.split("/")[0], t.passes, t.backend, t.dtype)
        if t.seconds is None:
            complete[key] = False
        else:
            attention[key] += t.seconds * counts[t.case]
    rows = []
    for t in profile.models:
        passes = "forward" if t.mode == "inference" else "forward+backward"
        key = (t.model, passes, t.backend, t.dtype)
        share = attention[key] / t.seconds if t.seconds and key in attention and complete[key] else None
        # attention timed alone (its calls one by one, each with its own overhead) can come to more than the
        # whole step it is part of: then the two measurements do not compare, and no share is shown
        over = share is not None and share > 1.0
        rows.append(
            {
                "model": t.model,
                "mode": t.mode,
                "dtype": _short(t.dtype),
                "kernel": t.backend,
                "batch": t.batch,
                "status": t.status,
                "ms": None if t.seconds is None else t.seconds * 1e3,
                "spread": t.spread,
                "samples_per_s": t.samples_per_s,
                "gflop": t.flops / 1e9,
                "gflops_per_s": t.gflops_per_s,
                "ceiling_fraction": t.ceiling_fraction,
                "attention_share": None if over else share,
                "attention_over": over,
                "peak_mb": None if t.peak_bytes is None else t.peak_bytes / 2**20,
            }
        )
    return rows


def _short(dtype: str) -> str:
    return {v: k for k, v in DTYPES.items()}.get(dtype, dtype)


def findings(profile) -> list[dict]:
    """The verdict on each (case, pass, dtype), as {case, pass, dtype, bound, kernel, fraction, met, text}: for
    cases bound by compute, whether the best fused kernel reaches the goal fraction of the ceiling; for the
    others, why the ceiling does not apply to them."""
    goal = profile.settings.goal_fraction
    groups = defaultdict(list)
    for row in attention_rows(profile):
        groups[(row["case"], row["pass"], row["dtype"])].append(row)
    cases = {c.name: c for c in profile.cases}
    verdicts = []
    for (name, passes, dtype), group in groups.items():
        case, bound = cases[name], group[0]["bound"]
        fused = [r for r in group if r["kernel"] not in UNFUSED and r["ceiling_fraction"] is not None]
        best = max(fused, key=lambda r: r["ceiling_fraction"]) if fused else None
        verdict = {
            "case": name,
            "pass": passes,
            "dtype": dtype,
            "bound": bound,
            "kernel": best and best["kernel"],
            "fraction": best and best["ceiling_fraction"],
            "met": None,
        }
        if best is None:
            tried = "; ".join(f"{r['kernel']} {r['status']}" for r in group if r["kernel"] not in UNFUSED)
            text = f"no fused kernel ran ({tried or 'none was chosen'})"
        elif bound == "compute":
            verdict["met"] = best["ceiling_fraction"] >= goal
            ceiling = best["ceiling_gflops"] or profile.ceilings[dtype]
            text = (
                f"{best['kernel']} reaches {_pct(best['ceiling_fraction'])} of the {dtype} ceiling "
                f"({best['gflops_per_s']:.1f} of {ceiling:.1f} GFLOP/s): goal {goal:.0%} "
                f"{'met' if verdict['met'] else 'NOT met'}"
            )
            products = profile.product_rates.get((name, dtype))
            if products:
                verdict["products_fraction"] = products / ceiling
                text += (
                    f"; for comparison, its two matrix products alone, written out (inner dimensions "
                    f"{case.head_dim} and {case.kv_len}), run at {_pct(verdict['products_fraction'])}"
                )
        elif bound == "memory":
            size = 4 if dtype == "fp32" else 2
            text = (
                f"{case.intensity(size):.2g} FLOP/byte, below the balance of {profile.balance[dtype]:.2g} "
                f"(best fused: {best['kernel']} {_pct(best['ceiling_fraction'])})"
            )
        else:
            ideal = case.flops(passes == "forward+backward") / (profile.ceilings[dtype] * 1e9)
            text = (
                f"{ideal * 1e6:.3g} µs at the ceiling (best fused: {best['kernel']} {_pct(best['ceiling_fraction'])})"
            )
        verdict["text"] = f"{name}, {passes}, {dtype}: {text}"
        verdicts.append(verdict)
    return verdicts


BOUND_TITLES = {
    "compute": "Bound by compute: the ceiling applies, and the goal with it",
    "memory": "Bound by memory: fewer FLOPs per byte than the machine's balance (ceiling / bandwidth); the ceiling "
    "does not apply",
    "overhead": "Bound by per-call overhead: even at the ceiling a call would take less than ten one-token calls; "
    "the ceiling does not apply",
}


def findings_text(profile, brief: bool = False) -> list[str]:
    """The findings as lines, grouped by what bounds the cases; `brief` counts the cases the ceiling does not
    apply to instead of listing them (the terminal; the report lists them all)."""
    verdicts = findings(profile)
    lines = []
    for bound, title in BOUND_TITLES.items():
        chosen = [v for v in verdicts if v["bound"] == bound]
        if not chosen:
            if bound == "compute":
                lines.append(
                    f"No case is bound by compute here, so the goal of {profile.settings.goal_fraction:.0%} of "
                    "the ceiling applies to none (small inputs give tiny calls; profile hsta_base_224 "
                    "with --preset paper)."
                )
            continue
        if brief and bound != "compute":
            lines.append(f"{title}: {len(chosen)} (case, pass) pairs, listed in the report.")
            continue
        lines.append(f"{title}:")
        lines += [f"  - {v['text']}" for v in chosen]
    return lines


def _cell(row) -> str:
    if row["status"] != "ok":
        return row["status"].split(":")[0]
    return f"{_ms(row)} {_pct(row['ceiling_fraction'])} {_mb(row['peak_mb'])} MB"


def tables(profile):
    """Two rich tables: the attention cases (a column per kernel: median time, fraction of the ceiling, peak
    memory; left out when no model has attention) and the models (a column per kernel they ran with: median
    time, samples/s, attention's share of the time)."""
    kernels = list(profile.settings.kernels)
    a = Table(title="Attention (median ms, % of the matrix-product ceiling, peak MB)", title_justify="left")
    for column in ("case", "pass", "dtype", "bound", "GFLOP"):
        a.add_column(column, justify="right" if column == "GFLOP" else "left")
    for kernel in kernels:
        a.add_column(kernel, justify="right")
    grouped = defaultdict(dict)
    for row in attention_rows(profile):
        grouped[(row["case"], row["pass"], row["dtype"], row["bound"], row["gflop"])][row["kernel"]] = row
    for (case, passes, dtype, bound, gflop), by_kernel in grouped.items():
        a.add_row(
            case,
            passes,
            dtype,
            bound,
            f"{gflop:.3g}",
            *[_cell(by_kernel[k]) if k in by_kernel else "" for k in kernels],
        )
    attention = [a] if grouped else []  # no model profiled has attention: no empty table
    m = Table(title="Models (median ms, samples/s, attention's share of the time)", title_justify="left")
    for column in ("model", "mode", "dtype", "batch", "GFLOP"):
        m.add_column(column, justify="right" if column in ("batch", "GFLOP") else "left")
    model_kernels = [k for k in kernels if any(t.backend == k for t in profile.models)] + (
        ["-"] if any(t.backend == "-" for t in profile.models) else []
    )
    for kernel in model_kernels:
        m.add_column(kernel if kernel != "-" else "(no attention)", justify="right")
    grouped = defaultdict(dict)
    for row in model_rows(profile):
        grouped[(row["model"], row["mode"], row["dtype"], row["batch"], row["gflop"])][row["kernel"]] = row
    for (model, mode, dtype, batch, gflop), by_kernel in grouped.items():
        cells = []
        for k in model_kernels:
            row = by_kernel.get(k)
            if row is None:
                cells.append("")
            elif row["status"] != "ok":
                cells.append(row["status"].split(":")[0])
            else:
                share = f" {_pct(row['attention_share'])} attn" if row["attention_share"] is not None else ""
                cells.append(f"{_ms(row)} {row['samples_per_s']:.3g}/s{share}")
        m.add_row(model, mode, dtype, str(batch), f"{gflop:.3g}", *cells)
    return (*attention, m)


def header(profile) -> list[str]:
    env, s = profile.environment, profile.settings
    withheld = withheld_shares(profile)
    ceilings = ", ".join(
        f"{d} {g:.1f} GFLOP/s (median of {len(profile.ceiling_samples.get(d, []))}, "
        f"{min(profile.ceiling_samples.get(d, [g])):.1f}-{max(profile.ceiling_samples.get(d, [g])):.1f}; "
        "each fraction uses the one measured just before it)"
        for d, g in profile.ceilings.items()
    )
    return [
        f"torch {env['torch']} · {env['device']}: {env['device_name']} · {env['threads']} threads · "
        f"python {env['python']} · hsta-bench {env['hsta_bench']} (commit {env['commit'] or 'unknown'})",
        f"matrix-product ceiling ({s.ceiling_size}² product): {ceilings}; memory bandwidth (copy) "
        f"{profile.bandwidth:.1f} GB/s; a one-token sdpa call: "
        + ", ".join(f"{p} {v * 1e6:.3g} µs" for p, v in profile.floors.items()),
        f"preset {s.preset} ({'small' if s.small_inputs else 'full-size'} inputs), batch {s.batch}, median of "
        f"at least {s.repeats} calls after {s.warmup} warm-up (more while their interquartile range is over "
        f"{STABLE_SPREAD:.0%} of it; ±: half that range)"
        + (
            f"; {withheld} attention share(s) not shown: attention timed alone took longer than the whole step"
            if withheld
            else ""
        ),
    ]


def markdown(profile, files: dict[str, str]) -> str:
    lines = [
        "# hsta-bench profile",
        "",
        *[f"- {line}" for line in header(profile)],
        "",
        "How to read it: FLOPs are dense (every query-key pair; counted by torch's FLOP counter where it sees the "
        "kernel, analytically otherwise, as the table says), so a masked case run by flex, which skips masked "
        "blocks, can exceed the ceiling. 'bound' says what limits a case here: compute (its FLOPs per byte reach "
        "the balance of ceiling and bandwidth, and it is long enough: the ceiling applies), memory, or per-call "
        "overhead (a call costs more than its arithmetic). Every kernel was checked against the written-out "
        "attention (outputs, and gradients when the backward pass is timed) before it was timed.",
        "",
        "## Findings",
        "",
        *findings_text(profile),
        "",
        f"![time and fraction of the ceiling per kernel]({files['plot']})",
        "",
        "## Attention",
        "",
        "| case | pass | dtype | bound | kernel | status | ms | GFLOP (source) | GFLOP/s | % ceiling | peak MB | "
        "max error |",
        "|---|---|---|---|---|---|--:|---|--:|--:|--:|--:|",
    ]
    for r in attention_rows(profile):
        source = "counter" if r["flops_source"].startswith("torch") else "analytic"
        lines.append(
            f"| {r['case']} | {r['pass']} | {r['dtype']} | {r['bound']} | {r['kernel']} | {r['status']} | "
            f"{fmt(r['ms'])}{_pm(r)} | {r['gflop']:.3g} ({source}) | {fmt(r['gflops_per_s'], 1)} | "
            f"{_pct(r['ceiling_fraction'])} | {fmt(r['peak_mb'], 2)} | "
            f"{'-' if r['max_error'] is None else format(r['max_error'], '.1e')} |"
        )
    lines += [
        "",
        "## Models",
        "",
        "Inference: a forward pass without gradients; train step: forward, loss, backward and an AdamW update. "
        "GFLOP by torch's FLOP counter (the dense work); attention share: the model's attention calls timed "
        "alone with the same kernel, as a fraction of the whole.",
        "",
        "| model | mode | dtype | kernel | batch | status | ms | samples/s | GFLOP | GFLOP/s | % ceiling | "
        "attention share | peak MB |",
        "|---|---|---|---|--:|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in model_rows(profile):
        lines.append(
            f"| {r['model']} | {r['mode']} | {r['dtype']} | {r['kernel']} | {r['batch']} | {r['status']} | "
            f"{fmt(r['ms'])}{_pm(r)} | {fmt(r['samples_per_s'], 1)} | {r['gflop']:.3g} | {fmt(r['gflops_per_s'], 1)} | "
            f"{_pct(r['ceiling_fraction'])} | {_pct(r['attention_share'])} | {fmt(r['peak_mb'], 2)} |"
        )
    lines += ["", "Files: " + ", ".join(f"`{name}`" for name in files.values()), ""]
    return "\n".join(lines)


def plot(profile, path: Path) -> None:
    """Per pass (rows): each case's median time (log scale) and its fraction of the ceiling, a bar per kernel
    (and dtype), the goal fraction as a dashed line."""
    # matplotlib (about a second to import) only when a plot is drawn: the command's checks and tables go first
    import matplotlib  # noqa: PLC0415
    import matplotlib.pyplot as plt  # noqa: PLC0415

    matplotlib.use("Agg")

    rows = [r for r in attention_rows(profile) if r["status"] == "ok"]
    passes = list(profile.settings.passes)
    cases = list(dict.fromkeys(r["case"] for r in attention_rows(profile)))
    series = list(dict.fromkeys((r["kernel"], r["dtype"]) for r in attention_rows(profile)))
    height = max(2.5, 0.32 * len(cases) * max(len(series), 1) ** 0.5 + 1.2)
    fig, axes = plt.subplots(len(passes), 2, figsize=(12, height * len(passes)), dpi=100, squeeze=False)
    bar = 0.8 / max(len(series), 1)
    for i, p in enumerate(passes):
        for j, (column, label) in enumerate(
            (("ms", "median time (ms, log scale)"), ("ceiling_fraction", "fraction of the matrix-product ceiling"))
        ):
            ax = axes[i][j]
            for s, (kernel, dtype) in enumerate(series):
                values = {
                    r["case"]: r[column]
                    for r in rows
                    if r["pass"] == p and (r["kernel"], r["dtype"]) == (kernel, dtype)
                }
                ys = [c for c in range(len(cases)) if cases[c] in values]
                ax.barh(
                    [y + s * bar for y in ys],
                    [values[cases[y]] for y in ys],
                    height=bar,
                    color=f"C{s % 10}",
                    label=kernel if len(profile.settings.dtypes) == 1 else f"{kernel} {dtype}",
                )
            ax.set_yticks([c + 0.4 - bar / 2 for c in range(len(cases))])
            ax.set_yticklabels(cases if j == 0 else [""] * len(cases), fontsize=7)
            ax.invert_yaxis()
            ax.set_xlabel(label, fontsize=8)
            ax.set_title(p, fontsize=9)
            ax.grid(axis="x", alpha=0.3)
            if column == "ms":
                ax.set_xscale("log")
            else:
                ax.axvline(profile.settings.goal_fraction, color="k", linestyle="--", linewidth=1)
            if i == 0 and j == 1 and series:  # models without attention (your own CNN) have no case to plot
                ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(" · ".join(header(profile)[:1]), fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


def _write_csv(rows: list[dict], path: Path) -> None:
    # the standard library's csv, not polars: the profile also runs where only torch is installed (a GPU box)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)


def document(profile, files: dict[str, str]) -> dict:
    """The whole profile as JSON: settings, environment, ceilings, cases, every timing, the findings, the files."""
    return {**profile.as_dict(), "findings": findings(profile), "files": files}


def write(profile, folder: Path) -> dict[str, str]:
    """Every file of the profile, each written whole (temporary file, then renamed); returns their names."""
    env = slug(profile.environment, profile.settings.dtypes)
    files = {
        "report": f"report-{env}.md",
        "json": f"profile-{env}.json",
        "attention": f"attention-{env}.csv",
        "models": f"models-{env}.csv",
        "plot": f"plot-{env}.png",
    }
    folder.mkdir(parents=True, exist_ok=True)
    for key, rows in (("attention", attention_rows(profile)), ("models", model_rows(profile))):
        atomic_write(folder / files[key], lambda tmp, rows=rows: _write_csv(rows, tmp))
    plot(profile, folder / files["plot"])
    write_json(document(profile, files), folder / files["json"])
    atomic_write(folder / files["report"], lambda tmp: tmp.write_text(markdown(profile, files), encoding="utf-8"))
    return files
